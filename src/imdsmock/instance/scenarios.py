"""Scenarios: an instance whose life moves (spot, rebalance, maintenance, Auto Scaling).

Each scenario is a frozen dataclass that compiles to a :class:`~imdsmock.timeline.Timeline`
of changes at absolute times; nothing here reads a clock or starts a timer. The state in
force at time *t* is the base tree plus every change with ``at <= t`` (STYLE.md §5).

What real EC2 does, and what is copied here (real-imds.md §A6):

* a spot interruption notice appears at ``at`` as ``spot/instance-action``
  (``{"action" : ..., "time" : ...}``) and ``spot/termination-time``; the time in it is
  fixed when the notice appears (two minutes later by default) and does not slide forward
  on every request as AWS's Go mock does; optionally a rebalance recommendation comes
  earlier, and at the termination time the instance may stop answering;
* maintenance events are listed in ``events/maintenance/scheduled`` while active and move
  to ``events/maintenance/history`` when completed or canceled;
* ``autoscaling/target-lifecycle-state`` exists only once the instance has a state;
* before a category exists its paths (and its listing entry) are 404.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imdsmock.errors import ConfigError
from imdsmock.instance.imdsjson import dumps, event_time, imds_time
from imdsmock.instance.model import Leaf
from imdsmock.instance.notices import (
    HISTORY,
    LIFECYCLE,
    REBALANCE,
    SCHEDULED,
    SPOT_ACTION,
    SPOT_TIME,
)
from imdsmock.instance.timeline import Change, Timeline

__all__ = [
    "ACTIONS",
    "ASG_STATES",
    "EVENT_CODES",
    "EVENT_STATES",
    "AsgLifecycle",
    "MaintenanceEvent",
    "RebalanceRecommendation",
    "Scenario",
    "SpotInterruption",
    "config_scenarios",
    "parse_scenario",
    "parse_time",
    "scenarios_timeline",
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
# Target lifecycle states of an Auto Scaling instance (real-imds.md §A6).
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
WEEK = 7 * 86400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SpotInterruption:
    """A two-minute (by default) spot interruption notice, fixed when it appears."""

    id: str
    at: float
    action: str = "terminate"
    # The time written in the notice; None means at + notice_seconds.
    time: float | None = None
    notice_seconds: float = 120.0
    # A rebalance recommendation this long before the notice; None means none.
    rebalance_lead_seconds: float | None = None
    on_termination: str = "keep-serving"

    @property
    def termination(self) -> float:
        """When the instance is interrupted (the time in the notice)."""
        return self.at + self.notice_seconds if self.time is None else self.time

    def timeline(self) -> Timeline:
        """Rebalance (optional), then the notice, then (optionally) silence."""
        changes = []
        if self.rebalance_lead_seconds is not None:
            when = self.at - self.rebalance_lead_seconds
            changes.append(Change(at=when, set={REBALANCE: _rebalance_leaf(when)}))
        notice = dumps({"action": self.action, "time": imds_time(self.termination)})
        changes.append(
            Change(
                at=self.at,
                set={
                    SPOT_ACTION: Leaf.text(notice),
                    SPOT_TIME: Leaf.text(imds_time(self.termination)),
                },
            )
        )
        if self.on_termination == "stop-serving":
            changes.append(Change(at=max(self.termination, self.at), halt=True))
        return Timeline(tuple(changes))

    def describe(self) -> dict[str, Any]:
        """The scenario as JSON-able data."""
        out: dict[str, Any] = {
            "id": self.id,
            "type": "spot-interruption",
            "action": self.action,
            "at": imds_time(self.at),
            "time": imds_time(self.termination),
            "notice-seconds": self.notice_seconds,
            "on-termination": self.on_termination,
        }
        if self.rebalance_lead_seconds is not None:
            out["rebalance-lead-seconds"] = self.rebalance_lead_seconds
            out["rebalance-at"] = imds_time(self.at - self.rebalance_lead_seconds)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RebalanceRecommendation:
    """An EC2 instance rebalance recommendation, from ``at`` on."""

    id: str
    at: float
    # The noticeTime written; None means ``at``.
    notice_time: float | None = None

    def timeline(self) -> Timeline:
        """One change: the recommendation appears."""
        when = self.at if self.notice_time is None else self.notice_time
        return Timeline((Change(at=self.at, set={REBALANCE: _rebalance_leaf(when)}),))

    def describe(self) -> dict[str, Any]:
        """The scenario as JSON-able data."""
        return {
            "id": self.id,
            "type": "rebalance-recommendation",
            "at": imds_time(self.at),
            "notice-time": imds_time(self.at if self.notice_time is None else self.notice_time),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class MaintenanceEvent:
    """One scheduled event: listed from ``at``, moving to history when it ends."""

    id: str
    at: float
    code: str = "system-reboot"
    state: str = "active"
    not_before: float
    not_after: float
    not_before_deadline: float | None = None
    event_id: str
    description: str | None = None
    complete_at: float | None = None
    cancel_at: float | None = None

    def state_at(self, now: float) -> str | None:
        """The event's state at ``now`` (None before it is announced)."""
        if now < self.at:
            return None
        if self.complete_at is not None and now >= self.complete_at:
            return "completed"
        if self.cancel_at is not None and now >= self.cancel_at:
            return "canceled"
        return self.state

    def points(self) -> tuple[float, ...]:
        """The times at which this event changes."""
        return tuple(t for t in (self.at, self.complete_at, self.cancel_at) if t is not None)

    def document(self, state: str) -> dict[str, str]:
        """The event as IMDS lists it (fields in the order EC2 prints them)."""
        text = self.description or f"The instance is scheduled for {self.code}"
        if state != "active":
            # EC2 prefixes ended events' descriptions: "[Completed] ...", "[Canceled] ...".
            text = f"[{state.capitalize()}] {text}"
        doc = {
            "NotBefore": event_time(self.not_before),
            "Code": self.code,
            "Description": text,
            "EventId": self.event_id,
            "NotAfter": event_time(self.not_after),
            "State": state,
        }
        if self.not_before_deadline is not None:
            doc["NotBeforeDeadline"] = event_time(self.not_before_deadline)
        return doc

    def timeline(self) -> Timeline:
        """This event alone (with other events, see :func:`events_timeline`)."""
        return events_timeline((self,))

    def describe(self) -> dict[str, Any]:
        """The scenario as JSON-able data."""
        out: dict[str, Any] = {
            "id": self.id,
            "type": "maintenance-event",
            "at": imds_time(self.at),
            "code": self.code,
            "state": self.state,
            "event-id": self.event_id,
            "not-before": imds_time(self.not_before),
            "not-after": imds_time(self.not_after),
        }
        for key, value in (
            ("not-before-deadline", self.not_before_deadline),
            ("complete-at", self.complete_at),
            ("cancel-at", self.cancel_at),
        ):
            if value is not None:
                out[key] = imds_time(value)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class AsgLifecycle:
    """Auto Scaling target lifecycle states over time (absent before the first)."""

    id: str
    states: tuple[tuple[float, str], ...]

    def timeline(self) -> Timeline:
        """One change per state."""
        return Timeline(
            tuple(Change(at=at, set={LIFECYCLE: Leaf.text(state)}) for at, state in self.states)
        )

    def describe(self) -> dict[str, Any]:
        """The scenario as JSON-able data."""
        return {
            "id": self.id,
            "type": "asg-lifecycle",
            "states": [{"at": imds_time(at), "state": state} for at, state in self.states],
        }


Scenario = SpotInterruption | RebalanceRecommendation | MaintenanceEvent | AsgLifecycle


def _rebalance_leaf(when: float) -> Leaf:
    return Leaf.text(dumps({"noticeTime": imds_time(when)}))


def events_timeline(events: tuple[MaintenanceEvent, ...]) -> Timeline:
    """All events together: at every change point, the scheduled and history lists."""
    changes = []
    for point in sorted({p for e in events for p in e.points()}):
        scheduled, history = [], []
        for event in sorted(events, key=lambda e: (e.not_before, e.event_id)):
            state = event.state_at(point)
            if state == "active":
                scheduled.append(event.document(state))
            elif state is not None:
                history.append(event.document(state))
        changes.append(
            Change(
                at=point,
                set={SCHEDULED: Leaf.text(dumps(scheduled)), HISTORY: Leaf.text(dumps(history))},
            )
        )
    return Timeline(tuple(changes))


def scenarios_timeline(scenarios: tuple[Scenario, ...]) -> Timeline:
    """The merged timeline of several scenarios (their ids must differ)."""
    ids = [s.id for s in scenarios]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate is not None:
        raise ConfigError("scenario.id", duplicate, "an id not used by another scenario")
    timeline = events_timeline(tuple(s for s in scenarios if isinstance(s, MaintenanceEvent)))
    for scenario in scenarios:
        if not isinstance(scenario, MaintenanceEvent):
            timeline = timeline.merged(scenario.timeline())
    return timeline


def config_scenarios(raw: tuple[Mapping[str, Any], ...], started: float) -> tuple[Scenario, ...]:
    """The ``scenarios:`` list of a configuration, relative times counted from ``started``.

    Scenarios without an ``id`` get ``config-<index>``, so a reload of the same file
    yields the same ids.
    """
    out = []
    for index, item in enumerate(raw):
        key = f"scenarios[{index}]"
        if not isinstance(item, Mapping):
            raise ConfigError(key, item, "a mapping with a type (spot-interruption, ...)")
        data = dict(item)
        data.setdefault("id", f"config-{index}")
        out.append(parse_scenario(data, started, key=key))
    return tuple(out)


# ---------------------------------------------------------------------------------------
# Parsing: JSON / config shapes -> scenarios, validated once.

_FIELDS: Mapping[str, frozenset[str]] = {
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
_RELATIVE = re.compile(r"^\s*\+\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_scenario(data: Mapping[str, Any], now: float, *, key: str = "scenario") -> Scenario:
    """Validate one scenario mapping; relative times (``now``, ``+30s``) count from ``now``.

    Raises :class:`~imdsmock.errors.ConfigError` naming the field, its value and what is
    allowed.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(key, data, "a mapping with a type (spot-interruption, ...)")
    d = {str(k).replace("_", "-"): v for k, v in data.items()}
    kind = d.get("type")
    if kind not in _FIELDS:
        raise ConfigError(f"{key}.type", kind, "one of: " + ", ".join(_FIELDS))
    kind = str(kind)
    allowed = _FIELDS[kind] | _COMMON
    for name, value in d.items():
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            label = name if name.isprintable() else repr(name)  # keep the error one line
            raise ConfigError(f"{key}.{label}", value, f"a known key ({known})")
    ident = _id(d.get("id"), kind, key)
    at = parse_time(d.get("at", "now"), now, f"{key}.at")
    if kind == "spot-interruption":
        notice = _seconds(d.get("notice-seconds", 120), f"{key}.notice-seconds")
        lead = d.get("rebalance-lead-seconds")
        return SpotInterruption(
            id=ident,
            at=at,
            action=_choice(d.get("action", "terminate"), ACTIONS, f"{key}.action"),
            time=_optional_time(d.get("time"), now, f"{key}.time"),
            notice_seconds=notice,
            rebalance_lead_seconds=(
                None if lead is None else _seconds(lead, f"{key}.rebalance-lead-seconds")
            ),
            on_termination=_choice(
                d.get("on-termination", "keep-serving"), ON_TERMINATION, f"{key}.on-termination"
            ),
        )
    if kind == "rebalance-recommendation":
        return RebalanceRecommendation(
            id=ident,
            at=at,
            notice_time=_optional_time(d.get("notice-time"), now, f"{key}.notice-time"),
        )
    if kind == "maintenance-event":
        return _event(d, ident, at, now, key)
    return _asg(d, ident, at, now, key)


def _event(d: Mapping[str, Any], ident: str, at: float, now: float, key: str) -> MaintenanceEvent:
    not_before = _optional_time(d.get("not-before"), now, f"{key}.not-before")
    not_before = at if not_before is None else not_before
    not_after = _optional_time(d.get("not-after"), now, f"{key}.not-after")
    not_after = not_before + WEEK if not_after is None else not_after
    # not-after before not-before is served as given (AWS's Go mock accepts it too).
    complete_at = _optional_time(d.get("complete-at"), now, f"{key}.complete-at")
    cancel_at = _optional_time(d.get("cancel-at"), now, f"{key}.cancel-at")
    if complete_at is not None and cancel_at is not None:
        raise ConfigError(f"{key}.cancel-at", d.get("cancel-at"), "unset when complete-at is set")
    event_id = d.get("event-id")
    if event_id is None:
        event_id = "instance-event-" + hashlib.sha256(ident.encode()).hexdigest()[:17]
    elif not isinstance(event_id, str) or not re.fullmatch(r"[A-Za-z0-9-]{1,64}", event_id):
        raise ConfigError(
            f"{key}.event-id", event_id, "an id like instance-event-0d59937288b749b32"
        )
    description = d.get("description")
    if description is not None and not isinstance(description, str):
        raise ConfigError(f"{key}.description", description, "a string")
    return MaintenanceEvent(
        id=ident,
        at=at,
        code=_choice(d.get("code", "system-reboot"), EVENT_CODES, f"{key}.code"),
        state=_choice(d.get("state", "active"), EVENT_STATES, f"{key}.state"),
        not_before=not_before,
        not_after=not_after,
        not_before_deadline=_optional_time(
            d.get("not-before-deadline"), now, f"{key}.not-before-deadline"
        ),
        event_id=event_id,
        description=description,
        complete_at=complete_at,
        cancel_at=cancel_at,
    )


def _asg(d: Mapping[str, Any], ident: str, at: float, now: float, key: str) -> AsgLifecycle:
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
        when = parse_time(item.get("at", "now"), now, f"{where}.at")
        states.append((when, _choice(item.get("state"), ASG_STATES, f"{where}.state")))
    del at  # the states carry their own times
    return AsgLifecycle(id=ident, states=tuple(sorted(states, key=lambda s: s[0])))


def _id(value: Any, kind: str, key: str) -> str:
    if value is None:
        return f"{kind}-{secrets.token_hex(4)}"
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", value):
        raise ConfigError(f"{key}.id", value, "1-64 letters, digits, . _ : -")
    return value


def _choice(value: Any, allowed: tuple[str, ...], key: str) -> str:
    if isinstance(value, str):
        for option in allowed:
            if option.lower() == value.strip().lower():
                return option
    raise ConfigError(key, value, "one of: " + ", ".join(allowed))


def _seconds(value: Any, key: str) -> float:
    if isinstance(value, str) and _RELATIVE.match("+" + value.strip()):
        return _relative(_RELATIVE.match("+" + value.strip()))  # "30s", "2m"
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
        raise ConfigError(key, value, "a number of seconds >= 0 (or like 30s, 2m)")
    return float(value)


def _relative(m: re.Match[str] | None) -> float:
    assert m is not None
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def _optional_time(value: Any, now: float, key: str) -> float | None:
    return None if value is None else parse_time(value, now, key)


def parse_time(value: Any, now: float, key: str) -> float:
    """A time: ``now``, ``+30s`` / ``+2m`` / ``+1h`` (from ``now``), RFC 3339, or epoch seconds."""
    when = _time(value, now)
    # Before the year 10000: IMDS timestamps have four-digit years.
    if when is None or not 0 <= when < _YEAR_10000:
        raise ConfigError(
            key, value, "now, +SECONDS (e.g. +30s, +2m), an RFC 3339 time or epoch seconds"
        )
    return when


_YEAR_10000 = 253402300800.0


def _time(value: Any, now: float) -> float | None:
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return when.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.lower() == "now":
        return now
    m = _RELATIVE.match(text)
    if m is not None:
        return now + _relative(m)
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return float(text)
    try:
        parsed = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if "T" not in text.upper():
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


def replace(scenario: Scenario, **changes: Any) -> Scenario:
    """A copy of a scenario with some fields changed."""
    return dataclasses.replace(scenario, **changes)
