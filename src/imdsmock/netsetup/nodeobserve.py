"""Node mode's looks at the namespace: which firewall, what of ours is there, and the
converging step every change ends with (look, run the plan, look again).

Only read-only commands run here, except in :func:`converge_to`.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable

from imdsmock.netsetup import detect, nodelayout, nodeplan
from imdsmock.netsetup.detect import IPTABLES_LEGACY, IPTABLES_NFT, NFT, Firewall, parse_nft_table
from imdsmock.netsetup.layout import Scope, legacy_loaded
from imdsmock.netsetup.nodelayout import NodeLayout
from imdsmock.netsetup.nodeplan import LINK
from imdsmock.netsetup.plan import Runner, cmd, run, why_failed

Which = Callable[[str], str | None]
Loaded = Callable[[int], bool]


def firewall(
    choice: detect.BackendChoice,
    runner: Runner = run,
    which: Which = shutil.which,
    loaded: Loaded = legacy_loaded,
) -> Firewall:
    """The backend asked for; ``auto``: the one the node's own nat rules are in.

    In a container the image's ``iptables`` may be the nf_tables one while the node's
    kube-proxy or Docker write legacy rules (or the reverse); as Kubernetes' iptables
    wrapper does, ``auto`` picks the backend holding more nat rules, else the system's.
    """
    system = detect.detect_firewall(choice, which=which, runner=runner)
    both = which("iptables-legacy") is not None and which("iptables-nft") is not None
    if choice != "auto" or system.kind != "iptables" or not both or not loaded(4):
        return system
    legacy, nft = _nat_rules(runner, "iptables-legacy"), _nat_rules(runner, "iptables-nft")
    if legacy != nft:
        return IPTABLES_LEGACY if legacy > nft else IPTABLES_NFT
    return system


def _nat_rules(runner: Runner, program: str) -> int:
    shown = runner(cmd(program, "-w", "-t", "nat", "-S"))
    lines = shown.stdout.splitlines() if shown.returncode == 0 else []
    return sum(1 for line in lines if line.startswith("-A ") and nodeplan.CHAIN not in line)


def scope_of(fw: Firewall, which: Which = shutil.which) -> Scope:
    """``fw`` and every other installed backend: ours is found there by name and removed."""
    found = [fw]
    for other in (IPTABLES_NFT, IPTABLES_LEGACY, NFT):
        if all(other.name != f.name for f in found) and which(other.v4) is not None:
            found.append(other)
    return tuple(found)


def observe(
    scope: Scope,
    runner: Runner = run,
    loaded: Loaded = legacy_loaded,
    which: Which = shutil.which,
) -> NodeLayout:
    """Read our chain (IPv4 nat), table and link, running only read-only commands; with
    iptables-nft in scope and nft at hand, the ``ip nat`` table too.

    A legacy table not loaded yet is not listed (listing would load it for good).
    """
    failed: list[str] = []

    def read(*argv: str, absent: str) -> str | None:
        result = runner(cmd(*argv))
        if result.returncode == 0:
            return result.stdout
        if absent not in result.stderr and not failed:
            failed.append(f"{shlex.join(argv)}: {why_failed(result)}")
        return None

    chains = {}
    nft_rules: tuple[str, ...] | None = None
    for fw in scope:
        if fw.kind == "nft":
            listing = read("nft", "list", "table", "inet", nodeplan.NFT_TABLE, absent="No such")
            nft_rules = None if listing is None else parse_nft_table(listing)
        elif fw.variant == "legacy" and not loaded(4):
            chains[fw.v4] = detect.ChainState()
        else:
            listing = read(fw.v4, "-w", "-t", "nat", "-S", absent="\0")
            chains[fw.v4] = nodelayout.parse_chain(listing or "")
    shown = read("ip", "-o", "-4", "addr", "show", "dev", LINK, absent="does not exist")
    link = None if shown is None else detect.parse_addresses(shown)
    nat, nat_ours = None, frozenset[str]()
    if any(fw.variant == "nf_tables" for fw in scope) and which("nft") is not None:
        table = read("nft", "list", "table", *nodeplan.NAT_TABLE.split(), absent="No such")
        nat, nat_ours = nodelayout.parse_nat(table)
    return NodeLayout(
        chains=chains,
        nft_rules=nft_rules,
        link=link,
        nat=nat,
        nat_ours=nat_ours,
        unread=failed[0] if failed else "",
    )


def converge_to(
    scope: Scope,
    target: NodeLayout,
    runner: Runner = run,
    created: frozenset[str] = frozenset(),
    which: Which = shutil.which,
) -> tuple[int, str]:
    """Look, converge to ``target``, look again: the commands run and what went wrong
    (empty: the namespace now holds ``target``). ``created``: what of the nat table our
    changes made, to delete again once nothing but ours is in it."""
    now = observe(scope, runner, which=which)
    if now.unread:
        return 0, f"cannot read {now.unread}"
    target = nodelayout.settle_nat(target, now, created)
    steps = nodelayout.converge(scope, now, target)
    trouble = ""
    for step in steps:
        result = runner(step.command)
        if result.returncode != 0 and not trouble:
            trouble = f"{shlex.join(step.command.argv)}: {why_failed(result)}"
    after = observe(scope, runner, which=which)
    if after.unread:
        return len(steps), trouble or f"cannot read {after.unread}"
    if after.same_as(target):
        return len(steps), ""
    return len(steps), trouble or "the rules still differ from what was asked"
