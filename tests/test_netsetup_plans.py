"""Dry-run plans of ``imdsmock route``: exact commands for each backend, pure builders."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from imdsmock.netsetup import linux, macos, state
from imdsmock.netsetup.detect import (
    EMPTY,
    IPTABLES_LEGACY,
    IPTABLES_NFT,
    NFT,
    ChainState,
    Firewall,
    Observed,
    RouteInfo,
)
from imdsmock.netsetup.errors import NetsetupError
from imdsmock.netsetup.linux import Target
from imdsmock.netsetup.plan import Plan, apply, cmd, render, run
from mockprocess import run_command

IMDS = Target(address="169.254.169.254", to_host="127.0.0.1", to_port=1338)
ECS = Target(address="169.254.170.2", to_host="127.0.0.1", to_port=1339)
IMDS6 = Target(address="fd00:ec2::254", to_host="::1", to_port=1338)
ALL = (IMDS, ECS, IMDS6)
FIREWALLS = [
    pytest.param(IPTABLES_NFT, id="iptables-nft"),
    pytest.param(IPTABLES_LEGACY, id="iptables-legacy"),
    pytest.param(NFT, id="nft"),
]

ALIASES = (
    "ip -4 addr add 169.254.169.254/32 dev lo\n"
    "ip -4 addr add 169.254.170.2/32 dev lo\n"
    "ip -6 addr add fd00:ec2::254/128 dev lo\n"
)


def iptables_up(v4: str, v6: str) -> str:
    """The expected ``up`` text for one iptables flavour's program names."""
    dnat = "-p tcp -m tcp --dport 80 -j DNAT --to-destination"
    return ALIASES + (
        f"{v4} -w -t nat -N IMDSMOCK\n"
        f"{v4} -w -t nat -A IMDSMOCK -d 169.254.169.254/32 {dnat} 127.0.0.1:1338\n"
        f"{v4} -w -t nat -A IMDSMOCK -d 169.254.170.2/32 {dnat} 127.0.0.1:1339\n"
        f"{v4} -w -t nat -I OUTPUT 1 -j IMDSMOCK\n"
        f"{v6} -w -t nat -N IMDSMOCK\n"
        f"{v6} -w -t nat -A IMDSMOCK -d fd00:ec2::254/128 {dnat} '[::1]:1338'\n"
        f"{v6} -w -t nat -I OUTPUT 1 -j IMDSMOCK\n"
    )


NFT_UP = ALIASES + (
    "nft -f - <<'EOF'\n"
    "table inet imdsmock {}\n"
    "delete table inet imdsmock\n"
    "table inet imdsmock {\n"
    "  chain output {\n"
    "    type nat hook output priority -100; policy accept;\n"
    "    ip daddr 169.254.169.254 tcp dport 80 dnat ip to 127.0.0.1:1338\n"
    "    ip daddr 169.254.170.2 tcp dport 80 dnat ip to 127.0.0.1:1339\n"
    "    ip6 daddr fd00:ec2::254 tcp dport 80 dnat ip6 to [::1]:1338\n"
    "  }\n"
    "}\n"
    "EOF\n"
)

UP_CASES = [
    pytest.param(IPTABLES_NFT, iptables_up("iptables-nft", "ip6tables-nft"), id="iptables-nft"),
    pytest.param(
        IPTABLES_LEGACY,
        iptables_up("iptables-legacy", "ip6tables-legacy"),
        id="iptables-legacy",
    ),
    pytest.param(NFT, NFT_UP, id="nft"),
]


@pytest.mark.parametrize(("fw", "expected"), UP_CASES)
def test_up_on_a_clean_namespace_adds_aliases_then_our_dnat(fw: Firewall, expected: str) -> None:
    """``up`` adds each link-local alias to lo, then DNATs in our own chain or table."""
    assert render(linux.up_plan(fw, ALL, EMPTY).steps) == expected


def in_place(fw: Firewall) -> Observed:
    """What a namespace looks like right after ``up`` of :data:`ALL` with ``fw``."""
    addresses = frozenset(t.prefix for t in ALL)
    if fw.kind == "nft":
        rules = tuple(f"output: {linux.nft_rule(t)}" for t in ALL)
        return Observed(addresses=addresses, nft_rules=rules)

    def chain(*targets: Target) -> ChainState:
        rules = tuple(" ".join(("-A", "IMDSMOCK", *linux.iptables_rule(t))) for t in targets)
        return ChainState(exists=True, rules=rules, jumps=1)

    return Observed(addresses=addresses, chain4=chain(IMDS, ECS), chain6=chain(IMDS6))


@pytest.mark.parametrize("fw", FIREWALLS)
def test_up_when_already_in_place_plans_nothing(fw: Firewall) -> None:
    """A second ``up`` finds everything in place and adds nothing twice."""
    assert linux.up_plan(fw, ALL, in_place(fw)).steps == ()


def test_up_with_a_changed_port_replaces_the_chain_rules_only() -> None:
    """A different mock port flushes and refills our chain, keeping the single jump."""
    moved = (Target(address="169.254.169.254", to_host="127.0.0.1", to_port=9999),)
    observed = in_place(IPTABLES_LEGACY)
    assert render(linux.up_plan(IPTABLES_LEGACY, moved, observed).steps) == (
        "iptables-legacy -w -t nat -F IMDSMOCK\n"
        "iptables-legacy -w -t nat -A IMDSMOCK -d 169.254.169.254/32 -p tcp -m tcp "
        "--dport 80 -j DNAT --to-destination 127.0.0.1:9999\n"
    )


def test_up_alias_only_adds_addresses_and_no_firewall_rule() -> None:
    """With the mock bound on 169.254.169.254:80 itself, only the alias is needed."""
    plan = linux.up_plan(IPTABLES_NFT, (IMDS,), EMPTY, dnat=False)
    assert render(plan.steps) == "ip -4 addr add 169.254.169.254/32 dev lo\n"


def test_up_keeps_an_alias_that_was_already_there() -> None:
    """An address already on lo is neither added again nor put in the undo."""
    plan = linux.address_plan(ALL, Observed(addresses=frozenset({"169.254.170.2/32"})))
    assert "169.254.170.2" not in render(plan.steps) + render(plan.undo)


DOWN_CASES = [
    pytest.param(
        IPTABLES_NFT,
        "iptables-nft -w -t nat -D OUTPUT -j IMDSMOCK\n"
        "iptables-nft -w -t nat -F IMDSMOCK\n"
        "iptables-nft -w -t nat -X IMDSMOCK\n"
        "ip6tables-nft -w -t nat -D OUTPUT -j IMDSMOCK\n"
        "ip6tables-nft -w -t nat -F IMDSMOCK\n"
        "ip6tables-nft -w -t nat -X IMDSMOCK\n"
        "nft delete table ip6 nat\n"
        "ip -4 addr del 169.254.169.254/32 dev lo\n",
        id="iptables-nft",
    ),
    pytest.param(
        IPTABLES_LEGACY,
        "iptables-legacy -w -t nat -D OUTPUT -j IMDSMOCK\n"
        "iptables-legacy -w -t nat -F IMDSMOCK\n"
        "iptables-legacy -w -t nat -X IMDSMOCK\n"
        "ip6tables-legacy -w -t nat -D OUTPUT -j IMDSMOCK\n"
        "ip6tables-legacy -w -t nat -F IMDSMOCK\n"
        "ip6tables-legacy -w -t nat -X IMDSMOCK\n"
        "ip -4 addr del 169.254.169.254/32 dev lo\n",
        id="iptables-legacy",
    ),
    pytest.param(
        NFT,
        "nft delete table inet imdsmock\nip -4 addr del 169.254.169.254/32 dev lo\n",
        id="nft",
    ),
]


@pytest.mark.parametrize(("fw", "expected"), DOWN_CASES)
def test_down_removes_our_chain_or_table_and_only_recorded_aliases(
    fw: Firewall, expected: str
) -> None:
    """``down`` undoes our jumps, chains or table, nat tables we created, recorded aliases.

    Here ``ip nat`` was created by ``up`` but now holds someone else's rule too, so only
    ``ip6 nat`` (ours alone) is deleted.
    """
    observed = in_place(fw)
    if fw is IPTABLES_NFT:
        observed = Observed(
            addresses=observed.addresses,
            chain4=observed.chain4,
            chain6=observed.chain6,
            nat_tables=frozenset({"ip nat", "ip6 nat"}),
            nat_only_ours=frozenset({"ip6 nat"}),
        )
    plan = linux.down_plan(fw, observed, ("169.254.169.254/32",), ("ip nat", "ip6 nat"))
    assert render(plan.steps) == expected


@pytest.mark.parametrize("fw", FIREWALLS)
def test_down_with_nothing_in_place_plans_nothing(fw: Firewall) -> None:
    """``down`` on a clean namespace has nothing to remove."""
    assert linux.down_plan(fw, EMPTY, ("169.254.169.254/32",)).steps == ()


@pytest.mark.parametrize("fw", FIREWALLS)
def test_up_undo_is_the_down_of_what_up_made(fw: Firewall) -> None:
    """The undo carried by an ``up`` plan equals the ``down`` plan of the state it makes."""
    up = linux.up_plan(fw, ALL, EMPTY)
    down = linux.down_plan(fw, in_place(fw), tuple(t.prefix for t in ALL))
    assert sorted(map(str, up.undo)) == sorted(map(str, down.steps))


def test_created_nat_tables_are_those_iptables_nft_will_make() -> None:
    """Only iptables-nft, only families routed, only tables that nft did not list."""
    seen = Observed(nat_tables=frozenset({"ip nat"}))
    assert linux.created_nat_tables(IPTABLES_NFT, ALL, seen) == ("ip6 nat",)
    assert linux.created_nat_tables(IPTABLES_LEGACY, ALL, seen) == ()
    assert linux.created_nat_tables(IPTABLES_NFT, ALL, EMPTY) == ()


CONTAINER_TARGETS = (
    Target(address="169.254.169.254", to_host="10.200.0.2", to_port=1338),
    Target(address="169.254.170.2", to_host="10.200.0.2", to_port=1339),
)

CONTAINER_CASES = [
    pytest.param(
        IPTABLES_NFT,
        "iptables-nft -w -t nat -N IMDSMOCK\n"
        "iptables-nft -w -t nat -A IMDSMOCK -d 169.254.169.254/32 -p tcp -m tcp --dport 80 "
        "-j DNAT --to-destination 10.200.0.2:1338\n"
        "iptables-nft -w -t nat -A IMDSMOCK -d 169.254.170.2/32 -p tcp -m tcp --dport 80 "
        "-j DNAT --to-destination 10.200.0.2:1339\n"
        "iptables-nft -w -t nat -I OUTPUT 1 -j IMDSMOCK\n",
        id="iptables-nft",
    ),
    pytest.param(
        IPTABLES_LEGACY,
        "iptables-legacy -w -t nat -N IMDSMOCK\n"
        "iptables-legacy -w -t nat -A IMDSMOCK -d 169.254.169.254/32 -p tcp -m tcp "
        "--dport 80 -j DNAT --to-destination 10.200.0.2:1338\n"
        "iptables-legacy -w -t nat -A IMDSMOCK -d 169.254.170.2/32 -p tcp -m tcp "
        "--dport 80 -j DNAT --to-destination 10.200.0.2:1339\n"
        "iptables-legacy -w -t nat -I OUTPUT 1 -j IMDSMOCK\n",
        id="iptables-legacy",
    ),
    pytest.param(
        NFT,
        "nft -f - <<'EOF'\n"
        "table inet imdsmock {}\n"
        "delete table inet imdsmock\n"
        "table inet imdsmock {\n"
        "  chain output {\n"
        "    type nat hook output priority -100; policy accept;\n"
        "    ip daddr 169.254.169.254 tcp dport 80 dnat ip to 10.200.0.2:1338\n"
        "    ip daddr 169.254.170.2 tcp dport 80 dnat ip to 10.200.0.2:1339\n"
        "  }\n"
        "}\n"
        "EOF\n",
        id="nft",
    ),
]


@pytest.mark.parametrize(("fw", "expected"), CONTAINER_CASES)
def test_container_plan_dnats_to_the_mock_without_aliases(fw: Firewall, expected: str) -> None:
    """In a container (and a sidecar) only the DNAT to the mock's address is installed."""
    plan = linux.container_plan(fw, CONTAINER_TARGETS, EMPTY)
    assert render(plan.steps) == expected


ROUTE_CASES = [
    pytest.param(RouteInfo(dev="eth0", via="10.200.0.1"), RouteInfo(dev="eth0"), "", id="routable"),
    pytest.param(
        None, RouteInfo(dev="eth0"), "ip route add 169.254.169.254/32 dev eth0\n", id="on-link"
    ),
    pytest.param(
        None,
        RouteInfo(dev="eth1", via="10.1.0.1"),
        "ip route add 169.254.169.254/32 via 10.1.0.1 dev eth1\n",
        id="via-gateway",
    ),
    pytest.param(None, None, "", id="mock-unroutable"),
]


@pytest.mark.parametrize(("current", "toward", "expected"), ROUTE_CASES)
def test_container_routes_imds_like_the_mock_only_when_unroutable(
    current: RouteInfo | None, toward: RouteInfo | None, expected: str
) -> None:
    """Without a route to 169.254.169.254 (internal network) it follows the mock's route."""
    plan = linux.route_plan("169.254.169.254", current, toward)
    assert render(plan.steps) == expected
    assert render(plan.undo) == expected.replace(" add ", " del ")


def test_macos_up_adds_lo0_aliases_and_a_pf_anchor() -> None:
    """macOS: ifconfig aliases, rdr rules loaded into com.apple/imdsmock, pf referenced."""
    plan = macos.up_plan(ALL, frozenset())
    assert render(plan.steps) == (
        "ifconfig lo0 alias 169.254.169.254 netmask 255.255.255.255\n"
        "ifconfig lo0 alias 169.254.170.2 netmask 255.255.255.255\n"
        "ifconfig lo0 inet6 alias fd00:ec2::254 prefixlen 128\n"
        "pfctl -a com.apple/imdsmock -f - <<'EOF'\n"
        "rdr pass on lo0 inet proto tcp from any to 169.254.169.254 port 80"
        " -> 127.0.0.1 port 1338\n"
        "rdr pass on lo0 inet proto tcp from any to 169.254.170.2 port 80"
        " -> 127.0.0.1 port 1339\n"
        "rdr pass on lo0 inet6 proto tcp from any to fd00:ec2::254 port 80 -> ::1 port 1338\n"
        "EOF\n"
        "pfctl -E\n"
    )
    assert render(plan.undo) == (
        "pfctl -a com.apple/imdsmock -F all\n"
        "ifconfig lo0 inet6 -alias fd00:ec2::254 prefixlen 128\n"
        "ifconfig lo0 -alias 169.254.170.2 netmask 255.255.255.255\n"
        "ifconfig lo0 -alias 169.254.169.254 netmask 255.255.255.255\n"
    )


def test_macos_up_skips_present_aliases_and_down_flushes_the_anchor() -> None:
    """An alias already on lo0 is kept; ``down`` flushes the anchor and recorded aliases."""
    plan = macos.up_plan((IMDS,), frozenset({"169.254.169.254"}), dnat=False)
    assert plan.steps == ()
    down = macos.down_plan(("169.254.169.254",))
    assert render(down.steps) == (
        "pfctl -a com.apple/imdsmock -F all\n"
        "ifconfig lo0 -alias 169.254.169.254 netmask 255.255.255.255\n"
    )


def test_macos_dry_run_prints_the_lo0_alias_and_pf_anchor(tmp_path: Path) -> None:
    """`route up/down --platform macos --dry-run` prints the ifconfig and pfctl commands and
    changes nothing (this runs anywhere; applying them needs macOS)."""
    env = {state.RUN_DIR_ENV: str(tmp_path)}

    def route(*args: str) -> str:
        done = run_command(["route", *args, "--platform", "macos", "--dry-run"], env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    up = route("up")
    assert up.startswith("ifconfig lo0 alias 169.254.169.254 netmask 255.255.255.255\n")
    assert "rdr pass on lo0 inet proto tcp from any to 169.254.169.254 port 80" in up
    assert route("down") == "pfctl -a com.apple/imdsmock -F all\n"
    assert list(tmp_path.iterdir()) == []


def test_macos_reads_lo0_addresses_from_ifconfig() -> None:
    """``ifconfig lo0`` inet and inet6 lines give the present addresses (scope dropped)."""
    text = (
        "lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 16384\n"
        "\tinet 127.0.0.1 netmask 0xff000000\n"
        "\tinet6 fe80::1%lo0 prefixlen 64 scopeid 0x1\n"
        "\tinet 169.254.169.254 netmask 0xffffffff\n"
    )
    assert macos.parse_lo0(text) == frozenset({"127.0.0.1", "fe80::1", "169.254.169.254"})


def test_plans_concatenate_steps_in_order_and_undo_in_reverse() -> None:
    """Adding plans runs steps first-to-last and undoes last-made first."""
    a = Plan(steps=(cmd("a"),), undo=(cmd("undo-a"),))
    b = Plan(steps=(cmd("b"),), undo=(cmd("undo-b"),))
    both = a + b
    assert [str(c) for c in both.steps] == ["a", "b"]
    assert [str(c) for c in both.undo] == ["undo-b", "undo-a"]


# -- running plans -------------------------------------------------------------------


def test_a_missing_program_runs_as_exit_status_127() -> None:
    """Running a program that does not exist is exit status 127 with 'not found', like a shell."""
    result = run(cmd("imdsmock-no-such-program"))
    assert result.returncode == 127
    assert result.stderr == "imdsmock-no-such-program: not found"


def test_a_failing_step_stops_the_plan_naming_the_command_and_its_last_line(
    tmp_path: Path,
) -> None:
    """apply stops at the first failing command: the error names it and its last output line
    (or its exit status when it printed nothing); later steps do not run."""
    marker = tmp_path / "ran"
    failing = cmd(sys.executable, "-c", "import sys; print('first'); sys.exit('second')")
    with pytest.raises(NetsetupError) as exc:
        apply((failing, cmd("touch", str(marker))))
    assert str(exc.value).endswith(": second")
    assert str(exc.value).startswith("command failed: ")
    assert not marker.exists()
    with pytest.raises(NetsetupError, match=r"command failed: false: exit status 1$"):
        apply((cmd("false"),))
