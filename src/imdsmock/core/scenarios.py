"""Scenarios applied to a snapshot: the running set, its merged timeline, its gated paths.

The configuration's scenarios arrive validated (:mod:`imdsmock.config.scenarios`) and are
placed in time from the start of the mock; those started at run time are parsed by the
same parser and placed from the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imdsmock.config.scenarios import parse_scenario
from imdsmock.config.schema import Config
from imdsmock.core.snapshot import Snapshot, rebuild
from imdsmock.instance.notices import GATED_PATHS
from imdsmock.instance.scenarios import Scenario, place, scenarios_timeline

__all__ = ["configured", "reconfigured", "started", "with_scenarios"]


def with_scenarios(snapshot: Snapshot, scenarios: tuple[Scenario, ...]) -> Snapshot:
    """The snapshot with exactly these scenarios (their merged timeline, gated paths)."""
    return snapshot.evolve(
        scenarios=tuple(scenarios),
        timeline=scenarios_timeline(scenarios),
        gated=snapshot.gated | GATED_PATHS,
    )


def configured(snapshot: Snapshot) -> Snapshot:
    """The snapshot running its configuration's scenarios, from its start."""
    placed = tuple(place(c, snapshot.started) for c in snapshot.config.scenarios)
    return with_scenarios(snapshot, placed)


def started(data: Mapping[str, Any], now: float) -> Scenario:
    """A scenario started at ``now`` from a control-API mapping (relative times from now)."""
    return place(parse_scenario(data, now=now), now)


def reconfigured(snapshot: Snapshot, config: Config) -> Snapshot:
    """The same instance under ``config``: rebuilt tree and the new config's scenarios.

    The old configuration's scenarios are replaced by the new one's (relative times count
    from the start); scenarios started at run time (control API) are kept. Both
    configurations hold their scenarios validated: nothing is parsed here. The instance is
    the new configuration's: run-time changes to its facts end, as option changes do.
    """
    old_ids = {c.id for c in snapshot.config.scenarios}
    kept = tuple(s for s in snapshot.scenarios if s.id not in old_ids)
    fresh = tuple(place(c, snapshot.started) for c in config.scenarios)
    rebuilt = rebuild(snapshot, config).evolve(configured_instance=None)
    return with_scenarios(rebuilt, fresh + kept)
