"""Fleet mode on the wire: real clients from different loopback source addresses each see
their own instance (identity, role, credentials, tokens, options, scenarios)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from imdsmock.serve.server import FleetProtocol, IMDSProtocol
from mockprocess import free_port
from support import Running, make_config, serve

ID = "/latest/meta-data/instance-id"
DOC = "/latest/dynamic/instance-identity/document"
ROLES = "/latest/meta-data/iam/security-credentials/"
SPOT = "/latest/meta-data/spot/instance-action"

EXAMPLE: dict[str, Any] = {
    "instance": {"instance-id": "i-0d0d0d0d0d0d0d0d0", "iam-role": "default-role"},
    "instances": [
        {
            "name": "web",
            "match": {"source": ["127.0.0.2"]},
            "instance": {"instance-id": "i-0aaaaaaaaaaaaaaa1", "iam-role": "web-role"},
        },
        {
            "name": "worker",
            "match": {"source": ["127.0.0.3/32"]},
            "instance": {"instance-id": "i-0bbbbbbbbbbbbbbb2", "iam-role": "worker-role"},
            "options": {"http-tokens": "required"},
        },
    ],
}


def ask(
    port: int,
    path: str,
    source: str = "127.0.0.1",
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
) -> tuple[int, bytes]:
    """One request from ``source`` on a new connection: its status and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request(method, path, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def token(port: int, source: str) -> str:
    """An IMDSv2 token asked from ``source``."""
    ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "300"}
    status, body = ask(port, "/latest/api/token", source, method="PUT", headers=ttl)
    assert status == 200
    return body.decode()


def v2(port: int, path: str, source: str) -> tuple[int, bytes]:
    """``path`` asked from ``source`` with a token of its own."""
    return ask(port, path, source, headers={"X-aws-ec2-metadata-token": token(port, source)})


@pytest.fixture
def fleet() -> Iterator[Running]:
    """The example fleet: web at 127.0.0.2, worker at 127.0.0.3 (tokens required)."""
    with serve(make_config(**EXAMPLE)) as running:
        yield running


def test_each_client_sees_its_own_instance(fleet: Running) -> None:
    """127.0.0.2 is web, 127.0.0.3 worker, any other client the top-level instance: each
    with its own instance-id, identity document, role and credentials."""
    seen = {}
    for source, instance_id, role in [
        ("127.0.0.1", "i-0d0d0d0d0d0d0d0d0", "default-role"),
        ("127.0.0.2", "i-0aaaaaaaaaaaaaaa1", "web-role"),
        ("127.0.0.3", "i-0bbbbbbbbbbbbbbb2", "worker-role"),
        ("127.0.0.4", "i-0d0d0d0d0d0d0d0d0", "default-role"),
    ]:
        assert v2(fleet.port, ID, source) == (200, instance_id.encode())
        status, doc = v2(fleet.port, DOC, source)
        assert status == 200
        assert json.loads(doc)["instanceId"] == instance_id
        assert v2(fleet.port, ROLES, source) == (200, role.encode())
        status, creds = v2(fleet.port, ROLES + role, source)
        assert status == 200
        seen[source] = json.loads(creds)["AccessKeyId"]
    assert seen["127.0.0.1"] == seen["127.0.0.4"]
    assert len({seen["127.0.0.1"], seen["127.0.0.2"], seen["127.0.0.3"]}) == 3


def test_options_are_per_instance(fleet: Running) -> None:
    """worker requires tokens (401 without one); web and the default do not."""
    assert ask(fleet.port, ID, "127.0.0.3")[0] == 401
    assert ask(fleet.port, ID, "127.0.0.2") == (200, b"i-0aaaaaaaaaaaaaaa1")
    assert ask(fleet.port, ID, "127.0.0.1") == (200, b"i-0d0d0d0d0d0d0d0d0")


def test_tokens_do_not_cross_instances(fleet: Running) -> None:
    """A token issued to web's client is refused from worker's and the default's clients,
    and accepted from web's."""
    web = {"X-aws-ec2-metadata-token": token(fleet.port, "127.0.0.2")}
    assert ask(fleet.port, ID, "127.0.0.3", headers=web)[0] == 401
    assert ask(fleet.port, ID, "127.0.0.1", headers=web)[0] == 401
    assert ask(fleet.port, ID, "127.0.0.2", headers=web) == (200, b"i-0aaaaaaaaaaaaaaa1")


def test_the_request_log_and_imdsv1_report_carry_the_instance(fleet: Running) -> None:
    """Every logged request names the instance that answered; the IMDSv1 report groups by it."""
    ask(fleet.port, ID, "127.0.0.2")
    ask(fleet.port, ID, "127.0.0.3")
    ask(fleet.port, ID, "127.0.0.1")
    logged = [(r["client"], r["instance"]) for r in fleet.imds.requests(path=ID)]
    assert logged == [("127.0.0.2", "web"), ("127.0.0.3", "worker"), ("127.0.0.1", "default")]
    report = {(g["client"], g["instance"]) for g in fleet.imds.imdsv1_report()}
    assert report == set(logged)


def test_a_member_scenario_is_invisible_to_other_instances() -> None:
    """A spot interruption configured for web is served to web's client only."""
    members = [
        {**EXAMPLE["instances"][0], "scenarios": [{"type": "spot-interruption"}]},
        EXAMPLE["instances"][1],
    ]
    with serve(make_config(**{**EXAMPLE, "instances": members})) as running:
        status, body = ask(running.port, SPOT, "127.0.0.2")
        assert status == 200
        assert json.loads(body)["action"] == "terminate"
        assert v2(running.port, SPOT, "127.0.0.3")[0] == 404
        assert ask(running.port, SPOT, "127.0.0.1")[0] == 404


def test_mock_ip_count_counts_clients_across_the_fleet() -> None:
    """`mock-ip-count` keeps its meaning: the first N clients of the whole mock see the
    notices, whichever instance they are."""
    members = [
        {**EXAMPLE["instances"][0], "scenarios": [{"type": "spot-interruption"}]},
        {"name": "api", "match": {"source": ["127.0.0.5"]}},
    ]
    config = make_config(
        **{**EXAMPLE, "instances": members},
        server={"mock-ip-count": 1},
        scenarios=[{"type": "spot-interruption"}],
    )
    with serve(config) as running:
        assert ask(running.port, SPOT, "127.0.0.2")[0] == 200
        assert ask(running.port, SPOT, "127.0.0.1")[0] == 404
        assert ask(running.port, SPOT, "127.0.0.2")[0] == 200


def test_unknown_clients_are_refused_with_reject() -> None:
    """With `fleet.unknown: reject` a client no rule matches gets 404 for everything (the
    token too), and is logged; members are served as usual."""
    with serve(make_config(**EXAMPLE, fleet={"unknown": "reject"})) as running:
        ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "300"}
        assert (
            ask(running.port, "/latest/api/token", "127.0.0.9", method="PUT", headers=ttl)[0] == 404
        )
        assert ask(running.port, ID, "127.0.0.9")[0] == 404
        assert ask(running.port, ID, "127.0.0.9", method="HEAD") == (404, b"")
        assert ask(running.port, ID, "127.0.0.2") == (200, b"i-0aaaaaaaaaaaaaaa1")
        refused = running.imds.requests(client="127.0.0.9")
        assert [r["status"] for r in refused] == [404, 404, 404]


def test_a_member_listener_is_bound_at_start_and_recognises_its_clients() -> None:
    """A `match.listener` port no listener has is bound at start; every client that
    connects there is that member, whatever its address."""
    port = free_port()
    members = [{"name": "web", "match": {"listener": [str(port)]}, "instance": {"iam-role": "w"}}]
    with serve(make_config(instances=members)) as running:
        assert ask(port, ROLES, "127.0.0.1") == (200, b"w")
        assert ask(running.port, ROLES, "127.0.0.1") == (200, b"baskinc-role")
        assert any(a[1] == port for a in running.app.server.addresses())


def test_host_rules_recognise_each_request_of_a_connection() -> None:
    """With host rules, each request on a kept-alive connection is answered as the
    instance its Host names."""
    members = [
        {"name": "web", "match": {"host": ["web.imds.internal"]}, "instance": {"iam-role": "w"}},
        {"name": "api", "match": {"host": ["api.imds.internal"]}, "instance": {"iam-role": "a"}},
    ]
    with serve(make_config(instances=members, server={"keep-alive": True})) as running:
        conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=5)
        try:
            answers = []
            for host in [
                "web.imds.internal",
                "API.imds.internal:80",
                "127.0.0.1",
                "web.imds.internal",
            ]:
                conn.request("GET", ROLES, headers={"Host": host})
                answers.append(conn.getresponse().read())
        finally:
            conn.close()
        assert answers == [b"w", b"a", b"baskinc-role", b"w"]


def test_a_mock_without_instances_serves_without_the_fleet() -> None:
    """A single instance has no fleet: connections use the plain protocol, and its log
    entries name no instance."""
    with serve() as running:
        assert running.app.fleet is None
        assert type(running.app.server.protocol()) is IMDSProtocol
        ask(running.port, ID)
        assert "instance" not in running.imds.requests()[0]
    with serve(make_config(**EXAMPLE)) as running:
        assert type(running.app.server.protocol()) is FleetProtocol
