"""Commands and plans: side effects as data, run by one function.

A :class:`Command` is an argv tuple (plus optional standard input, for ``nft -f -`` and
``pfctl -f -``). A :class:`Plan` holds the steps that make a change and the steps that undo
it. Builders return plans; :func:`apply` runs them; :func:`render` prints them for
``--dry-run``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from imdsmock.netsetup.errors import CommandFailed


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One program run: ``argv`` exactly as passed to ``execve``, and optional stdin text."""

    argv: tuple[str, ...]
    stdin: str | None = None

    def __str__(self) -> str:
        """Render as a shell line (a here-document when there is standard input)."""
        line = shlex.join(self.argv)
        if self.stdin is None:
            return line
        body = self.stdin if self.stdin.endswith("\n") else self.stdin + "\n"
        return f"{line} <<'EOF'\n{body}EOF"


def cmd(*argv: str, stdin: str | None = None) -> Command:
    """Shorthand for ``Command(argv=argv, stdin=stdin)``."""
    return Command(argv=argv, stdin=stdin)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Steps that make a change, and the steps that undo it.

    ``steps`` is empty when the change is already in place (idempotence is decided when the
    plan is built, from observed state, not by running commands that may fail).
    """

    steps: tuple[Command, ...] = ()
    undo: tuple[Command, ...] = ()

    def __add__(self, other: Plan) -> Plan:
        """Concatenate: steps in order, undo in reverse order (last made, first removed)."""
        return Plan(
            steps=self.steps + other.steps,
            undo=other.undo + self.undo,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """What a command did: its exit status and its captured output."""

    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Command], Result]


_RUNNING: set[subprocess.Popen[str]] = set()


def run(command: Command) -> Result:
    """Run one command, capturing its output; a missing program is exit status 127.

    Standard input is the command's text, or empty: a firewall tool never reads the
    terminal. It runs in a process group of its own, which :func:`stop_running` can kill
    whole (a wrapper script and what it started).
    """
    try:
        child = subprocess.Popen(
            command.argv,
            stdin=subprocess.DEVNULL if command.stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            process_group=0,
        )
    except FileNotFoundError:
        return Result(returncode=127, stdout="", stderr=f"{command.argv[0]}: not found")
    _RUNNING.add(child)
    try:
        stdout, stderr = child.communicate(command.stdin)
    finally:
        _RUNNING.discard(child)
    return Result(returncode=child.returncode, stdout=stdout, stderr=stderr)


def stop_running() -> None:
    """Kill the commands :func:`run` is waiting for (from a signal handler, to roll back).

    The kernel applies each iptables, nft or ip change whole or not at all, so a killed
    command leaves either its change or nothing; the rollback looks before it undoes.
    """
    for child in list(_RUNNING):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)


def why_failed(result: Result) -> str:
    """The line that says why a command failed: its first error line, else its last line."""
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines()]
    lines = [line for line in lines if line]
    errors = [line for line in lines if re.search(r"\berror\b", line, re.IGNORECASE)]
    why = (errors or lines or [f"exit status {result.returncode}"])[0 if errors else -1]
    return why if len(why) <= 200 else why[:197] + "..."


def apply(steps: tuple[Command, ...], runner: Runner = run) -> None:
    """Run ``steps`` in order and stop at the first failure with :class:`CommandFailed`."""
    for step in steps:
        result = runner(step)
        if result.returncode != 0:
            raise CommandFailed(f"command failed: {shlex.join(step.argv)}: {why_failed(result)}")


def render(steps: tuple[Command, ...]) -> str:
    """The dry-run text: one shell line per command, ending in a newline (or empty)."""
    return "".join(f"{step}\n" for step in steps)
