"""The one exception family of imdsmock, and how its messages quote what they were given.

Every error a user can cause (bad configuration, a port in use, a bad control request)
is an :class:`ImdsMockError`. Only the CLI turns it into an exit status and one line on
stderr; the control API turns it into a JSON error. Nothing else catches it.

A message quotes the bad value with :func:`quote` and names a key with :func:`label`: at
most :data:`QUOTE_LIMIT` characters of it, on one line, whatever the value is (a megabyte
string, an integer of thousands of digits, a list nested a thousand levels deep).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping

__all__ = [
    "QUOTE_LIMIT",
    "ConfigError",
    "ImdsMockError",
    "ServeError",
    "close_match",
    "did_you_mean",
    "label",
    "quote",
]

QUOTE_LIMIT = 100
"""Characters of a value an error message shows (then ``...`` and the value's size)."""

# Containers deeper than this are shown as [...] / {...}: the walk stays shallow.
_SHOWN_LEVELS = 4
# An integer beyond this many bits is described, not written out (str() of one with more
# than 4300 digits raises, and long before that it is no use in a message).
_SHOWN_BITS = 320


class ImdsMockError(Exception):
    """Base class: the message is one line a user can act on."""


class ConfigError(ImdsMockError):
    """A configuration value is wrong: names the key, the value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str, *, hint: str = "") -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        self.hint = hint
        super().__init__(f"{label(key)} is {quote(value)}; expected {allowed}{hint}")

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


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``value`` as an error message shows it: its ``repr``, cut to about ``limit`` characters.

    One line always (newlines and control characters are escaped, as ``repr`` does), and
    the work is bounded too: only as much of a string or container is looked at as is
    shown, so quoting a huge or deeply nested value costs no more than a small one.
    """
    if isinstance(value, str | bytes) and len(value) > limit:
        return f"{_cut(repr(value[:limit]), limit)} ({len(value)} {_unit(value)})"
    pieces: list[str] = []
    size = 0
    for piece in _pieces(value, 0):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            return _cut("".join(pieces), limit)
    return "".join(pieces)


def label(key: str) -> str:
    """A key as an error message names it: as is when printable and short, else quoted."""
    if key.isprintable() and len(key) <= QUOTE_LIMIT:
        return key
    return quote(key)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unit(value: str | bytes) -> str:
    return "characters" if isinstance(value, str) else "bytes"


def _pieces(value: object, level: int) -> Iterator[str]:
    """The ``repr`` of ``value`` in pieces, produced lazily (the caller stops early)."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        yield repr(value)
    elif isinstance(value, int):
        bits = value.bit_length()
        if bits > _SHOWN_BITS:
            digits = int(bits * 0.30103) + 1  # log10(2): within one of the exact count
            yield f"<an integer of about {digits} digits>"
        else:
            yield repr(value)
    elif isinstance(value, str | bytes):
        yield repr(value[: QUOTE_LIMIT + 1])  # the caller cuts what is longer
    elif isinstance(value, Mapping):
        yield from _container(value, "{", "}", level)
    elif isinstance(value, list | tuple):
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
        yield from _container(value, open_, close, level)
    elif isinstance(value, set | frozenset) and value:
        yield from _container(value, "{", "}", level)
    else:
        yield repr(value)


def _container(
    value: Mapping[object, object] | Collection[object], open_: str, close: str, level: int
) -> Iterator[str]:
    if level >= _SHOWN_LEVELS:
        yield f"{open_}...{close}"
        return
    yield open_
    if isinstance(value, Mapping):
        for i, (key, item) in enumerate(value.items()):
            yield ", " if i else ""
            yield from _pieces(key, level + 1)
            yield ": "
            yield from _pieces(item, level + 1)
    else:
        for i, item in enumerate(value):
            yield ", " if i else ""
            yield from _pieces(item, level + 1)
        if isinstance(value, tuple) and len(value) == 1:
            yield ","  # as repr writes a tuple of one
    yield close
