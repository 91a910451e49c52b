"""Node mode's layouts: what of ours is in a node's namespace, and the plan between two.

A :class:`NodeLayout` is both an observation (:func:`.nodeobserve.observe`) and a goal
(:func:`goal`); :func:`converge` gives the commands from one to the other, which is how
installing, removing and a rollback are all built, as :mod:`.converge` does for ``route up``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from imdsmock.netsetup.converge import Step
from imdsmock.netsetup.detect import ChainState, Firewall, nat_table_only_ours
from imdsmock.netsetup.layout import Scope, programs
from imdsmock.netsetup.nodeplan import (
    CHAIN,
    HOOK,
    LINK,
    NAT_HOOK,
    NAT_TABLE,
    NFT_TABLE,
    chain_script,
    nft_script,
    restore_program,
)
from imdsmock.netsetup.plan import Command, cmd


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeLayout:
    """Our parts of a node's namespace: the chain per iptables program, the nft table
    (``None``: absent), the dummy link's addresses (``None``: no link). ``nat`` says which
    of :data:`NAT_TABLE` and :data:`NAT_HOOK` exist (``None``: not known, without nft or an
    nf_tables iptables in scope) and ``nat_ours`` which of them hold nothing but our parts.
    ``unread`` names the first read that failed (then nothing may be changed)."""

    chains: Mapping[str, ChainState] = field(default_factory=dict)
    nft_rules: tuple[str, ...] | None = None
    link: frozenset[str] | None = None
    nat: frozenset[str] | None = None
    nat_ours: frozenset[str] = frozenset()
    unread: str = ""

    def chain(self, program: str) -> ChainState:
        """Our chain as ``program`` sees it (absent when not in scope)."""
        return self.chains.get(program, ChainState())

    def same_as(self, other: NodeLayout) -> bool:
        """Whether both hold the same chains, nft rules and link."""
        names = set(self.chains) | set(other.chains)
        return (
            all(self.chain(p) == other.chain(p) for p in names)
            and self.nft_rules == other.nft_rules
            and self.link == other.link
            and (self.nat is None or other.nat is None or self.nat == other.nat)
        )

    @property
    def wants_nat_chain(self) -> bool:
        """Whether our chain is wanted in an iptables program (iptables-nft then makes
        :data:`NAT_TABLE` and :data:`NAT_HOOK` if missing)."""
        return any(chain.exists for chain in self.chains.values())


def parse_nat(list_text: str | None) -> tuple[frozenset[str], frozenset[str]]:
    """From ``nft list table ip nat`` (``None``: no such table): which of the table and its
    PREROUTING chain exist, and which of them hold only our parts."""
    if list_text is None:
        return frozenset(), frozenset()
    present, ours = {NAT_TABLE}, set()
    if nat_table_only_ours(list_text, CHAIN):
        ours.add(NAT_TABLE)
    hook = re.search(r"chain PREROUTING \{(.*?)\n\s*\}", list_text, flags=re.DOTALL)
    if hook is not None:
        present.add(NAT_HOOK)
        lines = [line.strip() for line in hook.group(1).splitlines() if line.strip()]
        policy = [line for line in lines if line.startswith("type ")]
        rules = [line for line in lines if not line.startswith("type ")]
        if all("policy accept" in p for p in policy) and all(
            r.endswith(f"jump {CHAIN}") for r in rules
        ):
            ours.add(NAT_HOOK)
    return frozenset(present), frozenset(ours)


def settle_nat(target: NodeLayout, now: NodeLayout, created: frozenset[str]) -> NodeLayout:
    """``target`` with its ``nat`` part decided against what is there ``now``.

    A target that already says (a rollback's picture of before) is kept. Wanting our chain,
    what iptables-nft makes on the way is wanted too; else the table and chain that our
    changes ``created`` go, if they hold nothing but ours by now.
    """
    if now.nat is None:
        return replace(target, nat=None)
    if target.nat is not None:
        return target
    if target.wants_nat_chain:
        return replace(target, nat=now.nat | {NAT_TABLE, NAT_HOOK})
    made = created | ({NAT_HOOK} if NAT_TABLE in created else set())
    return replace(target, nat=now.nat - (made & now.nat_ours))


def parse_chain(save_text: str) -> ChainState:
    """Our chain in ``iptables -t nat -S`` output: present?, its rules, jumps from PREROUTING."""
    lines = [line.strip() for line in save_text.splitlines()]
    return ChainState(
        exists=f"-N {CHAIN}" in lines,
        rules=tuple(line for line in lines if line.startswith(f"-A {CHAIN} ")),
        jumps=sum(1 for line in lines if line == f"-A {HOOK} -j {CHAIN}"),
    )


def goal(
    scope: Scope,
    fw: Firewall | None,
    rules: tuple[str, ...],
    nft: tuple[str, ...],
    link: frozenset[str] | None,
) -> NodeLayout:
    """Our chain (``rules``) or table (``nft``) in ``fw`` only, and ``link``.

    ``fw`` ``None`` (dummy-link mode, or removal): no rules anywhere.
    """
    chains: dict[str, ChainState] = {}
    nft_rules_: tuple[str, ...] | None = None
    for each in scope:
        mine = fw is not None and each.name == fw.name
        if each.kind == "nft":
            nft_rules_ = nft if mine else nft_rules_
            continue
        for program, family in programs(each):
            wanted = mine and family == 4
            chains[program] = (
                ChainState(exists=True, rules=rules, jumps=1) if wanted else ChainState()
            )
    return NodeLayout(chains=chains, nft_rules=nft_rules_, link=link)


def converge(scope: Scope, current: NodeLayout, target: NodeLayout) -> tuple[Step, ...]:
    """Steps from ``current`` to ``target``; nothing when they agree.

    Order: the link and its addresses, our chains and table built (the rules of a chain
    replaced whole by ``iptables-restore --noflush``, then the jump), the ones no longer
    wanted removed (jump, flush, delete), the link removed last.
    """
    steps: list[Step] = []
    if target.link is not None:
        if current.link is None:
            steps.append(Step(command=cmd("ip", "link", "add", LINK, "type", "dummy")))
        have = current.link or frozenset()
        for prefix in sorted(target.link - have):
            steps.append(Step(command=cmd("ip", "addr", "add", prefix, "dev", LINK)))
        for prefix in sorted(have - target.link):
            steps.append(Step(command=cmd("ip", "addr", "del", prefix, "dev", LINK)))
        if current.link is None:
            steps.append(Step(command=cmd("ip", "link", "set", LINK, "up")))
    for fw in scope:
        made = _made_nat(fw, current, target)
        steps += [
            Step(
                command=c,
                backend=fw.name,
                created=made if "-I" in c.argv or "--noflush" in c.argv else "",
            )
            for c in _build(fw, current, target)
        ]
    for fw in scope:
        steps += [Step(command=c, backend=fw.name) for c in _remove(fw, current, target)]
    if current.nat is not None and target.nat is not None:
        gone = (current.nat - target.nat) & current.nat_ours
        if NAT_TABLE in gone:
            steps.append(Step(command=cmd("nft", "delete", "table", *NAT_TABLE.split())))
        elif NAT_HOOK in gone:
            steps.append(Step(command=cmd("nft", "delete", "chain", *NAT_HOOK.split())))
    if target.link is None and current.link is not None:
        steps.append(Step(command=cmd("ip", "link", "del", LINK)))
    return tuple(steps)


def _made_nat(fw: Firewall, current: NodeLayout, target: NodeLayout) -> str:
    """What of the nat table and its PREROUTING chain building our chain in ``fw`` makes:
    ``ip nat`` (the table, and the chain in it) or ``ip nat PREROUTING`` (the chain)."""
    if fw.variant != "nf_tables" or current.nat is None or not target.wants_nat_chain:
        return ""
    if NAT_TABLE not in current.nat:
        return NAT_TABLE
    return NAT_HOOK if NAT_HOOK not in current.nat else ""


def _build(fw: Firewall, current: NodeLayout, target: NodeLayout) -> list[Command]:
    if fw.kind == "nft":
        wanted = target.nft_rules
        if wanted is None or wanted == current.nft_rules:
            return []
        return [cmd("nft", "-f", "-", stdin=nft_script(wanted))]
    commands: list[Command] = []
    for program, _ in programs(fw):
        have, want = current.chain(program), target.chain(program)
        if not want.exists:
            continue
        if not have.exists or have.rules != want.rules:
            script = chain_script(want.rules)
            commands.append(cmd(restore_program(program), "-w", "--noflush", stdin=script))
        nat = (program, "-w", "-t", "nat")
        commands += [cmd(*nat, "-I", HOOK, "1", "-j", CHAIN)] * max(0, want.jumps - have.jumps)
        commands += [cmd(*nat, "-D", HOOK, "-j", CHAIN)] * max(0, have.jumps - want.jumps)
    return commands


def _remove(fw: Firewall, current: NodeLayout, target: NodeLayout) -> list[Command]:
    if fw.kind == "nft":
        if current.nft_rules is None or target.nft_rules is not None:
            return []
        return [cmd("nft", "delete", "table", "inet", NFT_TABLE)]
    commands: list[Command] = []
    for program, _ in programs(fw):
        have = current.chain(program)
        if target.chain(program).exists:
            continue
        nat = (program, "-w", "-t", "nat")
        commands += [cmd(*nat, "-D", HOOK, "-j", CHAIN)] * have.jumps
        if have.exists:
            commands += [cmd(*nat, "-F", CHAIN), cmd(*nat, "-X", CHAIN)]
    return commands


def describe(layout: NodeLayout) -> list[str]:
    """Lines saying what of ours is in place (for ``--status`` and the removal's check)."""
    lines: list[str] = []
    for program, chain in sorted(layout.chains.items()):
        if chain.exists or chain.jumps:
            jumps = f", {chain.jumps} jump(s) from {HOOK}"
            lines.append(f"chain {CHAIN} ({program}): {len(chain.rules)} rule(s){jumps}")
            lines += [f"  {rule}" for rule in chain.rules]
    if layout.nft_rules is not None:
        lines.append(f"table inet {NFT_TABLE}: {len(layout.nft_rules)} rule(s)")
        lines += [f"  {rule}" for rule in layout.nft_rules]
    if layout.link is not None:
        held = ", ".join(sorted(layout.link)) or "no address"
        lines.append(f"link {LINK}: {held}")
    return lines
