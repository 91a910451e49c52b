"""argparse as the ``imdsmock`` command lines use it: one-line errors and close matches.

A usage error is one line on stderr and exit status 2 (argparse's status, without the
usage block), and a mistyped subcommand or choice ends with the close match
(``invalid choice: 'stat' (choose from ...); did you mean 'state'?``).
:func:`first_positional` finds where a subcommand stands after options, so options may come
before it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from imdsmock.errors import did_you_mean, quote

__all__ = ["Parser", "first_positional", "takes_value"]

# A word argparse takes as a (negative) number, not as an option.
_NUMBER = re.compile(r"-[0-9.]+")


class Parser(argparse.ArgumentParser):
    """An argument parser that reports errors in one line, with the close choice."""

    def error(self, message: str) -> NoReturn:
        """Exit 2 with ``PROG: error: MESSAGE`` and nothing else (an unrecognized option
        with its close match)."""
        self.exit(2, f"{self.prog}: error: {message}{self.option_hint(message)}\n")

    def option_hint(self, message: str) -> str:
        """``; did you mean '--port'?`` for argparse's "unrecognized arguments: --prot 3"."""
        if not message.startswith("unrecognized arguments: "):
            return ""
        words = message.removeprefix("unrecognized arguments: ").split()
        unknown = next((w.partition("=")[0] for w in words if w.startswith("--")), None)
        options = [o for o in self._option_string_actions if o.startswith("--")]
        return "" if unknown is None else did_you_mean(unknown, options)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse as argparse does; with subcommands, an unknown option before the command
        is named (argparse would take the option's value for the command and say that the
        command is no choice: ``invalid choice: 'http://...'``)."""
        words = list(sys.argv[1:] if args is None else args)
        if self._subparsers is not None:
            for word in _leading_options(self, words):
                if option_action(self, word) is None:
                    name = word.partition("=")[0]
                    options = [o for o in self._option_string_actions if o.startswith("--")]
                    self.error(
                        f"unknown option {quote(name)} before the command"
                        + did_you_mean(name, options)
                    )
        return super().parse_known_args(words, namespace)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse's own check, with the close match added to its message.
        choices = action.choices
        if choices is not None and value not in choices:
            names = [str(c) for c in choices]
            listed = ", ".join(map(repr, names))
            hint = did_you_mean(str(value), names)
            message = f"invalid choice: {quote(value)} (choose from {listed}){hint}"
            raise argparse.ArgumentError(action, message)


def option_action(parser: argparse.ArgumentParser, word: str) -> argparse.Action | None:
    """The option ``word`` names (``--port``, ``-c``, a unique abbreviation ``--contr``)."""
    actions = parser._option_string_actions  # argparse keeps no public table of its options
    name = word.partition("=")[0] if word.startswith("--") else word[:2]
    if name in actions:
        return actions[name]
    if name.startswith("--") and parser.allow_abbrev:
        started = {actions[o] for o in actions if o.startswith(name) and o.startswith("--")}
        if len(started) == 1:
            return started.pop()
    return None


def takes_value(action: argparse.Action, word: str) -> bool:
    """Whether the option ``word`` (naming ``action``) takes the next word as its value."""
    if action.nargs == 0:
        return False
    attached = "=" in word if word.startswith("--") else len(word) > 2
    return not attached


def _leading_options(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """The option words of ``args`` before its first positional word (the command); none
    when no positional word follows them (argparse names what it did not recognize)."""
    found: list[str] = []
    at = 0
    while at < len(args):
        word = args[at]
        if word == "--":
            return []
        if not word.startswith("-") or word == "-" or _NUMBER.fullmatch(word):
            return found
        found.append(word)
        action = option_action(parser, word)
        at += 2 if action is not None and takes_value(action, word) else 1
    return []


def first_positional(parser: argparse.ArgumentParser, args: list[str]) -> int | None:
    """The index of the first word of ``args`` that is no option of ``parser`` nor its value.

    None when there is none, or when an unknown option or ``--`` comes first: ``parser``
    then reports the arguments itself.
    """
    at = 0
    while at < len(args):
        word = args[at]
        if word == "--":
            return None
        if not word.startswith("-") or word == "-":
            return at
        action = option_action(parser, word)
        if action is None:
            return None
        at += 2 if takes_value(action, word) else 1
    return None
