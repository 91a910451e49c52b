"""Read-only looks at the machine: which firewall tool, what is already in place, privilege.

Parsers are pure functions of command output so unit tests feed them literal text; the
``observe_*`` functions run read-only commands through a :data:`~.plan.Runner`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from imdsmock.netsetup.errors import CommandFailed, NetsetupError
from imdsmock.netsetup.plan import Runner, cmd, run, why_failed

#: Name of our iptables chain (nat table) and of our nftables table (family ``inet``).
CHAIN = "IMDSMOCK"
NFT_TABLE = "imdsmock"

BackendChoice = Literal["auto", "iptables", "iptables-nft", "iptables-legacy", "nft"]
BACKEND_CHOICES: tuple[BackendChoice, ...] = (
    "auto",
    "iptables",
    "iptables-nft",
    "iptables-legacy",
    "nft",
)

CAP_NET_ADMIN = 12


@dataclass(frozen=True, slots=True, kw_only=True)
class Firewall:
    """The firewall tool a plan is written for.

    ``kind`` is ``iptables`` (with ``variant`` ``nf_tables`` or ``legacy``, as
    ``iptables --version`` reports it) or ``nft``; ``v4``/``v6`` are the programs to run.
    """

    kind: Literal["iptables", "nft"]
    variant: Literal["nf_tables", "legacy", ""]
    v4: str
    v6: str

    @property
    def name(self) -> str:
        """``iptables-nft``, ``iptables-legacy`` or ``nft``: the value ``--backend`` takes."""
        if self.kind == "nft":
            return "nft"
        return "iptables-legacy" if self.variant == "legacy" else "iptables-nft"


IPTABLES_NFT = Firewall(kind="iptables", variant="nf_tables", v4="iptables-nft", v6="ip6tables-nft")
IPTABLES_LEGACY = Firewall(
    kind="iptables", variant="legacy", v4="iptables-legacy", v6="ip6tables-legacy"
)
NFT = Firewall(kind="nft", variant="", v4="nft", v6="nft")


def parse_iptables_variant(version_text: str) -> Literal["nf_tables", "legacy"]:
    """Read the backend from ``iptables --version`` (``iptables v1.8.9 (nf_tables)``).

    Versions before 1.8 print no backend at all and are always legacy.
    """
    return "nf_tables" if "(nf_tables)" in version_text else "legacy"


def detect_firewall(
    choice: BackendChoice,
    which: Callable[[str], str | None] = shutil.which,
    runner: Runner = run,
) -> Firewall:
    """Pick the firewall tool: the one asked for, or (``auto``) the system's ``iptables``.

    ``auto`` prefers ``iptables`` so our rules sit beside Docker's and the distribution's in
    the same backend; it falls back to ``nft`` when no iptables is installed.
    """
    if choice == "nft":
        _require(which, "nft", "nftables")
        return NFT
    if choice in ("iptables-nft", "iptables-legacy"):
        fw = IPTABLES_NFT if choice == "iptables-nft" else IPTABLES_LEGACY
        _require(which, fw.v4, "iptables")
        return fw
    if which("iptables") is not None:
        version = runner(cmd("iptables", "--version"))
        if version.returncode != 0:
            raise CommandFailed(
                "cannot tell which backend iptables uses: iptables --version: "
                f"{why_failed(version)}; nothing was changed"
            )
        variant = parse_iptables_variant(version.stdout + version.stderr)
        return Firewall(kind="iptables", variant=variant, v4="iptables", v6="ip6tables")
    if choice == "auto" and which("nft") is not None:
        return NFT
    wanted = "iptables" if choice == "iptables" else "iptables or nft"
    raise NetsetupError(
        f"no firewall tool found: {wanted} is not on PATH; install the Debian package "
        "iptables or nftables (or Alpine: apk add iptables)"
    )


def _require(which: Callable[[str], str | None], program: str, package: str) -> None:
    if which(program) is None:
        raise NetsetupError(
            f"--backend needs {program}, which is not on PATH; install the {package} package"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainState:
    """Our iptables chain in one family: present?, its rules (``-S`` lines), jumps to it."""

    exists: bool = False
    rules: tuple[str, ...] = ()
    jumps: int = 0


def parse_iptables_rules(save_text: str) -> ChainState:
    """Read our chain from ``iptables -t nat -S`` output."""
    lines = [line.strip() for line in save_text.splitlines()]
    return ChainState(
        exists=f"-N {CHAIN}" in lines,
        rules=tuple(line for line in lines if line.startswith(f"-A {CHAIN} ")),
        jumps=sum(1 for line in lines if line == f"-A OUTPUT -j {CHAIN}"),
    )


def parse_nft_table(list_text: str) -> tuple[str, ...]:
    """The rule lines of our nft table (``nft list table inet imdsmock``), chain by chain.

    Chain headers, hook declarations and braces are left out; each rule is prefixed by its
    chain name (``output: ip daddr ...``) so two tables compare equal only rule for rule.
    """
    rules: list[str] = []
    chain = ""
    for raw in list_text.splitlines():
        line = raw.strip()
        found = re.match(r"chain (\S+) \{", line)
        if found:
            chain = found.group(1)
        elif line and not line.startswith(("table ", "type ", "}", "#")):
            rules.append(f"{chain}: {line}")
    return tuple(rules)


BUILTIN_NAT_CHAINS = frozenset({"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"})


def nat_table_only_ours(list_text: str, ours: str = CHAIN) -> bool:
    """Whether an iptables-nft ``nat`` table (``nft list table ip nat``) holds only our parts.

    True when its only chains are the built-in ones (with policy accept) and ours (``ours``:
    ``route node`` has a chain of its own), and its only rules are in our chain or jump to
    it: then removing our parts leaves a table that iptables-nft created for us and that
    ``down`` may delete.
    """
    chain = ""
    for raw in list_text.splitlines():
        line = raw.strip()
        found = re.match(r"chain (\S+) \{", line)
        if found:
            chain = found.group(1)
            if chain not in BUILTIN_NAT_CHAINS | {ours}:
                return False
        elif line.startswith("type ") and "policy accept" not in line:
            return False  # a policy someone chose
        elif (
            line
            and not line.startswith(("table ", "type ", "}", "#"))
            and chain != ours
            and not line.endswith(f"jump {ours}")
        ):
            return False
    return True


def parse_nft_tables(list_text: str) -> frozenset[str]:
    """The tables from ``nft list tables``, as ``FAMILY NAME`` (``ip nat``)."""
    found = re.findall(r"^table (\S+ \S+)", list_text, flags=re.MULTILINE)
    return frozenset(found)


def parse_addresses(ip_o_addr_text: str) -> frozenset[str]:
    """The ``ADDRESS/PREFIX`` strings from ``ip -o addr show dev lo``."""
    found = re.findall(r"\binet6? (\S+)", ip_o_addr_text)
    return frozenset(found)


def local_addresses(runner: Runner = run) -> frozenset[str]:
    """The addresses of every interface in this namespace (without prefix length)."""
    shown = runner(cmd("ip", "-o", "addr", "show"))
    if shown.returncode != 0:
        raise CommandFailed(
            f"cannot list this machine's addresses: ip -o addr show: {why_failed(shown)}; "
            "nothing was changed"
        )
    return frozenset(prefix.split("/")[0] for prefix in parse_addresses(shown.stdout))


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteInfo:
    """How the kernel would route to an address: ``via`` gateway (maybe none) and ``dev``."""

    dev: str
    via: str | None = None


def parse_route_get(text: str) -> RouteInfo | None:
    """Read ``ip route get ADDR`` output; ``None`` when it is not a unicast route out."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    if not first or first.startswith(("local ", "unreachable", "blackhole", "prohibit")):
        return None
    dev = re.search(r"\bdev (\S+)", first)
    if dev is None:
        return None
    via = re.search(r"\bvia (?:inet6? )?(\S+)", first)
    return RouteInfo(dev=dev.group(1), via=via.group(1) if via else None)


#: The nf_tables tables iptables-nft uses for the nat table, per IP family.
NAT_TABLES = {4: "ip nat", 6: "ip6 nat"}


def route_to(address: str, runner: Runner = run) -> RouteInfo | None:
    """How this namespace routes to ``address`` now (``None``: unroutable or local).

    "Network is unreachable" is an answer; any other failure of ``ip route get`` is not,
    and stops the plan before it changes anything.
    """
    result = runner(cmd("ip", "route", "get", address))
    if result.returncode == 0:
        return parse_route_get(result.stdout)
    if "unreachable" in result.stderr.lower():
        return None
    raise CommandFailed(
        f"cannot tell how {address} is routed: ip route get {address}: "
        f"{why_failed(result)}; nothing was changed"
    )


def has_net_admin(status_path: str = "/proc/self/status") -> bool:
    """Whether this process holds CAP_NET_ADMIN (read from ``CapEff``)."""
    try:
        with open(status_path, encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except OSError:
        return os.geteuid() == 0
    return False


def require_net_admin(action: str) -> None:
    """Stop with one line naming the privilege and how to get it, unless we hold it."""
    if not has_net_admin():
        raise NetsetupError(
            f"imdsmock route {action} needs CAP_NET_ADMIN to change addresses and firewall "
            "rules; run it as root (sudo imdsmock route ...) or, in a container, add "
            "--cap-add NET_ADMIN (compose: cap_add: [NET_ADMIN])"
        )


def netns_id() -> str:
    """An identifier of this network namespace (the inode of ``/proc/self/ns/net``)."""
    try:
        return str(os.stat("/proc/self/ns/net").st_ino)
    except OSError:
        return "default"
