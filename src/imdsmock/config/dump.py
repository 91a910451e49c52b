"""Output: the effective configuration as ``imdsmock config`` prints it, secrets masked."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, Literal

from imdsmock.config.scenarios import ScenarioConfig
from imdsmock.config.schema import SECRET_KEYS, Config, PodRule, dashed

__all__ = ["derived_keys", "dump", "part", "to_mapping"]


def to_mapping(cfg: Config, *, secrets: bool = False) -> dict[str, Any]:
    """The configuration as a file-shaped mapping (dashed keys); secrets masked."""
    result: dict[str, Any] = part(cfg, "", secrets=secrets)
    return result


def part(obj: object, prefix: str, *, secrets: bool = False) -> Any:
    """One part of the configuration (a section, a fleet member's ``match``) as the file
    spells it; ``prefix`` is its key with a trailing dot (``instances.web.match.``, or
    ``""`` for the whole), which decides what is a secret to mask."""

    def walk(obj: Any, prefix: str) -> Any:
        if isinstance(obj, ScenarioConfig):
            return walk(obj.source, prefix)  # as written
        if isinstance(obj, PodRule):  # the keys it gives: unset ones match any pod
            shown = {"namespace": obj.namespace, "name": obj.name, "labels": dict(obj.labels)}
            return {key: value for key, value in shown.items() if value}
        if dataclasses.is_dataclass(obj):
            out = {}
            for f in dataclasses.fields(obj):
                key = prefix + dashed(f.name)
                value = getattr(obj, f.name)
                if key in SECRET_KEYS and value is not None and not secrets:
                    out[dashed(f.name)] = "***"
                else:
                    out[dashed(f.name)] = walk(value, key + ".")
            return out
        if isinstance(obj, tuple):
            return [walk(v, prefix) for v in obj]
        if isinstance(obj, Mapping):
            return {str(k): walk(v, prefix) for k, v in obj.items()}
        return obj

    return walk(obj, prefix)


def derived_keys(cfg: Config, derived: Mapping[str, object] | None) -> list[str]:
    """The keys of ``derived`` the configuration leaves null (those printed as derived)."""
    data = to_mapping(cfg)
    return [
        key
        for key in (derived or {})
        if data[key.partition(".")[0]].get(key.partition(".")[2]) is None
    ]


def dump(
    cfg: Config,
    fmt: Literal["yaml", "json"] = "yaml",
    derived: Mapping[str, object] | None = None,
) -> str:
    """Render the effective configuration for ``imdsmock config``.

    ``derived`` maps keys left null (``instance.availability-zone``) to the value served
    for them: it is printed in their place, marked as derived (a ``# derived`` comment in
    YAML, a top-level ``derived`` list of keys in JSON).
    """
    data = to_mapping(cfg)
    marked = derived_keys(cfg, derived)
    for key in marked:
        section, _, name = key.partition(".")
        data[section][name] = (derived or {})[key]
    if fmt == "json":
        return json.dumps(data, indent=2, default=_json_value)
    import yaml

    text = str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    return _mark(text, marked)


def _mark(text: str, keys: list[str]) -> str:
    """Append ``# derived`` to the line of each key (``section.name``) in the YAML text."""
    lines = text.split("\n")
    section = ""
    for index, line in enumerate(lines):
        if line and not line.startswith(" "):
            section = line.rstrip(":")
        elif line.startswith("  ") and not line.startswith("   "):
            name = line.strip().partition(":")[0]
            if f"{section}.{name}" in keys:
                lines[index] = f"{line}  # derived"
    return "\n".join(lines)


def _json_value(value: object) -> str:
    # A scenario time written as a YAML timestamp is a datetime: JSON has RFC 3339 text.
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-able")
