"""Host mode in a namespace acting as a workstation: ``route up``, ``route down``."""

from __future__ import annotations

import re

import pytest
from netns_topology import Topology

INSTANCE_ID = "i-1234567890abcdef0"
BACKENDS = ("iptables-nft", "iptables-legacy", "nft")


def snapshot(topo: Topology, ns: str) -> str:
    """Everything ``up`` could touch: addresses, routes, nftables (with iptables-nft) and
    the legacy nat rules of both families.

    Packet counters are dropped; they move with traffic, not with rule changes. Legacy
    tables are read with ``-S``, which loads an empty table if absent, so "absent" and
    "empty" compare equal there (the kernel cannot unload a legacy table per namespace).
    """
    parts = [
        topo.sh(ns, "ip", "-o", "addr", "show").stdout,
        topo.sh(ns, "ip", "route", "show", "table", "all").stdout,
        topo.sh(ns, "nft", "list", "ruleset").stdout,
        topo.sh(ns, "iptables-legacy", "-w", "-t", "nat", "-S").stdout,
        topo.sh(ns, "ip6tables-legacy", "-w", "-t", "nat", "-S").stdout,
    ]
    text = "\n".join(parts)
    text = re.sub(r"^#.*$", "", text, flags=re.MULTILINE)
    text = re.sub(r"\[\d+:\d+\]", "[counters]", text)
    return re.sub(r"counter packets \d+ bytes \d+", "counter", text)


def existing_rules(topo: Topology, ns: str, backend: str) -> None:
    """Rules and an alias a workstation already has (Docker-like), which must survive."""
    if backend == "nft":
        topo.sh(ns, "nft", "add", "table", "ip", "mine")
        topo.sh(
            ns, "nft", "add", "chain", "ip", "mine", "out", "{ type nat hook output priority 0; }"
        )
        topo.sh(ns, "nft", "add", "rule", "ip", "mine", "out", "ip daddr 10.99.0.0/16 return")
    else:
        program = "iptables-legacy" if backend == "iptables-legacy" else "iptables-nft"
        topo.sh(
            ns, program, "-w", "-t", "nat", "-A", "OUTPUT", "-d", "10.99.0.0/16", "-j", "RETURN"
        )
    topo.sh(ns, "ip", "addr", "add", "169.254.170.2/32", "dev", "lo")


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
