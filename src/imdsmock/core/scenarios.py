"""Scenarios applied to a snapshot: the running set, its merged timeline, its gated paths."""

from __future__ import annotations

from imdsmock.core.snapshot import Snapshot
from imdsmock.instance.notices import GATED_PATHS
from imdsmock.instance.scenarios import Scenario, scenarios_timeline

__all__ = ["with_scenarios"]


def with_scenarios(snapshot: Snapshot, scenarios: tuple[Scenario, ...]) -> Snapshot:
    """The snapshot with exactly these scenarios (their merged timeline, gated paths)."""
    return snapshot.evolve(
        scenarios=tuple(scenarios),
        timeline=scenarios_timeline(scenarios),
        gated=snapshot.gated | GATED_PATHS,
    )
