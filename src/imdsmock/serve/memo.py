"""What the IMDS listener remembers about requests it parsed: shared path strings, and
whole parses by their exact bytes (the parse memo). Process-wide, and each bounded by the
bytes it holds (any client can send any path): what a full one costs is stated in
docs/reliability.md.
"""

from __future__ import annotations

import sys
import time

from imdsmock.core.imds import Memo

__all__ = [
    "METHODS",
    "PARSED",
    "PARSED_BUDGET",
    "PARSED_MAX_BYTES",
    "PATHS",
    "PATHS_BUDGET",
    "Parsed",
    "path_of",
    "remember",
]

# Request lines repeat: one shared str per distinct path and method (the request log
# keeps thousands of requests, and these keep it from holding a copy of each). Paths are
# interned, as the compiled tables' keys are (imdsmock.core.table): a table lookup then
# finds its key by identity, without reading the key's characters. Bounded by
# bytes: each entry costs its key and its str (each the path's length plus ~40 bytes of
# object header) and a dict slot; 4 MiB holds ~19,000 paths of 50 bytes (10,000 leaves fit).
# A path longer than PATHS_MAX_BYTES is not shared: no client repeats one.
PATHS: dict[bytes, str] = {}
PATHS_BUDGET = 4 * 1024 * 1024
PATHS_ENTRY_COST = 120  # bytes beyond twice the path: object headers, dict slot
PATHS_MAX_BYTES = 1024
_paths_bytes = 0  # what PATHS holds, as counted against PATHS_BUDGET
METHODS = {m.encode(): m for m in ("GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH")}


class Parsed(Memo):
    """What parsing one whole request gave: everything but the client's address.

    A :class:`~imdsmock.core.imds.Memo` too: the Request last made from this parse, and
    what answering it took. The next answer of the same parse for the same client and
    instance takes that Request rather than making another, and
    (:func:`imdsmock.core.imds.handle`) the same answer while its table and token hold. A
    spread of distinct requests otherwise makes a new Request per answer (the request log
    then frees one per answer, an old one), looks up the path and the token in big dicts,
    and reads the table's entry: objects cold in the CPU caches (see docs/performance.md,
    "Big tables and fleets"). One object, not a tuple and a memo: one fewer to read.
    """

    __slots__ = (
        "forwarded",
        "header_bytes",
        "host",
        "keep_alive",
        "method",
        "path",
        "token",
        "token_ttl",
        "user_agent",
    )

    def __init__(  # noqa: PLR0917 - the fields of one parse
        self,
        method: str,
        path: str,
        token: str | None,
        token_ttl: str | None,
        forwarded: bool,
        user_agent: str | None,
        keep_alive: bool,
        header_bytes: int,
        host: str | None,
    ) -> None:
        self.method = method
        self.path = path
        self.token = token
        self.token_ttl = token_ttl
        self.forwarded = forwarded
        self.user_agent = user_agent
        # What HTTP says (version, Connection header), not the server option.
        self.keep_alive = keep_alive
        self.header_bytes = header_bytes  # counted against Limits.max_header_bytes
        self.host = host  # the Host header, or the authority of an absolute-form target
        self.request = None
        self.known = None


# Parsed requests, by their exact bytes. Clients repeat themselves byte for byte: an SDK
# sends the same headers (and the same token, for hours) on every connection, a health
# check the same GET. When a packet holds exactly one request, with no body, and the
# parser starts it between messages, parsing the same bytes again gives the same result;
# so the answer skips httptools and its five Python callbacks (see docs/performance.md).
# Bounded by bytes: an entry costs its key, the strings of its Parsed (parts of the key:
# at most as long again) and ~650 bytes of object headers, tuple, dict slot, Request and
# Known (a remembered answer refers to the table's bytes, which the table holds); 12 MiB
# holds ~10,000 SDK requests of 300 bytes, ~13,000 of the benchmark's 150 (its 10,000 leaves
# fit). A request with a body, pipelined requests, or a packet that splits a request are
# parsed as usual, never stored.
PARSED: dict[bytes, Parsed] = {}
PARSED_BUDGET = 12 * 1024 * 1024
PARSED_ENTRY_COST = 650  # beyond twice the key: headers, tuple, dict slot, Request, Known
PARSED_MAX_BYTES = 2048  # a longer packet is never stored
# When full, the memo is emptied at most this often (seconds); in between nothing new is
# stored. Clients that never repeat (a random token per request) would otherwise make
# every request pay a store and, now and then, a clear.
PARSED_REFRESH_S = 10.0
_parsed_refresh_at = 0.0  # monotonic time before which a full memo is kept as it is
_parsed_bytes = 0  # what PARSED holds, as counted against PARSED_BUDGET


def remember(data: bytes, parsed: Parsed) -> None:
    """Store one parse in the memo (see PARSED), within its bounds."""
    global _parsed_refresh_at, _parsed_bytes  # noqa: PLW0603 - one memo per process
    cost = 2 * len(data) + PARSED_ENTRY_COST
    if _parsed_bytes + cost > PARSED_BUDGET:
        now = time.monotonic()
        if now < _parsed_refresh_at:
            return
        PARSED.clear()
        _parsed_bytes = 0
        _parsed_refresh_at = now + PARSED_REFRESH_S
    PARSED[data] = parsed
    _parsed_bytes += cost


def path_of(url: bytes) -> str:
    """The request target as str (shared per distinct target, see PATHS). A target that
    does not start with ``/`` (absolute-form, ``*``) is not shared: the server reads more
    than the path from it, and must see it each time."""
    global _paths_bytes  # noqa: PLW0603 - one table per process
    try:
        path = url.decode("ascii")
    except UnicodeDecodeError:
        path = url.decode("latin-1")
    size = len(url)
    if size > PATHS_MAX_BYTES or path[:1] != "/":
        return path
    cost = 2 * size + PATHS_ENTRY_COST
    if _paths_bytes + cost > PATHS_BUDGET:
        PATHS.clear()
        _paths_bytes = 0
    path = PATHS[url] = sys.intern(path)
    _paths_bytes += cost
    return path
