"""A small HTTP/1.1 server protocol: one request per connection, one answer, then close.

The control listener and the ECS/EKS container-credential listeners use it; each is a
subclass of :class:`HTTPProtocol` that says how a request is answered (:meth:`~HTTPProtocol.handle`)
and how an error is worded (:meth:`~HTTPProtocol.error`), and may change the limits. The IMDS
listener has its own protocol, tuned for speed (:mod:`imdsmock.serve.server`).

What every such listener does is done here, once: parsing with httptools (failures through
:func:`imdsmock.serve.httpparse.feed`), refusing a request head or body over the limits,
closing a connection that has not sent a whole request in time, answering a handler's bug
with a logged 500, and writing the answer in one layout (:func:`render`). A handler may also
hold a request that has no answer yet (a long poll): it returns :class:`Hold` and is asked
again a moment later, on the same connection. A listener whose handler may take long (the
control API parses bodies and builds snapshots) asks it in a worker thread, so the event
loop, and the IMDS listeners on it, go on meanwhile.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import logging
import math
from collections.abc import Mapping
from email.utils import formatdate
from typing import ClassVar, NamedTuple

import httptools

from imdsmock.serve.hosts import absolute_form
from imdsmock.serve.httpparse import Refused, feed
from imdsmock.serve.limits import Limits

__all__ = ["Answer", "HTTPProtocol", "Hold", "Request", "reason", "render"]

KIB = 1024
MIB = 1024 * KIB

# Messages of the answers the protocol gives on its own; a listener's error() words them.
MALFORMED = "malformed HTTP request"
INTERNAL = "internal error (see the mock's log)"


class Request(NamedTuple):
    """One parsed request: the method, the target as sent, the headers and the body."""

    method: str
    target: str
    headers: Mapping[str, str]
    """Header names lower-cased, values without the whitespace around them; a name sent
    twice keeps its last value. An absolute-form target's authority is the ``host``."""
    body: bytes


class Answer(NamedTuple):
    """What a listener answers: status, content type, body and headers of its own."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    """Written after Content-Type, in this order."""


class Hold(NamedTuple):
    """No answer yet: :meth:`HTTPProtocol.handle` is asked again ``seconds`` from now."""

    seconds: float


# Python before 3.13 calls 413 "Request Entity Too Large"; HTTP's current name is this one.
_PHRASES = {413: "Content Too Large"}


@functools.cache
def reason(status: int) -> str:
    """The reason phrase of ``status`` (``http.HTTPStatus``'s)."""
    from http import HTTPStatus  # on the first answer: most runs never answer here

    return _PHRASES.get(status) or HTTPStatus(status).phrase


def render(answer: Answer, *, head_only: bool = False) -> bytes:
    """The answer on the wire, laid out as Go's net/http lays one out (the ECS and EKS agents
    are Go programs): Content-Type and the listener's headers, then ``Date``,
    ``Content-Length`` and ``Connection: close`` (every connection ends after its answer);
    no body for a HEAD request."""
    status, content_type, body, headers = answer
    lines = [f"HTTP/1.1 {status} {reason(status)}", f"Content-Type: {content_type}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines += [
        f"Date: {formatdate(usegmt=True)}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "",
        "",
    ]
    head = "\r\n".join(lines).encode("latin-1")
    return head if head_only else head + body


def _amount(n: int) -> str:
    """``16 KiB``, ``1 MiB``, ``100 bytes``."""
    for unit, size in (("MiB", MIB), ("KiB", KIB)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


class HTTPProtocol(asyncio.Protocol, abc.ABC):
    """One connection: parse one request, answer it, close.

    A subclass gives :meth:`handle`, :meth:`error` and :attr:`log`, and may change the limits.
    Data after the answer (a pipelined request, what follows an upgrade) is not read. Each
    connection holds a slot of the app's connection budget (:class:`Limits`, shared with the
    other listeners) while it is open; without one it is answered 429.
    """

    log: ClassVar[logging.Logger]
    max_head: ClassVar[int] = 16 * KIB
    """Bytes of request target, header names and values; more is answered 431."""
    max_body: ClassVar[int | None] = None
    """Bytes of body; more is answered 413. None: a body is read and dropped."""
    idle_timeout: ClassVar[float | None] = None
    """Seconds a connection may stay open (to send its request and read the answer) before
    it is dropped; None: the budget's ``idle_timeout`` (``server.idle-timeout``)."""
    threaded: ClassVar[bool] = False
    """:meth:`screen` and :meth:`handle` run in a worker thread (they may be slow); else on
    the event loop."""

    def __init__(self, limits: Limits, connections: set[HTTPProtocol] | None = None) -> None:
        self._limits = limits
        # The listener's open connections (for :meth:`abort` at shutdown), when it keeps them.
        self._connections = connections
        self._again: asyncio.TimerHandle | None = None
        self._born = 0.0
        self._shed = False
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._url = b""
        self._target = ""  # the request target, origin-form (set once the head is read)
        self._headers: dict[str, str] = {}
        self._body = bytearray()
        self._head_bytes = 0
        self._answered = False
        self._asked = False  # the request is complete: handled, held or in a worker thread

    @abc.abstractmethod
    def handle(self, request: Request) -> Answer | Hold:
        """The answer to ``request`` (an exception is logged and answered 500), or
        :class:`Hold` to be asked again later."""

    @abc.abstractmethod
    def error(self, status: int, message: str) -> Answer:
        """The answer for a request the protocol refuses: ``status`` and why, in words."""

    def screen_head(self, headers: Mapping[str, str]) -> Answer | None:
        """An answer refusing a request from its head alone (its headers, lower-case
        names), before its body is read, or None to read on (by default none). Called on
        the event loop: cheap checks only (where a request comes from)."""
        return None

    def screen(self, request: Request) -> Answer | None:
        """An answer refusing ``request`` before :meth:`handle` sees it, or None to handle
        it (checks that need the body; by default none)."""
        return None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream: asyncio.Transport = transport  # type: ignore[assignment]
        self._transport = stream
        loop = asyncio.get_running_loop()
        self._born = loop.time()
        limits = self._limits
        if limits.admit(self):
            if self._connections is not None:
                self._connections.add(self)
            timeout = self.idle_timeout
            # abort(), not close(): an answer still unread by then is dropped, not kept.
            self._timer = loop.call_later(
                limits.idle_timeout if timeout is None else timeout, stream.abort
            )
            return
        # No slot: answer 429 and send FIN, reading (and dropping) what the client sends for
        # a moment, so its unread request does not make the close a reset that destroys the
        # answer. Too many such at once: drop it now.
        self._answered = True
        if not limits.refuse():
            stream.abort()
            return
        self._shed = True
        stream.write(render(self.error(429, "too many open connections; try again shortly")))
        stream.write_eof()
        self._timer = loop.call_later(1.0, stream.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._shed:
            self._limits.shedding -= 1
        else:
            self._limits.release(self)
        self._transport = None
        if self._connections is not None:
            self._connections.discard(self)
        for timer in (self._timer, self._again):
            if timer is not None:
                timer.cancel()

    def abort(self) -> None:
        """Drop the connection now, answered or not (the listener is shutting down)."""
        if self._transport is not None:
            self._transport.abort()

    def waiting_since(self) -> float:
        """Loop time of the connection (the budget's measure of how long it has waited for
        its request); never, once its request is complete (being answered in a worker
        thread, or held for a later answer: a long poll)."""
        return math.inf if self._asked else self._born

    def evict(self) -> None:
        """Drop the connection: the budget gives its slot to a new one."""
        self.abort()

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return
        failure = feed(
            self._parser, data, malformed=(400, MALFORMED), failed=(500, INTERNAL), log=self.log
        )
        # Once the request is complete (an upgrade stops the parser only then) it is the
        # handler's to answer, perhaps later or from a worker thread.
        if failure is not None and not self._asked:
            self._send(failure if isinstance(failure, Answer) else self.error(*failure))

    # httptools callbacks

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        key = name.decode("latin-1").lower()
        # httptools strips the whitespace before a value, not after it.
        self._headers[key] = value.strip(b" \t").decode("latin-1")
        limit = self.max_body
        if key == "content-length" and limit is not None and int(value) > limit:
            # Refused now, not after the body arrived (or the idle deadline passed).
            # httptools has checked the value: digits, at most 2**64 - 1.
            raise Refused((413, f"body too large (at most {_amount(limit)})"))

    def on_headers_complete(self) -> None:
        target = self._url.decode("latin-1")
        if not target.startswith("/"):
            authority, target = absolute_form(target)
            if authority is not None:  # RFC 9112: the target's host wins over Host
                self._headers["host"] = authority
        self._target = target
        refusal = self.screen_head(self._headers)
        if refusal is not None:  # answered now: the body is never read
            raise Refused(refusal)

    def on_body(self, body: bytes) -> None:
        limit = self.max_body
        if limit is None:
            return
        self._body += body
        if len(self._body) > limit:
            raise Refused((413, f"body too large (at most {_amount(limit)})"))

    def on_message_complete(self) -> None:
        if self._answered or self._asked:
            return  # one request per connection, also while one is held or handled
        self._asked = True
        method = self._parser.get_method().decode("ascii", "replace")
        self._respond(Request(method, self._target, self._headers, bytes(self._body)))

    def _respond(self, request: Request) -> None:
        self._again = None
        if not self.threaded:
            self._answer(request, self._ask(request))
            return
        work = asyncio.get_running_loop().run_in_executor(None, self._ask, request)

        def done(future: asyncio.Future[Answer | Hold]) -> None:
            if not future.cancelled():  # cancelled: the loop is shutting down
                self._answer(request, future.result())

        work.add_done_callback(done)

    def _ask(self, request: Request) -> Answer | Hold:
        try:
            return self.screen(request) or self.handle(request)
        except Exception:  # a bug must not kill the listener; the client gets a 500
            self.log.exception("request %s %s failed", request.method, request.target)
            return self.error(500, INTERNAL)

    def _answer(self, request: Request, answer: Answer | Hold) -> None:
        if isinstance(answer, Hold):
            if self._transport is not None:
                loop = asyncio.get_running_loop()
                self._again = loop.call_later(answer.seconds, self._respond, request)
            return
        self._send(answer, head_only=request.method == "HEAD")

    def _count_head(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > self.max_head:
            raise Refused((431, f"request head too large (at most {_amount(self.max_head)})"))

    def _send(self, answer: Answer, *, head_only: bool = False) -> None:
        if self._answered:
            return  # one answer per connection
        self._answered = True
        transport = self._transport
        if transport is not None:
            transport.write(render(answer, head_only=head_only))
            transport.close()
