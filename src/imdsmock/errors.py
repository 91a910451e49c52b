"""The one exception family of imdsmock.

Every error a user can cause (bad configuration, a port in use, a bad control request)
is an :class:`ImdsMockError`. Only the CLI turns it into an exit status and one line on
stderr; the control API turns it into a JSON error. Nothing else catches it.
"""

from __future__ import annotations

__all__ = ["ConfigError", "ImdsMockError", "ServeError"]


class ImdsMockError(Exception):
    """Base class: the message is one line a user can act on."""


class ConfigError(ImdsMockError):
    """A configuration value is wrong: names the key, the value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        # A key read from a file may hold a newline or control characters: quote it then,
        # so the message stays one line (found by tests/test_fuzz.py).
        shown = key if key.isprintable() else repr(key)
        super().__init__(f"{shown} is {value!r}; expected {allowed}")


class ServeError(ImdsMockError):
    """The server cannot start (address in use, permission denied, ...)."""
