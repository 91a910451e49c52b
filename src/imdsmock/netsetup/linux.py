"""Linux routing targets and the exact text of our rules.

The firewall change lives entirely in a chain named ``IMDSMOCK`` in the ``nat`` table
(iptables, one per family, jumped to from ``OUTPUT``) or in the table ``inet imdsmock``
(nftables). That makes the undo exact: it removes our jump, our chain or our table, and
the addresses that ``up`` itself added, and touches nothing else. The rules are written
here exactly as ``iptables -S`` and ``nft list`` print them back, so what is in place can
be compared with what is wanted (:mod:`.layout`, :mod:`.converge`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from imdsmock.netsetup.detect import NFT_TABLE, RouteInfo

#: The IMDS endpoints on EC2 (IPv4 and, on Nitro with the option on, IPv6) and the ECS
#: container credential endpoint.
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


def nft_rule(target: Target) -> str:
    """One DNAT rule in the text ``nft list`` prints it back as."""
    ip = "ip" if target.family == 4 else "ip6"
    return f"{ip} daddr {target.address} tcp dport {target.port} dnat {ip} to {target.to}"


def nft_table_script(rules: Iterable[str]) -> str:
    """An ``nft -f -`` script making table ``inet imdsmock`` hold exactly ``rules``.

    The rules go in its one ``output`` nat chain. Declaring the table before deleting it
    makes the delete succeed on the first run; the whole script is one transaction, so
    there is no moment without the rules.
    """
    body = "".join(f"    {rule}\n" for rule in rules)
    return (
        f"table inet {NFT_TABLE} {{}}\n"
        f"delete table inet {NFT_TABLE}\n"
        f"table inet {NFT_TABLE} {{\n"
        "  chain output {\n"
        "    type nat hook output priority -100; policy accept;\n"
        f"{body}"
        "  }\n"
        "}\n"
    )


def host_route(address: str, current: RouteInfo | None, toward: RouteInfo | None) -> str:
    """Container mode: when ``address`` is unroutable, route it the way the mock is routed.

    A container on an ``internal`` network has no default route, so ``connect()`` to
    169.254.169.254 would fail before the OUTPUT DNAT could rewrite it. The host route
    (as ``ip route add`` takes it; empty when none is needed) goes out the mock's
    interface, so the source address is the container's own.
    """
    if current is not None or toward is None:
        return ""
    length = 32 if ipaddress.ip_address(address).version == 4 else 128
    via = f" via {toward.via}" if toward.via else ""
    return f"{address}/{length}{via} dev {toward.dev}"
