"""``route node``: the node-mode agent's routing, put in place, held, and removed.

:func:`install` looks at the namespace and converges it to the wanted rules (adding twice
changes nothing; a changed port or pattern replaces our chain's rules in one commit); a
failed step or a stop signal rolls it back as ``route up`` does. :func:`hold` is the agent:
it installs, waits for SIGTERM or SIGINT (SIGHUP puts back what someone else removed), then
removes everything of ours, retrying. :func:`down` is the preStop hook and the undo of
``--once``: it removes our chain, table and link by name, whether or not the process that
made them is still alive.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from imdsmock.netsetup import detect, nodeplan, nodestate, txn
from imdsmock.netsetup.container import parse_mock, parse_port
from imdsmock.netsetup.converge import Step
from imdsmock.netsetup.detect import IPTABLES_LEGACY, IPTABLES_NFT, NFT, Firewall, parse_nft_table
from imdsmock.netsetup.errors import CommandFailed, Interrupted, NetsetupError
from imdsmock.netsetup.layout import Scope, legacy_loaded
from imdsmock.netsetup.linux import ECS_CREDENTIALS, IMDS_V4
from imdsmock.netsetup.nodeplan import LINK, NodeLayout
from imdsmock.netsetup.nodestate import NodeRecord
from imdsmock.netsetup.plan import Runner, cmd, render, run, why_failed

Which = Callable[[str], str | None]
Loaded = Callable[[int], bool]

#: Removal attempts on SIGTERM and ``--down``, and the first pause between them (doubling):
#: the xtables lock or a busy nft may refuse a moment.
ATTEMPTS = 5
PAUSE = 0.5
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
            return nodeplan.goal(scope, None, (), (), link)
        pats = nodeplan.patterns(self.interfaces)
        targets = nodeplan.dnat_targets(self.mock_host, self.mock_port, self.ecs_port)
        rules = nodeplan.iptables_rules(pats, targets)
        return nodeplan.goal(scope, fw, rules, nodeplan.nft_rules(pats, targets), None)


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


def firewall(
    choice: detect.BackendChoice,
    runner: Runner = run,
    which: Which = shutil.which,
    loaded: Loaded = legacy_loaded,
) -> Firewall:
    """The backend asked for; ``auto``: the one the node's own nat rules are in.

    In a container the image's ``iptables`` may be the nf_tables one while the node's
    kube-proxy or Docker write legacy rules (or the reverse); as Kubernetes' iptables
    wrapper does, ``auto`` picks the backend holding more nat rules, else the system's.
    """
    system = detect.detect_firewall(choice, which=which, runner=runner)
    both = which("iptables-legacy") is not None and which("iptables-nft") is not None
    if choice != "auto" or system.kind != "iptables" or not both or not loaded(4):
        return system
    legacy, nft = _nat_rules(runner, "iptables-legacy"), _nat_rules(runner, "iptables-nft")
    if legacy != nft:
        return IPTABLES_LEGACY if legacy > nft else IPTABLES_NFT
    return system


def _nat_rules(runner: Runner, program: str) -> int:
    shown = runner(cmd(program, "-w", "-t", "nat", "-S"))
    lines = shown.stdout.splitlines() if shown.returncode == 0 else []
    return sum(1 for line in lines if line.startswith("-A ") and nodeplan.CHAIN not in line)


def scope_of(fw: Firewall, which: Which = shutil.which) -> Scope:
    """``fw`` and every other installed backend: ours is found there by name and removed."""
    found = [fw]
    for other in (IPTABLES_NFT, IPTABLES_LEGACY, NFT):
        if all(other.name != f.name for f in found) and which(other.v4) is not None:
            found.append(other)
    return tuple(found)


def observe(
    scope: Scope,
    runner: Runner = run,
    loaded: Loaded = legacy_loaded,
    which: Which = shutil.which,
) -> NodeLayout:
    """Read our chain (IPv4 nat), table and link, running only read-only commands; with
    iptables-nft in scope and nft at hand, the ``ip nat`` table too.

    A legacy table not loaded yet is not listed (listing would load it for good).
    """
    failed: list[str] = []

    def read(*argv: str, absent: str) -> str | None:
        result = runner(cmd(*argv))
        if result.returncode == 0:
            return result.stdout
        if absent not in result.stderr and not failed:
            failed.append(f"{shlex.join(argv)}: {why_failed(result)}")
        return None

    chains = {}
    nft_rules: tuple[str, ...] | None = None
    for fw in scope:
        if fw.kind == "nft":
            listing = read("nft", "list", "table", "inet", nodeplan.NFT_TABLE, absent="No such")
            nft_rules = None if listing is None else parse_nft_table(listing)
        elif fw.variant == "legacy" and not loaded(4):
            chains[fw.v4] = detect.ChainState()
        else:
            listing = read(fw.v4, "-w", "-t", "nat", "-S", absent="\0")
            chains[fw.v4] = nodeplan.parse_chain(listing or "")
    shown = read("ip", "-o", "-4", "addr", "show", "dev", LINK, absent="does not exist")
    link = None if shown is None else detect.parse_addresses(shown)
    nat, nat_ours = None, frozenset[str]()
    if any(fw.variant == "nf_tables" for fw in scope) and which("nft") is not None:
        table = read("nft", "list", "table", *nodeplan.NAT_TABLE.split(), absent="No such")
        nat, nat_ours = nodeplan.parse_nat(table)
    return NodeLayout(
        chains=chains,
        nft_rules=nft_rules,
        link=link,
        nat=nat,
        nat_ours=nat_ours,
        unread=failed[0] if failed else "",
    )


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
        goal = nodeplan.settle_nat(options.goal(scope, fw), before, frozenset())
        steps = nodeplan.converge(scope, before, goal)
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
    goal = nodeplan.settle_nat(options.goal(scope, fw), before, frozenset())
    steps = nodeplan.converge(scope, before, goal)
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


def converge_to(
    scope: Scope,
    target: NodeLayout,
    runner: Runner = run,
    created: frozenset[str] = frozenset(),
    which: Which = shutil.which,
) -> tuple[int, str]:
    """Look, converge to ``target``, look again: the commands run and what went wrong
    (empty: the namespace now holds ``target``). ``created``: what of the nat table our
    changes made, to delete again once nothing but ours is in it."""
    now = observe(scope, runner, which=which)
    if now.unread:
        return 0, f"cannot read {now.unread}"
    target = nodeplan.settle_nat(target, now, created)
    steps = nodeplan.converge(scope, now, target)
    trouble = ""
    for step in steps:
        result = runner(step.command)
        if result.returncode != 0 and not trouble:
            trouble = f"{shlex.join(step.command.argv)}: {why_failed(result)}"
    after = observe(scope, runner, which=which)
    if after.unread:
        return len(steps), trouble or f"cannot read {after.unread}"
    if after.same_as(target):
        return len(steps), ""
    return len(steps), trouble or "the rules still differ from what was asked"


def remove(
    scope: Scope,
    runner: Runner = run,
    *,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    which: Which = shutil.which,
) -> int:
    """Remove everything of ours in ``scope``, retrying with pauses; the commands run."""
    nothing = nodeplan.goal(scope, None, (), (), None)
    record = nodestate.load()
    created = frozenset(record.created if record else ())
    total, trouble = 0, ""
    for attempt in range(attempts):
        if attempt:
            sleep(PAUSE * 2 ** (attempt - 1))
        ran, trouble = converge_to(scope, nothing, runner, created, which)
        total += ran
        if not trouble:
            nodestate.put(None)
            return total
    raise CommandFailed(
        f"removing the node's rules did not finish after {attempts} attempts ({trouble}); "
        "run 'imdsmock route node --down' again"
    )


def down(
    *,
    backend: detect.BackendChoice = "auto",
    dry_run: bool = False,
    runner: Runner = run,
    which: Which = shutil.which,
) -> str:
    """Remove our chain, table and link from every installed backend (the preStop hook)."""
    scope = scope_of(_any_firewall(backend, runner, which), which)
    record = nodestate.load()  # an unreadable record is one line, before any change
    if dry_run:
        now = observe(scope, runner, which=which)
        created = frozenset(record.created if record else ())
        nothing = nodeplan.settle_nat(nodeplan.goal(scope, None, (), (), None), now, created)
        steps = nodeplan.converge(scope, now, nothing)
        return render(tuple(s.command for s in steps)) or "# nothing to do: nothing of ours\n"
    detect.require_net_admin("node --down")
    with txn.StopSignals("node --down") as stop:
        stop.finish()  # removing is never cut short: a second SIGTERM must not leave half
        ran = remove(scope, runner, which=which)
    if not ran:
        return "imdsmock route node: nothing to remove\n"
    return f"imdsmock route node: removed ({ran} commands)\n"


def _any_firewall(choice: detect.BackendChoice, runner: Runner, which: Which) -> Firewall:
    """The backend for ``--down`` and ``--status``; without any firewall tool, nft's
    (then only the link is looked at: ``nft`` is not installed either)."""
    try:
        return firewall(choice, runner, which)
    except NetsetupError:
        return NFT


def status(*, backend: detect.BackendChoice = "auto", runner: Runner = run) -> str:
    """What of ours is in place, backend by backend, and the record."""
    scope = scope_of(_any_firewall(backend, runner, shutil.which))
    seen = observe(scope, runner)
    lines = [f"backends looked at: {', '.join(fw.name for fw in scope)}"]
    if seen.unread:
        lines.append(f"rules: unreadable ({seen.unread}; reading needs CAP_NET_ADMIN)")
    lines += nodeplan.describe(seen) or ["nothing of route node's is in place"]
    record = nodestate.load()
    if record is not None:
        lines.append(f"record: {nodestate.path()}")
    return "\n".join(lines) + "\n"


def hold(
    installed: Installed, runner: Runner = run, *, sleep: Callable[[float], None] = time.sleep
) -> str:
    """The agent: wait for SIGTERM or SIGINT (blocked since :func:`install` finished, so this
    works as PID 1), putting our rules back on SIGHUP; then remove them, retrying.

    What it prints goes to stdout as it happens; the return value is the last line.
    """
    waited = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    print("imdsmock route node: ready", flush=True)
    while True:
        signum = signal.sigwait(waited)
        if signum != signal.SIGHUP:
            break
        ran, trouble = converge_to(installed.scope, installed.goal, runner)
        if trouble:
            print(
                f"imdsmock route node: error: putting the rules back: {trouble}",
                file=sys.stderr,
                flush=True,
            )
        else:
            print(
                f"imdsmock route node: SIGHUP: rules checked ({ran} commands to put them back)",
                flush=True,
            )
    name = signal.Signals(signum).name
    ran = remove(installed.scope, runner, sleep=sleep)
    return f"imdsmock route node: {name}: removed ({ran} commands)\n"
