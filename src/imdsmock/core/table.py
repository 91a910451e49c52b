"""Compile a tree of leaves into the response table: every answer rendered ahead of time.

A request is then one dict lookup that returns pre-rendered bytes. Listings are derived
from the leaves (a directory lists its children, sub-directories with a trailing ``/``),
sorted as IMDS sorts them, without a trailing newline.

A few entries carry flags the handler checks (one test, false for every other path):
per-client notices (:data:`GATED`), credential documents that change with each rotation
epoch and are answered from the epoch's own small table (:data:`PER_EPOCH`), and the
role's documents, which forced credential failures replace (:data:`ROLE_DOCUMENT`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from imdsmock.config.defaults import VERSIONS
from imdsmock.core.wire import Response, error, render
from imdsmock.instance.model import Leaf

__all__ = [
    "GATED",
    "PER_EPOCH",
    "ROLE_DOCUMENT",
    "Entry",
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

    def lookup(self, rel: str) -> Entry | None:
        """The answers for a path relative to a version root, or ``None`` (404)."""
        return self.entries.get(rel)


# Where a PER_EPOCH entry stands in a table: answered only through the epoch's table.
_UNRESOLVED = error(500)
_UNRESOLVED_HEAD = error(500, head_only=True)


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
) -> Table:
    """Render every leaf and every listing of ``tree``.

    A path in ``per_epoch`` is not rendered: its entry only marks where the epoch's own
    answer goes.
    """
    entries: dict[str, Entry] = {}
    for path, leaf in tree.items():
        flags = (
            (GATED if path in gated else 0)
            | (PER_EPOCH if path in per_epoch else 0)
            | (ROLE_DOCUMENT if path in role_documents else 0)
        )
        if flags & PER_EPOCH:
            entries[path] = Entry(_UNRESOLVED, _UNRESOLVED_HEAD, flags, path)
        else:
            entries[path] = _entry(leaf.body, leaf.content_type, last_modified, flags)
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
        entries[directory] = _entry(text.encode(), "text/plain", last_modified, 0)
    fast: dict[str, Entry] = {}
    for rel, entry in entries.items():
        key = "/latest/" + rel if rel else "/latest"
        fast[key] = entry
        fast[key + "/"] = entry
    root = _entry("\n".join(VERSIONS).encode(), "text/plain", last_modified, 0)
    return Table(entries=entries, fast=fast, root=root)


def leaf_entry(leaf: Leaf, last_modified: float | None) -> Entry:
    """The answers for one leaf, without flags (a per-epoch credential document)."""
    return _entry(leaf.body, leaf.content_type, last_modified, 0)


def _entry(body: bytes, content_type: str, last_modified: float | None, flags: int) -> Entry:
    return Entry(
        render(200, body, content_type=content_type, last_modified=last_modified),
        render(200, body, content_type=content_type, last_modified=last_modified, head_only=True),
        flags,
    )
