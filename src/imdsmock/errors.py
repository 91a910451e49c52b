"""The one exception family of imdsmock.

Every error a user can cause (bad configuration, a port in use, a bad control request)
is an :class:`ImdsMockError`. Only the CLI turns it into an exit status and one line on
stderr; the control API turns it into a JSON error. Nothing else catches it.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ConfigError", "ImdsMockError", "ServeError", "close_match", "did_you_mean"]


class ImdsMockError(Exception):
    """Base class: the message is one line a user can act on."""


class ConfigError(ImdsMockError):
    """A configuration value is wrong: names the key, the value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str, *, hint: str = "") -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        self.hint = hint
        # A key read from a file may hold a newline or control characters: quote it then,
        # so the message stays one line (found by tests/test_fuzz.py).
        shown = key if key.isprintable() else repr(key)
        super().__init__(f"{shown} is {value!r}; expected {allowed}{hint}")

    def renamed(self, key: str) -> ConfigError:
        """The same error, naming the key as the user spelled it (``account_id``)."""
        return ConfigError(key, self.value, self.allowed, hint=self.hint)


class ServeError(ImdsMockError):
    """The server cannot start (address in use, permission denied, ...)."""


def close_match(word: str, choices: Iterable[str]) -> str | None:
    """The one of ``choices`` that ``word`` most likely misspells, or None when none is close.

    Case is ignored (``EU-WEST-1`` means ``eu-west-1``); a unique abbreviation means the
    choice it starts; otherwise closeness is :mod:`difflib`'s.
    """
    import difflib  # only on an error path: no start-up cost

    by_folded: dict[str, str] = {}
    for choice in choices:
        by_folded.setdefault(choice.casefold(), choice)
    folded = word.casefold()
    if folded in by_folded:
        return by_folded[folded]
    started = [choice for choice in by_folded if folded and choice.startswith(folded)]
    if len(started) == 1:  # a unique abbreviation: 'spot' for 'spot-interruption'
        return by_folded[started[0]]
    found = difflib.get_close_matches(folded, list(by_folded), n=1, cutoff=0.6)
    return by_folded[found[0]] if found else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'region'?"`` when one of ``choices`` is close to ``word``, else ``""``.

    The end of a message about an unknown name (a key, a subcommand, a variable ...).
    """
    match = close_match(word, choices)
    return "" if match is None or match == word else f"; did you mean {match!r}?"
