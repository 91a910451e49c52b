"""AWS's Go mock's configuration, translated into ours.

amazon-ec2-metadata-mock (AEMM) reads flags > ``AEMM_*`` environment > one config file
(``-c``, ``AEMM_CONFIG_FILE`` or ``$HOME/aemm-config.*``) > built-in defaults (viper's
order), with a closed key set: ``metadata.paths.<key>`` / ``metadata.values.<key>``,
``dynamic``, ``userdata``, ``spot``, ``events``, ``server`` and the root scenario keys
(as of v1.13.0). :func:`merge` builds that merged, AEMM-shaped mapping (what ``-s``
saves); :func:`translate` turns it into our file-shaped configuration: instance facts where
we model them (so derived paths, listings and the signed identity document stay
consistent), ``paths`` overrides for the rest and for moved paths, and ``scenarios`` for
the mode's spot / rebalance / events / Auto Scaling behaviour.

A value equal to AEMM's default is not an override: a config saved by AEMM (``-s``) loads
here without pinning AEMM's inconsistent defaults. AEMM serves any string as a value and
ignores keys it does not read; so does this translation, with a warning line for each: a
value real EC2 would refuse is served as given (the rules in :data:`RELAXED` become
warnings, and a value our instance cannot hold is served at its path), an unknown key is
named with its closest known one.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import difflib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imdsmock.aemm.defaults import (
    DEFAULTS,
    DOCUMENT,
    DOCUMENT_KEYS,
    DYNAMIC,
    EVENT_ID,
    META,
    SCENARIO_PATHS,
    USER_DATA,
)
from imdsmock.config.build import refusal
from imdsmock.config.load import read_file
from imdsmock.config.scenarios import ACTIONS, EVENT_CODES, EVENT_STATES, parse_time
from imdsmock.errors import ConfigError, label, quote
from imdsmock.instance.imdsjson import dumps

__all__ = [
    "DEFAULTS",
    "MODES",
    "RELAXED",
    "Translation",
    "as_given",
    "env_layer",
    "find_config_file",
    "merge",
    "saved_config_path",
    "translate",
]

MODES = ("root", "spot", "events", "asglifecycle")

# The configuration rules (imdsmock.config.rules) that AWS's Go mock does not apply: it
# serves any string there, so a value breaking one is served as given, with a warning
# saying what real EC2 would require. The others still refuse the value: the Go mock
# refuses it too, or the key is imdsmock's own (no AEMM key reaches it), or the value
# could not be served (a MAC, public IP or role name that is not one path segment).
RELAXED = frozenset(
    {
        "instance.instance-id",
        "instance.account-id",
        "instance.region",
        "instance.availability-zone",
        "instance.availability-zone:region",
        "instance.mac",
        "instance.local-ipv4",
        "instance.public-ipv4",
        "instance.ipv6",
        "instance.user-data",
        "instance.iam-role",
    }
)


def as_given(key: str, value: Any, expected: str) -> str:
    """The warning for a value served as given although real EC2 would refuse it."""
    return f"{label(key)} is {quote(value)}; real EC2 would require {expected} (served as given)"


def _flat_keys(node: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        dotted = prefix + key
        if isinstance(value, Mapping) and not (prefix.endswith("values.") and prefix):
            keys.extend(_flat_keys(value, dotted + "."))
        else:
            keys.append(dotted)
    return keys


def env_name(key: str) -> str:
    """The ``AEMM_*`` variable of a dotted key (``spot.action`` -> ``AEMM_SPOT_ACTION``)."""
    return "AEMM_" + re.sub(r"[.\-]", "_", key).upper()


# Every key that has a default has an environment variable (viper's AutomaticEnv).
ENV_KEYS: Mapping[str, str] = {env_name(k): k for k in _flat_keys(DEFAULTS)}


def env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    """The ``AEMM_*`` variables as a nested mapping (empty values count as set)."""
    out: dict[str, Any] = {}
    for var, value in env.items():
        key = ENV_KEYS.get(var)
        if key is not None:
            _set(out, key, value)
    return out


def _set(node: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        current = into.get(key)
        # Object values (iam-info, the identity document) replace, like viper's leaves.
        if isinstance(value, Mapping) and isinstance(current, dict) and key not in _OBJECT_KEYS:
            _merge(current, value)
        elif isinstance(value, Mapping):
            into[key] = dict(value)
        else:
            into[key] = value


_OBJECT_KEYS = frozenset(
    {
        "iam-info",
        "iam-security-credentials",
        "elastic-inference-accelerator",
        "instance-identity-document",
    }
)


def _known(defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The key tree of AEMM's config: a mapping per section, None for a leaf; the
    children of ``paths`` and ``values`` are leaves (their values may be objects)."""
    out: dict[str, Any] = {}
    for key, value in defaults.items():
        if key in ("paths", "values"):
            out[key] = dict.fromkeys(value)
        elif isinstance(value, Mapping):
            out[key] = _known(value)
        else:
            out[key] = None
    return out


_KNOWN = _known(DEFAULTS)
# Values without a default (the signatures) are keys all the same.
_KNOWN["dynamic"]["values"] = dict.fromkeys(DYNAMIC)


def unknown_keys(data: Mapping[Any, Any]) -> Iterator[str]:
    """One warning per key of a config file that AEMM does not read, with a close match."""
    yield from _unknown(data, _KNOWN, "")


def _unknown(data: Mapping[Any, Any], known: Mapping[str, Any], prefix: str) -> Iterator[str]:
    for key, value in data.items():
        name = str(key)
        if name not in known:
            yield f"unknown config key {label(prefix + name)} ignored{_hint(name, known)}"
        elif isinstance(known[name], Mapping) and isinstance(value, Mapping):
            yield from _unknown(value, known[name], f"{prefix}{name}.")


def _hint(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def find_config_file(flag: str | None, env: Mapping[str, str]) -> str | None:
    """``-c``, else ``AEMM_CONFIG_FILE``, else ``$HOME/aemm-config.{json,yaml,yml,toml}``."""
    if flag:
        return flag
    if env.get("AEMM_CONFIG_FILE"):
        return env["AEMM_CONFIG_FILE"]
    home = env.get("HOME")
    if home:
        for ext in ("json", "yaml", "yml", "toml"):
            candidate = Path(home) / f"aemm-config.{ext}"
            if candidate.is_file():
                return str(candidate)
    return None


def merge(
    *,
    file: str | os.PathLike[str] | None,
    env: Mapping[str, str],
    flags: Mapping[str, Any],
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Defaults < config file < ``AEMM_*`` < flags, as one AEMM-shaped mapping.

    A missing file is ignored (AEMM only warns); a malformed one raises ConfigError.
    Keys and ``AEMM_*`` variables AEMM does not read are ignored, as AEMM does, each
    with one line to ``warn`` naming the closest known one.
    """
    merged: dict[str, Any] = json.loads(json.dumps(DEFAULTS))
    if file is not None and Path(file).exists():
        data = read_file(file)
        lines = list(unknown_keys(data))
        _merge(merged, data)
    else:
        lines = []
    lines += [
        f"unknown variable {label(var)} ignored{_hint(var, ENV_KEYS)}"
        for var in sorted(env)
        if var.startswith("AEMM_") and var not in ENV_KEYS and var != "AEMM_CONFIG_FILE"
    ]
    for line in lines:
        if warn is not None:
            warn(line)
    _merge(merged, env_layer(env))
    for key, value in flags.items():
        if value is not None:
            _set(merged, key, value)
    return merged


def saved_config_path(env: Mapping[str, str]) -> Path:
    """Where ``-s`` writes the merged config (``$HOME/.ec2-metadata-mock/``, else cwd)."""
    home = env.get("HOME")
    base = Path(home) / ".ec2-metadata-mock" if home else Path.cwd()
    return base / ".aemm-config-used.json"


# ---------------------------------------------------------------------------------------
# Translation: the merged AEMM mapping -> our file-shaped configuration.


@dataclass(frozen=True, slots=True, kw_only=True)
class Translation:
    """Our file-shaped configuration for an AEMM one, and what to tell the user."""

    config: dict[str, Any]
    """Our configuration, file-shaped (``imdsmock.config.load.load(base=...)``)."""
    origins: dict[str, str] = field(default_factory=dict)
    """Our instance key -> the AEMM key that set it (for messages)."""
    warnings: list[str] = field(default_factory=list)
    """Values served as given although real EC2 would refuse them."""


def translate(merged: Mapping[str, Any], mode: str) -> Translation:
    """Our configuration (file-shaped) for the merged AEMM config in ``mode``."""
    out = Translation(config={})
    instance: dict[str, Any] = {}
    paths: dict[str, str | None] = {}
    meta = _section(merged, "metadata")
    values = _section(meta, "values", "metadata.")
    moved = _section(meta, "paths", "metadata.")
    bdm: dict[str, str] = {}
    tags: dict[str, str] = {}
    for key, (path, default, ours) in META.items():
        value = values.get(key, default)
        new_path = _path(moved.get(key, "/latest/" + path), f"metadata.paths.{key}")
        changed = _differs(value, default)
        if new_path != path:
            paths[path] = None
            paths[new_path] = _text(value)
        elif ours is None:
            if changed or mode_has_extra(key):
                paths[path] = _text(value)
        elif changed:
            aemm_key = f"metadata.values.{key}"
            name, fact = _fact(ours, value)
            problem = _refused(name, fact)
            if problem is not None:
                # Not a value our instance can hold: the Go mock serves it, so do we.
                out.warnings.append(as_given(aemm_key, value, problem))
                paths[path] = _text(value)
            elif name.startswith("bdm."):
                bdm[name[4:]] = fact
            elif name.startswith("tag."):
                tags[name[4:]] = fact
            else:
                instance[name] = fact
                out.origins[f"instance.{name}"] = aemm_key
    if bdm:
        instance["block-device-mapping"] = {
            "ami": "/dev/xvda",
            "ebs0": "sdb",
            "ephemeral0": "sdb",
            "root": "/dev/xvda",
            "swap": "sdcs",
        } | bdm
    if tags:
        instance["tags"] = {"Name": "test-instance", "Test": "test-tag"} | tags
    for key, path in SCENARIO_PATHS.items():
        if _path(moved.get(key, "/latest/" + path), f"metadata.paths.{key}") != path:
            raise ConfigError(f"metadata.paths.{key}", moved[key], f"/latest/{path} (fixed here)")
    _dynamic(_section(merged, "dynamic"), instance, paths, out)
    _userdata(_section(merged, "userdata"), instance, paths)
    out.origins["instance.user-data"] = "userdata.values.userdata"
    server = _section(merged, "server")
    out.config.update(
        {
            "server": {
                "host": _str(server.get("hostname"), "server.hostname") or "0.0.0.0",
                "port": _int(server.get("port"), "server.port", 0, 65535),
                "mock-ip-count": _int(merged.get("mock-ip-count"), "mock-ip-count", -1, 2**31 - 1),
                # One process per port, as AEMM: no second (control) listener by default.
                "control": False,
            },
            "options": {"http-tokens": "required" if _bool(merged, "imdsv2") else "optional"},
            "instance": instance,
            "paths": paths,
            "scenarios": scenarios(merged, mode),
        }
    )
    return out


def mode_has_extra(key: str) -> bool:
    """Keys AEMM serves by default that our instance does not model (elastic inference)."""
    return key.startswith("elastic-inference")


def _fact(ours: str, value: Any) -> tuple[str, Any]:
    """Our key for an AEMM value (``bdm.X``, ``tag.X`` or an instance key) and the value
    in our shape: one item a line for the list keys, text for the rest."""
    text = _text(value)
    section, _, name = ours.partition(".")
    if section in ("bdm", "tag"):
        return ours, text
    if ours == "public-key":
        return "public-keys", {"test": text}
    if name in ("product-codes", "security-groups", "security-group-ids") or name.endswith(
        "cidr-blocks"
    ):
        return name, [line.strip() for line in text.splitlines() if line.strip()]
    return name, text


def _refused(name: str, value: Any) -> str | None:
    """What our instance key allows, when it cannot hold ``value`` even with AEMM's rules."""
    if name.startswith(("bdm.", "tag.")):
        return None
    return refusal(f"instance.{name}", value, relaxed=RELAXED)


def _dynamic(
    dynamic: Mapping[str, Any],
    instance: dict[str, Any],
    paths: dict[str, Any],
    out: Translation,
) -> None:
    values = _section(dynamic, "values", "dynamic.")
    moved = _section(dynamic, "paths", "dynamic.")
    for key, (path, default) in DYNAMIC.items():
        new_path = _path(moved.get(key, "/latest/" + path), f"dynamic.paths.{key}")
        value = values.get(key, default)
        if key == "instance-identity-document" and _differs(value, default):
            if not isinstance(value, Mapping):
                raise ConfigError(f"dynamic.values.{key}", value, "an object")
            _document(value, instance, out)
        elif key == "fws-instance-monitoring" and _differs(value, default):
            problem = _refused("monitoring", _text(value))
            if problem is None:
                instance["monitoring"] = _text(value)
            else:
                out.warnings.append(as_given(f"dynamic.values.{key}", value, problem))
                paths[path] = _text(value)
        elif value is not None and _differs(value, default):
            paths[path] = _text(value)
        if new_path != path:
            paths[path] = None
            if value is not None:
                paths[new_path] = _text(value)


def _document(given: Mapping[str, Any], instance: dict[str, Any], out: Translation) -> None:
    """The user's identity document: every changed field is served as given.

    A field naming an instance fact (``accountId``, ``privateIp``, ...) changes that fact,
    so meta-data, credentials and the document agree; any other field (and one whose
    value the fact cannot hold) goes into the document as given. The document is signed
    as served.
    """
    extra: dict[str, Any] = {}
    for name, value in given.items():
        field_name = str(name)
        if field_name in DOCUMENT and not _differs(value, DOCUMENT[field_name]):
            continue  # AEMM's default: not an override
        aemm_key = f"dynamic.values.instance-identity-document.{field_name}"
        ours = DOCUMENT_KEYS.get(field_name)
        problem = None if ours is None else _refused(ours, value)
        if ours is not None and problem is None:
            instance[ours] = value
            out.origins[f"instance.{ours}"] = aemm_key
            continue
        if problem is not None:
            out.warnings.append(as_given(aemm_key, value, problem))
        extra[field_name] = value
    if extra:
        instance["identity-document"] = extra


def _userdata(section: Mapping[str, Any], instance: dict[str, Any], paths: dict[str, Any]) -> None:
    value = _section(section, "values", "userdata.").get("userdata", USER_DATA)
    path = _path(
        _section(section, "paths", "userdata.").get("userdata", "/latest/user-data"),
        "userdata.paths.userdata",
    )
    text = _text(value)
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("userdata.values.userdata", text, "base64 text") from None
    if text != USER_DATA:
        instance["user-data-base64"] = text
    if path != "user-data":
        paths["user-data"] = None
        paths[path] = decoded.decode("utf-8", "replace")


def scenarios(merged: Mapping[str, Any], mode: str) -> list[dict[str, Any]]:
    """The mode's scenarios: AEMM's defaults are "interrupt now" (delay 0)."""
    out: list[dict[str, Any]] = []
    spot = _section(merged, "spot")
    events = _section(merged, "events")
    at = _when(merged, "mock-trigger-time", "mock-delay-sec")
    if mode in ("root", "spot"):
        action = _choice(spot.get("action"), ACTIONS, "spot.action")
        item: dict[str, Any] = {"type": "spot-interruption", "id": "aemm-spot", "action": action}
        item["at"] = at
        if _str(spot.get("time"), "spot.time"):
            item["time"] = _rfc3339(spot["time"], "spot.time")
        out.append(item)
        rebalance: dict[str, Any] = {"type": "rebalance-recommendation", "id": "aemm-rebalance"}
        rebalance["at"] = _when(merged, "rebalance-trigger-time", "rebalance-delay-sec")
        if _str(spot.get("rebalance-rec-time"), "spot.rebalance-rec-time"):
            notice = _rfc3339(spot["rebalance-rec-time"], "spot.rebalance-rec-time")
            rebalance["notice-time"] = notice
        out.append(rebalance)
    if mode in ("root", "events"):
        event: dict[str, Any] = {
            "type": "maintenance-event",
            "id": "aemm-event",
            "at": at,
            "code": _choice(events.get("code"), EVENT_CODES, "events.code"),
            "state": _choice(events.get("state"), EVENT_STATES, "events.state"),
            "event-id": _str(
                _section(_section(merged, "metadata"), "values").get("event-id"),
                "metadata.values.event-id",
            )
            or EVENT_ID,
            "not-before": "+0s",
            "not-after": "+7d",
            "not-before-deadline": "+9d",
        }
        for key in ("not-before", "not-after", "not-before-deadline"):
            if _str(events.get(key), f"events.{key}"):
                event[key] = _rfc3339(events[key], f"events.{key}")
        if event["not-before"] != "+0s" and not _str(events.get("not-after"), "events.not-after"):
            # A week after the not-before given (the Go mock's start + 7 days could end the
            # window before it starts, which is refused).
            del event["not-after"]
        out.append(event)
    if mode in ("root", "asglifecycle"):
        when = _when(merged, "asg-termination-trigger-time", "asg-termination-delay-sec")
        out.append(
            {
                "type": "asg-lifecycle",
                "id": "aemm-asg",
                "states": [
                    {"at": "now", "state": "InService"},
                    {"at": when, "state": "Terminated"},
                ],
            }
        )
    return out


def _when(merged: Mapping[str, Any], trigger_key: str, delay_key: str) -> str:
    """An absolute trigger time wins over the delay (seconds after start)."""
    trigger = _str(merged.get(trigger_key), trigger_key)
    if trigger:
        return _rfc3339(trigger, trigger_key)
    return f"+{_int(merged.get(delay_key), delay_key, 0, 2**31 - 1)}s"


# ---------------------------------------------------------------------------------------
# Value checks: one line naming the key, the value and what is allowed.


def _section(node: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    value = node.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(prefix + key, value, "a mapping")
    return value


def _path(value: Any, key: str) -> str:
    text = _str(value, key)
    if not text.startswith("/latest/") or len(text) <= len("/latest/"):
        raise ConfigError(key, value, "a path under /latest/ (e.g. /latest/meta-data/ami-id)")
    return re.sub("/+", "/", text[len("/latest/") :].strip("/"))


def _differs(value: Any, default: Any) -> bool:
    if isinstance(value, Mapping) and isinstance(default, Mapping):
        return dict(value) != dict(default)
    return _text(value) != _text(default)


def _text(value: Any) -> str:
    if isinstance(value, Mapping):
        return dumps(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "\n".join(_text(v) for v in value)
    return str(value)


def _str(value: Any, key: str) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):  # YAML reads unquoted timestamps as datetimes
        when = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return (
            when.strftime("%Y-%m-%dT%H:%M:%SZ")
            if when.utcoffset() == dt.timedelta(0)
            else when.isoformat()
        )
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(key, value, "a string")
    return str(value).strip()


def _int(value: Any, key: str, low: int, high: int) -> int:
    text = _str(value, key).lstrip("=")
    # At most 20 digits: no setting takes more, and Python refuses to convert 4,300.
    if not re.fullmatch(r"-?[0-9]{1,20}", text) or not low <= int(text) <= high:
        raise ConfigError(key, value, f"an integer from {low} to {high}")
    return int(text)


def _bool(merged: Mapping[str, Any], key: str) -> bool:
    value = merged.get(key)
    if isinstance(value, bool):
        return value
    text = _str(value, key).lower()
    if text in ("true", "1", "t", "yes"):
        return True
    if text in ("false", "0", "f", "no", ""):
        return False
    raise ConfigError(key, value, "true or false")


def _choice(value: Any, allowed: tuple[str, ...], key: str) -> str:
    text = _str(value, key)
    if text not in allowed:
        raise ConfigError(key, value, "one of: " + ", ".join(allowed))
    return text


def _rfc3339(value: Any, key: str) -> str:
    text = _str(value, key)
    if "T" not in text.upper():
        raise ConfigError(key, value, "an RFC 3339 time like 2020-01-07T01:03:47Z")
    try:
        parse_time(text, key)
    except ConfigError:
        raise ConfigError(key, value, "an RFC 3339 time like 2020-01-07T01:03:47Z") from None
    return text
