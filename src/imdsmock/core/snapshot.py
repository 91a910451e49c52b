"""The served state as a value: one :class:`Snapshot` of the instance, time aside.

A snapshot is everything a request's answer depends on except the time: the configured
instance (as a base tree of leaves), the options, the credential source and the timeline
of scenario changes. It is a plain, frozen value: compiling it for serving, and what
changes under it at run time (tokens, forced credential failures), belong to
:class:`~imdsmock.core.state.State`. Live changes (the control API, config reloads) build a
new snapshot from the current one and swap it in whole.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from imdsmock.config.schema import Config, InstanceConfig
from imdsmock.instance.credentials import CredentialSource, initial_source
from imdsmock.instance.model import Leaf, base_tree, listing_overrides
from imdsmock.instance.timeline import Timeline
from imdsmock.signing.signer import Signer

__all__ = ["Snapshot", "build_snapshot", "rebuild"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """One immutable state of the instance (time aside)."""

    config: Config
    base: Mapping[str, Leaf]
    listing_overrides: Mapping[str, str]
    credentials: CredentialSource | None
    timeline: Timeline = field(default_factory=Timeline)
    # Paths changed at run time (control API), applied after config.paths.
    edits: Mapping[str, str | None] = field(default_factory=dict)
    # Paths only the first N clients may see (AEMM's --mock-ip-count).
    gated: frozenset[str] = frozenset()
    started: float = 0.0
    signer: Signer | None = None
    # The scenarios whose merged timeline this is (see imdsmock.core.scenarios).
    scenarios: tuple[Any, ...] = ()
    # The instance as configured, while run-time changes (control API) replace it in
    # config.instance: what a reset goes back to. None: no run-time change.
    configured_instance: InstanceConfig | None = None

    def evolve(self, **changes: Any) -> Snapshot:
        """A new snapshot with some fields replaced."""
        return dataclasses.replace(self, **changes)


def build_snapshot(
    cfg: Config,
    *,
    signer: Signer,
    started: float,
    timeline: Timeline | None = None,
    gated: frozenset[str] = frozenset(),
    seed: bytes | None = None,
) -> Snapshot:
    """Config -> model -> snapshot; ``seed`` (else the configured one, else random) makes
    the credential keys."""
    if seed is None:
        seed = cfg.credentials.seed.encode() if cfg.credentials.seed else os.urandom(32)
    return Snapshot(
        config=cfg,
        base=base_tree(cfg, signer, started),
        listing_overrides=listing_overrides(cfg),
        credentials=initial_source(cfg.credentials, started, seed),
        timeline=timeline or Timeline(),
        gated=gated,
        started=started,
        signer=signer,
    )


def rebuild(snapshot: Snapshot, config: Config) -> Snapshot:
    """The same instance under a new configuration (options switched, values changed).

    Keeps what must not change with it: the signer, the start time, the credential seed
    (so keys do not change because a tag did), the timeline and run-time edits.
    """
    creds = snapshot.credentials
    if creds is not None:
        creds = creds.with_config(config.credentials)
    signer = snapshot.signer
    assert signer is not None, "snapshots built by build_snapshot carry their signer"
    return snapshot.evolve(
        config=config,
        base=base_tree(config, signer, snapshot.started),
        listing_overrides=listing_overrides(config),
        credentials=creds,
    )
