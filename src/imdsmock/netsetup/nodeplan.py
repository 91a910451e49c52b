"""Node mode's rules, as data: which pod interfaces, which DNATs, which link.

``route node`` makes 169.254.169.254 (and the ECS address) reach the mock for every pod of
a node, the way kube2iam and kiam do: DNAT in ``PREROUTING``, only for packets arriving on
the pods' interfaces, so the node's own processes (host network) keep reaching what they
reached before and nothing is added to ``OUTPUT``. Or, as the EKS Pod Identity agent does,
the address on a dummy link of the node, where the mock listens itself.

Everything lives under names of its own: the chain ``IMDSMOCK-NODE`` in the ``nat`` table
(jumped to from ``PREROUTING``), the table ``inet imdsmock_node``, the link ``imdsmock0``,
so adding twice changes nothing and removing takes exactly what is ours. The builders here
are pure: the rules and scripts here, the layouts and plans in :mod:`.nodelayout`; :mod:`.node`
looks at the namespace and runs their commands.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from imdsmock.netsetup.errors import NetsetupError
from imdsmock.netsetup.linux import ECS_CREDENTIALS, IMDS_V4, Target, iptables_rule, nft_rule

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
