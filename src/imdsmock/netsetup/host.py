"""Host mode: ``route up``, ``route down`` and ``route status`` for this machine.

These are the Python API behind the CLI; each returns the text to print, and applies the
plan unless ``dry_run`` is set (then the text *is* the plan).
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from typing import Literal

from imdsmock.netsetup import detect, linux, macos, state
from imdsmock.netsetup.errors import NetsetupError
from imdsmock.netsetup.linux import ECS_CREDENTIALS, IMDS_V4, IMDS_V6, Target
from imdsmock.netsetup.plan import Plan, Runner, apply, cmd, render, run

Platform = Literal["linux", "macos"]
DEFAULT_PORT = 1338


def this_platform() -> Platform:
    """``macos`` on Darwin, ``linux`` everywhere else."""
    return "macos" if sys.platform == "darwin" else "linux"


@dataclass(frozen=True, slots=True, kw_only=True)
class HostOptions:
    """What ``route up`` should route: the mock's local address, extra endpoints, backend."""

    mock_host: str = "127.0.0.1"
    mock_port: int = DEFAULT_PORT
    credentials_port: int | None = None
    ipv6: bool = False
    alias_only: bool = False
    backend: detect.BackendChoice = "auto"
    platform: Platform = "linux"


def targets(options: HostOptions) -> tuple[Target, ...]:
    """The endpoints to route: IMDS IPv4, plus ECS credentials and IMDS IPv6 when asked."""
    try:
        version = ipaddress.ip_address(options.mock_host).version
    except ValueError:
        raise NetsetupError(
            f"--mock host is {options.mock_host!r}; host mode needs an IP address of this "
            "machine, e.g. 127.0.0.1:1338"
        ) from None
    if version != 4:
        raise NetsetupError(
            f"--mock host is {options.mock_host!r}; expected an IPv4 address (the IPv6 "
            "endpoint goes to [::1] on the same port with --ipv6)"
        )
    found = [Target(address=IMDS_V4, to_host=options.mock_host, to_port=options.mock_port)]
    if options.credentials_port is not None:
        found.append(
            Target(
                address=ECS_CREDENTIALS,
                to_host=options.mock_host,
                to_port=options.credentials_port,
            )
        )
    if options.ipv6:
        found.append(Target(address=IMDS_V6, to_host="::1", to_port=options.mock_port))
    return tuple(found)


def up(options: HostOptions, *, dry_run: bool = False, runner: Runner = run) -> str:
    """Route the link-local endpoints to the mock on this machine; idempotent."""
    wanted = targets(options)
    if options.platform == "macos":
        return _macos_up(options, wanted, dry_run=dry_run, runner=runner)
    fw = detect.detect_firewall(options.backend, runner=runner)
    if not dry_run:
        detect.require_net_admin("up")
    observed = detect.observe(fw, runner)
    plan = linux.up_plan(fw, wanted, observed, dnat=not options.alias_only)
    if dry_run:
        return _dry_run_text(plan, observed.readable)
    apply(plan.steps, runner)
    previous = state.load()
    added = [] if previous is None else list(previous.added)
    added += [t.prefix for t in wanted if t.prefix not in observed.addresses]
    created = [] if previous is None else list(previous.created)
    if not options.alias_only:
        created += linux.created_nat_tables(fw, wanted, observed)
    record = state.Record(
        backend=fw.name,
        added=tuple(dict.fromkeys(added)),
        created=tuple(dict.fromkeys(created)),
    )
    state.save(record)
    return _summary(wanted, fw.name, options.alias_only, changed=bool(plan.steps))


def down(
    *,
    backend: detect.BackendChoice = "auto",
    platform: Platform = "linux",
    dry_run: bool = False,
    runner: Runner = run,
) -> str:
    """Remove what ``up`` added in this namespace: our chain or table, and our aliases."""
    record = state.load()
    added = () if record is None else record.added
    created = () if record is None else record.created
    if platform == "macos":
        plan = macos.down_plan(added)
        if dry_run:
            return render(plan.steps)
        apply(plan.steps, runner)
        state.clear()
        return "imdsmock route: removed\n"
    if backend == "auto" and record is not None:
        backend = _choice(record.backend)
    fw = detect.detect_firewall(backend, runner=runner)
    if not dry_run:
        detect.require_net_admin("down")
    observed = detect.observe(fw, runner)
    plan = linux.down_plan(fw, observed, added, created)
    if dry_run:
        return _dry_run_text(plan, observed.readable, "nothing of ours is in place")
    apply(plan.steps, runner)
    state.clear()
    if not plan.steps:
        return "imdsmock route: nothing to remove\n"
    return f"imdsmock route: removed ({len(plan.steps)} commands, {fw.name})\n"


def status(*, backend: detect.BackendChoice = "auto", runner: Runner = run) -> str:
    """Describe what is in place: link-local aliases, our rules, and the record file."""
    record = state.load()
    if backend == "auto" and record is not None:
        backend = _choice(record.backend)
    fw = detect.detect_firewall(backend, runner=runner)
    observed = detect.observe(fw, runner)
    lines = [f"backend: {fw.name}"]
    known = {IMDS_V4 + "/32", ECS_CREDENTIALS + "/32", IMDS_V6 + "/128"}
    aliases = sorted(observed.addresses & known)
    lines.append("aliases on lo: " + (", ".join(aliases) if aliases else "none"))
    if not observed.readable:
        lines.append("rules: unreadable (needs CAP_NET_ADMIN; run as root)")
    elif fw.kind == "nft":
        rules = observed.nft_rules
        lines.append(
            f"table inet {detect.NFT_TABLE}: " + ("absent" if rules is None else "present")
        )
        lines += [f"  {rule}" for rule in rules or ()]
    else:
        for family, chain in ((4, observed.chain4), (6, observed.chain6)):
            where = f"IPv{family} chain {detect.CHAIN}"
            lines.append(f"{where}: " + ("present" if chain.exists else "absent"))
            lines += [f"  {rule}" for rule in chain.rules]
    if record is None:
        lines.append("record: none (up has not run here)")
    else:
        lines.append(f"record: {state.path()} (added: {', '.join(record.added) or 'nothing'})")
    return "\n".join(lines) + "\n"


def _macos_up(
    options: HostOptions, wanted: tuple[Target, ...], *, dry_run: bool, runner: Runner
) -> str:
    shown = runner(cmd("ifconfig", "lo0"))
    present = macos.parse_lo0(shown.stdout) if shown.returncode == 0 else frozenset()
    plan = macos.up_plan(wanted, present, dnat=not options.alias_only)
    if dry_run:
        return render(plan.steps)
    detect.require_net_admin("up")
    apply(plan.steps, runner)
    added = tuple(t.address for t in wanted if t.address not in present)
    state.save(state.Record(backend="pf", added=added))
    return _summary(wanted, "pf", options.alias_only, changed=bool(plan.steps))


def _dry_run_text(plan: Plan, readable: bool, empty: str = "already in place") -> str:
    head = "" if readable else "# current rules unreadable without CAP_NET_ADMIN: full plan\n"
    body = render(plan.steps)
    return head + (body or f"# nothing to do: {empty}\n")


def _summary(wanted: tuple[Target, ...], backend: str, alias_only: bool, *, changed: bool) -> str:
    how = "alias only; the mock listens there itself" if alias_only else backend
    routes = ", ".join(
        f"{t.address}:{t.port}" if alias_only else f"{t.address}:{t.port} -> {t.to}" for t in wanted
    )
    state_word = "" if changed else " (already in place)"
    return f"imdsmock route: {routes} ({how}){state_word}\n"


def _choice(name: str) -> detect.BackendChoice:
    for choice in detect.BACKEND_CHOICES:
        if choice == name:
            return choice
    return "auto"
