"""What ``route up`` and ``route down`` aim for, and what the record says afterwards.

``up`` converges to exactly what was asked: its aliases and one chain or table in the
chosen backend, and nothing a previous ``up`` made that this one does not ask for (an IPv6
rule, a credentials alias, a table in another backend). ``down`` aims for the namespace
as it was before the first ``up``: the addresses ``up`` added are gone, those that were
there stay, and an iptables-nft ``nat`` table ``up`` brought into being is deleted again.
"""

from __future__ import annotations

from dataclasses import replace

from imdsmock.netsetup.converge import Step
from imdsmock.netsetup.detect import CHAIN, NAT_TABLES, NFT, ChainState, Firewall
from imdsmock.netsetup.layout import MANAGED, Layout, Scope, programs
from imdsmock.netsetup.linux import Target, iptables_rule, nft_rule
from imdsmock.netsetup.state import Record


def up_goal(
    scope: Scope,
    fw: Firewall,
    wanted: tuple[Target, ...],
    before: Layout,
    record: Record | None,
    *,
    dnat: bool = True,
) -> Layout:
    """``before`` with our aliases for ``wanted`` and (with ``dnat``) our DNATs in ``fw``.

    Recorded aliases that ``wanted`` no longer names are dropped; every other backend in
    ``scope`` ends without our chain or table.
    """
    owned = frozenset(record.added if record else ())
    prefixes = frozenset(t.prefix for t in wanted)
    goal = replace(
        firewall_goal(fw, wanted if dnat else (), before),
        addresses=(before.addresses - (owned - prefixes)) | prefixes,
    )
    return _release_nat_tables(scope, goal, record)


def firewall_goal(
    fw: Firewall, wanted: tuple[Target, ...], before: Layout, routes: frozenset[str] = frozenset()
) -> Layout:
    """``before`` with our DNATs for ``wanted`` in ``fw`` and none elsewhere, plus ``routes``.

    This is the whole goal in container modes, which add no aliases.
    """
    chains = {program: ChainState() for program in before.chains}
    for program, family in programs(fw):
        mine = [t for t in wanted if t.family == family]
        if mine:
            rules = tuple(" ".join(("-A", CHAIN, *iptables_rule(t))) for t in mine)
            chains[program] = ChainState(exists=True, rules=rules, jumps=1)
    nft_rules = None
    if wanted and fw.kind == "nft":
        nft_rules = tuple(f"output: {nft_rule(t)}" for t in wanted)
    return replace(before, chains=chains, nft_rules=nft_rules, routes=before.routes | routes)


def down_goal(scope: Scope, before: Layout, record: Record | None) -> Layout:
    """``before`` without our chains, our table, the aliases and nat tables ``up`` made."""
    owned = frozenset(record.added if record else ())
    no_dnat = firewall_goal(NFT, (), before)  # no DNAT wanted: no chain, no table anywhere
    goal = replace(no_dnat, addresses=before.addresses - owned)
    return _release_nat_tables(scope, goal, record)


def _release_nat_tables(scope: Scope, goal: Layout, record: Record | None) -> Layout:
    # A nat table up created goes once no chain of ours is wanted in its family and
    # nothing but ours is in it.
    used = {
        NAT_TABLES[family]
        for fw in scope
        for program, family in programs(fw)
        if fw.variant == "nf_tables" and goal.chain(program).exists
    }
    created = frozenset(record.created if record else ())
    return replace(goal, nat_tables=goal.nat_tables - ((created & goal.only_ours) - used))


def journal(record: Record | None, backend: str, steps: tuple[Step, ...]) -> Record:
    """``record`` plus everything ``steps`` may make: what to save before they run."""
    claimed = Record(
        backend=backend,
        added=tuple(s.added for s in steps if s.added),
        created=tuple(s.created for s in steps if s.created),
        backends=tuple(s.backend for s in steps if s.backend),
    )
    return claimed if record is None else record.merged(claimed)


def after_up(
    *,
    scope: Scope,
    fw: Firewall,
    record: Record | None,
    steps: tuple[Step, ...],
    before: Layout,
    goal: Layout,
) -> Record:
    """The record once ``up`` reached ``goal``: what is ours and still in place.

    Backends that could not be looked at (their tool is gone) stay listed.
    """
    prior = record or Record(backend=fw.name)
    in_scope = {f.name for f in scope}
    holding = [
        f.name
        for f in scope
        if (f.kind == "nft" and goal.nft_rules is not None)
        or any(goal.chain(program).exists for program, _ in programs(f))
    ]
    kept = [b for b in prior.backends if b not in in_scope]
    return Record(
        backend=fw.name,
        added=tuple(
            p
            for p in MANAGED
            if p in goal.addresses and (p in prior.added or p not in before.addresses)
        ),
        created=tuple(
            dict.fromkeys(
                [t for t in prior.created if t in goal.nat_tables]
                + [s.created for s in steps if s.created]
            )
        ),
        backends=tuple(dict.fromkeys(holding + kept)),
    )
