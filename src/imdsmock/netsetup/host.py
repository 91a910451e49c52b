"""Host mode: ``route up``, ``route down`` and ``route status`` for this machine.

These are the Python API behind the CLI; each returns the text to print, and applies the
plan unless ``dry_run`` is set (then the text *is* the plan).
"""

from __future__ import annotations

import contextlib
import ipaddress
import sys
from dataclasses import dataclass
from typing import Literal

from imdsmock.netsetup import detect, goals, layout, macos, state, txn
from imdsmock.netsetup.converge import Step, converge
from imdsmock.netsetup.errors import CommandFailed, NetsetupError
from imdsmock.netsetup.linux import ECS_CREDENTIALS, IMDS_V4, IMDS_V6, Target
from imdsmock.netsetup.plan import Runner, apply, cmd, render, run, why_failed

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


def require_local_mock(host: str, known: frozenset[str] | None) -> None:
    """Refuse a ``--mock`` address that is neither loopback nor one of ``known`` addresses.

    The DNAT sits in the ``OUTPUT`` chain of this machine (or namespace), so the mock must
    listen here; ``known`` is ``None`` when the addresses could not be listed.
    """
    if known is None or host in known or ipaddress.ip_address(host).is_loopback:
        return
    mine = sorted(a for a in known if "." in a and not ipaddress.ip_address(a).is_loopback)
    listed = ", ".join(mine[:4]) + (", ..." if len(mine) > 4 else "")
    also = f" or one of its addresses ({listed})" if listed else ""
    raise NetsetupError(
        f"--mock host is {host!r}, which is not an address of this machine (or network "
        f"namespace); expected a loopback address such as 127.0.0.1{also}, where the mock "
        "listens"
    )


def _addresses_here(platform: Platform, runner: Runner) -> frozenset[str] | None:
    if platform != this_platform():
        return None  # a dry run of the other platform's plan: nothing to compare with
    if platform == "macos":
        shown = runner(cmd("ifconfig"))
        if shown.returncode != 0:
            raise CommandFailed(
                f"cannot list this machine's addresses: ifconfig: {why_failed(shown)}; "
                "nothing was changed"
            )
        return macos.parse_lo0(shown.stdout)
    return detect.local_addresses(runner)


def up(options: HostOptions, *, dry_run: bool = False, runner: Runner = run) -> str:
    """Route the link-local endpoints to the mock on this machine; idempotent.

    It converges: what a previous ``up`` made and this one does not ask for is removed. A
    failed step or a stop signal rolls everything back (:mod:`.txn`).
    """
    wanted = targets(options)
    require_local_mock(options.mock_host, _addresses_here(options.platform, runner))
    if options.platform == "macos":
        return _macos_up(options, wanted, dry_run=dry_run, runner=runner)
    fw = detect.detect_firewall(options.backend, runner=runner)
    if not dry_run:
        detect.require_net_admin("up")
    with txn.StopSignals("up") as stop:
        record = state.load()
        scope = _scope(fw, record, runner)
        before = layout.observe(scope, runner)
        goal = goals.up_goal(scope, fw, wanted, before, record, dnat=not options.alias_only)
        steps = converge(scope, before, goal)
        if dry_run:
            return _dry_run_text(steps, before.readable)
        final = goals.after_up(
            scope=scope, fw=fw, record=record, steps=steps, before=before, goal=goal
        )
        change = txn.Change(
            what="up",
            backend=fw.name,
            scope=scope,
            before=before,
            steps=steps,
            previous=record,
            final=final,
        )
        txn.commit(change, stop, runner)
    return _summary(wanted, fw.name, options.alias_only, changed=bool(steps))


def down(
    *,
    backend: detect.BackendChoice = "auto",
    platform: Platform = "linux",
    dry_run: bool = False,
    runner: Runner = run,
) -> str:
    """Bring this namespace back to how it was before the first ``up``.

    Our chains and tables go from every backend the record names (and ``backend``), and
    so do the addresses and iptables-nft ``nat`` tables ``up`` itself added.
    """
    record = state.load()
    if platform == "macos":
        plan = macos.down_plan(() if record is None else record.added)
        if dry_run:
            return render(plan.steps)
        apply(plan.steps, runner)
        state.clear()
        return "imdsmock route: removed\n"
    fw = _primary(backend, record, runner)
    if not dry_run:
        detect.require_net_admin("down")
    with txn.StopSignals("down") as stop:
        scope = _scope(fw, record, runner)
        before = layout.observe(scope, runner)
        steps = converge(scope, before, goals.down_goal(scope, before, record))
        if dry_run:
            return _dry_run_text(steps, before.readable, "nothing of ours is in place")
        change = txn.Change(
            what="down",
            backend=fw.name,
            scope=scope,
            before=before,
            steps=steps,
            previous=record,
            final=None,
        )
        txn.commit(change, stop, runner)
    if not steps:
        return "imdsmock route: nothing to remove\n"
    names = ", ".join(dict.fromkeys(s.backend for s in steps if s.backend)) or fw.name
    return f"imdsmock route: removed ({len(steps)} commands, {names})\n"


def status(*, backend: detect.BackendChoice = "auto", runner: Runner = run) -> str:
    """Describe what is in place: link-local aliases, our rules, and the record file."""
    record = state.load()
    fw = _primary(backend, record, runner)
    scope = _scope(fw, record, runner)
    seen = layout.observe(scope, runner)
    lines = [f"backend: {fw.name}"]
    aliases = sorted(seen.addresses)
    lines.append("aliases on lo: " + (", ".join(aliases) if aliases else "none"))
    if not seen.readable:
        lines.append(f"rules: unreadable ({seen.unread}; reading needs CAP_NET_ADMIN)")
    for each in scope if seen.readable else ():
        if each.kind == "nft":
            rules = seen.nft_rules
            present = "absent" if rules is None else "present"
            lines.append(f"table inet {detect.NFT_TABLE}: {present}")
            lines += [f"  {rule}" for rule in rules or ()]
            continue
        for program, family in layout.programs(each):
            chain = seen.chain(program)
            where = f"IPv{family} chain {detect.CHAIN} ({program})"
            lines.append(f"{where}: " + ("present" if chain.exists else "absent"))
            lines += [f"  {rule}" for rule in chain.rules]
    if record is None:
        lines.append("record: none (up has not run here)")
    else:
        added = ", ".join(record.added) or "nothing"
        lines.append(f"record: {state.path()} (added: {added})")
    return "\n".join(lines) + "\n"


def _primary(
    backend: detect.BackendChoice, record: state.Record | None, runner: Runner
) -> detect.Firewall:
    """The backend asked for, else the one the last ``up`` used, else the system's."""
    if backend == "auto" and record is not None:
        try:
            return detect.detect_firewall(_choice(record.backend), runner=runner)
        except NetsetupError:
            pass  # its tool is gone; look at the system's own
    return detect.detect_firewall(backend, runner=runner)


def _scope(fw: detect.Firewall, record: state.Record | None, runner: Runner) -> layout.Scope:
    """``fw`` and every other backend the record names whose tool is still installed."""
    found = [fw]
    for name in () if record is None else record.backends:
        choice = _choice(name)
        if choice == "auto" or any(name == each.name for each in found):
            continue
        # A backend whose tool is gone is not looked at; it stays in the record.
        with contextlib.suppress(NetsetupError):
            found.append(detect.detect_firewall(choice, runner=runner))
    return tuple(found)


def _macos_up(
    options: HostOptions, wanted: tuple[Target, ...], *, dry_run: bool, runner: Runner
) -> str:
    shown = runner(cmd("ifconfig", "lo0"))
    present = macos.parse_lo0(shown.stdout) if shown.returncode == 0 else frozenset()
    plan = macos.up_plan(wanted, present, dnat=not options.alias_only)
    if dry_run:
        return render(plan.steps)
    detect.require_net_admin("up")
    # Recorded before the change (and added to what an earlier up recorded), so that after
    # a failure half-way ``down`` still removes every alias this up may have added.
    previous = state.load()
    added = tuple(dict.fromkeys(t.address for t in wanted if t.address not in present))
    record = state.Record(backend="pf", added=added)
    state.save(record if previous is None else previous.merged(record))
    apply(plan.steps, runner)
    return _summary(wanted, "pf", options.alias_only, changed=bool(plan.steps))


def _dry_run_text(steps: tuple[Step, ...], readable: bool, empty: str = "already in place") -> str:
    head = "" if readable else "# current rules unreadable without CAP_NET_ADMIN: full plan\n"
    body = render(tuple(step.command for step in steps))
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
