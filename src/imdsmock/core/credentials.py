"""Role credentials in a running mock: the set in force, its documents per rotation epoch,
the control operations, and the fetches that must fail.

The operations on a snapshot (:func:`rotate_now`, :func:`serve_expired`) are pure
snapshot -> snapshot functions. What changes under the snapshots lives in
:class:`~imdsmock.core.state.State`: the count of fetches that must fail
(:class:`RefreshFailures`) and the rendered documents of each epoch
(:class:`EpochDocuments`), which outlive the swaps that do not change the credentials.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Mapping
from typing import NamedTuple

from imdsmock.core.snapshot import Snapshot
from imdsmock.core.table import Entry, leaf_entry
from imdsmock.core.wire import Response, render
from imdsmock.errors import ConfigError
from imdsmock.instance.credentials import (
    INSTANCE_ROLE,
    CredentialSet,
    FakeCredentials,
    FixedCredentials,
    failure_document,
    unavailable,
)
from imdsmock.instance.imdsjson import dumps
from imdsmock.instance.model import credential_leaves

__all__ = [
    "EpochDocuments",
    "EpochWindow",
    "RefreshFailures",
    "current_set",
    "rotate_now",
    "serve_expired",
]


def current_set(snapshot: Snapshot, now: float) -> CredentialSet | None:
    """The role's set in force at ``now`` (``None`` when the instance has no role)."""
    source = snapshot.credentials
    role = snapshot.config.instance.iam_role
    if source is None or role is None:
        return None
    return source.issue(source.epoch(now), role)


def rotate_now(snapshot: Snapshot, now: float) -> Snapshot:
    """Issue a new set at ``now`` (``LastUpdated`` = now), as EC2's early rotation does.

    A real source only counts the request: its refresher fetches a new set when it sees it.
    """
    source = snapshot.credentials
    if isinstance(source, FakeCredentials):
        rotated = dataclasses.replace(source, origin=now, generation=source.generation + 1)
        return snapshot.evolve(credentials=rotated)
    if isinstance(source, FixedCredentials):
        asked = dataclasses.replace(source, generation=source.generation + 1)
        return snapshot.evolve(credentials=asked)
    return snapshot


def serve_expired(snapshot: Snapshot, on: bool) -> Snapshot:
    """Serve documents whose ``Expiration`` is already past (``on``), or normal ones again."""
    source = snapshot.credentials
    if not isinstance(source, FakeCredentials | FixedCredentials) or source.expired == on:
        return snapshot
    return snapshot.evolve(credentials=dataclasses.replace(source, expired=on))


class RefreshFailures:
    """How many of the next role-document fetches fail as EC2's do (thread-safe).

    A failing fetch answers HTTP 200 with ``Code`` ``AssumeRoleUnauthorizedAccess`` and a
    ``Message``; SDKs treat it as "no credentials from IMDS". The IMDS handler asks only
    for a role document, and takes a failure only while :attr:`remaining` is non-zero.
    """

    __slots__ = ("_get", "_head", "_lock", "remaining")

    def __init__(self) -> None:
        self.remaining = 0
        self._lock = threading.Lock()
        self._get = self._head = render(200, b"")

    def arm(self, count: int, role: str, when: float) -> None:
        """Fail the next ``count`` fetches (0 disarms) with the document of ``role``."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigError("count", count, "an integer >= 0")
        body = dumps(failure_document(unavailable(role, when))).encode()
        with self._lock:
            self._get = render(200, body)
            self._head = render(200, body, head_only=True)
            self.remaining = count

    def clear(self) -> None:
        """Fail no more fetches."""
        with self._lock:
            self.remaining = 0

    def take(self) -> bool:
        """Consume one failure; ``False`` when none is left."""
        with self._lock:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            return True

    def answer(self, head: bool) -> Response:
        """The failure document, as a GET or a HEAD answer."""
        return self._head if head else self._get


class EpochWindow(NamedTuple):
    """The credential documents answered from ``start`` until ``end``, by path."""

    start: float
    end: float
    entries: Mapping[str, Entry]


_NO_DOCUMENTS = EpochWindow(float("-inf"), float("inf"), {})
_KEEP = 8


class EpochDocuments:
    """The rendered credential documents of each rotation epoch, ready before they are asked.

    Epochs never end, so no table can hold them all: each epoch's documents are rendered
    once (three documents, not a table) and kept for the last few epochs. Kept by value,
    they survive every swap that does not change the credentials (a metadata edit, a
    scenario). When an epoch is first served, the next one is rendered through ``defer``
    (the server sets it to its event loop's ``call_soon_threadsafe``), so it is ready
    before its first request; without ``defer`` it is rendered when first asked for.
    """

    __slots__ = ("_lock", "_memo", "defer")

    def __init__(self) -> None:
        self._memo: dict[tuple[object, ...], Mapping[str, Entry]] = {}
        self._lock = threading.Lock()
        self.defer: Callable[[Callable[[], object]], object] | None = None

    def window(self, snapshot: Snapshot, now: float) -> EpochWindow:
        """The documents in force at ``now`` and how long they last."""
        source = snapshot.credentials
        if source is None:
            return _NO_DOCUMENTS
        epoch = source.epoch(now)
        start, end = source.window(epoch)
        entries = self.documents(snapshot, epoch)
        defer = self.defer
        ahead = self._key(snapshot, epoch + 1)
        if defer is not None and end != float("inf") and ahead not in self._memo:
            # A closed loop raises: the next epoch is then rendered when asked for.
            with contextlib.suppress(RuntimeError):
                defer(lambda: self.documents(snapshot, epoch + 1))
        return EpochWindow(start, end, entries)

    def documents(self, snapshot: Snapshot, epoch: int) -> Mapping[str, Entry]:
        """The documents of ``epoch``, rendered on first use."""
        key = self._key(snapshot, epoch)
        found = self._memo.get(key)
        if found is not None:
            return found
        source = snapshot.credentials
        assert source is not None
        role = snapshot.config.instance.iam_role or ""
        leaves = credential_leaves(
            snapshot.config, source.issue(epoch, role), source.issue(epoch, INSTANCE_ROLE)
        )
        entries = {path: leaf_entry(leaf, snapshot.started) for path, leaf in leaves.items()}
        with self._lock:
            while len(self._memo) >= _KEEP:
                del self._memo[next(iter(self._memo))]
            self._memo[key] = entries
        return entries

    @staticmethod
    def _key(snapshot: Snapshot, epoch: int) -> tuple[object, ...]:
        # Everything the documents depend on: the source (seed, times, switches), the role,
        # the account (extended documents), the start (Last-Modified) and the epoch.
        inst = snapshot.config.instance
        return (snapshot.credentials, inst.iam_role, inst.account_id, snapshot.started, epoch)
