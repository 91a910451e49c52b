"""The served state: an immutable :class:`Snapshot`, swapped whole under one lock.

A snapshot is everything a request's answer depends on except the time: the configured
instance (as a base tree of leaves), the options, the credential source and the timeline
of scenario changes. ``Snapshot.table(now)`` returns the compiled table for the time
segment holding ``now`` (scenario changes and credential rotations bound the segments);
tables are compiled on first use and memoised, so the hot path is one comparison.

Live changes (the control API, config reloads) build a new snapshot and swap it in with
:meth:`State.swap`; a request holds on to the snapshot it started with.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from imdsmock.config.schema import Config
from imdsmock.core.table import Table, compile_table
from imdsmock.core.tokens import TokenIssuer
from imdsmock.instance.credentials import CredentialSource, initial_source
from imdsmock.instance.model import (
    Leaf,
    apply_paths,
    base_tree,
    credential_leaves,
    listing_overrides,
)
from imdsmock.instance.timeline import Timeline
from imdsmock.signing.signer import Signer

__all__ = ["Snapshot", "State", "build_snapshot", "rebuild"]

_MEMO_LIMIT = 32


class _Window(NamedTuple):
    # A named tuple: cheaper to build at start-up than a frozen dataclass (issue 9).
    start: float
    end: float
    table: Table
    halted: bool


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
    # The scenarios whose merged timeline this is (see imdsmock.scenarios.with_scenarios).
    scenarios: tuple[Any, ...] = ()
    _window: list[_Window | None] = field(default_factory=lambda: [None], compare=False)
    _memo: dict[tuple[int, int], _Window] = field(default_factory=dict, compare=False)

    def table(self, now: float) -> Table:
        """The compiled table in force at ``now``."""
        w = self._window[0]
        if w is None or not (w.start <= now < w.end):
            w = self._compile(now)
            self._window[0] = w
        return w.table

    def halted(self, now: float) -> bool:
        """Whether the instance has stopped answering at ``now`` (terminated)."""
        self.table(now)
        w = self._window[0]
        return w is not None and w.halted

    def _compile(self, now: float) -> _Window:
        index, start, end = self.timeline.segment(now)
        epoch = 0
        if self.credentials is not None:
            epoch = self.credentials.epoch(now)
            cstart, cend = self.credentials.window(epoch)
            start, end = max(start, cstart), min(end, cend)
        key = (index, epoch)
        cached = self._memo.get(key)
        if cached is not None:
            return _Window(start, end, cached.table, cached.halted)
        tree = dict(self.base)
        if self.credentials is not None:
            role = self.config.instance.iam_role or ""
            tree.update(
                credential_leaves(
                    self.config,
                    self.credentials.issue(epoch, role),
                    self.credentials.issue(epoch, "\0ec2-instance"),
                )
            )
        halted = self.timeline.apply(tree, index)
        apply_paths(tree, self.config.paths)
        apply_paths(tree, self.edits)
        table = compile_table(
            tree,
            listing_overrides=_live_overrides(self.listing_overrides, tree),
            gated=self.gated,
            last_modified=self.started,
        )
        window = _Window(start, end, table, halted)
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = window
        return window

    def evolve(self, **changes: object) -> Snapshot:
        """A new snapshot with some fields replaced (and fresh memos)."""
        changes.setdefault("_window", [None])
        changes.setdefault("_memo", {})
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _live_overrides(overrides: Mapping[str, str], tree: Mapping[str, Leaf]) -> dict[str, str]:
    # An override only applies while its directory still has entries.
    return {d: text for d, text in overrides.items() if any(p.startswith(d + "/") for p in tree)}


def build_snapshot(
    cfg: Config,
    *,
    signer: Signer,
    started: float,
    timeline: Timeline | None = None,
    gated: frozenset[str] = frozenset(),
) -> Snapshot:
    """Config -> model -> snapshot (tables are compiled lazily, per time segment)."""
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


class State:
    """The current snapshot plus the token issuer; changes swap a whole new snapshot."""

    __slots__ = ("_lock", "snapshot", "tokens")

    def __init__(self, snapshot: Snapshot, tokens: TokenIssuer | None = None) -> None:
        self.snapshot = snapshot
        self.tokens = tokens or TokenIssuer()
        self._lock = threading.Lock()

    def swap(self, change: Callable[[Snapshot], Snapshot]) -> Snapshot:
        """Build a new snapshot from the current one and make it current, atomically.

        If ``change`` raises, nothing changes.
        """
        with self._lock:
            new = change(self.snapshot)
            self.snapshot = new
            return new
