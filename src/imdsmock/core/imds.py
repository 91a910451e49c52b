"""The IMDS behaviour: a function of the compiled snapshot, the request and the time.

No sockets and no clock reads here; the server parses bytes into a :class:`Request`,
calls :func:`handle` and writes the returned pre-rendered
:class:`~imdsmock.core.wire.Response`. The rules follow real IMDS:

* ``http-endpoint disabled`` -> 403 for everything;
* ``PUT /latest/api/token``: ``X-Forwarded-For`` -> 403; TTL missing or outside
  1..21600 -> 400; else 200 with the token and the TTL echoed; PUT on a dated token path
  -> 403; any other method on the token path -> 405 ``Allow: OPTIONS, PUT``;
* data paths answer GET and HEAD; an invalid or expired token -> 401 in both modes; no
  token in ``required`` mode -> 401;
* unknown paths -> 404 with the XHTML page.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from imdsmock.config.defaults import VERSIONS
from imdsmock.core.snapshot import Snapshot
from imdsmock.core.state import Compiled
from imdsmock.core.table import GATED, PER_EPOCH, ROLE_DOCUMENT, Entry, Table
from imdsmock.core.tokens import MAX_TTL, MIN_TTL, TokenIssuer
from imdsmock.core.wire import Response, error, render

__all__ = ["Known", "Memo", "Request", "handle"]

_VERSIONS = frozenset(VERSIONS)
_TTL_LINE = b"X-Aws-Ec2-Metadata-Token-Ttl-Seconds: %d\r\n"
_SLASHES = re.compile("/{2,}")


class Request(NamedTuple):
    """What the IMDS behaviour needs to know about one request."""

    method: str
    path: str
    client: str = "127.0.0.1"
    token: str | None = None
    token_ttl: str | None = None
    forwarded: bool = False
    user_agent: str | None = None
    # The fleet instance it was answered as (None: a mock without fleet).
    instance: str | None = None
    # Why the client was recognised as it (``source 10.0.0.0/24``, ``pod shop/web-1 ...``).
    why: str | None = None


class Known(NamedTuple):
    """A plain answer from a table entry (no flags), remembered to answer the same request
    again: taken while the table in force and the token's issuer state are the ones it was
    made under (compared by identity), and the token has time left.

    A spread of distinct requests (10,000 paths, 10,000 tokens) otherwise reads, per
    request, the path's and the token's strings, two dict slots, the table's entry and the
    token's expiry: objects cold in the CPU caches (see docs/performance.md, "Big tables
    and fleets"). This is one object, beside the request the server remembers.
    """

    mark: object  # Table.mark of the table it was answered from
    tokens: object | None  # TokenIssuer.mark the token was verified under (None: no token)
    expiry: float  # the token's expiry (no token: unused)
    response: Response  # before the token's TTL line


class Memo:
    """What the server keeps beside one remembered parse: the :class:`Request` it last made
    from it, and what answering it took (:class:`Known`), both ``None`` until made."""

    __slots__ = ("known", "request")

    def __init__(self) -> None:
        self.request: Request | None = None
        self.known: Known | None = None


class Gate:
    """Decides whether a client may see gated paths (AEMM's ``--mock-ip-count``)."""

    def allows(self, client: str) -> bool:  # pragma: no cover - interface
        """Whether ``client`` may see gated paths."""
        raise NotImplementedError


FORBIDDEN = error(403)
FORBIDDEN_HEAD = error(403, head_only=True)
UNAUTHORIZED = error(401)
UNAUTHORIZED_HEAD = error(401, head_only=True)
BAD_REQUEST = error(400)
NOT_FOUND = error(404)
NOT_FOUND_HEAD = error(404, head_only=True)
TOKEN_METHOD = error(405, allow="OPTIONS, PUT")
TOKEN_METHOD_HEAD = error(405, allow="OPTIONS, PUT", head_only=True)
DATA_METHOD = error(405, allow="GET, HEAD, OPTIONS")
TOKEN_PATH = "/latest/api/token"


def handle(
    compiled: Compiled,
    request: Request,
    now: float,
    tokens: TokenIssuer,
    gate: Gate | None = None,
    *,
    memo: Memo | None = None,
) -> Response:
    """Answer one IMDS request.

    ``memo`` is where the server keeps what answering the same request took last time
    (:class:`Known`): a plain answer is taken from it while it holds, and stored there
    when made.
    """
    table = compiled.table(now)
    if memo is not None:
        last = memo.known
        if last is not None and last.mark is table.mark:
            marked = last.tokens
            if marked is None:
                return last.response
            if marked is tokens.mark:
                left = last.expiry - now
                if left > 0:
                    return _with_ttl(last.response, left)
    options = compiled.options
    head = request.method == "HEAD"
    if options.http_endpoint == "disabled":
        return FORBIDDEN_HEAD if head else FORBIDDEN
    path = request.path
    entry = table.fast.get(path)
    if entry is None:
        if path == TOKEN_PATH or path == TOKEN_PATH + "/":
            return _token(compiled.snapshot, request, now, tokens)
        path = _normalize(path)
        if path.endswith("/api/token"):
            version = path[1:].split("/", 1)[0]
            if path == TOKEN_PATH:
                return _token(compiled.snapshot, request, now, tokens)
            if version in _VERSIONS:
                return FORBIDDEN if request.method == "PUT" else NOT_FOUND
    if request.method != "GET" and not head:
        return DATA_METHOD
    # Authentication comes before the lookup: a bad token is 401 even on unknown paths.
    remaining: float | None = None
    expiry = 0.0
    mark = tokens.mark  # read before the token is verified (a revoke_all() may come between)
    if request.token is not None:
        found = tokens.expiry(request.token, now)
        if found is None:
            return UNAUTHORIZED_HEAD if head else UNAUTHORIZED
        expiry = found
        remaining = found - now
    elif options.http_tokens == "required":
        return UNAUTHORIZED_HEAD if head else UNAUTHORIZED
    if entry is None:
        entry = _lookup(table, path)
        if entry is None:
            return NOT_FOUND_HEAD if head else NOT_FOUND
    flags = entry.flags
    if flags:
        if flags & GATED and gate is not None and not gate.allows(request.client):
            return NOT_FOUND_HEAD if head else NOT_FOUND
        if flags & PER_EPOCH:
            entry = compiled.per_epoch(entry, now)
        failures = compiled.failures
        if flags & ROLE_DOCUMENT and failures.remaining and failures.take():
            # An armed "fail the next N refreshes" answers EC2's failure document instead.
            response = failures.answer(head)
        else:
            response = entry.head if head else entry.get
        return _with_ttl(response, remaining) if remaining is not None else response
    response = entry.head if head else entry.get
    if memo is not None:
        memo.known = Known(table.mark, None if remaining is None else mark, expiry, response)
    return _with_ttl(response, remaining) if remaining is not None else response


def _with_ttl(response: Response, remaining: float) -> Response:
    """A token-authenticated answer: it carries the token's remaining TTL, as one more
    header line after Content-Length."""
    return Response(
        response.status,
        response.head + _TTL_LINE % int(remaining),
        response.tail_close,
        response.tail_keep,
        response.hop_limit,
    )


def _normalize(path: str) -> str:
    path = path.split("?", 1)[0].split("#", 1)[0]
    if "//" in path:
        path = _SLASHES.sub("/", path)
    return path


def _lookup(table: Table, path: str) -> Entry | None:
    if path in {"/", ""}:
        return table.root
    entry = table.fast.get(path)
    if entry is not None:
        return entry
    version, _, rest = path[1:].partition("/")
    if version not in _VERSIONS:
        return None
    rest = rest.rstrip("/")
    if any(part in (".", "..") for part in rest.split("/")):
        return None
    return table.lookup(rest)


def _token(snapshot: Snapshot, request: Request, now: float, tokens: TokenIssuer) -> Response:
    if request.method != "PUT":
        return TOKEN_METHOD_HEAD if request.method == "HEAD" else TOKEN_METHOD
    if request.forwarded:
        return FORBIDDEN
    raw = request.token_ttl
    # ASCII digits only: str.isdigit() also accepts e.g. "\u00b2", which int() refuses. And
    # no more of them than MAX_TTL has (leading zeros aside): int() refuses 4,300 digits,
    # and real IMDS answers any TTL out of range 400.
    if raw is None or not raw.strip().isdigit() or not raw.isascii():
        return BAD_REQUEST
    digits = raw.strip().lstrip("0")
    if len(digits) > len(str(MAX_TTL)):
        return BAD_REQUEST
    ttl = int(digits or "0")
    if not MIN_TTL <= ttl <= MAX_TTL:
        return BAD_REQUEST
    body = tokens.issue(ttl, now).encode()
    hop_limit = snapshot.config.options.hop_limit
    # The answer is pre-rendered per TTL and hop limit; only the token (the body) is new.
    head, close, keep = _token_answer(ttl, hop_limit, len(body))
    return Response(200, head, close + body, keep + body, hop_limit)


@functools.lru_cache(maxsize=256)  # every TTL of 1..21600 is allowed: stay bounded
def _token_answer(ttl: int, hop_limit: int, size: int) -> tuple[bytes, bytes, bytes]:
    """Head, close tail and keep-alive tail of a token answer, without the token itself."""
    r = render(
        200,
        b"\0" * size,
        headers=(("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", str(ttl)),),
        hop_limit=hop_limit,
    )
    return r.head, r.tail_close[:-size], r.tail_keep[:-size]
