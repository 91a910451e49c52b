"""Scenario timelines (spot, rebalance, maintenance events, Auto Scaling) on a manual clock."""

from __future__ import annotations

import datetime as dt
import http.client
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imdsmock.config.scenarios import FIELDS, parse_scenario
from imdsmock.core.scenarios import started, with_scenarios
from imdsmock.core.snapshot import Snapshot
from imdsmock.core.state import Compiled
from imdsmock.errors import ConfigError
from imdsmock.instance.imdsjson import imds_time
from imdsmock.instance.model import Leaf
from imdsmock.instance.scenarios import (
    AsgLifecycle,
    MaintenanceEvent,
    SpotInterruption,
)
from imdsmock.instance.timeline import Change, Timeline
from mockprocess import mock_process, run_command
from support import EPOCH, base_snapshot, make_config, serve

MD = "meta-data/"


def snapshot(*specs: dict[str, Any]) -> Snapshot:
    """The default instance started at EPOCH with these scenarios."""
    base = base_snapshot()
    return with_scenarios(base, tuple(started(s, EPOCH) for s in specs))


def body(snap: Snapshot, path: str, now: float) -> str | None:
    """The body served at ``path`` at ``now``, or None for 404."""
    entry = Compiled(snap).lookup(path, now)
    return None if entry is None else entry.get.body.decode()


def test_spot_notice_appears_at_its_time_with_a_fixed_two_minute_deadline() -> None:
    """A spot notice is 404 before `at`, then names the action and at+120 s, never sliding."""
    snap = snapshot({"type": "spot-interruption", "action": "stop", "at": "+30s"})
    assert body(snap, MD + "spot/instance-action", EPOCH + 29.9) is None
    assert "spot/" not in (body(snap, "meta-data", EPOCH) or "").split("\n")
    notice = body(snap, MD + "spot/instance-action", EPOCH + 30)
    assert notice == ('{\n  "action" : "stop",\n  "time" : "' + imds_time(EPOCH + 150) + '"\n}')
    assert body(snap, MD + "spot/instance-action", EPOCH + 100) == notice
    assert body(snap, MD + "spot/termination-time", EPOCH + 30) == imds_time(EPOCH + 150)
    assert "spot/" in (body(snap, "meta-data", EPOCH + 30) or "").split("\n")


def test_spot_rebalance_recommendation_comes_before_the_notice() -> None:
    """rebalance-lead-seconds makes the recommendation appear that long before the notice."""
    snap = snapshot({"type": "spot-interruption", "at": "+10m", "rebalance-lead-seconds": 300})
    rebalance = MD + "events/recommendations/rebalance"
    assert body(snap, rebalance, EPOCH + 299) is None
    assert body(snap, rebalance, EPOCH + 300) == (
        '{\n  "noticeTime" : "' + imds_time(EPOCH + 300) + '"\n}'
    )
    assert body(snap, MD + "spot/instance-action", EPOCH + 300) is None
    assert body(snap, MD + "spot/instance-action", EPOCH + 600) is not None


@pytest.mark.parametrize(
    ("on_termination", "halted"), [("keep-serving", False), ("stop-serving", True)]
)
def test_spot_termination_time_optionally_halts_the_instance(
    on_termination: str, halted: bool
) -> None:
    """At the termination time a stop-serving instance halts; keep-serving answers on."""
    snap = snapshot({"type": "spot-interruption", "on-termination": on_termination})
    compiled = Compiled(snap)
    assert not compiled.halted(EPOCH + 119)
    assert compiled.halted(EPOCH + 120) is halted


def test_maintenance_events_move_from_scheduled_to_history() -> None:
    """Active events are listed in scheduled; completed/canceled ones move to history."""
    snap = snapshot(
        {
            "type": "maintenance-event",
            "id": "a",
            "code": "system-reboot",
            "at": "+1m",
            "not-before": EPOCH + 3600,
            "complete-at": "+10m",
            "event-id": "instance-event-a",
        },
        {
            "type": "maintenance-event",
            "id": "b",
            "code": "instance-stop",
            "at": "+2m",
            "not-before": EPOCH + 7200,
            "cancel-at": "+5m",
            "event-id": "instance-event-b",
        },
    )
    scheduled, history = MD + "events/maintenance/scheduled", MD + "events/maintenance/history"
    assert body(snap, scheduled, EPOCH) == "[ ]"
    assert [e["EventId"] for e in json.loads(body(snap, scheduled, EPOCH + 120) or "")] == [
        "instance-event-a",
        "instance-event-b",
    ]
    at_5m = json.loads(body(snap, history, EPOCH + 300) or "")
    assert [(e["EventId"], e["State"]) for e in at_5m] == [("instance-event-b", "canceled")]
    assert at_5m[0]["Description"].startswith("[Canceled] ")
    assert body(snap, scheduled, EPOCH + 600) == "[ ]"
    assert len(json.loads(body(snap, history, EPOCH + 600) or "")) == 2


def test_maintenance_event_document_is_in_imds_format() -> None:
    """An event is a JSON array entry with EC2's fields, dates like '1 Jan 2026 01:00:00 GMT'."""
    snap = snapshot(
        {
            "type": "maintenance-event",
            "code": "instance-reboot",
            "event-id": "instance-event-1",
            "not-before": EPOCH + 3600,
            "not-after": EPOCH + 7200,
        }
    )
    text = body(snap, MD + "events/maintenance/scheduled", EPOCH)
    assert text == (
        '[ {\n  "NotBefore" : "1 Jan 2026 01:00:00 GMT",\n  "Code" : "instance-reboot",\n'
        '  "Description" : "The instance is scheduled for instance-reboot",\n'
        '  "EventId" : "instance-event-1",\n  "NotAfter" : "1 Jan 2026 02:00:00 GMT",\n'
        '  "State" : "active"\n} ]'
    )


def test_asg_lifecycle_states_follow_their_schedule() -> None:
    """target-lifecycle-state is 404 before its first state, then follows the schedule."""
    snap = snapshot(
        {
            "type": "asg-lifecycle",
            "states": [
                {"at": "+10s", "state": "Warmed:Stopped"},
                {"at": "+20s", "state": "InService"},
                {"at": "+30s", "state": "Terminated"},
            ],
        }
    )
    path = MD + "autoscaling/target-lifecycle-state"
    assert [body(snap, path, EPOCH + t) for t in (0, 10, 25, 30)] == [
        None,
        "Warmed:Stopped",
        "InService",
        "Terminated",
    ]


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ({"type": "earthquake"}, "scenario.type"),
        ({"type": "spot-interruption", "action": "reboot"}, "scenario.action"),
        ({"type": "spot-interruption", "at": "tomorrow"}, "scenario.at"),
        ({"type": "spot-interruption", "colour": "red"}, "scenario.colour"),
        ({"type": "spot-interruption", "notice-seconds": -1}, "scenario.notice-seconds"),
        ({"type": "spot-interruption", "on-termination": "explode"}, "scenario.on-termination"),
        ({"type": "maintenance-event", "code": "nap"}, "scenario.code"),
        ({"type": "maintenance-event", "state": "done"}, "scenario.state"),
        ({"type": "maintenance-event", "complete-at": 1, "cancel-at": 2}, "scenario.cancel-at"),
        ({"type": "asg-lifecycle", "state": "Gone"}, "scenario.states[0].state"),
        ({"type": "asg-lifecycle"}, "scenario.states"),
    ],
    ids=[
        "type",
        "action",
        "at",
        "unknown-key",
        "notice",
        "on-termination",
        "code",
        "state",
        "complete-and-cancel",
        "asg-state",
        "asg-empty",
    ],
)
def test_bad_scenarios_name_the_field(spec: dict[str, Any], key: str) -> None:
    """A bad scenario raises ConfigError naming the field, the value and what is allowed."""
    with pytest.raises(ConfigError) as caught:
        started(spec, EPOCH)
    assert caught.value.key == key
    assert "expected" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", EPOCH),
        ("+30s", EPOCH + 30),
        ("+2m", EPOCH + 120),
        ("+1h", EPOCH + 3600),
        ("2026-01-01T00:01:00Z", EPOCH + 60),
        (EPOCH + 5, EPOCH + 5),
    ],
    ids=["now", "seconds", "minutes", "hours", "rfc3339", "epoch"],
)
def test_times_are_relative_absolute_or_epoch(text: object, expected: float) -> None:
    """`at` accepts now, +N[s|m|h], RFC 3339 and epoch seconds."""
    scenario = started({"type": "rebalance-recommendation", "at": text}, EPOCH)
    assert scenario.at == expected


def test_scenarios_describe_themselves_as_json() -> None:
    """describe() gives JSON-able data with id and type, for the control API."""
    specs = [
        {"type": "spot-interruption", "id": "s", "rebalance-lead-seconds": 60},
        {"type": "rebalance-recommendation", "id": "r"},
        {"type": "maintenance-event", "id": "m", "not-before-deadline": "+9d"},
        {"type": "asg-lifecycle", "id": "g", "state": "InService"},
    ]
    parsed = [started(s, EPOCH) for s in specs]
    assert [type(p) for p in parsed][::3] == [SpotInterruption, AsgLifecycle]
    assert isinstance(parsed[2], MaintenanceEvent)
    described = [p.describe() for p in parsed]
    json.dumps(described)
    assert [(d["id"], d["type"]) for d in described] == [
        ("s", "spot-interruption"),
        ("r", "rebalance-recommendation"),
        ("m", "maintenance-event"),
        ("g", "asg-lifecycle"),
    ]


def test_config_scenarios_run_in_the_real_server() -> None:
    """A `scenarios:` config entry is served over HTTP when the manual clock reaches it."""
    cfg = make_config(scenarios=[{"type": "spot-interruption", "at": "+2m"}])
    with serve(cfg) as r:
        assert r.get("/latest/meta-data/spot/instance-action")[0] == 404
        r.clock.advance(120)  # type: ignore[attr-defined]
        status, data = r.get("/latest/meta-data/spot/instance-action")
        assert status == 200
        assert json.loads(data)["action"] == "terminate"


def test_bad_config_scenario_fails_when_the_config_is_loaded() -> None:
    """An invalid scenarios[i] entry is a ConfigError naming its index when the
    configuration is loaded, before anything starts."""
    with pytest.raises(ConfigError, match=r"scenarios\[0\]\.action is 'reboot'"):
        make_config(scenarios=[{"type": "spot-interruption", "action": "reboot"}])


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ({"type": "rebalance-recommendation", "id": "has space"}, "scenario.id"),
        ({"type": "maintenance-event", "event-id": "bad id!"}, "scenario.event-id"),
        ({"type": "maintenance-event", "description": 5}, "scenario.description"),
        ({"type": "asg-lifecycle", "state": "InService", "states": []}, "scenario.state"),
        ({"type": "asg-lifecycle", "states": "InService"}, "scenario.states"),
        ({"type": "asg-lifecycle", "states": [{"when": 1}]}, "scenario.states[0]"),
        ({"type": "spot-interruption", "time": True}, "scenario.time"),
    ],
    ids=["id", "event-id", "description", "state-and-states", "states-text", "states-item", "time"],
)
def test_more_bad_scenarios_name_the_field(spec: dict[str, Any], key: str) -> None:
    """Ids, event ids, descriptions and ASG state lists are validated too."""
    with pytest.raises(ConfigError) as caught:
        started(spec, EPOCH)
    assert caught.value.key == key


def test_other_time_spellings() -> None:
    """Durations accept 2m; times accept datetimes (YAML), naive RFC 3339 (UTC), epoch text."""
    spot = started({"type": "spot-interruption", "notice-seconds": "2m"}, EPOCH)
    assert isinstance(spot, SpotInterruption)
    assert spot.termination == EPOCH + 120
    naive = dt.datetime(2026, 1, 1, 0, 0, 10)
    for value in (naive, "2026-01-01T00:00:10", str(EPOCH + 10), "+10000ms"):
        assert started({"type": "rebalance-recommendation", "at": value}, EPOCH).at == (EPOCH + 10)


def test_duplicate_ids_and_non_mapping_entries_are_refused() -> None:
    """Two scenarios with one id, or a config entry that is not a mapping, are errors."""
    one = started({"type": "rebalance-recommendation", "id": "x"}, EPOCH)
    base = base_snapshot()
    with pytest.raises(ConfigError, match=r"scenario\.id is 'x'"):
        with_scenarios(base, (one, one))
    with pytest.raises(ConfigError, match=r"scenarios\[0\] is 'spot'"):
        make_config(scenarios=["spot"])
    with pytest.raises(ConfigError, match="scenario is 'spot'"):
        parse_scenario("spot")  # type: ignore[arg-type]


BAD_SCENARIO_FILES = {
    "action": "scenarios:\n  - {type: spot-interruption, action: reboot}\n",
    "type": "scenarios:\n  - {type: nap}\n",
    "time": "scenarios:\n  - {type: asg-lifecycle, states: [{at: tomorrow, state: Standby}]}\n",
    "unknown-key": "scenarios:\n  - {type: rebalance-recommendation, colour: red}\n",
    "not-a-mapping": "scenarios: [spot]\n",
}


@pytest.mark.parametrize("text", BAD_SCENARIO_FILES.values(), ids=BAD_SCENARIO_FILES.keys())
def test_config_and_serve_refuse_a_bad_scenario_with_the_same_line(
    tmp_path: Path, text: str
) -> None:
    """`imdsmock config` and `imdsmock serve` refuse the same bad scenario file: exit 2,
    and the same one line naming the scenario's key."""
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    shown = run_command(["config", "-c", str(file)])
    served = run_command(["serve", "-c", str(file), "--port", "0", "--control-port", "0"])
    assert (shown.returncode, served.returncode) == (2, 2)
    assert shown.stderr == served.stderr
    assert len(shown.stderr.splitlines()) == 1
    assert shown.stderr.startswith("imdsmock: error: scenarios[0]")


def test_config_and_serve_accept_the_same_scenario_file(tmp_path: Path) -> None:
    """A scenario file `imdsmock config` accepts (printing the scenario as written) is the
    one `imdsmock serve` serves."""
    file = tmp_path / "good.yaml"
    file.write_text("scenarios:\n  - {type: spot-interruption, at: now, action: Stop}\n")
    shown = run_command(["config", "-c", str(file)])
    assert shown.returncode == 0
    assert "- type: spot-interruption\n  at: now\n  action: Stop\n" in shown.stdout
    with mock_process(["-c", str(file)]) as mp:
        status, data = mp.get("/latest/meta-data/spot/instance-action")
    assert status == 200
    assert json.loads(data)["action"] == "stop"


def test_stop_serving_instance_drops_connections_at_termination_time() -> None:
    """With on-termination stop-serving, requests after the notice's time get no answer."""
    cfg = make_config(
        scenarios=[{"type": "spot-interruption", "at": "+1m", "on-termination": "stop-serving"}]
    )
    with serve(cfg) as r:
        r.clock.advance(179)  # type: ignore[attr-defined]
        assert r.get("/latest/meta-data/instance-id")[0] == 200
        r.clock.advance(1)  # type: ignore[attr-defined]
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            r.get("/latest/meta-data/instance-id")


@pytest.mark.parametrize("value", [1e300, "+99999999999999999999d", -1, float("nan"), [], True])
def test_out_of_range_times_are_config_errors(value: object) -> None:
    """Times IMDS cannot print (past year 9999, negative, NaN, not a time) are refused."""
    with pytest.raises(ConfigError, match=r"scenario\.at is"):
        started({"type": "spot-interruption", "at": value}, EPOCH)


_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**13),
    st.floats(allow_nan=True),
    st.text(max_size=10),
    st.sampled_from(["now", "+5s", "2030-01-01T00:00:00Z", "stop", "active", "InService"]),
)
_VALUE = st.recursive(
    _LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_FIELD_NAMES = sorted({"id", "at", *(f for fields in FIELDS.values() for f in fields)})


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(FIELDS)),
    st.dictionaries(st.sampled_from(_FIELD_NAMES), _VALUE, max_size=6),
)
def test_any_scenario_mapping_parses_or_fails_with_one_line(
    kind: str, data: dict[str, Any]
) -> None:
    """Any mapping gives a scenario that compiles and describes itself, or one ConfigError line."""
    try:
        scenario = started({**data, "type": kind}, EPOCH)
    except ConfigError as exc:
        message = str(exc)
    else:
        scenario.timeline()
        json.dumps(scenario.describe())
        return
    assert "\n" not in message


def test_a_removal_deletes_the_path_and_its_subtree_from_its_segment_on() -> None:
    """A change removing ``meta-data/spot`` drops that leaf and everything under it (not a
    sibling that merely shares the prefix), and only in segments after its time."""
    tree = {
        "meta-data/spot": Leaf.text("x"),
        "meta-data/spot/instance-action": Leaf.text("{}"),
        "meta-data/spotless": Leaf.text("kept"),
        "meta-data/ami-id": Leaf.text("ami-0"),
    }
    timeline = Timeline((Change(at=100.0, remove=("meta-data/spot",)),))
    index, start, end = timeline.segment(150.0)
    assert (index, start, end) == (1, 100.0, float("inf"))
    before = dict(tree)
    assert timeline.apply(before, timeline.segment(50.0)[0]) is False
    assert before == tree
    after = dict(tree)
    assert timeline.apply(after, index) is False
    assert sorted(after) == ["meta-data/ami-id", "meta-data/spotless"]
