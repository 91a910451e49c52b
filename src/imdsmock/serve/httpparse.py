"""Feeding bytes to an httptools parser, and what a failure means for the client.

httptools catches whatever a parser callback (``on_url``, ``on_header``, ``on_body``, ...)
raises and raises :class:`httptools.HttpParserCallbackError` instead, keeping the original
only as ``__context__``. Every listener refuses oversized requests from inside those
callbacks by raising :class:`Refused` with its ready answer (413/431/400); :func:`feed`
looks through the wrapper, so each listener answers that, a generic 400 for malformed
bytes, and a logged 500 for a bug - never silence.
"""

from __future__ import annotations

import logging
from typing import TypeVar, cast

import httptools

__all__ = ["Refused", "feed"]

T = TypeVar("T")


class Refused(Exception):
    """Raised in a parser callback: refuse the request with ``answer`` (a limit was hit)."""

    def __init__(self, answer: object) -> None:
        super().__init__(answer)
        self.answer = answer


def feed(
    parser: httptools.HttpRequestParser,
    data: bytes,
    *,
    malformed: T,
    failed: T,
    log: logging.Logger,
) -> T | None:
    """Feed ``data``; None when it parsed, else the answer to send: ``malformed`` for bad
    bytes, a :class:`Refused` callback's answer, or ``failed`` for any other callback
    exception (logged). httptools stops at an upgrade request (or CONNECT) only after its
    message completed, so the listener has answered it and closes: ``malformed`` then."""
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        return malformed
    except httptools.HttpParserError as exc:
        cause = exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError) else None
        if cause is None:
            return malformed
        if isinstance(cause, Refused):
            return cast(T, cause.answer)
        log.error("request failed", exc_info=cause)
        return failed
    return None
