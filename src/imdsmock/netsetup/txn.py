"""Changing a namespace as a transaction: record first, roll back on failure or signal.

Before each step the record is saved naming everything the change may have made so far,
so even a process killed outright leaves a record that ``down`` acts on. A failing step,
or SIGINT, SIGTERM or SIGHUP (which also kills the command running), stops the change: the
namespace is looked at again and converged back to what was observed before it, the
previous record is put back, and one line says what happened. Further stop signals during
the rollback are ignored, so it is not cut short.
"""

from __future__ import annotations

import shlex
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from imdsmock.netsetup import goals, state
from imdsmock.netsetup.converge import Step, converge
from imdsmock.netsetup.errors import CommandFailed, Interrupted, NetsetupError
from imdsmock.netsetup.layout import Layout, Scope, observe
from imdsmock.netsetup.plan import Runner, run, stop_running, why_failed

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Handler = Callable[[int, FrameType | None], object] | int | None


class StopSignals:
    """Within ``with``: the first stop signal is remembered and the running command killed.

    Outside the main thread signals cannot be caught; they then act as they always do.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.signum = 0
        self._previous: dict[int, Handler] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._arrived)
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        if kind is None:
            self.check()  # a signal nobody acted on (a dry run): say so, do not drop it

    def finish(self) -> None:
        """The change is complete: a stop signal from now on is ignored."""
        self.signum = self.signum or -1

    def _arrived(self, signum: int, frame: FrameType | None) -> None:
        if not self.signum:
            self.signum = signum
            stop_running()

    def check(self) -> None:
        """Raise :class:`Interrupted` if a stop signal came before the change began."""
        if self.signum > 0:
            name = signal.Signals(self.signum).name
            message = f"{self.what} interrupted by {name}; nothing was changed"
            raise Interrupted(self.signum, message)


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """A change to make: its steps, the layout before them, the records before and after.

    ``final`` is the record once the steps are done (``None``: remove the record). Without
    ``journal`` no record is kept (container modes: the namespace dies with the container).
    ``routes`` says whether the layout includes host routes.
    """

    what: str
    backend: str
    scope: Scope
    before: Layout
    steps: tuple[Step, ...]
    previous: state.Record | None = None
    final: state.Record | None = None
    journal: bool = True
    routes: bool = False


def commit(change: Change, stop: StopSignals, runner: Runner = run) -> None:
    """Run the steps, saving the record ahead of each; on failure or signal, roll back.

    Nothing runs when the namespace could not be read: a plan built from a wrong picture
    (say, an alias taken for absent) could remove what is not ours.
    """
    stop.check()
    if change.before.unread:
        raise CommandFailed(
            f"cannot read the namespace's current state ({change.before.unread}); "
            f"{change.what}: nothing was changed"
        )
    saved = change.previous
    for index, step in enumerate(change.steps):
        if stop.signum:
            raise _roll_back(change, stop, runner, "")
        ahead = goals.journal(change.previous, change.backend, change.steps[: index + 1])
        try:
            if change.journal and ahead != saved:
                state.save(ahead)
                saved = ahead
        except NetsetupError as exc:
            raise _roll_back(change, stop, runner, f"{exc}; {change.what}") from None
        result = runner(step.command)
        if stop.signum:
            raise _roll_back(change, stop, runner, "")
        if result.returncode != 0:
            failed = f"command failed: {shlex.join(step.command.argv)}: {why_failed(result)}"
            raise _roll_back(change, stop, runner, f"{failed}; {change.what}")
    try:
        if change.journal:
            state.put(change.final)
    except NetsetupError as exc:
        raise _roll_back(change, stop, runner, f"{exc}; {change.what}") from None
    if stop.signum:
        raise _roll_back(change, stop, runner, "")
    stop.finish()


def restore(scope: Scope, before: Layout, runner: Runner = run, *, routes: bool = False) -> str:
    """Look again and converge back to ``before``: empty when the namespace is as it was,
    else what went wrong."""
    now = observe(scope, runner, routes=routes)
    if now.unread:
        return f"cannot read {now.unread}"
    trouble = ""
    for step in converge(scope, now, before):
        result = runner(step.command)
        if result.returncode != 0 and not trouble:
            trouble = f"{shlex.join(step.command.argv)}: {why_failed(result)}"
    after = observe(scope, runner, routes=routes)
    if after.unread:
        return trouble or f"cannot read {after.unread}"
    if after.same_as(before):
        return ""
    return trouble or "the namespace still differs from before"


def _roll_back(change: Change, stop: StopSignals, runner: Runner, failed: str) -> NetsetupError:
    """Converge back to ``change.before``; the error to raise, saying how that went."""
    stop.finish()  # the rollback is not cut short
    trouble = restore(change.scope, change.before, runner, routes=change.routes)
    if trouble:
        left = (
            f"; {state.path()} names what is left and 'imdsmock route down' removes it"
            if change.journal
            else ""
        )
        tail = f"rolling back did not finish ({trouble}){left}"
    else:
        tail = "rolled back, the namespace is as it was before"
        try:
            if change.journal:
                state.put(change.previous)
        except NetsetupError as exc:
            tail = f"rolled back, but {exc}"
    if stop.signum > 0 and not failed:
        name = signal.Signals(stop.signum).name
        return Interrupted(stop.signum, f"{change.what} interrupted by {name}; {tail}")
    return CommandFailed(f"{failed} {tail}")
