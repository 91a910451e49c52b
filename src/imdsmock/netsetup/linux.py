"""Linux plans: link-local aliases on ``lo``, and a DNAT to the mock in a chain of our own.

The firewall change lives entirely in a chain named ``IMDSMOCK`` in the ``nat`` table
(iptables, one per family, jumped to from ``OUTPUT``) or in the table ``inet imdsmock``
(nftables). That makes ``down`` exact: it removes our jump, our chain or our table, and the
addresses that ``up`` itself added, and touches nothing else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from imdsmock.netsetup.detect import (
    CHAIN,
    NAT_TABLES,
    NFT_TABLE,
    ChainState,
    Firewall,
    Observed,
    RouteInfo,
)
from imdsmock.netsetup.plan import Command, Plan, cmd

#: The IMDS endpoints on EC2 (IPv4 and, on Nitro with the option on, IPv6) and the ECS
#: container credential endpoint (real-imds.md A1, A12).
IMDS_V4 = "169.254.169.254"
IMDS_V6 = "fd00:ec2::254"
ECS_CREDENTIALS = "169.254.170.2"


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Send TCP to ``address``:``port`` on to ``to_host``:``to_port`` (the mock)."""

    address: str
    to_host: str
    to_port: int
    port: int = 80

    @property
    def family(self) -> int:
        """4 or 6, from the link-local address."""
        return ipaddress.ip_address(self.address).version

    @property
    def prefix(self) -> str:
        """The address as a host prefix: ``169.254.169.254/32``, ``fd00:ec2::254/128``."""
        return f"{self.address}/{32 if self.family == 4 else 128}"

    @property
    def to(self) -> str:
        """The DNAT destination as iptables and nft print it (``[::1]:1338`` for IPv6)."""
        host = f"[{self.to_host}]" if self.family == 6 else self.to_host
        return f"{host}:{self.to_port}"


def address_plan(targets: Iterable[Target], observed: Observed) -> Plan:
    """Add each target address to ``lo`` unless it is there already; undo removes it."""
    steps: list[Command] = []
    undo: list[Command] = []
    for prefix, family in _unique_prefixes(targets):
        if prefix in observed.addresses:
            continue
        steps.append(cmd("ip", f"-{family}", "addr", "add", prefix, "dev", "lo"))
        undo.insert(0, cmd("ip", f"-{family}", "addr", "del", prefix, "dev", "lo"))
    return Plan(steps=tuple(steps), undo=tuple(undo))


def remove_addresses(prefixes: Iterable[str], observed: Observed) -> Plan:
    """Remove from ``lo`` those of ``prefixes`` (added by our ``up``) still present."""
    steps = tuple(
        cmd("ip", f"-{_family(prefix)}", "addr", "del", prefix, "dev", "lo")
        for prefix in prefixes
        if prefix in observed.addresses
    )
    return Plan(steps=steps)


def _unique_prefixes(targets: Iterable[Target]) -> list[tuple[str, int]]:
    seen: dict[str, int] = {}
    for target in targets:
        seen.setdefault(target.prefix, target.family)
    return list(seen.items())


def _family(prefix: str) -> int:
    return ipaddress.ip_interface(prefix).version


def iptables_rule(target: Target) -> tuple[str, ...]:
    """The rule spec of one DNAT, written exactly as ``iptables -S`` prints it back."""
    return (
        "-d",
        target.prefix,
        "-p",
        "tcp",
        "-m",
        "tcp",
        "--dport",
        str(target.port),
        "-j",
        "DNAT",
        "--to-destination",
        target.to,
    )


def iptables_plan(fw: Firewall, targets: tuple[Target, ...], observed: Observed) -> Plan:
    """Make chain ``IMDSMOCK`` hold exactly the DNATs of ``targets`` and be jumped to.

    Per family: create the chain if missing, replace its rules only when they differ, and
    insert the ``OUTPUT`` jump only when absent; a second run therefore plans nothing.
    """
    plan = Plan()
    for family, program, state in ((4, fw.v4, observed.chain4), (6, fw.v6, observed.chain6)):
        mine = tuple(t for t in targets if t.family == family)
        if mine:
            plan = plan + _iptables_family(program, mine, state)
    return plan


def _iptables_family(program: str, targets: tuple[Target, ...], state: ChainState) -> Plan:
    nat = (program, "-w", "-t", "nat")
    wanted = tuple(" ".join(("-A", CHAIN, *iptables_rule(t))) for t in targets)
    steps: list[Command] = []
    if not state.exists:
        steps.append(cmd(*nat, "-N", CHAIN))
    elif state.rules != wanted:
        steps.append(cmd(*nat, "-F", CHAIN))
    if state.rules != wanted:
        steps.extend(cmd(*nat, "-A", CHAIN, *iptables_rule(t)) for t in targets)
    if state.jumps == 0:
        steps.append(cmd(*nat, "-I", "OUTPUT", "1", "-j", CHAIN))
    return Plan(
        steps=tuple(steps), undo=_iptables_remove(program, ChainState(exists=True, jumps=1))
    )


def _iptables_remove(program: str, state: ChainState) -> tuple[Command, ...]:
    nat = (program, "-w", "-t", "nat")
    if not state.exists:
        return ()
    jumps = tuple(cmd(*nat, "-D", "OUTPUT", "-j", CHAIN) for _ in range(state.jumps))
    return (*jumps, cmd(*nat, "-F", CHAIN), cmd(*nat, "-X", CHAIN))


def nft_rule(target: Target) -> str:
    """One DNAT rule in the text ``nft list`` prints it back as."""
    ip = "ip" if target.family == 4 else "ip6"
    return f"{ip} daddr {target.address} tcp dport {target.port} dnat {ip} to {target.to}"


def nft_script(targets: tuple[Target, ...]) -> str:
    """An ``nft -f -`` script replacing table ``inet imdsmock`` atomically with our rules.

    Declaring the table before deleting it makes the delete succeed on the first run; the
    whole script is one transaction, so there is no moment without the rules.
    """
    rules = "".join(f"    {nft_rule(t)}\n" for t in targets)
    return (
        f"table inet {NFT_TABLE} {{}}\n"
        f"delete table inet {NFT_TABLE}\n"
        f"table inet {NFT_TABLE} {{\n"
        "  chain output {\n"
        "    type nat hook output priority -100; policy accept;\n"
        f"{rules}"
        "  }\n"
        "}\n"
    )


def nft_plan(targets: tuple[Target, ...], observed: Observed) -> Plan:
    """Make table ``inet imdsmock`` hold exactly our DNATs; nothing when it already does."""
    wanted = tuple(f"output: {nft_rule(t)}" for t in targets)
    undo = (cmd("nft", "delete", "table", "inet", NFT_TABLE),)
    if observed.nft_rules == wanted:
        return Plan(undo=undo)
    return Plan(steps=(cmd("nft", "-f", "-", stdin=nft_script(targets)),), undo=undo)


def firewall_plan(fw: Firewall, targets: tuple[Target, ...], observed: Observed) -> Plan:
    """The DNAT part of ``up`` for whichever firewall tool ``fw`` is."""
    if fw.kind == "nft":
        return nft_plan(targets, observed)
    return iptables_plan(fw, targets, observed)


def firewall_down(fw: Firewall, observed: Observed) -> Plan:
    """Remove our jumps and chains, or our nft table: exactly what ``up`` made."""
    if fw.kind == "nft":
        if observed.nft_rules is None:
            return Plan()
        return Plan(steps=(cmd("nft", "delete", "table", "inet", NFT_TABLE),))
    steps = _iptables_remove(fw.v4, observed.chain4) + _iptables_remove(fw.v6, observed.chain6)
    return Plan(steps=steps)


def up_plan(
    fw: Firewall, targets: tuple[Target, ...], observed: Observed, *, dnat: bool = True
) -> Plan:
    """Host mode: aliases on ``lo`` for each target, then (unless ``dnat`` is off) DNATs.

    With ``dnat=False`` the mock itself listens on the link-local address and port 80.
    """
    plan = address_plan(targets, observed)
    if dnat:
        plan = plan + firewall_plan(fw, targets, observed)
    return plan


def created_nat_tables(
    fw: Firewall, targets: tuple[Target, ...], observed: Observed
) -> tuple[str, ...]:
    """The iptables-nft ``nat`` tables that ``up`` will bring into being (to record them).

    Empty unless the backend is iptables-nft and ``nft`` could list the tables.
    """
    if fw.kind != "iptables" or fw.variant != "nf_tables" or observed.nat_tables is None:
        return ()
    families = sorted({t.family for t in targets})
    return tuple(NAT_TABLES[f] for f in families if NAT_TABLES[f] not in observed.nat_tables)


def down_plan(
    fw: Firewall, observed: Observed, added: Iterable[str], created: Iterable[str] = ()
) -> Plan:
    """Host mode undo: firewall first, then the addresses our ``up`` recorded as added.

    ``created`` names iptables-nft ``nat`` tables that did not exist before ``up``; each is
    deleted when nothing but our chain and jump is in it.
    """
    tables = tuple(
        cmd("nft", "delete", "table", *table.split())
        for table in created
        if table in observed.nat_only_ours
    )
    plan = firewall_down(fw, observed) + Plan(steps=tables)
    return plan + remove_addresses(added, observed)


def route_plan(address: str, current: RouteInfo | None, toward: RouteInfo | None) -> Plan:
    """Container mode: when ``address`` is unroutable, route it the way the mock is routed.

    A container on an ``internal`` network has no default route, so ``connect()`` to
    169.254.169.254 would fail before the OUTPUT DNAT could rewrite it. The host route added
    here goes out the mock's interface, so the source address is the container's own.
    """
    if current is not None or toward is None:
        return Plan()
    via = ("via", toward.via) if toward.via else ()
    prefix = f"{address}/{32 if ipaddress.ip_address(address).version == 4 else 128}"
    return Plan(
        steps=(cmd("ip", "route", "add", prefix, *via, "dev", toward.dev),),
        undo=(cmd("ip", "route", "del", prefix, *via, "dev", toward.dev),),
    )


def container_plan(
    fw: Firewall,
    targets: tuple[Target, ...],
    observed: Observed,
    routes: tuple[Plan, ...] = (),
) -> Plan:
    """Container mode: the routes (if any are needed), then DNATs to the mock's address."""
    plan = Plan()
    for route in routes:
        plan = plan + route
    return plan + firewall_plan(fw, targets, observed)
