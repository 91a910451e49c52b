"""Loading: the sources of a configuration, merged, then built and validated once.

Sources, strongest first: command-line flags > environment (``IMDSMOCK_*``) > one config
file (YAML, JSON or TOML) > defaults. Keys and variable names are the schema's
(:mod:`imdsmock.config.schema`); a bad value raises :class:`~imdsmock.errors.ConfigError` naming
the key, the value and what is allowed. Whatever a file or variable holds (nesting deeper
than the parsers recurse, integers longer than Python converts, bytes that are not UTF-8)
ends as such an error, never as another exception. An ``IMDSMOCK_*`` variable that names no
setting is logged with the closest one that does.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from imdsmock.config.build import from_mapping
from imdsmock.config.inputs import MAX_DEPTH, check_text, check_tree
from imdsmock.config.schema import SHORT_NAMES, Config, dashed, env_name, leaf_keys
from imdsmock.errors import ConfigError, did_you_mean, label

__all__ = ["MAX_FILE_BYTES", "OTHER_VARIABLES", "load", "read_file"]

log = logging.getLogger("imdsmock.config")

MIB = 1024 * 1024
MAX_FILE_BYTES = 16 * MIB
"""The largest config file read (a configuration needs a few KiB; parsing takes seconds
per MiB)."""

OTHER_VARIABLES = frozenset(
    {
        "IMDSMOCK_CONFIG",  # the config file
        "IMDSMOCK_LOG_LEVEL",
        "IMDSMOCK_CONTROL_URL",  # imdsmock ctl
        # imdsmock route and the container recipes
        "IMDSMOCK_ROUTE_TO",
        "IMDSMOCK_TIMEOUT",
        "IMDSMOCK_CREDENTIALS_PORT",
        "IMDSMOCK_RUN_DIR",
        "IMDSMOCK_HEALTHCHECK_URL",
        "IMDSMOCK_BASE_IMAGE",
        "IMDSMOCK_DEBIAN_MIRROR",
        # the test suite and its scripts
        "IMDSMOCK_FUZZ_EXAMPLES",
        "IMDSMOCK_SOAK_SECONDS",
        "IMDSMOCK_SOAK_CI_SECONDS",
        "IMDSMOCK_SOAK_REPORT",
        "IMDSMOCK_UPDATE_DOCS",
        "IMDSMOCK_UPDATE_GOLDEN",
    }
)
"""``IMDSMOCK_*`` variables read by other parts of imdsmock, not settings: not warned about."""

_SECTIONS = frozenset(dashed(f.name) for f in dataclasses.fields(Config))


def load(
    *,
    file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
    relaxed: Collection[str] = (),
    warn: Callable[[ConfigError], None] | None = None,
) -> Config:
    """Merge the sources (flags > env > file > base > defaults) and validate once.

    ``flags`` maps dotted keys or short names to values; ``None`` values are ignored, so
    an argparse namespace with unset options can be passed as is. ``env`` defaults to
    ``os.environ``; the config file may also be named by ``IMDSMOCK_CONFIG``. Values
    breaking a rule named in ``relaxed`` are kept and passed to ``warn``
    (:func:`imdsmock.config.rules.check`).
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if base:
        _merge(raw, _nest(base, "config"))
    path = file if file is not None else env.get("IMDSMOCK_CONFIG") or None
    if path is not None:
        _merge(raw, read_file(path))
    _merge(raw, _from_env(env))
    if flags:
        _merge(raw, _from_flags(flags))
    return from_mapping(raw, relaxed=relaxed, warn=warn)


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read one YAML, JSON or TOML file into a mapping (format chosen by extension)."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)  # a device such as /dev/zero never ends
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError("config file", str(p), f"at most {MAX_FILE_BYTES // MIB} MiB")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError("config file", str(p), "an existing, readable file") from None
    except IsADirectoryError:
        raise ConfigError("config file", str(p), "a file, not a directory") from None
    except PermissionError:
        raise ConfigError("config file", str(p), "a file this user may read") from None
    except UnicodeDecodeError:
        raise ConfigError("config file", str(p), "UTF-8 text") from None
    except OSError as exc:  # a symlink loop, an I/O error, ...: one line, not a traceback
        raise ConfigError("config file", str(p), f"a readable file ({exc.strerror})") from None
    suffix = p.suffix.lower()
    kind = suffix.lstrip(".") or "yaml"
    # ValueError: JSON's and TOML's syntax errors, and an integer longer than Python converts.
    errors: tuple[type[Exception], ...] = (ValueError, *_parse_errors(suffix))
    try:
        if suffix == ".json":
            parsed: Any = json.loads(text) if text.strip() else {}
        elif suffix == ".toml":
            import tomllib

            parsed = tomllib.loads(text)
        elif suffix in (".yaml", ".yml", ""):
            import yaml

            parsed = yaml.safe_load(text)
        else:
            raise ConfigError("config file", str(p), "a .yaml, .yml, .json or .toml file")
    except RecursionError:
        raise ConfigError(
            "config file", str(p), f"valid {kind} nested at most {MAX_DEPTH} levels deep"
        ) from None
    except errors as exc:
        raise ConfigError("config file", str(p), f"valid {kind}{_why(exc, text)}") from None
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise ConfigError("config file", str(p), "a mapping of sections at the top level")
    check_tree(parsed)
    return parsed


def _parse_errors(suffix: str) -> tuple[type[Exception], ...]:
    # Parsers load on demand (start-up time is a benchmark figure): most runs read no file.
    if suffix == ".toml":
        import tomllib

        return (tomllib.TOMLDecodeError,)
    if suffix == ".json":
        return ()
    import yaml

    return (yaml.YAMLError,)


def _why(exc: Exception, text: str) -> str:
    """Where the parser failed, or which number it could not convert."""
    line = getattr(exc, "lineno", None)
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        line = mark.line + 1
    if line:
        return f" (error near line {line})"
    digits = sys.get_int_max_str_digits()
    long_number = re.search(rf"[0-9]{{{digits + 1}}}", text) if digits else None
    if long_number is not None:
        line = text.count("\n", 0, long_number.start()) + 1
        return f" (a number of more than {digits} digits near line {line})"
    return ""


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not any(var.startswith("IMDSMOCK_") for var in env):
        return out  # the usual start: no table of names to build (~1 ms of start-up)
    by_var = _env_names()
    for var, value in env.items():
        key = by_var.get(var)
        if key is not None:
            check_text(var, value)  # named as set: the variable, not the key it sets
            _merge(out, _nest({key: value}, var))
        elif var.startswith("IMDSMOCK_") and var not in OTHER_VARIABLES:
            _unknown_variable(var)
    return out


@functools.cache  # once per name: a reload reads the same environment again
def _unknown_variable(var: str) -> None:
    hint = did_you_mean(var, [*_env_names(), *OTHER_VARIABLES])
    log.warning("%s is not a variable imdsmock reads, ignored%s", label(var), hint)


def _from_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in flags.items():
        if value is None:
            continue
        key = SHORT_NAMES.get(name.replace("_", "-"), name)
        _merge(out, _nest({key: value}, f"--{name}"))
    return out


@functools.cache
def _env_names() -> dict[str, str]:
    names = {env_name(key): key for key in leaf_keys(Config)}
    for short, key in SHORT_NAMES.items():
        names[env_name(short)] = key
    return names


def _nest(flat: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Turn ``{"a.b": 1}`` into ``{"a": {"b": 1}}``; nested mappings pass through."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".") if "." in key and key.split(".")[0] in _SECTIONS else [key]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict) and key != "paths":
            _merge(into[key], value)
        elif isinstance(value, Mapping):
            into[key] = dict(value)
        else:
            into[key] = value
