"""`ec2-metadata-mock`'s `mock-ip-count` keeps its meaning, with a fleet and without: the
first N distinct clients to ask see the notices its mode sets, whichever instance each one
is. Through the real command, with real clients from loopback source addresses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mockprocess import EC2_METADATA_MOCK, mock_process
from test_fleet_serve import SPOT, ask

# web and api are members; 127.0.0.1 and 127.0.0.4 are the default instance's clients.
FLEET = """\
instances:
  - name: web
    match: {source: [127.0.0.2]}
    instance: {iam-role: web-role}
  - name: api
    match: {source: [127.0.0.3]}
"""
# In the order they first ask: the first two are admitted with -x 2.
ORDER = ["127.0.0.2", "127.0.0.1", "127.0.0.3", "127.0.0.4"]


def statuses(port: int, path: str = SPOT) -> list[int]:
    """What each client of ORDER gets, asking in that order, then the first one again."""
    return [ask(port, path, source)[0] for source in [*ORDER, ORDER[0]]]


@pytest.mark.parametrize("fleet", [False, True], ids=["one-instance", "fleet"])
def test_the_first_n_clients_see_the_notice(tmp_path: Path, fleet: bool) -> None:
    """`ec2-metadata-mock -x 2 spot`: the first two clients see the notice (and keep seeing
    it), the later ones get 404, whether or not IMDSMOCK_CONFIG names a fleet."""
    env = {"HOME": str(tmp_path)}
    if fleet:
        (tmp_path / "fleet.yaml").write_text(FLEET)
        env["IMDSMOCK_CONFIG"] = str(tmp_path / "fleet.yaml")
    with mock_process(["-x", "2", "spot"], env, command=EC2_METADATA_MOCK) as mock:
        assert statuses(mock.port) == [200, 200, 404, 404, 200]
        if fleet:  # each client is its own instance all the same
            roles = "/latest/meta-data/iam/security-credentials/"
            assert ask(mock.port, roles, "127.0.0.2") == (200, b"web-role")
            assert ask(mock.port, roles, "127.0.0.1")[1] != b"web-role"


def test_without_a_count_every_instance_sees_the_notice(tmp_path: Path) -> None:
    """`-x -1` admits everyone: every client of the fleet sees the spot notice."""
    (tmp_path / "fleet.yaml").write_text(FLEET)
    env = {"HOME": str(tmp_path), "IMDSMOCK_CONFIG": str(tmp_path / "fleet.yaml")}
    with mock_process(["-x", "-1", "spot"], env, command=EC2_METADATA_MOCK) as mock:
        assert statuses(mock.port) == [200] * 5


def test_a_member_with_scenarios_of_its_own_keeps_them(tmp_path: Path) -> None:
    """A member that configures its own scenarios runs those instead of the mode's; the
    count still admits clients across the whole fleet."""
    own = FLEET + "    scenarios: [{type: spot-interruption, action: stop}]\n"
    (tmp_path / "fleet.yaml").write_text(own)
    env = {"HOME": str(tmp_path), "IMDSMOCK_CONFIG": str(tmp_path / "fleet.yaml")}
    with mock_process(["-x", "3", "spot", "-a", "hibernate"], env, command=EC2_METADATA_MOCK) as m:
        actions = []
        for source in ORDER:
            status, body = ask(m.port, SPOT, source)
            actions.append(json.loads(body)["action"] if status == 200 else status)
        assert actions == ["hibernate", "hibernate", "stop", 404]
