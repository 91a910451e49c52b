"""Compile a tree of leaves into the response table: every answer rendered ahead of time.

A request is then one dict lookup that returns pre-rendered bytes. Listings are derived
from the leaves (a directory lists its children, sub-directories with a trailing ``/``),
sorted as IMDS sorts them, without a trailing newline.

A few entries carry flags the handler checks (one test, false for every other path):
per-client notices (:data:`GATED`), credential documents that change with each rotation
epoch and are answered from the epoch's own small table (:data:`PER_EPOCH`), and the
role's documents, which forced credential failures replace (:data:`ROLE_DOCUMENT`).

Path strings are interned: a request's path (interned by the server's path memo) is then
the very key the table holds, and a lookup matches it by identity without reading the key
(a big table's keys are cold in the CPU caches). Tables of a fleet share their answers
through a :class:`Pool`: most of the instances' answers are the same bytes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from imdsmock.config.defaults import VERSIONS
from imdsmock.core.wire import Response, error, render
from imdsmock.instance.model import Leaf

__all__ = [
    "GATED",
    "PER_EPOCH",
    "ROLE_DOCUMENT",
    "Entry",
    "Pool",
    "Table",
    "compile_table",
    "leaf_entry",
    "listings",
]

GATED = 1
PER_EPOCH = 2
ROLE_DOCUMENT = 4


class Entry(NamedTuple):
    """The GET and HEAD answers for one path, its flags, and (flag PER_EPOCH) its path."""

    get: Response
    head: Response
    flags: int = 0
    key: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    """The compiled answers for one state of the instance."""

    # Path relative to a version root ("" is the version root itself) -> answers.
    entries: Mapping[str, Entry]
    # Exact request paths under /latest (with and without trailing slash) -> answers.
    fast: Mapping[str, Entry]
    # "/" -> the version list.
    root: Entry
    # This table's own object, compared by identity: an answer remembered from it
    # (imdsmock.core.imds.Known) holds the mark, not the table, so it keeps no old table
    # alive, and checks it without reading a cold object.
    mark: object = field(default_factory=object, compare=False)

    def lookup(self, rel: str) -> Entry | None:
        """The answers for a path relative to a version root, or ``None`` (404)."""
        return self.entries.get(rel)


# Where a PER_EPOCH entry stands in a table: answered only through the epoch's table.
_UNRESOLVED = error(500)
_UNRESOLVED_HEAD = error(500, head_only=True)


class Pool:
    """Answers shared between tables, by content: the instances of a fleet answer mostly
    the same bytes, and each distinct answer is rendered and stored once.

    Bounded by the bytes it refers to: past ``budget`` it starts again (tables keep the
    entries they hold; only sharing with tables compiled later is lost).
    """

    __slots__ = ("_entries", "_leaves", "budget", "held")

    def __init__(self, budget: int = 64 * 1024 * 1024) -> None:
        self.budget = budget
        self.held = 0
        self._entries: dict[tuple[bytes, str, float | None, int], Entry] = {}
        self._leaves: dict[Leaf, Leaf] = {}

    def entry(
        self, body: bytes, content_type: str, last_modified: float | None, flags: int
    ) -> Entry:
        """The answers for one leaf or listing, rendered once for every table."""
        key = (body, content_type, last_modified, flags)
        found = self._entries.get(key)
        if found is None:
            found = self._entries[key] = _entry(body, content_type, last_modified, flags)
            self._hold(4 * len(body) + _ENTRY_COST)
        return found

    def leaf(self, leaf: Leaf) -> Leaf:
        """The one shared :class:`Leaf` equal to ``leaf``."""
        found = self._leaves.get(leaf)
        if found is None:
            found = self._leaves[leaf] = leaf
            self._hold(len(leaf.body) + _LEAF_COST)
        return found

    def tree(self, tree: Mapping[str, Leaf]) -> dict[str, Leaf]:
        """``tree`` with its paths interned and its leaves shared."""
        leaf = self.leaf
        return {sys.intern(path): leaf(value) for path, value in tree.items()}

    def _hold(self, size: int) -> None:
        self.held += size
        if self.held > self.budget:
            self._entries.clear()
            self._leaves.clear()
            self.held = size


# Bytes of objects an entry or a leaf holds beyond its body (tuples, headers, dict slot);
# an entry holds its body three times over (the GET tails) and the HEAD answer.
_ENTRY_COST = 1200
_LEAF_COST = 150


def listings(paths: Iterable[str]) -> dict[str, list[str]]:
    """Each directory's entries, derived from leaf paths (sub-directories end in ``/``)."""
    dirs: dict[str, set[str]] = {"": set()}
    for path in paths:
        parts = path.split("/")
        for depth in range(len(parts)):
            parent = "/".join(parts[:depth])
            name = parts[depth] + ("/" if depth < len(parts) - 1 else "")
            dirs.setdefault(parent, set()).add(name)
    return {d: sorted(names) for d, names in dirs.items()}


def compile_table(
    tree: Mapping[str, Leaf],
    *,
    listing_overrides: Mapping[str, str] | None = None,
    gated: frozenset[str] = frozenset(),
    per_epoch: frozenset[str] = frozenset(),
    role_documents: frozenset[str] = frozenset(),
    last_modified: float | None = None,
    pool: Pool | None = None,
) -> Table:
    """Render every leaf and every listing of ``tree`` (answers ``pool`` holds already are
    taken from it).

    A path in ``per_epoch`` is not rendered: its entry only marks where the epoch's own
    answer goes.
    """
    make = _entry if pool is None else pool.entry
    intern = sys.intern
    entries: dict[str, Entry] = {}
    for name, leaf in tree.items():
        path = intern(name)
        flags = (
            (GATED if path in gated else 0)
            | (PER_EPOCH if path in per_epoch else 0)
            | (ROLE_DOCUMENT if path in role_documents else 0)
        )
        if flags & PER_EPOCH:
            entries[path] = Entry(_UNRESOLVED, _UNRESOLVED_HEAD, flags, path)
        else:
            entries[path] = make(leaf.body, leaf.content_type, last_modified, flags)
    overrides = listing_overrides or {}
    for directory, names in listings(tree).items():
        if directory in tree:
            continue  # a leaf wins over a directory of the same name
        text = overrides.get(directory)
        if text is None and directory == "":
            # The version root lists "dynamic", "meta-data", "user-data" without slashes.
            text = "\n".join(name.rstrip("/") for name in names)
        elif text is None:
            text = "\n".join(names)
        entries[intern(directory)] = make(text.encode(), "text/plain", last_modified, 0)
    fast = _with_hashes()
    for rel, entry in entries.items():
        key = "/latest/" + rel if rel else "/latest"
        fast[intern(key)] = entry
        fast[intern(key + "/")] = entry
    root = _entry("\n".join(VERSIONS).encode(), "text/plain", last_modified, 0)
    return Table(entries=entries, fast=fast, root=root)


def _with_hashes() -> dict[str, Entry]:
    """An empty dict that stores each key's hash beside it (CPython's layout for keys of
    any type, kept once a non-str key was in it). A dict of only str keys stores no
    hashes: every slot a lookup probes on its way costs a read of that key (a cache miss
    in a big table); here only the slot holding the very key is read, by identity."""
    fast: dict[Any, Entry] = {None: _UNRESOLVED_ENTRY}
    del fast[None]
    return fast


_UNRESOLVED_ENTRY = Entry(_UNRESOLVED, _UNRESOLVED_HEAD)


def leaf_entry(leaf: Leaf, last_modified: float | None) -> Entry:
    """The answers for one leaf, without flags (a per-epoch credential document)."""
    return _entry(leaf.body, leaf.content_type, last_modified, 0)


def _entry(body: bytes, content_type: str, last_modified: float | None, flags: int) -> Entry:
    return Entry(
        render(200, body, content_type=content_type, last_modified=last_modified),
        render(200, body, content_type=content_type, last_modified=last_modified, head_only=True),
        flags,
    )
