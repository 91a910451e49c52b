"""Commands and plans: side effects as data, run by one function.

A :class:`Command` is an argv tuple (plus optional standard input, for ``nft -f -`` and
``pfctl -f -``). A :class:`Plan` holds the steps that make a change and the steps that undo
it. Builders return plans; :func:`apply` runs them; :func:`render` prints them for
``--dry-run``.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from imdsmock.netsetup.errors import NetsetupError


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


def run(command: Command) -> Result:
    """Run one command, capturing its output; a missing program is exit status 127."""
    try:
        done = subprocess.run(
            command.argv,
            input=command.stdin,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return Result(returncode=127, stdout="", stderr=f"{command.argv[0]}: not found")
    return Result(returncode=done.returncode, stdout=done.stdout, stderr=done.stderr)


def apply(steps: tuple[Command, ...], runner: Runner = run) -> None:
    """Run ``steps`` in order and stop at the first failure with a :class:`NetsetupError`."""
    for step in steps:
        result = runner(step)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            why = detail[-1] if detail else f"exit status {result.returncode}"
            raise NetsetupError(f"command failed: {shlex.join(step.argv)}: {why}")


def render(steps: tuple[Command, ...]) -> str:
    """The dry-run text: one shell line per command, ending in a newline (or empty)."""
    return "".join(f"{step}\n" for step in steps)
