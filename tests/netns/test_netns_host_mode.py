"""Host mode in a namespace acting as a workstation: ``route up``, ``route down``."""

from __future__ import annotations

import pytest
from netns_topology import Topology, existing_rules, snapshot

INSTANCE_ID = "i-1234567890abcdef0"
BACKENDS = ("iptables-nft", "iptables-legacy", "nft")


@pytest.mark.parametrize("backend", BACKENDS)
def test_route_up_makes_imds_address_answer_and_down_restores_rules(
    topo: Topology, backend: str
) -> None:
    """After ``up`` curl and boto3 reach the mock at 169.254.169.254; ``down`` undoes exactly."""
    ws = topo.ns("ws")
    existing_rules(topo, ws, backend)
    topo.mock(ws, "127.0.0.1", 1338, "--listen", "[::1]:1338")
    before = snapshot(topo, ws)
    args = ("up", "--backend", backend, "--credentials-port", "1338", "--ipv6")

    first = topo.route(ws, *args)
    after_first = snapshot(topo, ws)
    second = topo.route(ws, *args)

    assert "already in place" not in first.stdout
    assert "already in place" in second.stdout
    assert snapshot(topo, ws) == after_first
    url = "http://169.254.169.254/latest/meta-data/instance-id"
    assert topo.sh(ws, "curl", "-s", "-m", "2", url).stdout == INSTANCE_ID
    url6 = "http://[fd00:ec2::254]/latest/meta-data/instance-id"
    assert topo.sh(ws, "curl", "-s", "-m", "2", url6).stdout == INSTANCE_ID
    creds = topo.boto3_credentials(ws)
    assert creds is not None
    assert creds["method"] == "iam-role"

    topo.route(ws, "down")
    assert snapshot(topo, ws) == before
    assert "169.254.170.2/32" in topo.sh(ws, "ip", "-o", "addr", "show", "dev", "lo").stdout


def test_route_up_alias_only_serves_a_mock_bound_on_port_80(topo: Topology) -> None:
    """With ``--alias-only`` the address is added and no firewall rule; the mock binds it."""
    ws = topo.ns("ws")
    before = snapshot(topo, ws)
    topo.route(ws, "up", "--alias-only")
    topo.mock(ws, "169.254.169.254", 80)
    url = "http://169.254.169.254/latest/meta-data/instance-id"
    assert topo.sh(ws, "curl", "-s", "-m", "2", url).stdout == INSTANCE_ID
    assert "IMDSMOCK" not in topo.sh(ws, "nft", "list", "ruleset").stdout

    topo.route(ws, "down")
    assert snapshot(topo, ws) == before


def test_route_status_shows_the_alias_and_the_rules(topo: Topology) -> None:
    """``status`` names the backend, the alias on lo and our chain's rules."""
    ws = topo.ns("ws")
    topo.route(ws, "up", "--backend", "iptables-legacy")
    out = topo.route(ws, "status").stdout
    assert "backend: iptables-legacy" in out
    assert "aliases on lo: 169.254.169.254/32" in out
    assert "--to-destination 127.0.0.1:1338" in out
    topo.route(ws, "down")
    assert "record: none" in topo.route(ws, "status").stdout


def test_route_status_with_nft_shows_our_table_and_down_twice_is_harmless(
    topo: Topology,
) -> None:
    """With nft, ``status`` reports our table absent, then present with its rules after
    ``up``; a second ``down`` finds nothing to remove."""
    ws = topo.ns("ws")
    before = topo.route(ws, "status", "--backend", "nft").stdout
    assert "backend: nft" in before
    assert "table inet imdsmock: absent" in before
    assert "aliases on lo: none" in before
    topo.route(ws, "up", "--backend", "nft")
    during = topo.route(ws, "status").stdout
    assert "table inet imdsmock: present" in during
    assert "127.0.0.1:1338" in during
    assert "record: " in during
    assert "record: none" not in during
    assert topo.route(ws, "down").stdout.startswith("imdsmock route: removed (")
    assert topo.route(ws, "down", "--backend", "nft").stdout == (
        "imdsmock route: nothing to remove\n"
    )


def test_up_without_ipv6_after_up_with_it_removes_the_ipv6_route(topo: Topology) -> None:
    """``up`` converges to what it is asked: after ``up --ipv6``, a plain ``up`` changes
    something (not "already in place"), and the IPv6 alias and rules are gone."""
    ws = topo.ns("ws")
    before = snapshot(topo, ws)
    topo.route(ws, "up", "--ipv6")
    assert "fd00:ec2::254" in topo.sh(ws, "ip", "-6", "addr", "show", "dev", "lo").stdout
    plain = topo.route(ws, "up")
    assert "already in place" not in plain.stdout
    assert "fd00:ec2::254" not in topo.sh(ws, "ip", "-6", "addr", "show", "dev", "lo").stdout
    assert "IMDSMOCK" not in topo.sh(ws, "ip6tables", "-w", "-t", "nat", "-S").stdout
    assert "already in place" in topo.route(ws, "up").stdout
    topo.route(ws, "down")
    assert snapshot(topo, ws) == before


def test_switching_backends_leaves_nothing_behind_in_the_previous_one(topo: Topology) -> None:
    """``up --backend nft`` then ``up --backend iptables-legacy`` removes our nft table, and
    ``down`` restores the namespace as it was before the first ``up``."""
    ws = topo.ns("ws")
    before = snapshot(topo, ws)
    topo.route(ws, "up", "--backend", "nft")
    topo.route(ws, "up", "--backend", "iptables-legacy")
    assert "imdsmock" not in topo.sh(ws, "nft", "list", "ruleset").stdout
    assert "IMDSMOCK" in topo.sh(ws, "iptables-legacy", "-w", "-t", "nat", "-S").stdout
    topo.route(ws, "down")
    assert snapshot(topo, ws) == before


def test_the_mock_must_be_an_address_of_this_namespace(topo: Topology) -> None:
    """``--mock`` naming an address the namespace does not have is one line, exit 2, and
    nothing changes; an address of one of its interfaces is routed to."""
    ws, peer = topo.ns("ws"), topo.ns("pe")
    topo.link(ws, "10.77.0.1/24", peer, "10.77.0.2/24")
    topo.settle(ws)
    before = snapshot(topo, ws)
    refused = topo.route(ws, "up", "--mock", "10.77.0.2:1338", check=False)
    assert refused.returncode == 2
    assert refused.stderr == (
        "imdsmock route: error: --mock host is '10.77.0.2', which is not an address of this "
        "machine (or network namespace); expected a loopback address such as 127.0.0.1 or one "
        "of its addresses (10.77.0.1), where the mock listens\n"
    )
    assert snapshot(topo, ws) == before
    topo.mock(ws, "10.77.0.1", 1338)
    topo.route(ws, "up", "--mock", "10.77.0.1:1338")
    url = "http://169.254.169.254/latest/meta-data/instance-id"
    assert topo.sh(ws, "curl", "-s", "-m", "2", url).stdout == INSTANCE_ID
    topo.route(ws, "down")
    assert snapshot(topo, ws) == before
