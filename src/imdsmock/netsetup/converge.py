"""The commands that turn one :class:`~.layout.Layout` into another.

``up`` converges from what is observed to what was asked, ``down`` to the namespace as it
was before the first ``up``, and a rollback back to what was observed before the change.
Each :class:`Step` also names what the record must list before it runs (an address it
adds, the backend it writes to, an iptables-nft ``nat`` table it brings into being).
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass

from imdsmock.netsetup.detect import CHAIN, NAT_TABLES, NFT_TABLE, ChainState, Firewall
from imdsmock.netsetup.layout import MANAGED, Layout, Scope, programs
from imdsmock.netsetup.linux import nft_table_script
from imdsmock.netsetup.plan import Command, cmd


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One command, and what the record must name before it runs (empty: nothing new)."""

    command: Command
    added: str = ""
    backend: str = ""
    created: str = ""


def converge(scope: Scope, current: Layout, target: Layout) -> tuple[Step, ...]:
    """Steps from ``current`` to ``target``: nothing when they already agree.

    Order: addresses and routes added, our chains and table built, the ones no longer
    wanted removed, then ``nat`` tables, routes and addresses removed. A ``nat`` table is
    only deleted while it holds nothing but our parts.
    """
    steps: list[Step] = []
    for prefix in MANAGED:
        if prefix in target.addresses and prefix not in current.addresses:
            family = f"-{ipaddress.ip_interface(prefix).version}"
            steps.append(
                Step(command=cmd("ip", family, "addr", "add", prefix, "dev", "lo"), added=prefix)
            )
    for route in sorted(target.routes - current.routes):
        steps.append(Step(command=cmd("ip", "route", "add", *route.split())))
    steps += _nat_tables_added(scope, current, target)
    for fw in scope:
        steps += _build(fw, current, target)
    for fw in scope:
        steps += _remove(fw, current, target)
    for table in sorted(current.nat_tables - target.nat_tables):
        if table in current.only_ours:
            steps.append(Step(command=cmd("nft", "delete", "table", *table.split())))
    for route in sorted(current.routes - target.routes):
        steps.append(Step(command=cmd("ip", "route", "del", *route.split())))
    for prefix in reversed(MANAGED):
        if prefix in current.addresses and prefix not in target.addresses:
            family = f"-{ipaddress.ip_interface(prefix).version}"
            steps.append(Step(command=cmd("ip", family, "addr", "del", prefix, "dev", "lo")))
    return tuple(steps)


def _build(fw: Firewall, current: Layout, target: Layout) -> list[Step]:
    if fw.kind == "nft":
        rules = target.nft_rules
        if rules is None or rules == current.nft_rules:
            return []
        script = nft_table_script(r.removeprefix("output: ") for r in rules)
        return [Step(command=cmd("nft", "-f", "-", stdin=script), backend=fw.name)]
    steps: list[Step] = []
    for program, family in programs(fw):
        have, want = current.chain(program), target.chain(program)
        if not want.exists:
            continue
        commands = _chain_commands(program, have, want)
        created = ""
        table = NAT_TABLES[family]
        if fw.variant == "nf_tables" and current.nat_known and table not in current.nat_tables:
            created = table
        if fw.variant == "nf_tables" and not have.exists and table in current.only_ours:
            # Only empty built-in chains are left in it: iptables-nft makes it again with
            # our chain first, as it did the first time (nft lists chains in that order).
            commands.insert(0, cmd("nft", "delete", "table", *table.split()))
        steps += [Step(command=c, backend=fw.name, created=created) for c in commands]
    return steps


def _chain_commands(program: str, have: ChainState, want: ChainState) -> list[Command]:
    nat = (program, "-w", "-t", "nat")
    commands: list[Command] = []
    if not have.exists:
        commands.append(cmd(*nat, "-N", CHAIN))
    if have.rules != want.rules:
        if have.rules:
            commands.append(cmd(*nat, "-F", CHAIN))
        commands += [cmd(*nat, *shlex.split(rule)) for rule in want.rules]
    commands += [cmd(*nat, "-I", "OUTPUT", "1", "-j", CHAIN)] * max(0, want.jumps - have.jumps)
    commands += [cmd(*nat, "-D", "OUTPUT", "-j", CHAIN)] * max(0, have.jumps - want.jumps)
    return commands


def _remove(fw: Firewall, current: Layout, target: Layout) -> list[Step]:
    if fw.kind == "nft":
        if current.nft_rules is None or target.nft_rules is not None:
            return []
        return [Step(command=cmd("nft", "delete", "table", "inet", NFT_TABLE), backend=fw.name)]
    steps: list[Step] = []
    for program, _ in programs(fw):
        have = current.chain(program)
        if target.chain(program).exists:
            continue
        nat = (program, "-w", "-t", "nat")
        commands = [cmd(*nat, "-D", "OUTPUT", "-j", CHAIN)] * have.jumps
        if have.exists:
            commands += [cmd(*nat, "-F", CHAIN), cmd(*nat, "-X", CHAIN)]
        steps += [Step(command=c, backend=fw.name) for c in commands]
    return steps


def _nat_tables_added(scope: Scope, current: Layout, target: Layout) -> list[Step]:
    # A nat table that a rollback must bring back without any chain of ours in it (one
    # the change deleted); with a chain of ours, iptables-nft recreates it on its own.
    rebuilt = {
        NAT_TABLES[family]
        for fw in scope
        for program, family in programs(fw)
        if fw.variant == "nf_tables" and target.chain(program).exists
    }
    missing = sorted(target.nat_tables - current.nat_tables - rebuilt)
    return [Step(command=cmd("nft", "add", "table", *table.split())) for table in missing]
