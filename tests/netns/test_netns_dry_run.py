"""``--dry-run`` of every ``imdsmock route`` command, through the real CLI, per backend.

Each runs in a fresh namespace so the plan is the full one; the expected text comes from
the plan builders, whose exact commands ``tests/test_netsetup_plans.py`` pins.
"""

from __future__ import annotations

import pytest
from netns_topology import Topology

from imdsmock.netsetup import goals
from imdsmock.netsetup.converge import converge
from imdsmock.netsetup.detect import IPTABLES_LEGACY, IPTABLES_NFT, NFT, Firewall
from imdsmock.netsetup.layout import Layout
from imdsmock.netsetup.linux import Target
from imdsmock.netsetup.plan import render

FIREWALLS = [
    pytest.param(IPTABLES_NFT, id="iptables-nft"),
    pytest.param(IPTABLES_LEGACY, id="iptables-legacy"),
    pytest.param(NFT, id="nft"),
]
HOST = (
    Target(address="169.254.169.254", to_host="127.0.0.1", to_port=1338),
    Target(address="169.254.170.2", to_host="127.0.0.1", to_port=1339),
    Target(address="fd00:ec2::254", to_host="::1", to_port=1338),
)
MOCK = (
    Target(address="169.254.169.254", to_host="10.200.0.2", to_port=1338),
    Target(address="169.254.170.2", to_host="10.200.0.2", to_port=1339),
)


def text(fw: Firewall, start: Layout, goal: Layout) -> str:
    """The dry-run text of the steps from ``start`` to ``goal`` with ``fw``."""
    return render(tuple(step.command for step in converge((fw,), start, goal)))


@pytest.mark.parametrize("fw", FIREWALLS)
def test_dry_run_of_up_prints_the_plan_and_changes_nothing(topo: Topology, fw: Firewall) -> None:
    """``up --dry-run`` prints the full plan for the backend and leaves the namespace as it was."""
    ns = topo.ns("dr")
    before = topo.sh(ns, "nft", "list", "ruleset").stdout
    args = ("up", "--dry-run", "--backend", fw.name, "--credentials-port", "1339", "--ipv6")
    out = topo.route(ns, *args).stdout
    assert out == text(fw, Layout(), goals.up_goal((fw,), fw, HOST, Layout(), None))
    assert topo.sh(ns, "nft", "list", "ruleset").stdout == before
    assert "169.254" not in topo.sh(ns, "ip", "addr").stdout


@pytest.mark.parametrize("fw", FIREWALLS)
def test_dry_run_of_down_prints_exactly_the_removal(topo: Topology, fw: Firewall) -> None:
    """``down --dry-run`` after ``up`` lists our removals; on a clean namespace, nothing."""
    ns = topo.ns("dr")
    assert topo.route(ns, "down", "--dry-run", "--backend", fw.name).stdout == (
        "# nothing to do: nothing of ours is in place\n"
    )
    topo.route(ns, "up", "--backend", fw.name)
    out = topo.route(ns, "down", "--dry-run").stdout
    expected = text(fw, goals.firewall_goal(fw, HOST[:1], Layout()), Layout())
    if fw is IPTABLES_NFT:
        expected += "nft delete table ip nat\n"
    expected += "ip -4 addr del 169.254.169.254/32 dev lo\n"
    assert out == expected
    topo.route(ns, "down")


@pytest.mark.parametrize("action", ["container", "sidecar"])
@pytest.mark.parametrize("fw", FIREWALLS)
def test_dry_run_of_container_and_sidecar_prints_the_dnat(
    topo: Topology, fw: Firewall, action: str
) -> None:
    """``container``/``sidecar --dry-run`` print the DNAT to the mock and run nothing else."""
    ns = topo.ns("dr")
    args = [action, "--dry-run", "--backend", fw.name, "--mock", "10.200.0.2:1338"]
    args += ["--credentials-port", "1339"]
    if action == "container":
        args += ["--", "false"]
    done = topo.route(ns, *args)
    assert done.stdout == text(fw, Layout(), goals.firewall_goal(fw, MOCK, Layout()))


def test_dry_run_of_the_shell_entrypoint_prints_its_commands(topo: Topology) -> None:
    """The POSIX script's ``--dry-run`` prints the same chain commands and runs no CMD; the
    target is IMDSMOCK_ROUTE_TO, whatever bind host IMDSMOCK_HOST holds (one container)."""
    ns, peer = topo.ns("dr"), topo.ns("pe")
    dev, _ = topo.link(ns, "10.200.0.3/24", peer, "10.200.0.2/24")
    script = topo.route(ns, "script", "--path").stdout.strip()
    env: tuple[str, ...] = ("env", "IMDSMOCK_HOST=0.0.0.0", "IMDSMOCK_ROUTE_TO=10.200.0.2")
    env += ("IMDSMOCK_CREDENTIALS_PORT=1339",)
    out = topo.sh(ns, *env, "dash", script, "--dry-run", "--", "false").stdout
    dnat = "-p tcp -m tcp --dport 80 -j DNAT --to-destination"
    assert out == (
        f"ip route add 169.254.169.254/32 dev {dev}\n"
        f"ip route add 169.254.170.2/32 dev {dev}\n"
        "iptables -w -t nat -N IMDSMOCK\n"
        f"iptables -w -t nat -A IMDSMOCK -d 169.254.169.254/32 {dnat} 10.200.0.2:1338\n"
        f"iptables -w -t nat -A IMDSMOCK -d 169.254.170.2/32 {dnat} 10.200.0.2:1339\n"
        "iptables -w -t nat -I OUTPUT 1 -j IMDSMOCK\n"
    )
