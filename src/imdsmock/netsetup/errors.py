"""The one exception family of :mod:`imdsmock.netsetup`, with the exit status of each."""

from __future__ import annotations


class NetsetupError(Exception):
    """Bad input, missing privilege or a failed command; the CLI prints it as one line.

    The message names what was wrong, the value, and what is allowed or how to fix it.
    ``exit_status`` is what the CLI exits with: 2 for bad input and missing privilege.
    """

    exit_status = 2


class CommandFailed(NetsetupError):
    """A command of a plan failed (exit status 1); the message says what was rolled back."""

    exit_status = 1


class Interrupted(NetsetupError):
    """SIGINT, SIGTERM or SIGHUP arrived while a plan ran; exit status 128 + the signal."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_status = 128 + signum
