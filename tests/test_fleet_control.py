"""Fleet control: /v1/instances, every route per instance (/v1/instances/NAME/... and
?instance=NAME), `imdsmock ctl --instance` and `ctl instances`, and the Python API's
MockIMDS(instances=...) and imds.instance(NAME)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imdsmock.api import MockIMDS
from imdsmock.errors import ConfigError, ImdsMockError
from mockprocess import free_port, mock_process, run_command
from support import make_config
from test_fleet_config import FLEET_YAML
from test_fleet_serve import EXAMPLE, ID, ROLES, SPOT, ask, v2


def control(imds: MockIMDS, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    """One control API call: its status and JSON answer."""
    assert imds.control_url is not None
    host, _, port = imds.control_url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.fixture
def fleet() -> Iterator[MockIMDS]:
    """The example fleet with its control listener."""
    config = make_config(**EXAMPLE, server={"control": True, "control-port": 0})
    with MockIMDS(config) as imds:
        yield imds


def port_of(imds: MockIMDS) -> int:
    return int(imds.url.rpartition(":")[2])


def test_get_instances_lists_every_instance(fleet: MockIMDS) -> None:
    """GET /v1/instances is {"instances": [...]} with the default instance first, then each
    member with its name, instance-id, role and match rules."""
    status, data = control(fleet, "GET", "/v1/instances")
    assert status == 200
    listed = [(i["name"], i["instance-id"], i["iam-role"], i["match"]) for i in data["instances"]]
    assert listed == [
        ("default", "i-0d0d0d0d0d0d0d0d0", "default-role", {}),
        ("web", "i-0aaaaaaaaaaaaaaa1", "web-role", {"source": ["127.0.0.2"]}),
        ("worker", "i-0bbbbbbbbbbbbbbb2", "worker-role", {"source": ["127.0.0.3/32"]}),
    ]


def test_instances_say_their_scenarios_and_request_counts(fleet: MockIMDS) -> None:
    """Each listed instance has the scenarios it runs (as its /v1/scenarios lists them) and
    how many requests of it the log holds; GET /v1/instances/NAME has the scenarios too."""
    scenario = fleet.instance("worker").spot_interruption()
    v2(port_of(fleet), "/latest/meta-data/instance-id", "127.0.0.2")
    ask(port_of(fleet), "/latest/meta-data/instance-id", "127.0.0.1")
    listed = {i["name"]: i for i in control(fleet, "GET", "/v1/instances")[1]["instances"]}
    assert {n: i["requests"] for n, i in listed.items()} == {"default": 1, "web": 2, "worker": 0}
    assert [s["id"] for s in listed["worker"]["running"]] == [scenario]
    assert listed["worker"]["running"] == fleet.instance("worker").scenarios
    assert listed["web"]["running"] == listed["default"]["running"] == []
    one = control(fleet, "GET", "/v1/instances/worker")[1]
    assert [s["id"] for s in one["running"]] == [scenario]
    assert one["scenarios"] == []  # the entry's own (configured) scenarios


def test_requests_before_a_mock_became_a_fleet_count_as_the_default_instances() -> None:
    """A mock started with one instance logs its requests without a name; once an instance
    is added at run time, the list counts them as the default instance's."""
    with MockIMDS(server={"control": True, "control-port": 0}) as single:
        ask(port_of(single), "/latest/meta-data/instance-id", "127.0.0.1")
        status, _ = control(single, "POST", "/v1/instances", {"name": "web"})
        assert status == 201
        listed = control(single, "GET", "/v1/instances")[1]["instances"]
        assert {i["name"]: i["requests"] for i in listed} == {"default": 1, "web": 0}


def test_state_names_the_instances_of_a_fleet_only(fleet: MockIMDS) -> None:
    """/v1/state names the fleet's instances (whichever instance is asked); a single
    mock's state has no such key, and asking it does not make the mock a fleet."""
    assert control(fleet, "GET", "/v1/state")[1]["instances"] == ["default", "web", "worker"]
    scoped = control(fleet, "GET", "/v1/instances/web/state")[1]
    assert scoped["instances"] == ["default", "web", "worker"]
    with MockIMDS(server={"control": True, "control-port": 0}) as single:
        assert "instances" not in control(single, "GET", "/v1/state")[1]
        assert single.app.fleet is None


@pytest.mark.parametrize("form", ["path", "query"])
def test_every_route_answers_for_one_instance(fleet: MockIMDS, form: str) -> None:
    """A route under /v1/instances/NAME/ or with ?instance=NAME acts on that instance only;
    the same route without either acts on the default instance."""

    def route(path: str) -> str:
        return f"/v1/instances/web{path[3:]}" if form == "path" else f"{path}?instance=web"

    status, _ = control(fleet, "PUT", route("/v1/metadata/meta-data/team"), {"value": "web"})
    assert status == 200
    status, _ = control(fleet, "PATCH", route("/v1/options"), {"http-tokens": "required"})
    assert status == 200
    port = port_of(fleet)
    assert ask(port, "/latest/meta-data/team", "127.0.0.2")[0] == 401
    assert v2(port, "/latest/meta-data/team", "127.0.0.2") == (200, b"web")
    assert ask(port, "/latest/meta-data/team", "127.0.0.1")[0] == 404
    status, state = control(fleet, "GET", route("/v1/state"))
    assert state["config"]["instance"]["instance-id"] == "i-0aaaaaaaaaaaaaaa1"
    status, state = control(fleet, "GET", "/v1/state")
    assert state["config"]["instance"]["instance-id"] == "i-0d0d0d0d0d0d0d0d0"
    assert control(fleet, "GET", "/v1/options")[1]["http-tokens"] == "optional"


def test_an_unknown_instance_is_404_naming_the_instances(fleet: MockIMDS) -> None:
    """A route for an instance that does not exist answers 404 with one line naming those
    that do."""
    for path in ["/v1/instances/nope/state", "/v1/state?instance=nope", "/v1/instances/nope"]:
        status, data = control(fleet, "GET", path)
        assert status == 404
        assert data["error"] == "no instance named 'nope'; instances: default, web, worker"


def test_a_scenario_started_for_one_instance_is_invisible_to_others(fleet: MockIMDS) -> None:
    """POST /v1/instances/web/scenarios gives web's client the notice; the others get 404."""
    status, _ = control(fleet, "POST", "/v1/instances/web/scenarios", {"type": "spot-interruption"})
    assert status == 201
    port = port_of(fleet)
    assert ask(port, SPOT, "127.0.0.2")[0] == 200
    assert v2(port, SPOT, "127.0.0.3")[0] == 404
    assert ask(port, SPOT, "127.0.0.1")[0] == 404
    assert control(fleet, "GET", "/v1/scenarios")[1]["scenarios"] == []


def test_credentials_rotate_per_instance(fleet: MockIMDS) -> None:
    """Rotating web's credentials changes web's keys only."""
    port = port_of(fleet)

    def keys() -> tuple[str, str]:
        web = json.loads(ask(port, ROLES + "web-role", "127.0.0.2")[1])["AccessKeyId"]
        top = json.loads(ask(port, ROLES + "default-role", "127.0.0.1")[1])["AccessKeyId"]
        return web, top

    before = keys()
    fleet.advance(10)
    assert control(fleet, "POST", "/v1/instances/web/credentials/rotate")[0] == 200
    after = keys()
    assert after[0] != before[0]
    assert after[1] == before[1]


def test_instances_are_added_changed_and_removed_at_run_time(fleet: MockIMDS) -> None:
    """POST adds an instance its clients get from their next connection, PATCH changes its
    entry, DELETE removes it (its clients are the default instance's again)."""
    port = port_of(fleet)
    entry = {"name": "api", "match": {"source": ["127.0.0.4"]}, "instance": {"iam-role": "api"}}
    status, added = control(fleet, "POST", "/v1/instances", entry)
    assert status == 201
    assert added["match"] == {"source": ["127.0.0.4"]}
    assert ask(port, ROLES, "127.0.0.4") == (200, b"api")
    change = {"match": {"source": ["127.0.0.5"]}, "options": {"http-tokens": "required"}}
    status, changed = control(fleet, "PATCH", "/v1/instances/api", change)
    assert status == 200
    assert changed["options"] == {"http-tokens": "required"}
    assert ask(port, ROLES, "127.0.0.4") == (200, b"default-role")
    assert ask(port, ROLES, "127.0.0.5")[0] == 401
    assert control(fleet, "DELETE", "/v1/instances/api") == (200, {"removed": "api"})
    assert ask(port, ROLES, "127.0.0.5") == (200, b"default-role")


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        (
            "POST",
            "/v1/instances",
            {"name": "web"},
            "instances[2].name is 'web'; expected a name no other instance has",
        ),
        (
            "POST",
            "/v1/instances",
            {"name": "api", "match": {"sources": ["10.0.0.1"]}},
            "instances.api.match.sources is ['10.0.0.1']; expected a known key (one of: "
            "container, host, listener, pod, source); did you mean 'source'?",
        ),
        (
            "POST",
            "/v1/instances",
            {"name": "api", "match": {"source": ["10.0.0.300"]}},
            "instances.api.match.source[0] is '10.0.0.300'; expected an IPv4 or IPv6 address",
        ),
        (
            "POST",
            "/v1/instances",
            {"name": "api", "match": {"source": ["127.0.0.2"]}},
            "instances.api.match.source[0] is '127.0.0.2'; expected an entry no other instance "
            "has (instances.web.match.source[0] has it already)",
        ),
        (
            "POST",
            "/v1/instances",
            {"name": "api", "match": {"listener": ["1"]}},
            "instances.api.match.listener[0] is '1'; expected a listener the mock has (bound: ",
        ),
        (
            "PATCH",
            "/v1/instances/web",
            {"name": "www"},
            "name is 'www'; expected 'web' (an instance keeps its name)",
        ),
        (
            "PATCH",
            "/v1/instances/web",
            {"optoins": {}},
            "optoins is {}; expected one of: name, match, instance, options, paths, "
            "scenarios; did you mean 'options'?",
        ),
        (
            "PATCH",
            "/v1/instances/default",
            {"options": {}},
            "name is 'default'; expected a member's name (the default instance is the "
            "top-level configuration",
        ),
        (
            "DELETE",
            "/v1/instances/default",
            None,
            "name is 'default'; expected a member's name (the default instance stays)",
        ),
    ],
    ids=[
        "duplicate",
        "match-key",
        "address",
        "claimed",
        "listener",
        "rename",
        "entry-key",
        "patch-default",
        "delete-default",
    ],
)
def test_a_rejected_instance_change_is_400_and_changes_nothing(
    fleet: MockIMDS, method: str, path: str, body: Any, message: str
) -> None:
    """A bad entry is a JSON 400 with one line (the loader's own), and the fleet is as before."""
    before = control(fleet, "GET", "/v1/instances")[1]
    status, data = control(fleet, method, path, body)
    assert status == 400
    assert data["error"].startswith(message), data["error"]
    assert "\n" not in data["error"]
    assert control(fleet, "GET", "/v1/instances")[1] == before


def test_clients_says_which_clients_an_instance_served_and_why(fleet: MockIMDS) -> None:
    """GET /v1/instances/NAME/clients lists each client with the rule that matched it."""
    port = port_of(fleet)
    ask(port, ID, "127.0.0.2")
    ask(port, ID, "127.0.0.2")
    ask(port, ID, "127.0.0.7")
    status, data = control(fleet, "GET", "/v1/instances/web/clients")
    assert status == 200
    assert [(c["client"], c["why"], c["connections"]) for c in data["clients"]] == [
        ("127.0.0.2", "source 127.0.0.2", 2)
    ]
    rest = control(fleet, "GET", "/v1/instances/default/clients")[1]["clients"]
    assert [(c["client"], c["why"]) for c in rest] == [("127.0.0.7", "no rule matched")]


def test_an_instance_request_log_pages_under_its_own_url(fleet: MockIMDS) -> None:
    """An instance's request log holds its requests only, and its next page's URL stays
    under the instance."""
    port = port_of(fleet)
    for _ in range(3):
        ask(port, ID, "127.0.0.2")
    ask(port, ID, "127.0.0.1")
    status, page = control(fleet, "GET", "/v1/instances/web/requests?limit=2")
    assert status == 200
    assert [r["instance"] for r in page["requests"]] == ["web", "web"]
    assert page["next"].startswith("/v1/instances/web/requests?")
    rest = control(fleet, "GET", page["next"])[1]
    assert [r["client"] for r in rest["requests"]] == ["127.0.0.2"]
    report = control(fleet, "GET", "/v1/reports/imdsv1?instance=default")[1]["clients"]
    assert [(g["client"], g["instance"]) for g in report] == [("127.0.0.1", "default")]


def test_the_example_works_through_the_real_commands(tmp_path: Path) -> None:
    """`imdsmock -c fleet.yaml` serves the example: `ctl --instance web scenario start
    spot-interruption` shows the notice to 127.0.0.2 only, and `ctl instances` and
    GET /v1/instances list both members."""
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET_YAML)
    with mock_process(["-c", str(path)]) as mp:
        url = ["--url", f"http://127.0.0.1:{mp.control_port}"]
        started = run_command(
            ["ctl", *url, "--instance", "web", "scenario", "start", "spot-interruption"]
        )
        assert started.returncode == 0, started.stderr
        assert ask(mp.port, SPOT, "127.0.0.2")[0] == 200
        assert v2(mp.port, SPOT, "127.0.0.3")[0] == 404
        assert ask(mp.port, SPOT, "127.0.0.1")[0] == 404
        assert ask(mp.port, ID, "127.0.0.2") == (200, b"i-0aaaaaaaaaaaaaaa1")
        assert ask(mp.port, ID, "127.0.0.3")[0] == 401
        listed = run_command(["ctl", *url, "instances"])
        assert listed.returncode == 0, listed.stderr
        rows = [line.split()[:3] for line in listed.stdout.splitlines()]
        assert rows == [
            ["NAME", "INSTANCE-ID", "IAM-ROLE"],
            ["default", "i-0d0d0d0d0d0d0d0d0", "default-role"],
            ["web", "i-0aaaaaaaaaaaaaaa1", "web-role"],
            ["worker", "i-0bbbbbbbbbbbbbbb2", "worker-role"],
        ]
        status, body = mp.control("GET", "/v1/instances")
        assert status == 200
        assert [i["name"] for i in json.loads(body)["instances"]] == ["default", "web", "worker"]
        unknown = run_command(["ctl", *url, "--instance", "nope", "state"])
        assert unknown.returncode == 2
        assert unknown.stderr == (
            "imdsmock ctl: error: no instance named 'nope'; instances: default, web, worker\n"
        )


def test_ctl_adds_changes_and_removes_instances(tmp_path: Path) -> None:
    """`ctl instances add/set/show/clients/remove` drive the fleet's routes."""
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET_YAML)
    with mock_process(["-c", str(path)]) as mp:
        url = ["--url", f"http://127.0.0.1:{mp.control_port}"]
        keys = ["--set", "instance.iam-role=api-role", "--set", "options.hop-limit=2"]
        added = run_command(
            ["ctl", *url, "instances", "add", "api", "--source", "127.0.0.4", *keys]
        )
        assert added.returncode == 0, added.stderr
        assert ask(mp.port, ROLES, "127.0.0.4") == (200, b"api-role")
        changed = run_command(["ctl", *url, "instances", "set", "api", "--source", "127.0.0.5"])
        assert changed.returncode == 0, changed.stderr
        assert ask(mp.port, ROLES, "127.0.0.5") == (200, b"api-role")
        shown = run_command(["ctl", *url, "--json", "instances", "show", "api"])
        assert json.loads(shown.stdout)["options"] == {"hop-limit": 2}
        clients = run_command(["ctl", *url, "instances", "clients", "api"])
        assert clients.stdout.splitlines()[1].split()[:3] == ["127.0.0.5", "source", "127.0.0.5"]
        bad = run_command(["ctl", *url, "instances", "add", "x", "--set", "iam-role=x"])
        assert bad.returncode == 2
        assert "is not SECTION.KEY=VALUE" in bad.stderr
        removed = run_command(["ctl", *url, "instances", "remove", "api"])
        assert removed.returncode == 0, removed.stderr
        assert ask(mp.port, ROLES, "127.0.0.5") == (200, b"default-role")


def test_the_python_api_serves_a_fleet_and_acts_per_instance() -> None:
    """MockIMDS(instances=[...]) serves each member; imds.instance(NAME) has the mock's
    methods acting on that instance, and makes requests as its client."""
    with MockIMDS(instance=EXAMPLE["instance"], instances=EXAMPLE["instances"]) as imds:
        web = imds.instance("web")
        assert web.source == "127.0.0.2"
        assert web.get(ID).text == "i-0aaaaaaaaaaaaaaa1"
        assert imds.get(ID, source="127.0.0.3").text == "i-0bbbbbbbbbbbbbbb2"
        assert imds.get(ID, source="127.0.0.3", token=False).status == 401
        assert imds.get(ID).text == "i-0d0d0d0d0d0d0d0d0"
        web.set_tag("Team", "web")
        web.spot_interruption()
        assert web.get("/latest/meta-data/tags/instance/Team").text == "web"
        assert web.get(SPOT).status == 200
        assert imds.get(SPOT).status == 404
        assert imds.instance("worker").get(SPOT).status == 404
        assert web.config.instance.iam_role == "web-role"
        assert [r["path"] for r in web.requests(path="/latest/meta-data")] == [
            ID,
            "/latest/meta-data/tags/instance/Team",
            SPOT,
        ]
        session = web.session()
        assert session.get(ROLES).text == "web-role"
        assert session.get(ROLES + "web-role").json()["Code"] == "Success"
        web.reset()
        assert web.get(SPOT).status == 404
        assert web.get("/latest/meta-data/tags/instance/Team").status == 404
        with pytest.raises(ImdsMockError, match="no instance named 'nope'"):
            imds.instance("nope")


def test_reset_restores_the_fleet_as_started() -> None:
    """MockIMDS.reset() forgets members added at run time and changes to the others; with
    overrides it serves the fleet they give."""
    with MockIMDS(instance=EXAMPLE["instance"], instances=EXAMPLE["instances"]) as imds:
        key = imds.instance("web").get(ROLES + "web-role").json()["AccessKeyId"]
        imds.add_instance(name="api", match={"source": ["127.0.0.4"]})
        imds.instance("web").set_options(http_tokens="required")
        assert [i["name"] for i in imds.instances] == ["default", "web", "worker", "api"]
        imds.reset()
        assert [i["name"] for i in imds.instances] == ["default", "web", "worker"]
        assert imds.instance("web").get(ID, token=False).status == 200
        assert imds.instance("web").get(ROLES + "web-role").json()["AccessKeyId"] == key
        imds.reset(instances=[{"name": "solo", "match": {"source": ["127.0.0.9"]}}])
        assert [i["name"] for i in imds.instances] == ["default", "solo"]
        assert imds.get(ID, source="127.0.0.2").text == "i-0d0d0d0d0d0d0d0d0"
        with pytest.raises(ConfigError, match="listeners cannot change"):
            imds.reset(instances=[{"name": "l", "match": {"listener": [str(free_port())]}}])


def test_an_instance_recognised_by_listener_is_reached_at_its_url() -> None:
    """A member recognised by its listener has that listener as its URL, so SDKs pointed
    at it (its environ) are that instance."""
    port = free_port()
    members = [{"name": "web", "match": {"listener": [str(port)]}, "instance": {"iam-role": "w"}}]
    with MockIMDS(instances=members) as imds:
        web = imds.instance("web")
        assert web.url == f"http://127.0.0.1:{port}"
        assert web.environ()["AWS_EC2_METADATA_SERVICE_ENDPOINT"].startswith(web.url)
        assert web.get(ROLES).text == "w"
        assert imds.get(ROLES).text == "baskinc-role"
