"""``imdsmock route node``: its rules as exact text, its plans, its input checks.

The plans are converged layouts (:mod:`imdsmock.netsetup.nodeplan`); what they do in a
real node namespace is tested in ``tests/netns/test_netns_node_mode.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from imdsmock.netsetup import cli, node, nodeagent, nodelayout, nodeobserve, nodeplan, nodestate
from imdsmock.netsetup.converge import Step
from imdsmock.netsetup.detect import IPTABLES_LEGACY, IPTABLES_NFT, NFT, ChainState, Firewall
from imdsmock.netsetup.errors import CommandFailed, NetsetupError
from imdsmock.netsetup.nodelayout import NodeLayout
from imdsmock.netsetup.nodeplan import Pattern
from imdsmock.netsetup.plan import Command, Result, render

DNAT = "-p tcp -m tcp --dport 80 -j DNAT --to-destination"
DNAT_ONLY = node.NodeOptions(mock_host="10.0.1.23", interfaces=("cali+", "!cali-host"))
FIREWALLS = [
    pytest.param(IPTABLES_NFT, id="iptables-nft"),
    pytest.param(IPTABLES_LEGACY, id="iptables-legacy"),
    pytest.param(NFT, id="nft"),
]


def text(steps: tuple[Step, ...]) -> str:
    """The dry-run text of converged steps."""
    return render(tuple(step.command for step in steps))


def pats(*texts: str) -> tuple[Pattern, ...]:
    """Parsed interface patterns."""
    return nodeplan.patterns(texts)


def test_interface_patterns_default_to_the_common_cnis_and_docker_bridges() -> None:
    """No --interface: Calico, the VPC CNI, bridges, Cilium, veths, Docker's bridges."""
    names = [str(p) for p in nodeplan.patterns(())]
    assert names[:3] == ["cali+", "eni+", "cni0"]
    assert {"lxc+", "veth+", "weave", "docker0", "br-+"} <= set(names)
    assert not any(p.negated for p in nodeplan.patterns(()))


@pytest.mark.parametrize(
    "pattern",
    ["", "!", "eth 0", "a/b", "cali++", "averyveryverylongname", "+x", "!!eth0"],
)
def test_a_pattern_that_is_no_interface_name_is_one_line(pattern: str) -> None:
    """Bad patterns are refused naming the value and what is allowed."""
    with pytest.raises(NetsetupError, match=r"--interface is .*; expected an interface name"):
        nodeplan.parse_pattern(pattern)


def test_excluding_every_interface_is_refused() -> None:
    """'!+' alone would route nothing: refused rather than silently doing nothing."""
    with pytest.raises(NetsetupError, match=r"'!\+' excludes every interface"):
        pats("!+")


def test_patterns_given_twice_count_once_and_nft_takes_a_star() -> None:
    """A repeated pattern is one rule; nft spells iptables' '+' as '*'."""
    got = pats("cali+", "cni0", "cali+")
    assert [str(p) for p in got] == ["cali+", "cni0"]
    assert [p.nft for p in got] == ["cali*", "cni0"]


TARGETS = nodeplan.dnat_targets("10.0.1.23", 1338, 1340)


def test_iptables_rules_exclude_first_then_dnat_each_address_per_pattern() -> None:
    """Excluded interfaces return first; each endpoint is DNATed once per pod pattern."""
    assert nodeplan.iptables_rules(pats("cali+", "!cali-host", "cni0"), TARGETS) == (
        "-A IMDSMOCK-NODE -i cali-host -j RETURN",
        f"-A IMDSMOCK-NODE -d 169.254.169.254/32 -i cali+ {DNAT} 10.0.1.23:1338",
        f"-A IMDSMOCK-NODE -d 169.254.169.254/32 -i cni0 {DNAT} 10.0.1.23:1338",
        f"-A IMDSMOCK-NODE -d 169.254.170.2/32 -i cali+ {DNAT} 10.0.1.23:1340",
        f"-A IMDSMOCK-NODE -d 169.254.170.2/32 -i cni0 {DNAT} 10.0.1.23:1340",
    )


def test_only_exclusions_dnat_from_every_other_interface() -> None:
    """'!eth0' alone: every interface but eth0 (one rule without -i)."""
    assert nodeplan.iptables_rules(pats("!eth0"), TARGETS[:1]) == (
        "-A IMDSMOCK-NODE -i eth0 -j RETURN",
        f"-A IMDSMOCK-NODE -d 169.254.169.254/32 {DNAT} 10.0.1.23:1338",
    )
    assert nodeplan.nft_rules(pats("!eth0"), TARGETS[:1]) == (
        'prerouting: iifname "eth0" return',
        "prerouting: ip daddr 169.254.169.254 tcp dport 80 dnat ip to 10.0.1.23:1338",
    )


def test_nft_rules_are_written_as_nft_lists_them() -> None:
    """The nft rules match on iifname with '*' and DNAT as nft prints it back."""
    assert nodeplan.nft_rules(pats("lxc+", "!lxc_health"), TARGETS[:1]) == (
        'prerouting: iifname "lxc_health" return',
        'prerouting: iifname "lxc*" ip daddr 169.254.169.254 tcp dport 80 '
        "dnat ip to 10.0.1.23:1338",
    )


def layout_with_rules(fw: Firewall, options: node.NodeOptions = DNAT_ONLY) -> NodeLayout:
    """The node with ``options``' rules in ``fw``, as observed."""
    return options.goal((fw,), fw)


@pytest.mark.parametrize("fw", FIREWALLS)
def test_on_a_clean_node_the_rules_go_in_our_own_chain_or_table(fw: Firewall) -> None:
    """iptables: the chain's rules in one restore commit, then the jump from PREROUTING;
    nft: one script replacing table inet imdsmock_node."""
    steps = nodelayout.converge((fw,), NodeLayout(), layout_with_rules(fw))
    rule = f"-A IMDSMOCK-NODE -d 169.254.169.254/32 -i cali+ {DNAT} 10.0.1.23:1338"
    if fw.kind == "nft":
        assert text(steps) == (
            "nft -f - <<'EOF'\n"
            "table inet imdsmock_node {}\n"
            "delete table inet imdsmock_node\n"
            "table inet imdsmock_node {\n"
            "  chain prerouting {\n"
            "    type nat hook prerouting priority dstnat; policy accept;\n"
            '    iifname "cali-host" return\n'
            '    iifname "cali*" ip daddr 169.254.169.254 tcp dport 80 dnat ip to '
            "10.0.1.23:1338\n"
            "  }\n"
            "}\n"
            "EOF\n"
        )
    else:
        assert text(steps) == (
            f"{fw.v4}-restore -w --noflush <<'EOF'\n"
            "*nat\n"
            ":IMDSMOCK-NODE - [0:0]\n"
            "-A IMDSMOCK-NODE -i cali-host -j RETURN\n"
            f"{rule}\n"
            "COMMIT\n"
            "EOF\n"
            f"{fw.v4} -w -t nat -I PREROUTING 1 -j IMDSMOCK-NODE\n"
        )
    assert {s.backend for s in steps} == {fw.name}


@pytest.mark.parametrize("fw", FIREWALLS)
def test_rules_in_place_plan_nothing_and_removal_takes_exactly_ours(fw: Firewall) -> None:
    """Adding twice changes nothing; removing deletes the jump, our chain or our table."""
    there = layout_with_rules(fw)
    assert nodelayout.converge((fw,), there, layout_with_rules(fw)) == ()
    gone = nodelayout.converge((fw,), there, nodelayout.goal((fw,), None, (), (), None))
    if fw.kind == "nft":
        assert text(gone) == "nft delete table inet imdsmock_node\n"
    else:
        nat = f"{fw.v4} -w -t nat"
        assert text(gone) == (
            f"{nat} -D PREROUTING -j IMDSMOCK-NODE\n"
            f"{nat} -F IMDSMOCK-NODE\n"
            f"{nat} -X IMDSMOCK-NODE\n"
        )


def test_changed_rules_are_replaced_in_one_commit_and_a_lost_jump_is_put_back() -> None:
    """A new port rewrites the chain whole (no moment without rules); a jump someone
    deleted comes back, a doubled one goes."""
    fw = IPTABLES_NFT
    old = layout_with_rules(fw)
    new = node.NodeOptions(mock_host="10.0.1.23", mock_port=1400, interfaces=("cali+",))
    steps = text(nodelayout.converge((fw,), old, new.goal((fw,), fw)))
    assert steps.startswith("iptables-nft-restore -w --noflush")
    assert "10.0.1.23:1400" in steps
    assert "-I PREROUTING" not in steps
    chain = old.chain("iptables-nft")
    for jumps, expected in ((0, "-I PREROUTING 1 -j"), (2, "-D PREROUTING -j")):
        moved = NodeLayout(chains={"iptables-nft": replace(chain, jumps=jumps)})
        assert text(nodelayout.converge((fw,), moved, old)) == (
            f"iptables-nft -w -t nat {expected} IMDSMOCK-NODE\n"
        )


def test_switching_backend_moves_the_rules_and_leaves_none_behind() -> None:
    """Rules in iptables-legacy, now asked for in nft: the table made, the chain removed."""
    scope = (NFT, IPTABLES_LEGACY)
    before = layout_with_rules(IPTABLES_LEGACY)
    steps = nodelayout.converge(scope, before, DNAT_ONLY.goal(scope, NFT))
    assert [s.command.argv[:2] for s in steps] == [
        ("nft", "-f"),
        ("iptables-legacy", "-w"),
        ("iptables-legacy", "-w"),
        ("iptables-legacy", "-w"),
    ]
    assert "-X" in steps[-1].command.argv


def test_dummy_link_mode_adds_the_link_and_addresses_and_no_rule() -> None:
    """--dummy-link: the link, its addresses (ECS too), up; removal deletes the link."""
    options = node.options(mock=None, dummy_link=True, ecs=-1)
    goal = options.goal((IPTABLES_NFT,), IPTABLES_NFT)
    assert text(nodelayout.converge((IPTABLES_NFT,), NodeLayout(), goal)) == (
        "ip link add imdsmock0 type dummy\n"
        "ip addr add 169.254.169.254/32 dev imdsmock0\n"
        "ip addr add 169.254.170.2/32 dev imdsmock0\n"
        "ip link set imdsmock0 up\n"
    )
    less = NodeLayout(link=frozenset({"169.254.169.254/32", "10.9.9.9/32"}))
    assert text(nodelayout.converge((IPTABLES_NFT,), less, goal)) == (
        "ip addr add 169.254.170.2/32 dev imdsmock0\nip addr del 10.9.9.9/32 dev imdsmock0\n"
    )
    assert text(nodelayout.converge((IPTABLES_NFT,), goal, NodeLayout())) == (
        "ip link del imdsmock0\n"
    )


BAD_OPTIONS: list[tuple[dict[str, object], str]] = [
    ({"mock": None}, "--mock is missing; give the address where the mock listens"),
    ({"mock": "127.0.0.1:1338"}, "not loopback or 0.0.0.0"),
    ({"mock": "[::1]:1338"}, "expected an IPv4 address of this node"),
    ({"mock": "0.0.0.0:1338"}, "the listen-on-every-address value"),
    ({"mock": "imds:1338"}, "--mock host is 'imds'; expected the IPv4 address"),
    ({"mock": "10.0.0.5:99999"}, "--mock port is '99999'"),
    ({"mock": "10.0.0.5", "ecs": "x"}, "--ecs port is 'x'"),
    ({"mock": "10.0.0.5", "interfaces": ("eth 0",)}, "--interface is 'eth 0'"),
    ({"mock": "10.0.0.5:1338", "dummy_link": True}, "with --dummy-link; there the mock"),
    ({"mock": None, "dummy_link": True, "interfaces": ("cali+",)}, "drop --interface"),
    ({"mock": None, "dummy_link": True, "ecs": "1340"}, "give --ecs alone"),
]


@pytest.mark.parametrize(("given", "message"), BAD_OPTIONS, ids=[m for _, m in BAD_OPTIONS])
def test_bad_node_options_are_one_line(given: dict[str, object], message: str) -> None:
    """Each bad value is refused before anything is looked at, naming it."""
    with pytest.raises(NetsetupError) as caught:
        node.options(**given)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_good_node_options_fill_in_the_ports() -> None:
    """Port 1338 by default, --ecs alone is 1340, the dummy link's mock is the address."""
    got = node.options(mock="10.0.0.5", ecs=-1, interfaces=("cni0",))
    assert (got.mock_host, got.mock_port, got.ecs_port, got.interfaces) == (
        "10.0.0.5",
        1338,
        1340,
        ("cni0",),
    )
    assert node.options(mock="10.0.0.5:80", ecs="1500").ecs_port == 1500
    assert node.options(mock="169.254.169.254:80", dummy_link=True).dummy_link


def fake(outputs: dict[tuple[str, ...], Result]) -> Callable[[Command], Result]:
    """A runner answering read-only commands from ``outputs`` (else: exit status 1)."""

    def runner(command: Command) -> Result:
        return outputs.get(command.argv, Result(returncode=1, stdout="", stderr="nope"))

    return runner


def ok(stdout: str = "") -> Result:
    """A command that succeeded with ``stdout``."""
    return Result(returncode=0, stdout=stdout, stderr="")


def only(*programs: str) -> Callable[[str], str | None]:
    """A ``which`` that finds only ``programs``."""
    return lambda name: f"/usr/sbin/{name}" if name in programs else None


NAT_S = ("-w", "-t", "nat", "-S")
KUBE = "-P PREROUTING ACCEPT\n-A PREROUTING -j KUBE-SERVICES\n-A KUBE-SERVICES -j RETURN\n"


@pytest.mark.parametrize(
    ("legacy", "nft", "expected"),
    [
        (KUBE, "", "iptables-legacy"),
        ("", KUBE, "iptables-nft"),
        ("", "", "iptables-nft"),
    ],
    ids=["node-rules-legacy", "node-rules-nft", "tie-system"],
)
def test_auto_backend_is_the_one_holding_the_nodes_nat_rules(
    legacy: str, nft: str, expected: str
) -> None:
    """As Kubernetes' iptables wrapper does: whichever backend holds more nat rules."""
    runner = fake(
        {
            ("iptables", "--version"): ok("iptables v1.8.9 (nf_tables)"),
            ("iptables-legacy", *NAT_S): ok(legacy),
            ("iptables-nft", *NAT_S): ok(nft),
        }
    )
    which = only("iptables", "iptables-legacy", "iptables-nft")
    assert nodeobserve.firewall("auto", runner, which, loaded=lambda _: True).name == expected
    # A legacy table never loaded holds nothing: not even listed (that would load it).
    assert (
        nodeobserve.firewall("auto", runner, which, loaded=lambda _: False).name == "iptables-nft"
    )


def test_observe_reads_chain_table_and_link_or_names_what_it_could_not_read() -> None:
    """Our chain from -S, our nft table, the link's IPv4 addresses; a failed read is named."""
    chain = "-N IMDSMOCK-NODE\n-A PREROUTING -j IMDSMOCK-NODE\n-A IMDSMOCK-NODE -i x -j RETURN\n"
    table = (
        "table inet imdsmock_node {\n chain prerouting {\n"
        "  type nat hook prerouting priority dstnat; policy accept;\n"
        '  iifname "x" return\n }\n}\n'
    )
    link = "7: imdsmock0    inet 169.254.169.254/32 scope global imdsmock0\n"
    runner = fake(
        {
            ("iptables-nft", *NAT_S): ok(chain),
            ("nft", "list", "table", "inet", "imdsmock_node"): ok(table),
            ("ip", "-o", "-4", "addr", "show", "dev", "imdsmock0"): ok(link),
            ("nft", "list", "table", "ip", "nat"): ok(ONLY_OURS),
        }
    )
    scope = (IPTABLES_NFT, NFT, IPTABLES_LEGACY)
    seen = nodeobserve.observe(scope, runner, loaded=lambda _: False, which=only("nft"))
    assert (seen.nat, seen.nat_ours) == (BOTH, BOTH)
    assert seen.chain("iptables-nft") == ChainState(
        exists=True, rules=("-A IMDSMOCK-NODE -i x -j RETURN",), jumps=1
    )
    assert seen.nft_rules == ('prerouting: iifname "x" return',)
    assert seen.link == frozenset({"169.254.169.254/32"})
    assert not seen.unread
    lines = nodelayout.describe(seen)
    assert lines[0] == "chain IMDSMOCK-NODE (iptables-nft): 1 rule(s), 1 jump(s) from PREROUTING"
    assert "link imdsmock0: 169.254.169.254/32" in lines
    blind = nodeobserve.observe((IPTABLES_NFT,), fake({}), loaded=lambda _: True, which=only())
    assert blind.unread == "iptables-nft -w -t nat -S: nope"


ONLY_OURS = """table ip nat {
	chain IMDSMOCK-NODE {
		iifname "cni0" ip daddr 169.254.169.254 counter packets 0 bytes 0 xt target "DNAT"
	}

	chain PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		counter packets 0 bytes 0 jump IMDSMOCK-NODE
	}
}
"""
KUBE_TOO = ONLY_OURS.replace(
    "jump IMDSMOCK-NODE\n", "jump IMDSMOCK-NODE\n\t\tcounter packets 0 bytes 0 jump KUBE-SERVICES\n"
)
POSTROUTING_TOO = ONLY_OURS.replace(
    "\tchain PREROUTING",
    "\tchain POSTROUTING {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
    "\t\tcounter packets 0 bytes 0 masquerade\n\t}\n\n\tchain PREROUTING",
)
BOTH = frozenset({"ip nat", "ip nat PREROUTING"})


@pytest.mark.parametrize(
    ("listing", "ours"),
    [
        (ONLY_OURS, BOTH),
        (KUBE_TOO, frozenset()),
        (POSTROUTING_TOO, frozenset({"ip nat PREROUTING"})),
    ],
    ids=["only-ours", "kube-proxy-jump-too", "masquerade-elsewhere"],
)
def test_the_nat_table_and_its_prerouting_chain_are_ours_only_when_nothing_else_is_there(
    listing: str, ours: frozenset[str]
) -> None:
    """iptables-nft's ``ip nat`` as nft lists it: which parts hold nothing but ours."""
    assert nodelayout.parse_nat(listing) == (BOTH, ours)
    assert nodelayout.parse_nat(None) == (frozenset(), frozenset())


def test_removal_deletes_the_nat_table_or_chain_our_changes_made_when_only_ours_is_left() -> None:
    """What iptables-nft made for us goes with our chain (it cannot delete it itself); what
    was there before, or now holds someone else's rules, stays."""
    fw = IPTABLES_NFT
    there = replace(layout_with_rules(fw), nat=BOTH, nat_ours=BOTH)
    nothing = nodelayout.goal((fw,), None, (), (), None)

    def removal(created: frozenset[str], ours: frozenset[str] = BOTH) -> list[str]:
        now = replace(there, nat_ours=ours)
        steps = nodelayout.converge((fw,), now, nodelayout.settle_nat(nothing, now, created))
        return text(steps).splitlines()[3:]

    assert removal(frozenset({"ip nat"})) == ["nft delete table ip nat"]
    assert removal(frozenset({"ip nat PREROUTING"})) == ["nft delete chain ip nat PREROUTING"]
    assert removal(frozenset({"ip nat"}), frozenset({"ip nat PREROUTING"})) == [
        "nft delete chain ip nat PREROUTING"
    ]
    assert removal(frozenset()) == []
    assert removal(frozenset({"ip nat"}), frozenset()) == []
    # Installing on a bare node: the first commands are marked as making the table.
    bare = NodeLayout(nat=frozenset())
    goal = nodelayout.settle_nat(layout_with_rules(fw), bare, frozenset())
    assert goal.nat == BOTH
    assert {s.created for s in nodelayout.converge((fw,), bare, goal)} == {"ip nat"}
    # A rollback's target says what was there; without nft nothing is known or deleted.
    assert nodelayout.settle_nat(bare, there, frozenset()) is bare
    assert nodelayout.settle_nat(nothing, replace(there, nat=None), BOTH).nat is None


def test_the_record_is_written_whole_and_an_unreadable_one_says_how_to_recover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record round-trips; a damaged one is one line naming the file."""
    monkeypatch.setenv("IMDSMOCK_RUN_DIR", str(tmp_path))
    assert nodestate.load() is None
    nodestate.put(nodestate.NodeRecord(backends=("iptables-nft",), link=True, created=("ip nat",)))
    assert json.loads(nodestate.path().read_text()) == {
        "backends": ["iptables-nft"],
        "link": True,
        "created": ["ip nat"],
    }
    assert nodestate.load() == nodestate.NodeRecord(
        backends=("iptables-nft",), link=True, created=("ip nat",)
    )
    nodestate.path().write_text("{")
    with pytest.raises(NetsetupError, match="delete it to start over"):
        nodestate.load()
    nodestate.put(None)
    assert not nodestate.path().exists()


NODE_BAD_ARGV = [
    pytest.param(["node", "--down", "--mock", "10.0.0.5"], "--mock with --down", id="down-mock"),
    pytest.param(["node", "--status", "--ecs"], "--ecs with --status", id="status-ecs"),
    pytest.param(["node", "--once", "--down"], "not allowed with argument", id="once-down"),
    pytest.param(["node", "--interface", "cali+"], "--mock is missing", id="no-mock"),
]


@pytest.mark.parametrize(("argv", "message"), NODE_BAD_ARGV)
def test_route_node_bad_arguments_are_one_line_and_status_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the CLI: one line on stderr, exit status 2, nothing looked at."""
    monkeypatch.delenv("IMDSMOCK_ROUTE_TO", raising=False)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("imdsmock route: error: ")
    assert err.count("\n") == 1
    assert message in err


def test_route_node_help_describes_the_per_node_routing(capsys: pytest.CaptureFixture[str]) -> None:
    """--help says what is routed from where, the chain, the dummy link and the preStop."""
    assert cli.main(["node", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for words in (
        "Per-node routing",
        "arriving on the pods' interfaces is DNATed to the mock on this node",
        "Only PREROUTING",
        "IMDSMOCK-NODE",
        "--dummy-link",
        "a preStop hook",
        "--hop-limit 2",
        "cali+ eni+ cni0",
    ):
        assert words in out


class FakeNode:
    """The iptables-nft nat table of a node as a runner sees it: ``-S`` reads it, restore,
    ``-I``, ``-D``, ``-F``, ``-X`` change it. ``fail`` lists the changing calls (counted
    from 1) that fail without changing anything; ``blind`` makes every read fail."""

    def __init__(self, *, fail: tuple[int, ...] = (), blind: bool = False) -> None:
        self.chain: list[str] | None = None
        self.jumps = 0
        self.fail = fail
        self.blind = blind
        self.changes = 0

    def __call__(self, command: Command) -> Result:
        argv = command.argv
        if argv == ("iptables", "--version"):
            return ok("iptables v1.8.9 (nf_tables)")
        if argv[:1] == ("ip",) or argv[:2] == ("nft", "list"):
            return Result(returncode=1, stdout="", stderr="does not exist / No such file")
        if argv[-1] == "-S":
            if self.blind:
                return Result(
                    returncode=4, stdout="", stderr="Permission denied (you must be root)"
                )
            lines = ["-P PREROUTING ACCEPT"]
            if self.chain is not None:
                lines += ["-N IMDSMOCK-NODE", *["-A PREROUTING -j IMDSMOCK-NODE"] * self.jumps]
                lines += self.chain
            return ok("\n".join(lines) + "\n")
        self.changes += 1
        if self.changes in self.fail:
            return Result(
                returncode=4, stdout="", stderr="iptables: Resource temporarily unavailable."
            )
        if argv[0].endswith("-restore"):
            assert command.stdin is not None
            self.chain = [line for line in command.stdin.splitlines() if line.startswith("-A ")]
        elif "-I" in argv:
            self.jumps += 1
        elif "-D" in argv:
            self.jumps -= 1
        elif "-F" in argv:
            self.chain = []
        elif "-X" in argv:
            self.chain = None
        return ok()


WHICH = only("iptables", "iptables-nft")
OPTIONS = node.NodeOptions(mock_host="10.0.1.23", interfaces=("cni0",))


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The record goes to a directory of this test."""
    monkeypatch.setenv("IMDSMOCK_RUN_DIR", str(tmp_path))
    return tmp_path


def test_install_then_remove_on_a_node_and_the_record_follows(run_dir: Path) -> None:
    """install converges (a second one changes nothing), remove takes it all away."""
    fake = FakeNode()
    first = node.install(OPTIONS, runner=fake, which=WHICH)
    assert (first.changed, first.backend) == (2, "iptables-nft")
    assert fake.jumps == 1
    assert nodestate.load() == nodestate.NodeRecord(backends=("iptables-nft",))
    assert node.install(OPTIONS, runner=fake, which=WHICH).changed == 0
    assert "(already in place)" in node.summary(
        OPTIONS, node.install(OPTIONS, runner=fake, which=WHICH)
    )
    assert nodeagent.remove(first.scope, fake) == 3
    assert (fake.chain, fake.jumps) == (None, 0)
    assert nodestate.load() is None


def test_a_failed_step_rolls_back_and_a_failed_rollback_says_what_is_left(run_dir: Path) -> None:
    """The jump fails: the chain made before it goes again. If removing it fails too, the
    line says the rollback did not finish and how to finish it."""
    fake = FakeNode(fail=(2,))
    with pytest.raises(CommandFailed, match="rolled back, the node is as it was before"):
        node.install(OPTIONS, runner=fake, which=WHICH)
    assert (fake.chain, fake.jumps, nodestate.load()) == (None, 0, None)
    stuck = FakeNode(fail=(2, 3, 4, 5))
    with pytest.raises(CommandFailed, match=r"rolling back did not finish .*--down' removes"):
        node.install(OPTIONS, runner=stuck, which=WHICH)


def test_nothing_changes_when_the_rules_cannot_be_read(run_dir: Path) -> None:
    """A plan from a wrong picture could remove what is not ours: refused; the dry run
    shows the whole plan and says why."""
    blind = FakeNode(blind=True)
    with pytest.raises(CommandFailed, match="cannot read the node's current rules"):
        node.install(OPTIONS, runner=blind, which=WHICH)
    assert blind.changes == 0
    shown = node.dry_run(OPTIONS, runner=blind, which=WHICH)
    assert shown.startswith("# current rules unreadable: full plan\niptables-restore -w")
    assert nodeobserve.converge_to((IPTABLES_NFT,), NodeLayout(), blind)[1].startswith(
        "cannot read"
    )
    assert "rules: unreadable" in nodeagent.status(runner=blind)


def test_removal_retries_with_growing_pauses_then_gives_up_in_one_line(run_dir: Path) -> None:
    """Removal commands that keep failing: five attempts, pauses 0.5, 1, 2, 4 s, then one
    line saying to run --down again."""
    fake = FakeNode()
    installed = node.install(OPTIONS, runner=fake, which=WHICH)
    fake.fail = tuple(range(fake.changes + 1, fake.changes + 100))
    pauses: list[float] = []
    with pytest.raises(CommandFailed, match=r"did not finish after 5 attempts .* --down' again"):
        nodeagent.remove(installed.scope, fake, sleep=pauses.append)
    assert pauses == [0.5, 1.0, 2.0, 4.0]


def test_down_dry_run_and_status_show_what_is_ours(run_dir: Path) -> None:
    """--down --dry-run prints the removal, or that nothing of ours is there."""
    fake = FakeNode()
    assert (
        nodeagent.down(dry_run=True, runner=fake, which=WHICH)
        == "# nothing to do: nothing of ours\n"
    )
    node.install(OPTIONS, runner=fake, which=WHICH)
    assert nodeagent.down(dry_run=True, runner=fake, which=WHICH).splitlines() == [
        "iptables -w -t nat -D PREROUTING -j IMDSMOCK-NODE",
        "iptables -w -t nat -F IMDSMOCK-NODE",
        "iptables -w -t nat -X IMDSMOCK-NODE",
    ]
    assert nodeagent.down(runner=fake, which=WHICH) == "imdsmock route node: removed (3 commands)\n"
    assert nodeagent.down(runner=fake, which=WHICH) == "imdsmock route node: nothing to remove\n"


def test_without_any_firewall_tool_only_the_link_is_looked_at() -> None:
    """--down and --status on a machine with neither iptables nor nft: nft's scope, whose
    table cannot be there; the dummy link still can."""
    assert nodeagent._any_firewall("auto", FakeNode(), only()) is NFT


def test_the_dummy_link_summary_names_the_link() -> None:
    """One line: the addresses on imdsmock0, and that the mock listens there."""
    options = node.options(mock=None, dummy_link=True)
    installed = node.Installed(
        scope=(NFT,), goal=options.goal((NFT,), NFT), changed=3, backend="nft"
    )
    assert node.summary(options, installed) == (
        "imdsmock route node: 169.254.169.254/32 on link imdsmock0; the mock listens there\n"
    )
