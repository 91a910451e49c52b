"""Scenarios aimed at one instance of a fleet, several, or all: the control API's instance
selector (``?instance=web,worker``, ``/v1/instances/*/scenarios``) and `imdsmock ctl
--instance web,worker` / `--all-instances`, with real clients from loopback addresses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imdsmock.api import MockIMDS
from mockprocess import mock_process, run_command
from support import make_config
from test_fleet_config import FLEET_YAML
from test_fleet_control import control, port_of
from test_fleet_serve import EXAMPLE, SPOT, ask, v2

# The example fleet's clients: the default instance's, web's, worker's (tokens required).
CLIENTS = {"default": "127.0.0.1", "web": "127.0.0.2", "worker": "127.0.0.3"}


@pytest.fixture
def fleet() -> Iterator[MockIMDS]:
    """The example fleet with its control listener."""
    config = make_config(**EXAMPLE, server={"control": True, "control-port": 0})
    with MockIMDS(config) as imds:
        yield imds


def notices(imds: MockIMDS) -> dict[str, int]:
    """The status of the spot notice path for each instance's client."""
    return {name: v2(port_of(imds), SPOT, source)[0] for name, source in CLIENTS.items()}


@pytest.mark.parametrize(
    ("route", "reached"),
    [
        ("/v1/scenarios?instance=web,worker", ["web", "worker"]),
        ("/v1/scenarios?instance=worker,web,worker", ["worker", "web"]),
        ("/v1/instances/web,worker/scenarios", ["web", "worker"]),
        ("/v1/scenarios?instance=*", ["default", "web", "worker"]),
        ("/v1/instances/*/scenarios", ["default", "web", "worker"]),
        ("/v1/instances/%2A/scenarios", ["default", "web", "worker"]),
        ("/v1/scenarios?instance=web", ["web"]),
    ],
    ids=["query", "query-repeated", "path", "every-query", "every-path", "every-quoted", "one"],
)
def test_a_scenario_reaches_exactly_the_instances_named(
    fleet: MockIMDS, route: str, reached: list[str]
) -> None:
    """One POST starts one scenario (one id, one time) on each instance the selector names,
    each once; every other instance's clients keep getting 404."""
    status, body = control(fleet, "POST", route, {"type": "spot-interruption"})
    assert status == 201, body
    if len(reached) == 1:  # the single-instance route answers as it always did
        assert body["type"] == "spot-interruption"
        assert "instance" not in body
    else:
        assert [s["instance"] for s in body["scenarios"]] == reached
        assert len({(s["id"], s["time"]) for s in body["scenarios"]}) == 1
    expected = {name: 200 if name in reached else 404 for name in CLIENTS}
    assert notices(fleet) == expected


def test_scenarios_of_several_instances_are_listed_and_cancelled_together(
    fleet: MockIMDS,
) -> None:
    """GET lists each named instance's scenarios with its name; DELETE cancels a scenario on
    each named instance that runs it (404 when none does); the default instance's own list
    is unchanged throughout."""
    _, started = control(
        fleet, "POST", "/v1/scenarios?instance=web,worker", {"type": "spot-interruption"}
    )
    ident = started["scenarios"][0]["id"]
    status, own = control(fleet, "POST", "/v1/instances/worker/scenarios", {"type": "spot-interruption", "action": "stop"})  # fmt: skip
    assert status == 201
    status, listed = control(fleet, "GET", "/v1/scenarios?instance=*")
    assert status == 200
    assert [(s["instance"], s["id"]) for s in listed["scenarios"]] == [
        ("web", ident),
        ("worker", ident),
        ("worker", own["id"]),
    ]
    assert control(fleet, "GET", "/v1/scenarios")[1] == {"scenarios": []}

    status, cancelled = control(fleet, "DELETE", f"/v1/scenarios/{ident}?instance=*")
    assert (status, cancelled) == (200, {"cancelled": ident, "instances": ["web", "worker"]})
    assert notices(fleet) == {"default": 404, "web": 404, "worker": 200}  # its own one runs
    status, error = control(fleet, "DELETE", f"/v1/scenarios/{ident}?instance=web,worker")
    assert status == 404
    assert ident in error["error"]


@pytest.mark.parametrize(
    ("method", "route", "status", "message"),
    [
        (
            "POST",
            "/v1/scenarios?instance=web,nope",
            404,
            "no instance named 'nope'; instances: default, web, worker",
        ),
        (
            "POST",
            "/v1/scenarios?instance=web,",
            400,
            "instance is 'web,'; expected an instance name, names separated by commas "
            "(web,api), or * for every instance",
        ),
        (
            "PATCH",
            "/v1/options?instance=web,worker",
            400,
            "instance 'web,worker' names several instances; only the scenario routes act on "
            "several (GET and POST /v1/scenarios, DELETE /v1/scenarios/{id})",
        ),
        (
            "POST",
            "/v1/instances/*/credentials/rotate",
            400,
            "instance '*' names several instances; only the scenario routes act on several "
            "(GET and POST /v1/scenarios, DELETE /v1/scenarios/{id})",
        ),
    ],
    ids=["unknown-name", "empty-name", "options", "credentials"],
)
def test_a_bad_selection_is_one_line_and_changes_nothing(
    fleet: MockIMDS, method: str, route: str, status: int, message: str
) -> None:
    """An unknown or empty name in the list, or several instances on a route that acts on
    one, is refused with one line before anything is changed."""
    body = {"type": "spot-interruption"} if "scenarios" in route else {"http-tokens": "required"}
    answered, error = control(fleet, method, route, body)
    assert (answered, error["error"]) == (status, message)
    assert notices(fleet) == {"default": 404, "web": 404, "worker": 404}
    assert ask(port_of(fleet), "/latest/meta-data/instance-id", "127.0.0.2")[0] == 200


def test_a_rejected_scenario_starts_on_no_instance(fleet: MockIMDS) -> None:
    """A scenario the parser refuses is a 400 naming the field, and no instance runs it."""
    status, error = control(
        fleet, "POST", "/v1/scenarios?instance=*", {"type": "spot-interruption", "action": "x"}
    )
    assert status == 400
    assert error["field"] == "scenario.action"
    assert control(fleet, "GET", "/v1/scenarios?instance=*")[1] == {"scenarios": []}


def test_ctl_aims_a_scenario_at_several_instances_or_all(tmp_path: Path) -> None:
    """`ctl --instance web,worker scenario start` reaches web and worker only and prints one
    row per instance; `--all-instances` lists and cancels on every instance; a route that
    acts on one instance refuses several with the API's line (exit 2)."""
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET_YAML)
    with mock_process(["-c", str(path)]) as mp:
        ctl = ["ctl", "--url", f"http://127.0.0.1:{mp.control_port}"]
        started = run_command(
            [*ctl, "--instance", "web,worker", "scenario", "start", "spot-interruption"]
        )
        assert started.returncode == 0, started.stderr
        rows = [line.split()[:3] for line in started.stdout.splitlines()]
        assert [row[0] for row in rows] == ["INSTANCE", "web", "worker"]
        assert rows[1][2] == rows[2][2] == "spot-interruption"
        ident = rows[1][1]
        assert ask(mp.port, SPOT, "127.0.0.2")[0] == 200
        assert v2(mp.port, SPOT, "127.0.0.3")[0] == 200
        assert ask(mp.port, SPOT, "127.0.0.1")[0] == 404

        listed = run_command([*ctl, "--all-instances", "scenario", "list"])
        assert listed.returncode == 0, listed.stderr
        assert [line.split()[:2] for line in listed.stdout.splitlines()[1:]] == [
            ["web", ident],
            ["worker", ident],
        ]
        cancelled = run_command([*ctl, "--instance", "*", "scenario", "cancel", ident])
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout.splitlines() == [f"cancelled: {ident}", "instances: web, worker"]
        assert ask(mp.port, SPOT, "127.0.0.2")[0] == 404

        refused = run_command([*ctl, "--all-instances", "options", "--http-tokens", "required"])
        assert refused.returncode == 2
        assert refused.stderr == (
            "imdsmock ctl: error: instance '*' names several instances; only the scenario "
            "routes act on several (GET and POST /v1/scenarios, DELETE /v1/scenarios/{id})\n"
        )
        both = run_command([*ctl, "--instance", "web", "--all-instances", "scenario", "list"])
        assert both.returncode == 2
        assert both.stderr.splitlines()[-1] == (
            "imdsmock ctl: error: argument --all-instances: not allowed with argument --instance"
        )
