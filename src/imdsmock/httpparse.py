"""What an httptools parse error means: malformed bytes, or an exception a callback raised.

httptools catches whatever a parser callback (``on_url``, ``on_header``, ``on_body``, ...)
raises and raises :class:`httptools.HttpParserCallbackError` instead, keeping the original
only as ``__context__``. Every listener refuses oversized requests from inside those
callbacks, so each must look through the wrapper to answer 413/431 rather than a generic
400 (or, for a bug, 500 rather than silence).
"""

from __future__ import annotations

import httptools

__all__ = ["callback_error"]


def callback_error(exc: httptools.HttpParserError) -> BaseException | None:
    """The exception a parser callback raised, or None when the bytes were malformed."""
    if isinstance(exc, httptools.HttpParserCallbackError):
        return exc.__context__
    return None
