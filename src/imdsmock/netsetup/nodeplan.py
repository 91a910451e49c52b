"""Node mode's rules, as data: which pod interfaces, which DNATs, which link.

``route node`` makes 169.254.169.254 (and the ECS address) reach the mock for every pod of
a node, the way kube2iam and kiam do: DNAT in ``PREROUTING``, only for packets arriving on
the pods' interfaces, so the node's own processes (host network) keep reaching what they
reached before and nothing is added to ``OUTPUT``. Or, as the EKS Pod Identity agent does,
the address on a dummy link of the node, where the mock listens itself.

Everything lives under names of its own: the chain ``IMDSMOCK-NODE`` in the ``nat`` table
(jumped to from ``PREROUTING``), the table ``inet imdsmock_node``, the link ``imdsmock0``,
so adding twice changes nothing and removing takes exactly what is ours. The builders here
are pure; :mod:`.node` looks at the namespace and runs their commands.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from imdsmock.netsetup.converge import Step
from imdsmock.netsetup.detect import ChainState, Firewall, nat_table_only_ours
from imdsmock.netsetup.errors import NetsetupError
from imdsmock.netsetup.layout import Scope, programs
from imdsmock.netsetup.linux import ECS_CREDENTIALS, IMDS_V4, Target, iptables_rule, nft_rule
from imdsmock.netsetup.plan import Command, cmd

#: Our iptables chain (nat table, jumped to from PREROUTING), nft table and dummy link.
CHAIN = "IMDSMOCK-NODE"
HOOK = "PREROUTING"
NFT_TABLE = "imdsmock_node"
LINK = "imdsmock0"
#: The nf_tables table iptables-nft keeps IPv4 nat in, and its base chain we jump from:
#: iptables-nft makes either on first use, and only nft can delete them again.
NAT_TABLE = "ip nat"
NAT_HOOK = "ip nat PREROUTING"

#: Where pods' packets arrive on a node, per CNI: Calico, the AWS VPC CNI, flannel and the
#: bridge plugin, kubenet, Weave Net, Cilium, kube-router, kindnet and ptp (host-side veths),
#: GKE's, Azure's, and on a Docker host the default bridge and user-defined networks.
DEFAULT_INTERFACES = (
    "cali+",
    "eni+",
    "cni0",
    "cbr0",
    "weave",
    "lxc+",
    "kube-bridge",
    "veth+",
    "gke+",
    "azv+",
    "docker0",
    "br-+",
)

# An interface name as the kernel takes it (at most 15 characters, no '/' or space), with
# iptables' trailing '+' wildcard.
_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,15}\+?|\+")


@dataclass(frozen=True, slots=True, kw_only=True)
class Pattern:
    """An interface pattern: ``cali+`` (every name starting ``cali``), ``cni0``; ``negated``
    for ``!eth0`` (packets arriving there are never routed to the mock)."""

    name: str
    negated: bool = False

    @property
    def nft(self) -> str:
        """The name as nft's ``iifname`` takes it: a trailing ``*`` for iptables' ``+``."""
        return self.name[:-1] + "*" if self.name.endswith("+") else self.name

    def __str__(self) -> str:
        return ("!" if self.negated else "") + self.name


def parse_pattern(text: str) -> Pattern:
    """``cali+``, ``cni0`` or ``!eth0``; anything else is one line naming what is allowed."""
    negated = text.startswith("!")
    name = text[1:] if negated else text
    if not _NAME.fullmatch(name):
        raise NetsetupError(
            f"--interface is {text!r}; expected an interface name of at most 15 characters "
            "(letters, digits, _ . : @ -), '+' at the end for any suffix, '!' in front to "
            "exclude it, e.g. cali+, cni0, !eth0"
        )
    return Pattern(name=name, negated=negated)


def patterns(texts: tuple[str, ...]) -> tuple[Pattern, ...]:
    """The patterns given (each once, in order), else :data:`DEFAULT_INTERFACES`."""
    found = tuple(dict.fromkeys(parse_pattern(t) for t in texts or DEFAULT_INTERFACES))
    if found and all(p.negated for p in found) and any(p.name == "+" for p in found):
        raise NetsetupError(
            f"--interface '!+' excludes every interface; given: {' '.join(texts)}; "
            "name the pods' interfaces, e.g. cali+"
        )
    return found


def dnat_targets(host: str, port: int, ecs_port: int | None) -> tuple[Target, ...]:
    """IMDS to the mock's ``host:port``, and 169.254.170.2 to ``ecs_port`` when given."""
    found = [Target(address=IMDS_V4, to_host=host, to_port=port)]
    if ecs_port is not None:
        found.append(Target(address=ECS_CREDENTIALS, to_host=host, to_port=ecs_port))
    return tuple(found)


def link_addresses(ecs: bool) -> frozenset[str]:
    """The prefixes the dummy link holds: IMDS, and the ECS address with ``ecs``."""
    return frozenset({f"{IMDS_V4}/32", *([f"{ECS_CREDENTIALS}/32"] if ecs else [])})


def iptables_rules(pats: tuple[Pattern, ...], targets: tuple[Target, ...]) -> tuple[str, ...]:
    """Our chain's rules, exactly as ``iptables -S`` prints them back.

    Excluded interfaces return first; then each target once per included pattern (once in
    all when every pattern excludes: any other interface).
    """
    rules = [f"-A {CHAIN} -i {p.name} -j RETURN" for p in pats if p.negated]
    included: list[Pattern | None] = [p for p in pats if not p.negated] or [None]
    for target in targets:
        spec = iptables_rule(target)
        for p in included:
            where = ("-i", p.name) if p else ()
            # iptables -S prints the destination, then the in-interface, then the rest.
            rules.append(" ".join(("-A", CHAIN, *spec[:2], *where, *spec[2:])))
    return tuple(rules)


def nft_rules(pats: tuple[Pattern, ...], targets: tuple[Target, ...]) -> tuple[str, ...]:
    """Our nft chain's rules as ``nft list`` prints them back (prefixed by the chain name)."""
    rules = [f'prerouting: iifname "{p.nft}" return' for p in pats if p.negated]
    included: list[Pattern | None] = [p for p in pats if not p.negated] or [None]
    for target in targets:
        for p in included:
            where = f'iifname "{p.nft}" ' if p else ""
            rules.append(f"prerouting: {where}{nft_rule(target)}")
    return tuple(rules)


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


def nft_script(rules: tuple[str, ...]) -> str:
    """An ``nft -f -`` script making table ``inet imdsmock_node`` hold exactly ``rules``,
    in one transaction (no moment without them)."""
    body = "".join(f"    {r.removeprefix('prerouting: ')}\n" for r in rules)
    return (
        f"table inet {NFT_TABLE} {{}}\n"
        f"delete table inet {NFT_TABLE}\n"
        f"table inet {NFT_TABLE} {{\n"
        "  chain prerouting {\n"
        "    type nat hook prerouting priority dstnat; policy accept;\n"
        f"{body}"
        "  }\n"
        "}\n"
    )


def restore_program(iptables: str) -> str:
    """The ``-restore`` tool of an iptables program (``iptables-nft-restore``)."""
    return f"{iptables}-restore"


def chain_script(rules: tuple[str, ...]) -> str:
    """``iptables-restore --noflush`` input replacing our chain's rules in one commit."""
    return "*nat\n" + f":{CHAIN} - [0:0]\n" + "".join(f"{r}\n" for r in rules) + "COMMIT\n"


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


def mock_address(value: str, port: int) -> str:
    """Check the DNAT destination: an IPv4 address that is not loopback or unspecified.

    A DNAT in PREROUTING to 127.0.0.1 is dropped by the kernel for packets arriving from
    another interface (unless ``route_localnet``, which exposes every loopback service), so
    the mock must listen on an address the pods can be sent to: the node's own.
    """
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise NetsetupError(
            f"--mock host is {value!r}; expected the IPv4 address where the mock listens on "
            "this node, e.g. --mock 10.0.1.23:1338 (Kubernetes: status.hostIP)"
        ) from None
    if address.version != 4 or address.is_loopback or address.is_unspecified:
        raise NetsetupError(
            f"--mock is '{value}:{port}'; expected an IPv4 address of this node that pods can "
            "reach, not loopback or 0.0.0.0 (the kernel does not DNAT a pod's packet to "
            "loopback): run the mock on the node's address (imdsmock --host 0.0.0.0) and give "
            "--mock NODE_IP:PORT"
        )
    return str(address)
