"""The rules every input shares, whatever its source: how deep, what text, which paths.

A configuration file, an ``IMDSMOCK_*`` variable, a flag and a control API body all pass
through these before anything else looks at them:

* :func:`check_tree`: nested at most :data:`MAX_DEPTH` levels, and every string (keys
  too) is text that UTF-8 can carry (a variable holding non-UTF-8 bytes arrives with lone
  surrogates in it). The walk is linear however the value shares or loops its parts.
* :func:`imds_path`: the one rule for an IMDS path a user names (``paths`` in the
  configuration, metadata edits through the control API) and :func:`normal_path`, the one
  spelling it is stored under.
* :func:`is_segment`: whether a name can be one segment of an IMDS path.

Each refusal is a :class:`~imdsmock.errors.ConfigError` naming the key, the value (quoted
short) and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from imdsmock.errors import ConfigError

__all__ = [
    "MAX_DEPTH",
    "MAX_PATH",
    "PATH_RULE",
    "SEGMENT_RULE",
    "check_text",
    "check_tree",
    "imds_path",
    "is_segment",
    "normal_path",
]

MAX_DEPTH = 32
"""Levels of nesting an input may have (a configuration needs five or six)."""
MAX_PATH = 1024
"""Characters of an IMDS path a user names."""
PATH_RULE = (
    "a path under meta-data/, dynamic/ or user-data (e.g. meta-data/ami-id): segments "
    f"without spaces or control characters, no . or .., at most {MAX_PATH} characters"
)
_PATH = re.compile(r"(meta-data|dynamic|user-data)(/[^/\s]+)*")
_SLASHES = re.compile("/+")
_SEGMENT = re.compile(r"[^/\s]{1,255}")
SEGMENT_RULE = (
    "one path segment: 1-255 characters without slashes, spaces or control characters, not . or .."
)


def check_text(key: str, value: str) -> None:
    """Refuse a string UTF-8 cannot carry (lone surrogates: bytes that were not UTF-8)."""
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(key, value, "UTF-8 text (it holds bytes that are not UTF-8)") from None


def check_tree(value: Any, root: str = "configuration") -> None:
    """Refuse a value nested deeper than :data:`MAX_DEPTH` or holding text that is not UTF-8.

    The error names the part refused as a key (``instance.tags.Name``, ``scenarios[0]``),
    or ``root`` for the value itself. A container met again (YAML anchors) is walked again
    only when met deeper than before, so a value that shares its parts exponentially, or
    contains itself, is checked in linear time.
    """
    deepest: dict[int, int] = {}
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, str):
            check_text(where or root, node)
            continue
        if not isinstance(node, Mapping | list | tuple):
            continue
        if depth >= MAX_DEPTH:
            raise ConfigError(where or root, node, f"at most {MAX_DEPTH} levels of nesting")
        if deepest.get(id(node), -1) >= depth:
            continue
        deepest[id(node)] = depth
        if isinstance(node, Mapping):
            for name, item in node.items():
                below = _below(where, name)
                if isinstance(name, str):
                    check_text(below, name)
                stack.append((item, below, depth + 1))
        else:
            for index, item in enumerate(node):
                stack.append((item, f"{where or root}[{index}]", depth + 1))


def _below(where: str, name: object) -> str:
    text = name if isinstance(name, str) else repr(name)
    return f"{where}.{text}" if where else text


def normal_path(path: str) -> str:
    """How an IMDS path is stored: no outer or doubled slashes, relative to the version
    root (a leading ``latest/`` is dropped). Spaces are not trimmed: :func:`imds_path`
    refuses them."""
    clean = _SLASHES.sub("/", path.strip("/"))
    return clean.removeprefix("latest/")


def imds_path(path: object, key: str) -> str:
    """``path`` in its stored spelling (:func:`normal_path`), or :class:`ConfigError` when
    it does not name a path under ``meta-data/``, ``dynamic/`` or ``user-data``."""
    if not isinstance(path, str) or len(path) > MAX_PATH:
        raise ConfigError(key, path, PATH_RULE)
    clean = normal_path(path)
    if (
        not _PATH.fullmatch(clean)
        or not clean.isprintable()
        or any(part in (".", "..") for part in clean.split("/"))
    ):
        raise ConfigError(key, path, PATH_RULE)
    return clean


def is_segment(name: str) -> bool:
    """Whether ``name`` can be one segment of an IMDS path (it names a directory or a leaf
    there): not empty, no slash, space or control character, not ``.`` or ``..``."""
    return bool(_SEGMENT.fullmatch(name)) and name.isprintable() and name not in (".", "..")
