"""``route node`` as the agent: hold the rules, remove them (retrying), and ``--down``.

:func:`hold` waits for SIGTERM or SIGINT (SIGHUP puts back what someone else removed),
then removes everything of ours. :func:`down` is the preStop hook and the undo of
``--once``: it removes our chain, table and link by name, whether or not the process that
made them is still alive.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
from collections.abc import Callable

from imdsmock.netsetup import detect, nodelayout, nodestate, txn
from imdsmock.netsetup.detect import NFT, Firewall
from imdsmock.netsetup.errors import CommandFailed, NetsetupError
from imdsmock.netsetup.layout import Scope
from imdsmock.netsetup.node import Installed
from imdsmock.netsetup.nodeobserve import Which, converge_to, firewall, observe, scope_of
from imdsmock.netsetup.plan import Runner, render, run

#: Removal attempts on SIGTERM and ``--down``, and the first pause between them (doubling):
#: the xtables lock or a busy nft may refuse a moment.
ATTEMPTS = 5
PAUSE = 0.5


def remove(
    scope: Scope,
    runner: Runner = run,
    *,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    which: Which = shutil.which,
) -> int:
    """Remove everything of ours in ``scope``, retrying with pauses; the commands run."""
    nothing = nodelayout.goal(scope, None, (), (), None)
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
        nothing = nodelayout.settle_nat(nodelayout.goal(scope, None, (), (), None), now, created)
        steps = nodelayout.converge(scope, now, nothing)
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
    lines += nodelayout.describe(seen) or ["nothing of route node's is in place"]
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
