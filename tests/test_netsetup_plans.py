"""Plans of ``imdsmock route``: exact commands for each backend, from pure builders.

Linux plans are converged layouts (:mod:`imdsmock.netsetup.converge`): from what is in
place to what ``up`` or ``down`` aims for (:mod:`imdsmock.netsetup.goals`), or back again.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from imdsmock.netsetup import detect, goals, host, linux, macos, state
from imdsmock.netsetup.converge import Step, converge
from imdsmock.netsetup.detect import (
    IPTABLES_LEGACY,
    IPTABLES_NFT,
    NFT,
    ChainState,
    Firewall,
    RouteInfo,
)
from imdsmock.netsetup.errors import NetsetupError
from imdsmock.netsetup.host import require_local_mock
from imdsmock.netsetup.layout import Layout, Scope, parse_host_routes
from imdsmock.netsetup.linux import Target
from imdsmock.netsetup.plan import Command, Plan, Result, apply, cmd, render, run, why_failed
from mockprocess import run_command

IMDS = Target(address="169.254.169.254", to_host="127.0.0.1", to_port=1338)
ECS = Target(address="169.254.170.2", to_host="127.0.0.1", to_port=1339)
IMDS6 = Target(address="fd00:ec2::254", to_host="::1", to_port=1338)
ALL = (IMDS, ECS, IMDS6)
PREFIXES = tuple(t.prefix for t in ALL)
CLEAN = Layout()
NONE: frozenset[str] = frozenset()
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
DNAT = "-p tcp -m tcp --dport 80 -j DNAT --to-destination"


def text(steps: tuple[Step, ...]) -> str:
    """The dry-run text of converged steps."""
    return render(tuple(step.command for step in steps))


def up(
    fw: Firewall,
    wanted: tuple[Target, ...] = ALL,
    before: Layout = CLEAN,
    record: state.Record | None = None,
    *,
    scope: Scope = (),
    dnat: bool = True,
) -> tuple[Step, ...]:
    """The steps of ``up`` for ``wanted`` from ``before``, as the host command plans them."""
    scope = scope or (fw,)
    goal = goals.up_goal(scope, fw, wanted, before, record, dnat=dnat)
    return converge(scope, before, goal)


def down(fw: Firewall, before: Layout, record: state.Record | None) -> tuple[Step, ...]:
    """The steps of ``down`` from ``before`` with that record."""
    return converge((fw,), before, goals.down_goal((fw,), before, record))


def owning(*prefixes: str, created: tuple[str, ...] = ()) -> state.Record:
    """A record saying ``up`` added ``prefixes`` (and created those nat tables)."""
    return state.Record(backend="nft", added=prefixes, created=created)


def iptables_up(v4: str, v6: str) -> str:
    """The expected ``up`` text for one iptables flavour's program names."""
    return ALIASES + (
        f"{v4} -w -t nat -N IMDSMOCK\n"
        f"{v4} -w -t nat -A IMDSMOCK -d 169.254.169.254/32 {DNAT} 127.0.0.1:1338\n"
        f"{v4} -w -t nat -A IMDSMOCK -d 169.254.170.2/32 {DNAT} 127.0.0.1:1339\n"
        f"{v4} -w -t nat -I OUTPUT 1 -j IMDSMOCK\n"
        f"{v6} -w -t nat -N IMDSMOCK\n"
        f"{v6} -w -t nat -A IMDSMOCK -d fd00:ec2::254/128 {DNAT} '[::1]:1338'\n"
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
    assert text(up(fw)) == expected


def chain(*targets: Target) -> ChainState:
    """Our chain holding the DNATs of ``targets``, jumped to once."""
    rules = tuple(" ".join(("-A", "IMDSMOCK", *linux.iptables_rule(t))) for t in targets)
    return ChainState(exists=True, rules=rules, jumps=1)


def in_place(fw: Firewall, targets: tuple[Target, ...] = ALL, nat: frozenset[str] = NONE) -> Layout:
    """What a namespace holds right after ``up`` of ``targets`` with ``fw``; ``nat`` are
    iptables-nft nat tables present and holding only our parts."""
    addresses = frozenset(t.prefix for t in targets)
    tables = Layout(nat_tables=nat, only_ours=nat, nat_known=bool(nat))
    if fw.kind == "nft":
        rules = tuple(f"output: {linux.nft_rule(t)}" for t in targets)
        return replace(tables, addresses=addresses, nft_rules=rules)
    chains = {
        fw.v4: chain(*(t for t in targets if t.family == 4)),
        fw.v6: chain(*(t for t in targets if t.family == 6)) if IMDS6 in targets else ChainState(),
    }
    return replace(tables, addresses=addresses, chains=chains)


@pytest.mark.parametrize("fw", FIREWALLS)
def test_up_when_already_in_place_plans_nothing(fw: Firewall) -> None:
    """A second ``up`` finds everything in place and adds nothing twice."""
    assert up(fw, before=in_place(fw), record=owning(*PREFIXES)) == ()


def test_up_with_a_changed_port_replaces_the_chain_rules_only() -> None:
    """A different mock port flushes and refills our chain, keeping the single jump."""
    moved = (Target(address="169.254.169.254", to_host="127.0.0.1", to_port=9999),)
    before = in_place(IPTABLES_LEGACY, (IMDS,))
    assert text(up(IPTABLES_LEGACY, moved, before, owning(IMDS.prefix))) == (
        "iptables-legacy -w -t nat -F IMDSMOCK\n"
        f"iptables-legacy -w -t nat -A IMDSMOCK -d 169.254.169.254/32 {DNAT} 127.0.0.1:9999\n"
    )


CONVERGE_CASES = [
    pytest.param(
        IPTABLES_LEGACY,
        "iptables-legacy -w -t nat -F IMDSMOCK\n"
        f"iptables-legacy -w -t nat -A IMDSMOCK -d 169.254.169.254/32 {DNAT} 127.0.0.1:1338\n"
        "ip6tables-legacy -w -t nat -D OUTPUT -j IMDSMOCK\n"
        "ip6tables-legacy -w -t nat -F IMDSMOCK\n"
        "ip6tables-legacy -w -t nat -X IMDSMOCK\n"
        "ip -6 addr del fd00:ec2::254/128 dev lo\n"
        "ip -4 addr del 169.254.170.2/32 dev lo\n",
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
        "    ip daddr 169.254.169.254 tcp dport 80 dnat ip to 127.0.0.1:1338\n"
        "  }\n"
        "}\n"
        "EOF\n"
        "ip -6 addr del fd00:ec2::254/128 dev lo\n"
        "ip -4 addr del 169.254.170.2/32 dev lo\n",
        id="nft",
    ),
]


@pytest.mark.parametrize(("fw", "expected"), CONVERGE_CASES)
def test_up_removes_what_a_previous_up_made_and_this_one_does_not_ask_for(
    fw: Firewall, expected: str
) -> None:
    """After ``up --ipv6 --credentials-port``, a plain ``up`` drops the IPv6 rule and chain,
    the credentials rule, and the two aliases the first ``up`` added."""
    assert text(up(fw, (IMDS,), in_place(fw), owning(*PREFIXES))) == expected


def test_up_with_another_backend_removes_ours_from_the_previous_one() -> None:
    """``up --backend iptables-legacy`` after ``up --backend nft`` builds the chain, then
    deletes our nft table; the alias stays."""
    before = Layout(
        addresses=frozenset({IMDS.prefix}),
        chains={"iptables-legacy": ChainState(), "ip6tables-legacy": ChainState()},
        nft_rules=(f"output: {linux.nft_rule(IMDS)}",),
    )
    steps = up(IPTABLES_LEGACY, (IMDS,), before, owning(IMDS.prefix), scope=(IPTABLES_LEGACY, NFT))
    assert text(steps) == (
        "iptables-legacy -w -t nat -N IMDSMOCK\n"
        f"iptables-legacy -w -t nat -A IMDSMOCK -d 169.254.169.254/32 {DNAT} 127.0.0.1:1338\n"
        "iptables-legacy -w -t nat -I OUTPUT 1 -j IMDSMOCK\n"
        "nft delete table inet imdsmock\n"
    )


def test_up_alias_only_adds_addresses_and_no_firewall_rule() -> None:
    """With the mock bound on 169.254.169.254:80 itself, only the alias is needed."""
    assert text(up(IPTABLES_NFT, (IMDS,), dnat=False)) == (
        "ip -4 addr add 169.254.169.254/32 dev lo\n"
    )


def test_an_alias_that_was_already_there_is_neither_added_nor_removed() -> None:
    """An address on lo before the first ``up`` is not added, not recorded, and ``down``
    leaves it."""
    before = Layout(addresses=frozenset({ECS.prefix}))
    steps = up(NFT, ALL, before)
    assert "addr add 169.254.170.2" not in text(steps)
    goal = goals.up_goal((NFT,), NFT, ALL, before, None)
    record = goals.after_up(
        scope=(NFT,), fw=NFT, record=None, steps=steps, before=before, goal=goal
    )
    assert record.added == (IMDS.prefix, IMDS6.prefix)
    assert "addr del 169.254.170.2" not in text(down(NFT, in_place(NFT), record))


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
    before = in_place(fw)
    if fw is IPTABLES_NFT:
        tables = frozenset({"ip nat", "ip6 nat"})
        before = replace(before, nat_tables=tables, only_ours=tables - {"ip nat"}, nat_known=True)
    record = owning(IMDS.prefix, created=("ip nat", "ip6 nat"))
    assert text(down(fw, before, record)) == expected


@pytest.mark.parametrize("fw", FIREWALLS)
def test_down_with_nothing_in_place_plans_nothing(fw: Firewall) -> None:
    """``down`` on a clean namespace has nothing to remove."""
    assert down(fw, CLEAN, owning(IMDS.prefix)) == ()


@pytest.mark.parametrize("fw", FIREWALLS)
def test_rolling_up_back_is_the_down_of_what_up_made(fw: Firewall) -> None:
    """Converging back to a clean layout removes exactly what ``down`` would, and
    converging from clean to what ``up`` made is the ``up`` plan itself."""
    rollback = converge((fw,), in_place(fw), CLEAN)
    assert text(rollback) == text(down(fw, in_place(fw), owning(*PREFIXES)))
    assert text(converge((fw,), CLEAN, in_place(fw))) == text(up(fw))


def test_a_rollback_puts_back_rules_and_jumps_as_they_were() -> None:
    """Back to ``before`` restores a flushed chain rule for rule (quoting kept) and the
    number of jumps, and our nft table's rules."""
    foreign = '-A IMDSMOCK -m comment --comment "a b" -j RETURN'
    before = Layout(
        chains={"iptables-nft": ChainState(exists=True, rules=(foreign,), jumps=2)},
        nft_rules=("output: ip daddr 169.254.169.254 tcp dport 80 dnat ip to 127.0.0.1:1",),
    )
    now = Layout(chains={"iptables-nft": ChainState(exists=True, jumps=1)})
    back = converge((IPTABLES_NFT, NFT), now, before)
    assert [s.command.argv[4:] for s in back[:2]] == [
        ("-A", "IMDSMOCK", "-m", "comment", "--comment", "a b", "-j", "RETURN"),
        ("-I", "OUTPUT", "1", "-j", "IMDSMOCK"),
    ]
    assert "dnat ip to 127.0.0.1:1\n" in str(back[2].command.stdin)


def test_a_nat_table_left_with_only_empty_builtin_chains_is_made_again_in_order() -> None:
    """Bringing our chain back into an iptables-nft nat table that holds nothing else
    deletes the table first, so iptables-nft recreates it as it first did; a table with
    someone else's rule is kept."""
    now = Layout(nat_tables=frozenset({"ip nat"}), only_ours=frozenset({"ip nat"}))
    before = Layout(chains={"iptables-nft": chain(IMDS)}, nat_tables=frozenset({"ip nat"}))
    back = text(converge((IPTABLES_NFT,), now, before))
    assert back.startswith("nft delete table ip nat\niptables-nft -w -t nat -N IMDSMOCK\n")
    shared = Layout(nat_tables=frozenset({"ip nat"}))
    assert "delete" not in text(converge((IPTABLES_NFT,), shared, before))


def test_the_record_names_each_step_before_it_runs() -> None:
    """The journal before a step names the alias it adds, its backend and the iptables-nft
    nat table it brings into being; steps not yet run are not in it."""
    before = Layout(nat_known=True, nat_tables=frozenset({"ip nat"}))
    steps = up(IPTABLES_NFT, (IMDS, IMDS6), before)
    first = goals.journal(None, "iptables-nft", steps[:1])
    assert (first.added, first.backends, first.created) == ((IMDS.prefix,), (), ())
    whole = goals.journal(owning(ECS.prefix), "iptables-nft", steps)
    assert whole.added == (ECS.prefix, IMDS.prefix, IMDS6.prefix)
    assert whole.backends == ("iptables-nft",)
    assert whole.created == ("ip6 nat",)


def test_the_record_after_up_names_only_what_is_still_ours() -> None:
    """Going from ``--ipv6`` to plain ``up`` (iptables-nft) drops the IPv6 alias from the
    record and the ``ip6 nat`` table ``up`` had created, which is deleted."""
    fw = IPTABLES_NFT
    before = in_place(fw, (IMDS, IMDS6), frozenset({"ip nat", "ip6 nat"}))
    record = state.Record(backend=fw.name, added=(IMDS.prefix, IMDS6.prefix), created=("ip6 nat",))
    goal = goals.up_goal((fw,), fw, (IMDS,), before, record)
    steps = converge((fw,), before, goal)
    assert "nft delete table ip6 nat\n" in text(steps)
    after = goals.after_up(scope=(fw,), fw=fw, record=record, steps=steps, before=before, goal=goal)
    assert after == state.Record(backend=fw.name, added=(IMDS.prefix,), backends=(fw.name,))


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
    goal = goals.firewall_goal(fw, CONTAINER_TARGETS, CLEAN)
    assert text(converge((fw,), CLEAN, goal)) == expected


ROUTE_CASES = [
    pytest.param(RouteInfo(dev="eth0", via="10.200.0.1"), RouteInfo(dev="eth0"), "", id="routable"),
    pytest.param(None, RouteInfo(dev="eth0"), "169.254.169.254/32 dev eth0", id="on-link"),
    pytest.param(
        None,
        RouteInfo(dev="eth1", via="10.1.0.1"),
        "169.254.169.254/32 via 10.1.0.1 dev eth1",
        id="via-gateway",
    ),
    pytest.param(None, None, "", id="mock-unroutable"),
]


@pytest.mark.parametrize(("current", "toward", "expected"), ROUTE_CASES)
def test_container_routes_imds_like_the_mock_only_when_unroutable(
    current: RouteInfo | None, toward: RouteInfo | None, expected: str
) -> None:
    """Without a route to 169.254.169.254 (internal network) it follows the mock's route,
    added before the DNAT and removed after it."""
    route = linux.host_route("169.254.169.254", current, toward)
    assert route == expected
    if route:
        goal = goals.firewall_goal(NFT, CONTAINER_TARGETS[:1], CLEAN, frozenset({route}))
        there = converge((NFT,), CLEAN, goal)
        back = converge((NFT,), goal, CLEAN)
        assert text(there).startswith(f"ip route add {route}\nnft -f -")
        assert text(back) == f"nft delete table inet imdsmock\nip route del {route}\n"


def test_host_routes_to_the_endpoints_are_read_from_ip_route() -> None:
    """``ip -o -4 route show`` lines to 169.254.169.254 or .170.2 become ``ip route add``
    arguments; other routes are ignored."""
    text_ = (
        "default via 10.0.0.1 dev eth0\n"
        "169.254.0.0/16 dev eth0 scope link\n"
        "169.254.169.254 via 10.1.0.1 dev eth1 linkdown\n"
        "169.254.170.2 dev eth0 scope link\n"
    )
    assert parse_host_routes(text_) == {
        "169.254.169.254/32 via 10.1.0.1 dev eth1",
        "169.254.170.2/32 dev eth0",
    }


MOCK_ADDRESSES = [
    pytest.param("127.0.0.1", True, id="loopback"),
    pytest.param("127.0.0.7", True, id="loopback-range"),
    pytest.param("10.0.0.5", True, id="an-address-here"),
    pytest.param("10.9.9.9", False, id="elsewhere"),
]


@pytest.mark.parametrize(("host", "allowed"), MOCK_ADDRESSES)
def test_the_mock_must_be_loopback_or_an_address_of_this_machine(host: str, allowed: bool) -> None:
    """Host mode DNATs in OUTPUT, so ``--mock`` is loopback or an address here; otherwise
    one line names the value and lists what is allowed."""
    known = frozenset({"127.0.0.1", "10.0.0.5", "::1"})
    if allowed:
        require_local_mock(host, known)
        return
    with pytest.raises(NetsetupError) as exc:
        require_local_mock(host, known)
    message = str(exc.value)
    assert message.startswith(f"--mock host is {host!r}, which is not an address of this")
    assert "loopback address such as 127.0.0.1 or one of its addresses (10.0.0.5)" in message
    assert "\n" not in message


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


def test_macos_up_records_its_aliases_before_changing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On macOS, ``up`` failing half-way leaves a record naming every alias it may have
    added, so ``down`` removes them (the macOS tools are stood in for by a runner whose
    second change fails, as ``ifconfig`` does without privilege)."""
    if not detect.has_net_admin():
        pytest.skip("host.up checks CAP_NET_ADMIN before it changes anything")
    monkeypatch.setenv(state.RUN_DIR_ENV, str(tmp_path))
    ran: list[str] = []

    def macos_tools(command: Command) -> Result:
        ran.append(str(command))
        if command.argv == ("ifconfig", "lo0"):
            return Result(returncode=0, stdout="\tinet 127.0.0.1 netmask 0xff000000\n", stderr="")
        if len(ran) == 3:
            return Result(returncode=1, stdout="", stderr="ifconfig: ioctl: Permission denied")
        return Result(returncode=0, stdout="", stderr="")

    options = host.HostOptions(platform="macos", credentials_port=1339)
    with pytest.raises(NetsetupError, match=r"command failed: ifconfig lo0 alias 169\.254\.170\.2"):
        host.up(options, runner=macos_tools)
    assert ran[1] == "ifconfig lo0 alias 169.254.169.254 netmask 255.255.255.255"
    record = state.load()
    assert record is not None
    assert record.added == ("169.254.169.254", "169.254.170.2")
    assert host.down(platform="macos", dry_run=True) == (
        "pfctl -a com.apple/imdsmock -F all\n"
        "ifconfig lo0 -alias 169.254.169.254 netmask 255.255.255.255\n"
        "ifconfig lo0 -alias 169.254.170.2 netmask 255.255.255.255\n"
    )


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


def test_why_a_command_failed_is_its_error_line_not_nfts_caret_line() -> None:
    """nft prints the error, the script line and a caret line; the error line is quoted."""
    nft = Result(
        returncode=1,
        stdout="",
        stderr="/dev/stdin:5:5-9: Error: syntax error, unexpected junk\n    junk\n    ^^^^\n",
    )
    assert why_failed(nft) == "/dev/stdin:5:5-9: Error: syntax error, unexpected junk"
    assert why_failed(Result(returncode=4, stdout="", stderr="")) == "exit status 4"
    assert len(why_failed(Result(returncode=1, stdout="", stderr="x" * 500))) == 200


# -- the route record ------------------------------------------------------------------


def test_a_record_of_an_earlier_release_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record without ``backends`` (written before it existed) names its one backend."""
    monkeypatch.setenv(state.RUN_DIR_ENV, str(tmp_path))
    old = {"backend": "iptables-legacy", "added": ["169.254.169.254/32"], "created": []}
    state.path().write_text(json.dumps(old))
    loaded = state.load()
    assert loaded is not None
    assert loaded.backends == ("iptables-legacy",)
    assert loaded.added == ("169.254.169.254/32",)


def test_the_record_is_replaced_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Saving writes a new file and renames it over the old one: no partial file, and no
    temporary file is left beside it."""
    monkeypatch.setenv(state.RUN_DIR_ENV, str(tmp_path))
    record = state.Record(backend="nft", added=("169.254.169.254/32",), backends=("nft",))
    state.save(record)
    state.save(record.merged(state.Record(backend="nft", created=("ip nat",))))
    assert [p.name for p in tmp_path.iterdir()] == [state.path().name]
    assert state.load() == state.Record(
        backend="nft", added=("169.254.169.254/32",), created=("ip nat",), backends=("nft",)
    )
    state.put(None)
    assert state.load() is None
