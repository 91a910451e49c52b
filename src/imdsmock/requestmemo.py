"""What the IMDS listener remembers about requests it parsed: shared path strings, and
whole parses by their exact bytes (the parse memo). Process-wide and bounded.
"""

from __future__ import annotations

import time
from typing import NamedTuple

__all__ = [
    "METHODS",
    "PARSED",
    "PARSED_LIMIT",
    "PARSED_MAX_BYTES",
    "PATHS",
    "Parsed",
    "path_of",
    "remember",
]

# Request lines repeat: one shared str per distinct path and method (the request log
# keeps thousands of requests, and these keep it from holding a copy of each).
PATHS: dict[bytes, str] = {}
PATHS_LIMIT = 16384  # about 2.5 MB when full; 10,000 leaves fit
METHODS = {m.encode(): m for m in ("GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH")}


class Parsed(NamedTuple):
    """What parsing one whole request gave: everything but the client's address."""

    method: str
    path: str
    token: str | None
    token_ttl: str | None
    forwarded: bool
    user_agent: str | None
    keep_alive: bool  # what HTTP says (version, Connection header), not the server option
    header_bytes: int  # counted against Limits.max_header_bytes


# Parsed requests, by their exact bytes. Clients repeat themselves byte for byte: an SDK
# sends the same headers (and the same token, for hours) on every connection, a health
# check the same GET. When a packet holds exactly one request, with no body, and the
# parser starts it between messages, parsing the same bytes again gives the same result;
# so the answer skips httptools and its five Python callbacks (~20 % of a keep-alive
# GET). Bounded like PATHS; a request with a body, pipelined requests, or a packet that
# splits a request are parsed as usual and never stored.
PARSED: dict[bytes, Parsed] = {}
PARSED_LIMIT = 2048
PARSED_MAX_BYTES = 2048  # ~4 MB at most when full
# When full, the memo is emptied at most this often (seconds); in between nothing new is
# stored. Clients that never repeat (a random token per request) would otherwise make
# every request pay a store and, every 2,048, a clear: 8 % of such a GET, measured.
PARSED_REFRESH_S = 10.0
_parsed_refresh_at = 0.0  # monotonic time before which a full memo is kept as it is


def remember(data: bytes, parsed: Parsed) -> None:
    """Store one parse in the memo (see PARSED), within its bounds."""
    global _parsed_refresh_at  # noqa: PLW0603 - one memo per process, like PATHS
    if len(PARSED) >= PARSED_LIMIT:
        now = time.monotonic()
        if now < _parsed_refresh_at:
            return
        PARSED.clear()
        _parsed_refresh_at = now + PARSED_REFRESH_S
    PARSED[data] = parsed


def path_of(url: bytes) -> str:
    """The request target as str (shared per distinct target, see PATHS)."""
    try:
        path = url.decode("ascii")
    except UnicodeDecodeError:
        path = url.decode("latin-1")
    if len(PATHS) >= PATHS_LIMIT:  # any client can send any path: stay bounded
        PATHS.clear()
    PATHS[url] = path
    return path
