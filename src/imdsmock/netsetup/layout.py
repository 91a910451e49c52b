"""What of ours is in a network namespace, across every firewall backend in scope.

A :class:`Layout` is both an observation and a goal: the link-local aliases on ``lo``, our
``IMDSMOCK`` chain in each iptables program, our nft table, and the iptables-nft ``nat``
tables. :func:`observe` reads one without changing anything (it does not even load a
legacy table that is not loaded yet); :mod:`.converge` plans the commands from one layout
to another, which is how ``up``, ``down`` and a rollback are all built.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from imdsmock.netsetup.detect import (
    NAT_TABLES,
    NFT_TABLE,
    ChainState,
    Firewall,
    nat_table_only_ours,
    parse_addresses,
    parse_iptables_rules,
    parse_nft_table,
    parse_nft_tables,
)
from imdsmock.netsetup.linux import ECS_CREDENTIALS, IMDS_V4, IMDS_V6
from imdsmock.netsetup.plan import Runner, cmd, run, why_failed

#: The addresses ``up`` may put on ``lo``; nothing else on ``lo`` is ever looked at.
MANAGED = (f"{IMDS_V4}/32", f"{ECS_CREDENTIALS}/32", f"{IMDS_V6}/128")

Scope = tuple[Firewall, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """Our parts of a namespace: aliases, chains per iptables program, nft table, nat tables.

    ``nft_rules`` is ``None`` when our nft table is absent. ``nat_tables`` are the
    iptables-nft tables present (``ip nat``, ``ip6 nat``) and ``only_ours`` those of them
    holding nothing but our chain and jump. ``routes`` are host routes to the IPv4
    endpoints (``169.254.169.254/32 via GW dev IF``), read in container modes only, which
    add them on networks without a default route. ``readable`` is false when the rules could not
    be read (no CAP_NET_ADMIN); a plan is then built as if nothing of ours were in place,
    which only a dry run may do. ``unread`` names the first read that failed.
    """

    addresses: frozenset[str] = frozenset()
    chains: Mapping[str, ChainState] = field(default_factory=dict)
    nft_rules: tuple[str, ...] | None = None
    nat_tables: frozenset[str] = frozenset()
    only_ours: frozenset[str] = frozenset()
    nat_known: bool = False
    routes: frozenset[str] = frozenset()
    unread: str = ""

    @property
    def readable(self) -> bool:
        """Whether every read succeeded (else ``unread`` says which did not)."""
        return not self.unread

    def same_as(self, other: Layout) -> bool:
        """Whether both hold the same aliases, chain contents, nft rules and nat tables."""
        programs = set(self.chains) | set(other.chains)
        return (
            self.addresses == other.addresses
            and all(self.chain(p) == other.chain(p) for p in programs)
            and self.nft_rules == other.nft_rules
            and self.nat_tables == other.nat_tables
            and self.routes == other.routes
        )

    def chain(self, program: str) -> ChainState:
        """Our chain as ``program`` sees it (absent when not in scope)."""
        return self.chains.get(program, ChainState())


def programs(fw: Firewall) -> tuple[tuple[str, int], ...]:
    """The iptables programs of ``fw`` with their IP family (none for nft)."""
    return () if fw.kind == "nft" else ((fw.v4, 4), (fw.v6, 6))


def legacy_loaded(family: int) -> bool:
    """Whether this namespace has a legacy ``nat`` table of ``family`` instantiated.

    Listing a legacy table instantiates it, and the kernel never unloads it again, so an
    absent table is read from ``/proc/net/ip*_tables_names`` instead (unreadable: assume
    loaded, and let iptables say what it can read).
    """
    name = "/proc/net/ip_tables_names" if family == 4 else "/proc/net/ip6_tables_names"
    try:
        with open(name, encoding="ascii") as tables:
            return "nat" in tables.read().split()
    except FileNotFoundError:
        return False
    except OSError:
        return True


def observe(
    scope: Scope,
    runner: Runner = run,
    loaded: Callable[[int], bool] = legacy_loaded,
    which: Callable[[str], str | None] = shutil.which,
    *,
    routes: bool = False,
) -> Layout:
    """Read our parts for every backend in ``scope``, running only read-only commands.

    With ``routes`` the host routes to the IPv4 endpoints are read too.
    """
    reads = _Reads(runner)
    shown = reads("ip", "-o", "addr", "show", "dev", "lo")
    table = reads("ip", "-o", "-4", "route", "show", "table", "main") if routes else ""
    chains: dict[str, ChainState] = {}
    nft_rules: tuple[str, ...] | None = None
    for fw in scope:
        if fw.kind == "nft":
            listing = reads("nft", "list", "table", "inet", NFT_TABLE, absent="No such file")
            nft_rules = None if listing is None else parse_nft_table(listing)
            continue
        for program, family in programs(fw):
            if fw.variant == "legacy" and not loaded(family):
                chains[program] = ChainState()
                continue
            listing = reads(program, "-w", "-t", "nat", "-S")
            chains[program] = ChainState() if listing is None else parse_iptables_rules(listing)
    nat_tables, only_ours, known = frozenset[str](), frozenset[str](), False
    if any(fw.variant == "nf_tables" for fw in scope) and which("nft") is not None:
        # iptables-nft creates the nf_tables table "ip nat" / "ip6 nat" on first use and
        # cannot delete it again; nft can, so with nft at hand the undo can be exact.
        listed = reads("nft", "list", "tables")
        known = listed is not None
        nat_tables = parse_nft_tables(listed or "") & frozenset(NAT_TABLES.values())
        shown_tables = {t: reads("nft", "list", "table", *t.split()) for t in sorted(nat_tables)}
        only_ours = frozenset(
            table
            for table, text in shown_tables.items()
            if text is not None and nat_table_only_ours(text)
        )
    return Layout(
        addresses=parse_addresses(shown or "") & frozenset(MANAGED),
        chains=chains,
        nft_rules=nft_rules,
        nat_tables=nat_tables,
        only_ours=only_ours,
        nat_known=known,
        routes=parse_host_routes(table or ""),
        unread=reads.failed,
    )


def parse_host_routes(text: str) -> frozenset[str]:
    """Host routes to the IPv4 endpoints from ``ip -o -4 route show``, as ``ip route add``
    takes them: ``169.254.169.254/32 via 10.1.0.1 dev eth1`` (``via`` only when present)."""
    found: set[str] = set()
    for line in text.splitlines():
        words = line.split()
        prefix = f"{words[0]}/32" if words else ""
        if prefix not in MANAGED or "dev" not in words[:-1]:
            continue
        via = words[words.index("via") : words.index("via") + 2] if "via" in words[:-1] else []
        dev = words[words.index("dev") : words.index("dev") + 2]
        found.add(" ".join([prefix, *via, *dev]))
    return frozenset(found)


class _Reads:
    """Runs read-only commands; the first that fails is remembered in ``failed``."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.failed = ""

    def __call__(self, *argv: str, absent: str = "") -> str | None:
        """The command's output; ``None`` when it failed (or, with ``absent``, found none)."""
        result = self.runner(cmd(*argv))
        if result.returncode == 0:
            return result.stdout
        if not (absent and absent in result.stderr) and not self.failed:
            self.failed = f"{shlex.join(argv)}: {why_failed(result)}"
        return None
