"""The ``scenarios:`` section: each scenario a typed, frozen dataclass, validated once.

The configuration file and the control API (``POST /v1/scenarios``) take the same
mapping, and both go through :func:`parse_scenario`: a bad scenario is the same one-line
:class:`~imdsmock.errors.ConfigError` from ``imdsmock config``, ``imdsmock serve``, a
reload and the control API.

A time is ``now``, ``+30s`` / ``+2m`` / ``+1h`` / ``+1d``, an RFC 3339 time or epoch
seconds. A relative one is kept as a :class:`When` relative to an origin that is not known
here: the start of the mock for the configuration, the request for the control API (which
passes its ``now``, so its times are absolute at once). Turning a scenario into changes of
the instance at absolute times is :mod:`imdsmock.instance.scenarios`.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from imdsmock.errors import ConfigError, did_you_mean

__all__ = [
    "ACTIONS",
    "ASG_STATES",
    "EVENT_CODES",
    "EVENT_STATES",
    "FIELDS",
    "ON_TERMINATION",
    "SCENARIOS",
    "AsgLifecycleConfig",
    "MaintenanceEventConfig",
    "RebalanceRecommendationConfig",
    "ScenarioConfig",
    "SpotInterruptionConfig",
    "When",
    "check_window",
    "parse_scenario",
    "parse_scenarios",
    "parse_time",
]

ACTIONS = ("hibernate", "stop", "terminate")
ON_TERMINATION = ("keep-serving", "stop-serving")
EVENT_CODES = (
    "instance-reboot",
    "instance-retirement",
    "instance-stop",
    "system-maintenance",
    "system-reboot",
)
EVENT_STATES = ("active", "canceled", "completed")
# Target lifecycle states of an Auto Scaling instance.
ASG_STATES = (
    "Detached",
    "InService",
    "Standby",
    "Terminated",
    "Warmed:Hibernated",
    "Warmed:Running",
    "Warmed:Stopped",
    "Warmed:Terminated",
)


@dataclass(frozen=True, slots=True)
class When:
    """A point in time: epoch seconds, or (``relative``) seconds after an origin."""

    seconds: float
    relative: bool = False

    def at(self, origin: float) -> float:
        """The epoch seconds this is when relative times count from ``origin``."""
        return origin + self.seconds if self.relative else self.seconds


NOW = When(0.0, relative=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class SpotInterruptionConfig:
    """A spot interruption notice at ``at``, naming the time of the interruption."""

    id: str
    at: When = NOW
    action: str = "terminate"
    time: When | None = None
    """The time written in the notice; None: ``at`` + ``notice_seconds``."""
    notice_seconds: float = 120.0
    rebalance_lead_seconds: float | None = None
    """A rebalance recommendation this long before the notice; None: none."""
    on_termination: str = "keep-serving"
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The mapping as written (``imdsmock config`` prints it back)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RebalanceRecommendationConfig:
    """A rebalance recommendation from ``at`` on."""

    id: str
    at: When = NOW
    notice_time: When | None = None
    """The noticeTime written; None: ``at``."""
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The mapping as written (``imdsmock config`` prints it back)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MaintenanceEventConfig:
    """A scheduled event announced at ``at``; unset times and ids are derived when placed."""

    id: str
    at: When = NOW
    code: str = "system-reboot"
    state: str = "active"
    not_before: When | None = None
    not_after: When | None = None
    not_before_deadline: When | None = None
    event_id: str | None = None
    description: str | None = None
    complete_at: When | None = None
    cancel_at: When | None = None
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The mapping as written (``imdsmock config`` prints it back)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AsgLifecycleConfig:
    """Auto Scaling target lifecycle states, each from its time on, in the order given."""

    id: str
    states: tuple[tuple[When, str], ...]
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The mapping as written (``imdsmock config`` prints it back)."""


ScenarioConfig = (
    SpotInterruptionConfig
    | RebalanceRecommendationConfig
    | MaintenanceEventConfig
    | AsgLifecycleConfig
)
# The type of Config.scenarios: the builder converts the list of mappings, then parses it.
SCENARIOS = tuple[ScenarioConfig, ...]

# The fields of each type beside type, id and at.
FIELDS: Mapping[str, frozenset[str]] = {
    "spot-interruption": frozenset(
        {"action", "time", "notice-seconds", "rebalance-lead-seconds", "on-termination"}
    ),
    "rebalance-recommendation": frozenset({"notice-time"}),
    "maintenance-event": frozenset(
        {
            "code",
            "state",
            "not-before",
            "not-after",
            "not-before-deadline",
            "event-id",
            "description",
            "complete-at",
            "cancel-at",
        }
    ),
    "asg-lifecycle": frozenset({"states", "state"}),
}
_COMMON = frozenset({"type", "id", "at"})
_RELATIVE = re.compile(r"\s*\+\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Times are printed with four-digit years: before the year 10000.
_YEAR_10000 = 253402300800.0
# A relative time must stay before the year 10000 for a mock started up to 2038.
_LONGEST_RELATIVE = _YEAR_10000 - 2.0**31


def parse_scenarios(raw: tuple[Mapping[str, Any], ...], key: str) -> SCENARIOS:
    """The configuration's scenarios; one without an ``id`` gets ``config-<index>``, so a
    reload of the same file yields the same ids."""
    return tuple(
        parse_scenario(item, key=f"{key}[{index}]", default_id=f"config-{index}")
        for index, item in enumerate(raw)
    )


def parse_scenario(
    data: Mapping[str, Any],
    *,
    key: str = "scenario",
    default_id: str | None = None,
    now: float | None = None,
) -> ScenarioConfig:
    """Validate one scenario mapping.

    Without an ``id`` it gets ``default_id``, or a random ``<type>-<8 hex digits>``. With
    ``now`` relative times count from it (a scenario started at run time). Raises
    :class:`~imdsmock.errors.ConfigError` naming the field, its value and what is allowed.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(key, data, "a mapping with a type (spot-interruption, ...)")
    d = {str(k).replace("_", "-"): v for k, v in data.items()}
    kind = d.get("type")
    if not isinstance(kind, str) or kind not in FIELDS:  # a list or mapping is no type
        raise ConfigError(
            f"{key}.type", kind, "one of: " + ", ".join(FIELDS), hint=_meant(kind, FIELDS)
        )
    kind = str(kind)
    allowed = FIELDS[kind] | _COMMON
    for name, value in d.items():
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(
                f"{key}.{name}", value, f"a known key ({known})", hint=_meant(name, allowed)
            )
    ident = _id(d.get("id", default_id), kind, key)
    at = parse_time(d.get("at", "now"), f"{key}.at", now)
    if kind == "spot-interruption":
        notice = _seconds(d.get("notice-seconds", 120), f"{key}.notice-seconds")
        lead = d.get("rebalance-lead-seconds")
        return SpotInterruptionConfig(
            id=ident,
            at=at,
            action=_choice(d.get("action", "terminate"), ACTIONS, f"{key}.action"),
            time=_optional_time(d.get("time"), f"{key}.time", now),
            notice_seconds=notice,
            rebalance_lead_seconds=(
                None if lead is None else _seconds(lead, f"{key}.rebalance-lead-seconds")
            ),
            on_termination=_choice(
                d.get("on-termination", "keep-serving"), ON_TERMINATION, f"{key}.on-termination"
            ),
            source=data,
        )
    if kind == "rebalance-recommendation":
        return RebalanceRecommendationConfig(
            id=ident,
            at=at,
            notice_time=_optional_time(d.get("notice-time"), f"{key}.notice-time", now),
            source=data,
        )
    if kind == "maintenance-event":
        return _event(d, key, now, id=ident, at=at, source=data)
    return _asg(d, key, now, id=ident, source=data)


def _event(
    d: Mapping[str, Any], key: str, now: float | None, **common: Any
) -> MaintenanceEventConfig:
    not_before = _optional_time(d.get("not-before"), f"{key}.not-before", now)
    not_after = _optional_time(d.get("not-after"), f"{key}.not-after", now)
    start = common["at"] if not_before is None else not_before
    check_window(f"{key}.not-after", d.get("not-after"), start, not_after)
    complete_at = _optional_time(d.get("complete-at"), f"{key}.complete-at", now)
    cancel_at = _optional_time(d.get("cancel-at"), f"{key}.cancel-at", now)
    if complete_at is not None and cancel_at is not None:
        raise ConfigError(f"{key}.cancel-at", d.get("cancel-at"), "unset when complete-at is set")
    event_id = d.get("event-id")
    if event_id is not None and (
        not isinstance(event_id, str) or not re.fullmatch(r"[A-Za-z0-9-]{1,64}", event_id)
    ):
        raise ConfigError(
            f"{key}.event-id", event_id, "an id like instance-event-0d59937288b749b32"
        )
    description = d.get("description")
    if description is not None and not isinstance(description, str):
        raise ConfigError(f"{key}.description", description, "a string")
    return MaintenanceEventConfig(
        **common,
        code=_choice(d.get("code", "system-reboot"), EVENT_CODES, f"{key}.code"),
        state=_choice(d.get("state", "active"), EVENT_STATES, f"{key}.state"),
        not_before=not_before,
        not_after=not_after,
        not_before_deadline=_optional_time(
            d.get("not-before-deadline"), f"{key}.not-before-deadline", now
        ),
        event_id=event_id,
        description=description,
        complete_at=complete_at,
        cancel_at=cancel_at,
    )


def check_window(
    key: str, given: object, not_before: When, not_after: When | None, origin: float | None = None
) -> None:
    """Refuse an event window that ends before it starts (AWS's Go mock serves one; EC2
    never does); ``given`` is not-after as written. Without ``origin`` a relative time
    cannot be compared with an absolute one: that pair is checked when the scenario is
    placed in time."""
    if not_after is None:
        return
    if origin is None and not_before.relative != not_after.relative:
        return
    start = not_before.at(origin or 0.0)
    if not_after.at(origin or 0.0) < start:
        if not_before.relative and origin is None:
            begins = f"{not_before.seconds:g} s after the start"
        else:
            begins = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise ConfigError(key, given, f"a time not before not-before ({begins})")


def _asg(d: Mapping[str, Any], key: str, now: float | None, **common: Any) -> AsgLifecycleConfig:
    raw = d.get("states")
    if raw is None:
        if "state" not in d:
            raise ConfigError(f"{key}.states", None, "a list of {at, state} (or one state)")
        raw = [{"at": d.get("at", "now"), "state": d["state"]}]
    elif "state" in d:
        raise ConfigError(f"{key}.state", d["state"], "unset when states is given")
    if not isinstance(raw, list | tuple) or not raw:
        raise ConfigError(f"{key}.states", raw, "a non-empty list of {at, state}")
    states = []
    for i, item in enumerate(raw):
        where = f"{key}.states[{i}]"
        if not isinstance(item, Mapping) or set(item) - {"at", "state"}:
            raise ConfigError(where, item, "a mapping with at and state")
        when = parse_time(item.get("at", "now"), f"{where}.at", now)
        states.append((when, _choice(item.get("state"), ASG_STATES, f"{where}.state")))
    return AsgLifecycleConfig(**common, states=tuple(states))


def _id(value: Any, kind: str, key: str) -> str:
    if value is None:
        return f"{kind}-{os.urandom(4).hex()}"
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", value):
        raise ConfigError(f"{key}.id", value, "1-64 letters, digits, . _ : -")
    return value


def _choice(value: Any, allowed: tuple[str, ...], key: str) -> str:
    if isinstance(value, str):
        for option in allowed:
            if option.lower() == value.strip().lower():
                return option
    raise ConfigError(key, value, "one of: " + ", ".join(allowed), hint=_meant(value, allowed))


def _meant(value: object, allowed: Iterable[str]) -> str:
    return did_you_mean(value, allowed) if isinstance(value, str) else ""


def _seconds(value: Any, key: str) -> float:
    seconds: float = -1.0
    if isinstance(value, str):
        m = _RELATIVE.fullmatch("+" + value.strip())
        if m is not None:
            seconds = _relative(m)  # "30s", "2m"
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value
    if not 0 <= seconds < 1e9:  # NaN and inf too
        raise ConfigError(key, value, "a number of seconds from 0 to 1e9 (or like 30s, 2m)")
    return float(seconds)


def _relative(m: re.Match[str]) -> float:
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def _optional_time(value: Any, key: str, now: float | None) -> When | None:
    return None if value is None else parse_time(value, key, now)


def parse_time(value: Any, key: str, now: float | None = None) -> When:
    """A time: ``now``, ``+30s`` / ``+2m`` / ``+1h`` / ``+1d``, RFC 3339, or epoch seconds.

    Relative times stay relative, or with ``now`` count from it.
    """
    when = _time(value)
    if when is not None and when.relative and now is not None:
        when = When(now + when.seconds)
    limit = _LONGEST_RELATIVE if when is not None and when.relative else _YEAR_10000
    if when is None or not 0 <= when.seconds < limit:
        raise ConfigError(
            key, value, "now, +SECONDS (e.g. +30s, +2m), an RFC 3339 time or epoch seconds"
        )
    return when


def _time(value: Any) -> When | None:
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return When(when.timestamp())
    if isinstance(value, int | float) and not isinstance(value, bool):
        # An integer of thousands of digits has no float: refused, as are NaN and inf.
        seconds = float(value) if abs(value) < 1e300 else math.inf
        return When(seconds) if math.isfinite(seconds) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.lower() == "now":
        return NOW
    m = _RELATIVE.fullmatch(text)
    if m is not None:
        return When(_relative(m), relative=True)
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return When(float(text))
    try:
        parsed = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if "T" not in text.upper():
        return None
    return When((parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp())
