"""``route node``: the per-node routing, checked, put in place and rolled back.

:func:`options` checks the command line; :func:`install` looks at the namespace and
converges it to the wanted rules (adding twice changes nothing; a changed port or pattern
replaces our chain's rules in one commit); a failed step or a stop signal rolls it back as
``route up`` does. Holding, removing and ``--down`` are in :mod:`.nodeagent`.
"""

from __future__ import annotations

import shlex
import shutil
import signal
from dataclasses import dataclass

from imdsmock.netsetup import detect, nodelayout, nodeplan, nodestate, txn
from imdsmock.netsetup.container import parse_mock, parse_port
from imdsmock.netsetup.converge import Step
from imdsmock.netsetup.detect import Firewall
from imdsmock.netsetup.errors import CommandFailed, Interrupted, NetsetupError
from imdsmock.netsetup.layout import Scope
from imdsmock.netsetup.linux import ECS_CREDENTIALS, IMDS_V4
from imdsmock.netsetup.nodelayout import NodeLayout
from imdsmock.netsetup.nodeobserve import Which, converge_to, firewall, observe, scope_of
from imdsmock.netsetup.nodeplan import LINK
from imdsmock.netsetup.nodestate import NodeRecord
from imdsmock.netsetup.plan import Runner, render, run, why_failed

#: The mock's ECS credential port on the node when ``--ecs`` names none.
ECS_PORT = 1340


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeOptions:
    """What to route. DNAT mode: ``mock_host:mock_port`` (and ``ecs_port``) for packets
    arriving on ``interfaces``. Dummy-link mode: the addresses on the link, no rules."""

    mock_host: str = ""
    mock_port: int = 1338
    interfaces: tuple[str, ...] = ()
    ecs_port: int | None = None
    dummy_link: bool = False
    backend: detect.BackendChoice = "auto"

    def goal(self, scope: Scope, fw: Firewall) -> NodeLayout:
        """The layout these options ask for, in ``scope`` with the rules in ``fw``."""
        if self.dummy_link:
            link = nodeplan.link_addresses(self.ecs_port is not None)
            return nodelayout.goal(scope, None, (), (), link)
        pats = nodeplan.patterns(self.interfaces)
        targets = nodeplan.dnat_targets(self.mock_host, self.mock_port, self.ecs_port)
        rules = nodeplan.iptables_rules(pats, targets)
        return nodelayout.goal(scope, fw, rules, nodeplan.nft_rules(pats, targets), None)


def options(
    *,
    mock: str | None,
    interfaces: tuple[str, ...] = (),
    ecs: str | int | None = None,
    dummy_link: bool = False,
    backend: detect.BackendChoice = "auto",
) -> NodeOptions:
    """Check the command line's values (one line naming what is wrong) into options.

    ``ecs`` is ``None`` (no ECS address), ``-1`` (``--ecs`` alone) or the port's text.
    """
    if dummy_link:
        if mock is not None and mock not in (IMDS_V4, f"{IMDS_V4}:80"):
            raise NetsetupError(
                f"--mock is {mock!r} with --dummy-link; there the mock listens on "
                f"{IMDS_V4}:80 itself (imdsmock --listen {IMDS_V4}:80): drop --mock"
            )
        if interfaces:
            raise NetsetupError(
                f"--interface is {interfaces[0]!r} with --dummy-link; the link's address is "
                "reached from every interface (no rules): drop --interface"
            )
        if ecs not in (None, -1, "80"):
            raise NetsetupError(
                f"--ecs is {ecs!r} with --dummy-link; the mock listens on 169.254.170.2:80 "
                "itself (imdsmock --ecs-listen 169.254.170.2:80): give --ecs alone"
            )
        return NodeOptions(dummy_link=True, ecs_port=None if ecs is None else 80, backend=backend)
    if mock is None:
        raise NetsetupError(
            "--mock is missing; give the address where the mock listens on this node, e.g. "
            "--mock 10.0.1.23:1338 (Kubernetes: status.hostIP), or --dummy-link"
        )
    host_, port = parse_mock(mock)
    ecs_port = None
    if ecs is not None:
        ecs_port = ECS_PORT if ecs == -1 else parse_port("--ecs port", str(ecs))
    return NodeOptions(
        mock_host=nodeplan.mock_address(host_, port),
        mock_port=port,
        interfaces=tuple(str(p) for p in nodeplan.patterns(interfaces)),
        ecs_port=ecs_port,
        backend=backend,
    )


def summary(options: NodeOptions, installed: Installed) -> str:
    """One line: what is routed where, and whether it was already in place."""
    again = "" if installed.changed else " (already in place)"
    if options.dummy_link:
        held = ", ".join(sorted(installed.goal.link or ()))
        return f"imdsmock route node: {held} on link {LINK}; the mock listens there{again}\n"
    pats = " ".join(options.interfaces)
    routes = [f"{IMDS_V4}:80 -> {options.mock_host}:{options.mock_port}"]
    if options.ecs_port is not None:
        routes.append(f"{ECS_CREDENTIALS}:80 -> {options.mock_host}:{options.ecs_port}")
    return f"imdsmock route node: {', '.join(routes)} from {pats} ({installed.backend}){again}\n"


class _Holding(txn.StopSignals):
    """Stop signals as for ``up``; with ``hold``, once the change is complete they are
    blocked (not ignored), so the agent's ``sigwait`` gets one that comes right then."""

    def __init__(self, what: str, *, hold: bool) -> None:
        super().__init__(what)
        self.hold = hold

    def finish(self) -> None:
        """Block the stop signals first (holding), then ignore any further one here."""
        if self.hold and not self.signum:
            signal.pthread_sigmask(signal.SIG_BLOCK, set(txn.STOP_SIGNALS))
        super().finish()


@dataclass(frozen=True, slots=True, kw_only=True)
class Installed:
    """What :func:`install` aimed at, to put back (SIGHUP) and to remove (SIGTERM)."""

    scope: Scope
    goal: NodeLayout
    changed: int
    backend: str


def install(
    options: NodeOptions, *, runner: Runner = run, hold: bool = False, which: Which = shutil.which
) -> Installed:
    """Converge the namespace to ``options``; a failed step or a stop signal rolls back."""
    fw = firewall(options.backend, runner, which)
    detect.require_net_admin("node")
    with _Holding("node", hold=hold) as stop:
        scope = scope_of(fw, which)
        before = observe(scope, runner, which=which)
        goal = nodelayout.settle_nat(options.goal(scope, fw), before, frozenset())
        steps = nodelayout.converge(scope, before, goal)
        previous = nodestate.load()
        final = NodeRecord(
            backends=() if options.dummy_link else (fw.name,),
            link=options.dummy_link,
            created=_created(previous, steps),
        )
        _commit(scope, before, steps, stop, runner=runner, final=final)
    return Installed(scope=scope, goal=goal, changed=len(steps), backend=fw.name)


def _created(previous: NodeRecord | None, steps: tuple[Step, ...]) -> tuple[str, ...]:
    """What of iptables-nft's nat table our changes brought into being, so far."""
    made = [*(previous.created if previous else ()), *(s.created for s in steps if s.created)]
    return tuple(dict.fromkeys(made))


def dry_run(options: NodeOptions, *, runner: Runner = run, which: Which = shutil.which) -> str:
    """The commands :func:`install` would run now (all of them when the rules cannot be
    read without privilege)."""
    fw = firewall(options.backend, runner, which)
    scope = scope_of(fw, which)
    before = observe(scope, runner, which=which)
    head = "" if not before.unread else "# current rules unreadable: full plan\n"
    if before.unread:
        before = NodeLayout()
    goal = nodelayout.settle_nat(options.goal(scope, fw), before, frozenset())
    steps = nodelayout.converge(scope, before, goal)
    return head + (render(tuple(s.command for s in steps)) or "# nothing to do: already in place\n")


def _commit(
    scope: Scope,
    before: NodeLayout,
    steps: tuple[Step, ...],
    stop: txn.StopSignals,
    *,
    runner: Runner,
    final: NodeRecord,
) -> None:
    stop.check()
    if before.unread:
        raise CommandFailed(
            f"cannot read the node's current rules ({before.unread}); node: nothing was changed"
        )
    previous = nodestate.load()
    saved = previous
    for index, step in enumerate(steps):
        if stop.signum:
            raise _roll_back(scope, before, stop, runner=runner, previous=previous)
        done = steps[: index + 1]
        claimed = NodeRecord(
            backends=tuple(s.backend for s in done if s.backend),
            link=any(s.command.argv[:3] == ("ip", "link", "add") for s in done),
            created=_created(None, done),
        )
        ahead = claimed if previous is None else previous.merged(claimed)
        if ahead != saved:
            nodestate.put(ahead)
            saved = ahead
        result = runner(step.command)
        if stop.signum:
            raise _roll_back(scope, before, stop, runner=runner, previous=previous)
        if result.returncode != 0:
            failed = f"command failed: {shlex.join(step.command.argv)}: {why_failed(result)}"
            if step.command.argv[:3] == ("ip", "link", "add") and "Unknown device" in failed:
                failed += (
                    " (this kernel has no dummy links: CONFIG_DUMMY; route without --dummy-link)"
                )
            raise _roll_back(
                scope, before, stop, runner=runner, previous=previous, failed=f"{failed}; node"
            )
    nodestate.put(final)
    if stop.signum:
        raise _roll_back(scope, before, stop, runner=runner, previous=previous)
    stop.finish()


def _roll_back(
    scope: Scope,
    before: NodeLayout,
    stop: txn.StopSignals,
    *,
    runner: Runner,
    previous: NodeRecord | None,
    failed: str = "",
) -> NetsetupError:
    stop.finish()  # the rollback is not cut short
    _, trouble = converge_to(scope, before, runner)
    if trouble:
        tail = (
            f"rolling back did not finish ({trouble}); 'imdsmock route node --down' removes "
            "what is left"
        )
    else:
        tail = "rolled back, the node is as it was before"
        nodestate.put(previous)
    if stop.signum > 0 and not failed:
        name = signal.Signals(stop.signum).name
        return Interrupted(stop.signum, f"node interrupted by {name}; {tail}")
    return CommandFailed(f"{failed} {tail}")
