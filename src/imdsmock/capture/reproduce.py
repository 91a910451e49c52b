"""A captured tree -> the configuration that reproduces it, and what the copy still shows
differently.

1. The ``instance`` keys the tree shows (:mod:`imdsmock.capture.keys`) are checked as a
   configuration is; a value the mock does not take (an instance ID of the wrong shape, an
   account of ten digits) is dropped, and its paths are then copied as they are.
2. The identity document's fields that the keys do not give are written under
   ``instance.identity-document``, so the mock signs the same fields.
3. Keys whose removal changes nothing the mock serves are removed (unless every key is
   wanted: a fleet entry must not inherit the top-level instance's).
4. ``paths`` hold what the keys do not give: a leaf the mock would serve otherwise, or not
   at all, is copied; one the server did not have is removed (a directory at once when all
   of it goes).
5. The listings and content types of the copy are compared with the captured ones; each
   difference left is one line of :attr:`Reproduction.notes`.

Credentials, signatures, the scenario notices and user data not asked for are neither
copied nor removed: the mock makes its own (:func:`imdsmock.capture.walk.left_out`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from imdsmock.capture.keys import DOCUMENT, document, instance_keys
from imdsmock.capture.walk import Captured, left_out
from imdsmock.config.build import from_mapping
from imdsmock.config.schema import Config, InstanceConfig, dashed
from imdsmock.core.table import compile_table
from imdsmock.errors import ConfigError
from imdsmock.instance.imdsjson import dumps
from imdsmock.instance.model import (
    INSTANCE_CREDENTIALS,
    OCTET,
    TEXT,
    Leaf,
    Tree,
    apply_paths,
    base_tree,
    facts,
    identity_document,
    listing_overrides,
    role_document_paths,
)

__all__ = ["Reproduction", "reproduce"]

# JSON documents derived from the keys whose time stamps follow the server's clock.
_DERIVED_JSON = frozenset({"meta-data/iam/info"})
_SIGNED = ("signature", "pkcs7", "rsa2048")
_EXTENDED = "meta-data/iam/security-credentials-extended"
_DERIVED_FIRST = ("availability-zone-id", "hostname", "public-hostname", "availability-zone")
_ORDER = {dashed(f.name): i for i, f in enumerate(dataclasses.fields(InstanceConfig))}


@dataclass(frozen=True, slots=True)
class Reproduction:
    """The sections of the configuration, and the differences the copy keeps."""

    instance: dict[str, Any]
    options: dict[str, Any]
    paths: dict[str, str | None]
    notes: tuple[str, ...]


def reproduce(c: Captured, *, user_data: bool, every_key: bool = False) -> Reproduction:
    """The configuration reproducing ``c``; ``every_key`` keeps keys equal to the defaults."""
    notes: list[str] = []
    options: dict[str, Any] = {"http-tokens": "required"} if c.tokens_required else {}
    keys = _settle(instance_keys(c, user_data=user_data), options, notes)
    overrides, document_notes = _document(c, _config(keys, options))
    if overrides:
        keys["identity-document"] = overrides
        keys = _settle(keys, options, notes)
    if not every_key:
        keys = _pare(keys, options)
    keys = dict(sorted(keys.items(), key=lambda item: _ORDER.get(item[0], len(_ORDER))))
    cfg = _config(keys, options)
    paths = _settle_paths(keys, options, _paths(c, cfg, user_data, notes), notes)
    cfg = _config(keys, options, paths)
    notes += document_notes
    notes += _listings(c, cfg, paths)
    notes += _types(c, cfg, paths, user_data)
    return Reproduction(keys, options, dict(sorted(paths.items())), tuple(notes))


def _config(
    keys: Mapping[str, Any], options: Mapping[str, Any], paths: Mapping[str, Any] | None = None
) -> Config:
    return from_mapping({"instance": keys, "options": options, "paths": paths or {}})


def _settle(keys: dict[str, Any], options: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """Drop the values the configuration refuses, one by one, saying so."""
    while True:
        try:
            _config(keys, options)
        except ConfigError as exc:
            if not _drop(keys, exc.key):
                raise
            notes.append(f"{exc}: its paths are copied as served")
            continue
        return keys


_MAPS = ("tags", "block-device-mapping", "public-keys")


def _drop(keys: dict[str, Any], key: str) -> bool:
    """Remove what the refused ``key`` names; False when it names nothing of ``keys``."""
    name = key.removeprefix("instance.")
    head = re.match(r"[a-z0-9-]*", name)
    field = head[0] if head else ""
    if name == key or field not in keys:
        return False
    index = re.match(r"interfaces\[([0-9]+)\]", name)
    if index is not None and int(index[1]) < len(keys["interfaces"]):
        del keys["interfaces"][int(index[1])]
    elif field in ("tags", "block-device-mapping") and "." in name:
        keys[field].pop(name.partition(".")[2], None)
    elif field in _MAPS:
        keys[field] = {}  # not the default's entries
    elif field.startswith("user-data"):
        keys.pop("user-data", None)
        keys["user-data-base64"] = None
    else:
        del keys[field]
    return True


def _document(c: Captured, cfg: Config) -> tuple[dict[str, Any], list[str]]:
    """The identity-document fields the keys do not give, and what the copy's shows
    differently (extra fields, another layout)."""
    theirs = document(c)
    if theirs is None:
        if DOCUMENT in c.leaves:
            return {}, [f"{DOCUMENT} is not a JSON object: the copy serves its own"]
        return {}, [f"{DOCUMENT} was not served: the copy serves one"]
    inst = cfg.instance
    mine = identity_document(inst, facts(inst, 0.0))
    overrides = {k: v for k, v in theirs.items() if k not in mine or mine[k] != v}
    notes = []
    extra = [k for k in mine if k not in theirs]
    if extra:
        notes.append(f"{DOCUMENT}: the copy's also has {', '.join(extra)}")
    elif dumps(mine | overrides).encode() != c.leaves[DOCUMENT].body:
        notes.append(
            f"{DOCUMENT}: the same fields and values, in the order and layout IMDS writes JSON"
        )
    return overrides, notes


def _served(keys: Mapping[str, Any], options: Mapping[str, Any]) -> tuple[Tree, dict[str, str]]:
    cfg = _config(keys, options)
    return base_tree(cfg, None, 0.0), listing_overrides(cfg)


def _pare(keys: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """``keys`` without those whose removal changes nothing the mock serves."""
    served = _served(keys, options)
    units: list[tuple[Any, ...]] = [
        ("interfaces", i, name)
        for i, entry in enumerate(keys.get("interfaces", []))
        for name in entry
        if name != "mac"
    ]
    # Derived keys first: a region stays, the zone it implies goes (not the other way).
    units += [(name,) for name in sorted(keys, key=lambda k: k not in _DERIVED_FIRST)]
    for unit in units:
        trial = copy.deepcopy(keys)
        if unit[0] not in trial:
            continue
        if len(unit) == 1:
            del trial[unit[0]]
        else:
            del trial["interfaces"][unit[1]][unit[2]]
        try:
            if _served(trial, options) == served:
                keys = trial
        except ConfigError:
            continue  # it is needed (the default would be refused with the rest)
    return keys


def _ours(path: str, user_data: bool) -> bool:
    """Whether the mock makes ``path`` itself: never copied, never removed."""
    return (
        left_out(path, user_data=user_data) is not None
        or path == DOCUMENT
        or path.startswith("meta-data/iam/security-credentials")
    )


def _paths(c: Captured, cfg: Config, user_data: bool, notes: list[str]) -> dict[str, str | None]:
    tree = base_tree(cfg, None, 0.0)
    paths: dict[str, str | None] = {}
    for path, leaf in c.leaves.items():
        mine = tree.get(path)
        if _ours(path, user_data) or (mine is not None and _same(path, mine.body, leaf.body)):
            continue
        try:
            paths[path] = leaf.body.decode("utf-8")
        except UnicodeDecodeError:
            what = "the copy serves its own" if mine is not None else "left out"
            notes.append(f"{path} is not UTF-8 text, which paths cannot hold: {what}")
    removed = {p for p in tree if not _ours(p, user_data) and p not in c.leaves}
    extended = [p for p in role_document_paths(cfg) if p.startswith(_EXTENDED + "/")]
    if extended and _EXTENDED not in c.listings:  # a server without the extended path
        paths[_EXTENDED] = None
    if removed:
        full = set(tree) | {*role_document_paths(cfg), INSTANCE_CREDENTIALS}
        for directory in _compact(removed, full, {*c.leaves, *paths}):
            paths[directory] = None
    return paths


def _same(path: str, mine: bytes, theirs: bytes) -> bool:
    if mine == theirs:
        return True
    if path not in _DERIVED_JSON:
        return False
    try:
        a, b = json.loads(mine), json.loads(theirs)
    except ValueError:
        return False
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    a.pop("LastUpdated", None)
    b.pop("LastUpdated", None)
    return bool(a == b)


def _compact(removed: set[str], full: set[str], kept: set[str]) -> list[str]:
    """The fewest paths whose removal removes ``removed``: a directory when every path of
    ``full`` under it goes and nothing of ``kept`` is under it."""

    def under(d: str, paths: set[str]) -> list[str]:
        return [p for p in paths if p == d or p.startswith(d + "/")]

    out: list[str] = []
    done: set[str] = set()
    for path in sorted(removed):
        if path in done:
            continue
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            d = "/".join(parts[:depth])
            inside = under(d, full)
            if all(p in removed for p in inside) and not under(d, kept):
                out.append(d)
                done.update(inside)
                break
    return out


def _settle_paths(
    keys: dict[str, Any],
    options: dict[str, Any],
    paths: dict[str, str | None],
    notes: list[str],
) -> dict[str, str | None]:
    """Drop the paths the configuration refuses (a segment with a space, say), saying so."""
    while True:
        try:
            _config(keys, options, paths)
        except ConfigError as exc:
            path = exc.key.removeprefix("paths.")
            if path == exc.key or path not in paths:
                raise
            del paths[path]
            notes.append(f"{exc}: left out")
            continue
        return paths


def _copy_tree(cfg: Config, paths: Mapping[str, str | None]) -> Tree:
    """Every leaf the copy serves (credentials and signatures as empty markers)."""
    tree = base_tree(cfg, None, 0.0)
    marker = Leaf(b"")
    for path in (*role_document_paths(cfg), INSTANCE_CREDENTIALS):
        tree[path] = marker
    for name in _SIGNED:
        tree[f"dynamic/instance-identity/{name}"] = marker
    apply_paths(tree, paths)
    return tree


def _listings(c: Captured, cfg: Config, paths: Mapping[str, str | None]) -> list[str]:
    """One line per captured listing the copy writes otherwise, for reasons other than
    what was left out on purpose (already said)."""
    tree = _copy_tree(cfg, paths)
    live = {
        d: text
        for d, text in listing_overrides(cfg).items()
        if any(p.startswith(d + "/") for p in tree)
    }
    table = compile_table(tree, listing_overrides=live)
    skipped = [path.rstrip("/") for path in c.left_out]

    def explained(path: str) -> bool:  # everything under it was left out on purpose
        return any(p == path or p.startswith(path + "/") for p in skipped)

    notes = []
    for directory, theirs in sorted(c.listings.items()):
        entry = table.entries.get(directory)
        mine = entry.get.body if entry is not None and directory not in tree else None
        if mine == theirs:
            continue
        if mine is None:
            if not explained(directory):
                notes.append(f"listing of {directory}/: the copy has no such directory")
            continue
        note = _listing_note(directory, theirs, mine, explained)
        if note is not None:
            notes.append(note)
    return notes


def _listing_note(
    directory: str, theirs: bytes, mine: bytes, explained: Callable[[str], bool]
) -> str | None:
    shown = f"{directory}/" if directory else "the version root"
    a = [line.strip() for line in theirs.decode("utf-8", "replace").split("\n") if line.strip()]
    b = mine.decode("utf-8").split("\n")
    below = f"{directory}/" if directory else ""
    lacks = [x for x in a if x not in b and not explained(below + x.split("=")[0].rstrip("/"))]
    adds = [x for x in b if x not in a]
    parts = []
    if lacks:
        parts.append("lacks " + ", ".join(lacks))
    if adds:
        parts.append("adds " + ", ".join(adds))
    if not parts:
        raw = theirs.decode("utf-8", "replace").split("\n")
        kept = [x for x in raw if not x.strip() or x.strip() in b]
        if "\n".join(kept).encode() == mine:
            return None  # only what was left out differs
        parts.append(
            "lists the same entries as IMDS writes them (once each, no newline at the end)"
        )
    return f"listing of {shown}: the copy {'; '.join(parts)}"


def _types(c: Captured, cfg: Config, paths: Mapping[str, str | None], user_data: bool) -> list[str]:
    """One line per (served, copy's) pair of content types that differ."""
    tree = _copy_tree(cfg, paths)
    differ: dict[tuple[str, str], list[str]] = {}
    for path, leaf in sorted(c.leaves.items()):
        mine = tree.get(path)
        if mine is None or (_ours(path, user_data) and path != DOCUMENT):
            continue
        kind = OCTET if path == "user-data" else mine.content_type or TEXT
        if leaf.content_type != kind:
            differ.setdefault((leaf.content_type, kind), []).append(path)
    return [
        f"content type: the copy serves {mine} where {c.url} serves {theirs}: "
        + ", ".join(found[:3])
        + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        for (theirs, mine), found in differ.items()
    ]
