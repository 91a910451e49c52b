"""Scenarios: an instance whose life moves (spot, rebalance, maintenance, Auto Scaling).

A scenario configured (:mod:`imdsmock.config.scenarios`, validated when the configuration
is loaded or the control API is asked) is placed in time by :func:`place`: its relative
times count from an origin (the start of the mock, or the request). A placed scenario is a
frozen dataclass that compiles to a :class:`~imdsmock.instance.timeline.Timeline` of
changes at absolute times; nothing here reads a clock or starts a timer. The state in
force at time *t* is the base tree plus every change with ``at <= t``.

What real EC2 does, and what is copied here:

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

import hashlib
from dataclasses import dataclass
from typing import Any

from imdsmock.config.scenarios import (
    AsgLifecycleConfig,
    MaintenanceEventConfig,
    RebalanceRecommendationConfig,
    ScenarioConfig,
    SpotInterruptionConfig,
    When,
    check_window,
)
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
    "AsgLifecycle",
    "MaintenanceEvent",
    "RebalanceRecommendation",
    "Scenario",
    "SpotInterruption",
    "place",
    "scenarios_timeline",
]

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


def place(config: ScenarioConfig, origin: float) -> Scenario:
    """The scenario at absolute times, its relative times counted from ``origin``.

    Unset times and ids are derived here: an event's window starts when it is announced
    and lasts a week, its EventId comes from the scenario id.
    """
    if isinstance(config, SpotInterruptionConfig):
        return SpotInterruption(
            id=config.id,
            at=config.at.at(origin),
            action=config.action,
            time=_at(config.time, origin),
            notice_seconds=config.notice_seconds,
            rebalance_lead_seconds=config.rebalance_lead_seconds,
            on_termination=config.on_termination,
        )
    if isinstance(config, RebalanceRecommendationConfig):
        return RebalanceRecommendation(
            id=config.id, at=config.at.at(origin), notice_time=_at(config.notice_time, origin)
        )
    if isinstance(config, MaintenanceEventConfig):
        at = config.at.at(origin)
        not_before = at if config.not_before is None else config.not_before.at(origin)
        if config.not_after is None:
            not_after = not_before + WEEK
        else:  # a relative and an absolute time are compared once the origin is known
            key = f"scenarios.{config.id}.not-after"
            given = config.source.get("not-after")
            check_window(key, given, When(not_before), config.not_after, origin)
            not_after = config.not_after.at(origin)
        event_id = config.event_id
        if event_id is None:
            event_id = "instance-event-" + hashlib.sha256(config.id.encode()).hexdigest()[:17]
        return MaintenanceEvent(
            id=config.id,
            at=at,
            code=config.code,
            state=config.state,
            not_before=not_before,
            not_after=not_after,
            not_before_deadline=_at(config.not_before_deadline, origin),
            event_id=event_id,
            description=config.description,
            complete_at=_at(config.complete_at, origin),
            cancel_at=_at(config.cancel_at, origin),
        )
    assert isinstance(config, AsgLifecycleConfig)
    states = sorted(((when.at(origin), state) for when, state in config.states), key=lambda s: s[0])
    return AsgLifecycle(id=config.id, states=tuple(states))


def _at(when: When | None, origin: float) -> float | None:
    return None if when is None else when.at(origin)
