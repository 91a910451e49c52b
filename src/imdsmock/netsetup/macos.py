"""macOS plans: an alias on ``lo0`` and a pf ``rdr`` rule in an anchor of our own.

The stock ``/etc/pf.conf`` already evaluates ``rdr-anchor "com.apple/*"``, so loading our
rule into ``com.apple/imdsmock`` needs no edit of the system file; flushing that anchor is
the exact undo. ``pfctl -E`` takes a reference on pf (it does not fail when pf is already
on) and prints a token; we leave pf enabled on ``down`` because other users may hold it.
"""

from __future__ import annotations

from collections.abc import Iterable

from imdsmock.netsetup.linux import Target
from imdsmock.netsetup.plan import Command, Plan, cmd

ANCHOR = "com.apple/imdsmock"


def pf_rules(targets: Iterable[Target]) -> str:
    """The anchor's rules: one ``rdr`` per target, arriving on ``lo0`` from the alias."""
    lines = []
    for t in targets:
        inet = "inet" if t.family == 4 else "inet6"
        lines.append(
            f"rdr pass on lo0 {inet} proto tcp from any to {t.address} port {t.port}"
            f" -> {t.to_host} port {t.to_port}\n"
        )
    return "".join(lines)


def _alias(target: Target, add: bool) -> Command:
    if target.family == 4:
        verb = "alias" if add else "-alias"
        return cmd("ifconfig", "lo0", verb, target.address, "netmask", "255.255.255.255")
    verb6 = "alias" if add else "-alias"
    return cmd("ifconfig", "lo0", "inet6", verb6, target.address, "prefixlen", "128")


def up_plan(targets: tuple[Target, ...], present: frozenset[str], *, dnat: bool = True) -> Plan:
    """Aliases for the targets not already on ``lo0``, then the anchor (unless ``dnat`` off)."""
    unique = {t.address: t for t in targets}
    missing = [t for addr, t in unique.items() if addr not in present]
    steps: list[Command] = [_alias(t, add=True) for t in missing]
    undo: list[Command] = [_alias(t, add=False) for t in reversed(missing)]
    if dnat:
        steps += [
            cmd("pfctl", "-a", ANCHOR, "-f", "-", stdin=pf_rules(targets)),
            cmd("pfctl", "-E"),
        ]
        undo.insert(0, cmd("pfctl", "-a", ANCHOR, "-F", "all"))
    return Plan(steps=tuple(steps), undo=tuple(undo))


def down_plan(added: Iterable[str]) -> Plan:
    """Flush our anchor, then remove the aliases our ``up`` recorded as added."""
    steps = [cmd("pfctl", "-a", ANCHOR, "-F", "all")]
    for address in added:
        host = address.split("/")[0]
        steps.append(_alias(Target(address=host, to_host=host, to_port=0), add=False))
    return Plan(steps=tuple(steps))


def parse_lo0(ifconfig_text: str) -> frozenset[str]:
    """The addresses on ``lo0`` from ``ifconfig lo0`` output (``inet``/``inet6`` lines)."""
    found: set[str] = set()
    for line in ifconfig_text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("inet", "inet6"):
            found.add(words[1].split("%")[0])
    return frozenset(found)
