"""The served state: the current snapshot compiled for serving, swapped whole under one lock.

A :class:`~imdsmock.core.snapshot.Snapshot` is a plain value. :class:`State` holds the
current one as a :class:`Compiled` snapshot, built when it is installed: one table per
timeline segment (a timeline with k changes compiles to k + 1 tables), so a request only
picks the segment in force (one comparison while it lasts) and looks a path up. Nothing on
the request path compiles a table. Credential documents change with every rotation epoch,
and epochs never end: the tables mark those paths, and their answers come from the epoch's
own small table (:class:`~imdsmock.core.credentials.EpochDocuments`).

Beside the snapshot, :class:`State` holds what changes under it at run time: the token
issuer and the forced credential failures. A request holds on to the compiled snapshot it
started with.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Mapping
from typing import NamedTuple

from imdsmock.core.credentials import EpochDocuments, EpochWindow, RefreshFailures
from imdsmock.core.snapshot import Snapshot
from imdsmock.core.table import PER_EPOCH, Entry, Pool, Table, compile_table
from imdsmock.core.tokens import TokenIssuer
from imdsmock.instance.model import (
    INSTANCE_CREDENTIALS,
    Leaf,
    apply_paths,
    role_document_paths,
)

__all__ = ["Compiled", "State"]

_INF = float("inf")
_NEG_INF = -_INF  # one object for every segment's open start (read on every request)


class _Segment(NamedTuple):
    # A named tuple: cheaper to build and read than a frozen dataclass.
    start: float
    end: float
    table: Table
    halted: bool


class Compiled:
    """A snapshot compiled for serving: a table per timeline segment, documents per epoch.

    ``failures`` and ``documents`` belong to the :class:`State` and are shared by every
    snapshot it installs; a snapshot compiled on its own gets fresh ones. Answers ``pool``
    holds are shared rather than rendered again (a fleet's instances share one).
    """

    __slots__ = (
        "_documents",
        "_epoch",
        "_points",
        "_segment",
        "_segments",
        "failures",
        "options",
        "snapshot",
    )

    def __init__(
        self,
        snapshot: Snapshot,
        *,
        failures: RefreshFailures | None = None,
        documents: EpochDocuments | None = None,
        pool: Pool | None = None,
    ) -> None:
        self.snapshot = snapshot
        # Read on every request: one object away rather than three (a fleet's instances
        # are cold in the CPU caches when requests spread over them).
        self.options = snapshot.config.options
        self.failures = failures if failures is not None else RefreshFailures()
        self._documents = documents if documents is not None else EpochDocuments()
        self._points = snapshot.timeline.points
        self._segments = _compile(snapshot, pool)
        self._segment = self._segments[0]
        self._epoch = EpochWindow(_INF, -_INF, {})

    def table(self, now: float) -> Table:
        """The table in force at ``now``."""
        s = self._segment
        if s.start <= now < s.end:
            return s.table
        return self._enter(now).table

    def halted(self, now: float) -> bool:
        """Whether the instance has stopped answering at ``now`` (terminated)."""
        s = self._segment
        if s.start <= now < s.end:
            return s.halted
        return self._enter(now).halted

    def per_epoch(self, entry: Entry, now: float) -> Entry:
        """The answer at ``now`` for a :data:`~imdsmock.core.table.PER_EPOCH` entry."""
        w = self._epoch
        if not w.start <= now < w.end:
            w = self._epoch = self._documents.window(self.snapshot, now)
        return w.entries[entry.key]

    def lookup(self, rel: str, now: float) -> Entry | None:
        """The answers at ``now`` for a path relative to a version root (``None``: 404)."""
        entry = self.table(now).lookup(rel)
        if entry is not None and entry.flags & PER_EPOCH:
            return self.per_epoch(entry, now)
        return entry

    def _enter(self, now: float) -> _Segment:
        s = self._segment = self._segments[bisect.bisect_right(self._points, now)]
        return s


def _compile(snapshot: Snapshot, pool: Pool | None) -> tuple[_Segment, ...]:
    """One table per segment of the snapshot's timeline, in time order."""
    config = snapshot.config
    # Credential documents are answered per epoch: the tree holds a marker leaf at their
    # paths, and only the paths where the marker survives the changes, config.paths and
    # edits answer per epoch (a path set or removed by the user is served as the user says).
    marker = Leaf(b"")
    credential_paths: tuple[str, ...] = ()
    if snapshot.credentials is not None:
        credential_paths = (*role_document_paths(config), INSTANCE_CREDENTIALS)
    roles = frozenset(role_document_paths(config))
    timeline = snapshot.timeline
    points = timeline.points
    segments: list[_Segment] = []
    for index in range(len(points) + 1):
        start = points[index - 1] if index else _NEG_INF
        end = points[index] if index < len(points) else _INF
        if start == end:
            # Changes at the same time (scenarios started "now"): a segment never in force.
            segments.append(segments[-1]._replace(start=start, end=end))
            continue
        tree = dict(snapshot.base)
        for path in credential_paths:
            tree[path] = marker
        halted = timeline.apply(tree, index)
        apply_paths(tree, config.paths)
        apply_paths(tree, snapshot.edits)
        table = compile_table(
            tree,
            listing_overrides=_live_overrides(snapshot.listing_overrides, tree),
            gated=snapshot.gated,
            per_epoch=frozenset(p for p in credential_paths if tree.get(p) is marker),
            role_documents=roles,
            last_modified=snapshot.started,
            pool=pool,
        )
        segments.append(_Segment(start, end, table, halted))
    return tuple(segments)


def _live_overrides(overrides: Mapping[str, str], tree: Mapping[str, Leaf]) -> dict[str, str]:
    # An override only applies while its directory still has entries.
    return {d: text for d, text in overrides.items() if any(p.startswith(d + "/") for p in tree)}


class State:
    """The current compiled snapshot, the token issuer and the forced credential failures.

    Changes swap a whole new snapshot, compiled before it is installed; with a ``pool``,
    its tables share the answers the pool holds (see :class:`~imdsmock.core.table.Pool`).
    """

    __slots__ = ("_lock", "_pool", "compiled", "documents", "failures", "tokens")

    def __init__(
        self, snapshot: Snapshot, tokens: TokenIssuer | None = None, *, pool: Pool | None = None
    ) -> None:
        self._pool = pool
        self.tokens = tokens or TokenIssuer()
        self.failures = RefreshFailures()
        self.documents = EpochDocuments()
        self.compiled = self._compile(snapshot)
        self._lock = threading.Lock()

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot in force."""
        return self.compiled.snapshot

    def swap(self, change: Callable[[Snapshot], Snapshot]) -> Snapshot:
        """Build a new snapshot from the current one, compile it and make it current,
        atomically. If ``change`` raises, nothing changes."""
        with self._lock:
            new = change(self.compiled.snapshot)
            self.compiled = self._compile(new)
            return new

    def prepare(self, now: float) -> None:
        """Render the credential documents in force at ``now`` (and, with a ``defer`` set on
        :attr:`documents`, the next epoch's), so that the first request finds them ready."""
        self.documents.window(self.compiled.snapshot, now)

    def _compile(self, snapshot: Snapshot) -> Compiled:
        return Compiled(snapshot, failures=self.failures, documents=self.documents, pool=self._pool)
