"""The thin asyncio adapter: bytes in, :func:`imdsmock.core.imds.handle`, bytes out.

One :class:`IMDSProtocol` per connection, parsing with ``httptools`` (the C parser uvicorn
uses) and keeping only the headers IMDS cares about. Responses are pre-rendered; the
server adds the ``Date`` line from a once-a-second cache and writes one buffer. Real IMDS
closes every connection after the answer; keep-alive is opt-in.

A client that sends requests faster than it reads the answers (pipelining with keep-alive)
is held back rather than buffered for: once the transport's write buffer passes its high
mark (``pause_writing``), the connection stops reading, answers nothing more and keeps
what it has not parsed yet, until the client has read enough (``resume_writing``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

import httptools

from imdsmock.core.clock import Clock
from imdsmock.core.faults import Fault, FaultBook
from imdsmock.core.imds import NOT_FOUND, NOT_FOUND_HEAD, Gate, Request, handle
from imdsmock.core.requestlog import HEAD_MAX as LOGGED_HEAD_MAX
from imdsmock.core.requestlog import capped
from imdsmock.core.state import State
from imdsmock.core.wire import Response, error, render
from imdsmock.serve.hosts import HostRule, absolute_form
from imdsmock.serve.httpparse import Refused, feed
from imdsmock.serve.limits import Limits
from imdsmock.serve.memo import (
    METHODS,
    PARSED,
    PARSED_MAX_BYTES,
    PATHS,
    Parsed,
    path_of,
)
from imdsmock.serve.memo import remember as remember_parse

# The fleet's modules are imported only by a mock that serves one (start-up time counts).
if TYPE_CHECKING:
    from imdsmock.core.fleet import Fleet, Roster
    from imdsmock.core.recognize import Recognized

__all__ = [
    "FleetProtocol",
    "IMDSProtocol",
    "RequestSink",
    "ResolvingFleetProtocol",
    "ServeOptions",
    "Server",
]

log = logging.getLogger("imdsmock.server")

# IMDS requests have no body: one is read and dropped up to this size.
MAX_BODY_BYTES = 64 * 1024
# A packet larger than this is parsed a slice at a time, so that parsing stops soon after
# the client stops reading (see IMDSProtocol.pause_writing).
SLICE_BYTES = 4096


# Bytes that are not a well-formed HTTP request (a header line without a colon, as a
# multi-line header value makes, bad framing, a bad request line) are refused before
# IMDS sees them, in plain text like Go's net/http; IMDS's own 400 (a bad token TTL)
# keeps its XHTML page.
_BAD_REQUEST_CLOSE = render(400, b"400 Bad Request", content_type="text/plain; charset=utf-8")
_TOO_LARGE = error(431)
_HOST_REFUSED = error(403)  # no body: the same bytes answer HEAD
# Injected faults (imdsmock.core.faults): pre-rendered answers, and "no answer" for the log.
_FAULT_STATUS = {status: error(status) for status in (429, 500, 503)}
_NO_ANSWER = Response(0, b"", b"", b"")
_NO_REQUEST = Request("", "")

RequestSink = Callable[[Request, Response, float], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeOptions:
    """What every connection of one :class:`Server` shares; built by the server.

    Frozen and replaced whole: a change (a new sink after a config reload) is taken by
    new connections, while open ones finish with the options they started with.
    """

    state: State
    clock: Clock
    # Real IMDS closes every connection after the answer; keep-alive is opt-in.
    keep_alive: bool = False
    # Called with every answered request (the request log), or None; a request whose head
    # is over the log's HEAD_MAX bytes is passed as requestlog.capped() makes it.
    sink: RequestSink | None = None
    # Per-client gating of the scenario paths (AEMM's --mock-ip-count), or None.
    gate: Gate | None = None
    # Injected faults, checked before the IMDS handler, or None.
    faults: FaultBook | None = None
    limits: Limits = field(default_factory=Limits)
    # The Host values answered, or None: every one (checked only while real credentials
    # are served, see imdsmock.serve.hosts).
    hosts: HostRule | None = None
    # The instances told apart by client (imdsmock.core.fleet), or None: one instance.
    fleet: Fleet | None = None


class _DateCache:
    __slots__ = ("line", "second")

    def __init__(self) -> None:
        self.second = -1
        self.line = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.line = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self.line


_DATE = _DateCache()


class IMDSProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection to the IMDS listener."""

    __slots__ = (
        "_active",
        "_asked",
        "_body_bytes",
        "_client",
        "_closing",
        "_done",
        "_forwarded",
        "_fresh",
        "_header_bytes",
        "_held",
        "_hops",
        "_host",
        "_instance",
        "_loop",
        "_max_header_bytes",
        "_options",
        "_parser",
        "_paused",
        "_request",
        "_shed",
        "_state",
        "_timer",
        "_token",
        "_token_ttl",
        "_transport",
        "_ua",
        "_url",
        "_waiting",
        "_why",
    )

    def __init__(self, options: ServeOptions) -> None:
        self._options = options
        # The instance this connection is served (a fleet's protocol may choose another),
        # and its name for the request log (None: the one instance of a mock without fleet).
        self._state = options.state
        self._instance: str | None = None
        self._why: str | None = None
        self._max_header_bytes = options.limits.max_header_bytes
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._client = ""
        self._closing = False
        self._shed = False
        self._active = 0.0  # loop time of the connection or its last keep-alive answer
        self._hops = 0  # the IP TTL / hop limit set on the socket (0: the system default)
        self._timer: asyncio.TimerHandle | None = None
        # Parse memo bookkeeping (see memo.PARSED): between messages, and requests
        # completed so far.
        self._fresh = True
        self._done = 0
        # The last parse answered (parsed or remembered) and its Request (see _answer).
        self._asked: Parsed | None = None
        self._request = _NO_REQUEST
        # Back-pressure (see pause_writing): the client is not reading its answers; the
        # requests parsed meanwhile, and the bytes not parsed yet.
        self._paused = False
        self._waiting: list[Parsed] = []
        self._held = b""
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._token: str | None = None
        self._token_ttl: str | None = None
        self._forwarded = False
        self._ua: str | None = None
        self._host: str | None = None
        self._header_bytes = 0
        self._body_bytes = 0

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream: asyncio.Transport = transport  # type: ignore[assignment]
        self._transport = stream
        peer = transport.get_extra_info("peername")
        # Interned: the Requests a remembered parse keeps are matched by identity (_answer).
        self._client = sys.intern(peer[0]) if peer else ""
        limits = self._options.limits
        loop = self._loop = asyncio.get_running_loop()
        self._active = loop.time()
        if limits.admit(self):
            self._timer = loop.call_later(limits.idle_timeout, self._idle)
            return
        # No slot: shed load (real IMDS caps simultaneous connections and throttles with
        # 429). Answer 429 at once and send FIN, but read (and drop) what the client sends
        # for a moment: closing on its unread request would send a TCP RST that destroys
        # the 429 before the client reads it. Too many such at once: drop it now.
        self._closing = True
        if not limits.refuse():
            stream.abort()
            return
        self._shed = True
        response = _FAULT_STATUS[429]
        stream.write(b"".join((response.head, _DATE.get(), response.tail_close)))
        stream.write_eof()
        self._timer = loop.call_later(1.0, stream.close)

    def connection_lost(self, exc: Exception | None) -> None:
        limits = self._options.limits
        if self._shed:
            limits.shedding -= 1
        else:
            limits.release(self)
        if self._timer is not None:
            self._timer.cancel()
        # Break the reference cycles (transport, idle timer and parser all point back at
        # this protocol), so a closed connection is freed at once by reference counting:
        # left to the garbage collector, one connection per request made a full collection
        # (a pause of ~15 ms with the request log full) every few tens of thousands.
        self._transport = None
        self._timer = None
        del self._parser  # nothing is parsed after connection_lost

    def data_received(self, data: bytes) -> None:
        fresh = self._fresh and len(data) <= PARSED_MAX_BYTES
        if fresh:
            known = PARSED.get(data)
            if known is not None and known.header_bytes <= self._max_header_bytes:
                self._fresh = known.keep_alive
                try:
                    self._answer(known)
                except Exception:  # pragma: no cover - no known bug; as when parsed: 500, logged
                    log.exception("request failed")
                    self._fail(_FAULT_STATUS[500])
                return
        if len(data) > SLICE_BYTES or self._held:
            self._parse(data)
            return
        done = self._done
        failure = feed(
            self._parser, data, malformed=_BAD_REQUEST_CLOSE, failed=_FAULT_STATUS[500], log=log
        )
        if failure is not None:
            self._fail(failure)
        elif (
            # Exactly one whole request, nothing after it, no body: remember its parse.
            fresh
            and self._fresh
            and self._done == done + 1
            and self._body_bytes == 0
            and self._asked is not None
        ):
            remember_parse(data, self._asked)

    def waiting_since(self) -> float:
        """Loop time of the connection or of its last keep-alive answer (the budget's
        measure of how long it has waited for a request)."""
        return self._active

    def evict(self) -> None:
        """Drop the connection: the budget gives its slot to a new one."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    def pause_writing(self) -> None:
        # The client is not reading: read nothing more and answer nothing more (_answer
        # keeps what is parsed meanwhile, _parse what is not) until it has read enough.
        self._paused = True
        transport = self._transport
        if transport is not None:
            transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        waiting = self._waiting
        while waiting and not self._paused:
            self._answer(waiting.pop(0))
        if self._paused or self._transport is None:
            return
        if self._held:
            held, self._held = self._held, b""
            self._parse(held)
        if not self._paused and self._transport is not None:
            self._transport.resume_reading()

    def eof_received(self) -> bool | None:
        # Half-closed by the client: a delayed answer (latency fault) is still written;
        # otherwise close, as everything received has been answered.
        return True if self._closing and not self._shed and self._transport is not None else None

    # -- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._fresh = False
        self._reset()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)
        if self._header_bytes > self._max_header_bytes:
            raise Refused(_TOO_LARGE)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self._max_header_bytes:
            raise Refused(_TOO_LARGE)
        n = name.lower()
        # A field value excludes the whitespace around it (httptools strips only the
        # leading part): a token sent as "TOKEN " is the token.
        if n == b"x-aws-ec2-metadata-token":
            self._token = value.strip(b" \t").decode("latin-1")
        elif n == b"x-aws-ec2-metadata-token-ttl-seconds":
            self._token_ttl = value.strip(b" \t").decode("latin-1")
        elif n == b"x-forwarded-for":
            self._forwarded = True
        elif n == b"user-agent":
            self._ua = value.decode("latin-1")
        elif n == b"host":
            self._host = value.strip(b" \t").decode("latin-1")
        elif n == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
            raise Refused(_BAD_REQUEST_CLOSE)  # refuse now rather than wait for the body

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > MAX_BODY_BYTES:
            raise Refused(_BAD_REQUEST_CLOSE)

    def on_message_complete(self) -> None:
        url = self._url
        path = PATHS.get(url)
        host = self._host
        if path is None:
            path = path_of(url)
            if path[:1] != "/":  # absolute-form: the target names the host (RFC 9112)
                authority, path = absolute_form(path)
                if authority is not None:
                    host = authority
        parser = self._parser
        raw_method = parser.get_method()
        # An upgrade (or CONNECT) is answered once as plain HTTP and ends the connection:
        # what follows it would be another protocol, and a second answer (400) is wrong.
        keep = parser.should_keep_alive() and not parser.should_upgrade()
        parsed = Parsed(
            METHODS.get(raw_method) or raw_method.decode("ascii", "replace"),
            path,
            self._token,
            self._token_ttl,
            self._forwarded,
            self._ua,
            keep,
            self._header_bytes,
            host,
        )
        self._done += 1
        # After a request that ends the connection nothing more is parsed as new.
        self._fresh = keep
        if self._paused:
            # The client is not reading: answered once it does (resume_writing). Only a
            # packet the parser reads can hold a request now: reading is paused, and a
            # remembered parse is answered only for a packet just read.
            self._waiting.append(parsed)
            return
        self._answer(parsed)

    def _answer(self, parsed: Parsed) -> None:
        """Answer one parsed request (from the parser, or from the parse memo)."""
        memo: Parsed | None = parsed
        if parsed is self._asked:
            # The same remembered parse again (a client repeating itself on this
            # connection): the same Request, not a new tuple of the same fields.
            request = self._request
        else:
            # A remembered parse answered on another connection: the Request made last
            # time, if for the same client and instance (client addresses are interned).
            last = parsed.request
            if (
                last is not None
                and last.client is self._client
                and last.instance is self._instance
                and last.why is self._why
            ):
                request = last
            else:
                if last is not None and last.instance is not self._instance:
                    # Last answered as another fleet instance: the answer it remembers is
                    # that instance's. Neither taken nor replaced: requests spread over a
                    # fleet's instances would replace it on every answer.
                    memo = None
                request = parsed.request = Request(
                    parsed.method,
                    parsed.path,
                    self._client,
                    parsed.token,
                    parsed.token_ttl,
                    parsed.forwarded,
                    parsed.user_agent,
                    self._instance,
                    self._why,
                )
            self._asked, self._request = parsed, request
        transport = self._transport
        if transport is None or self._closing:
            return
        options = self._options
        now = options.clock.now()
        hosts = options.hosts
        if hosts is not None and not hosts.allows(parsed.host):
            self._refuse_host(hosts, request, parsed.host, parsed.header_bytes, now)
            return
        state = self._state
        compiled = state.compiled
        if compiled.halted(now):
            # A terminated instance answers nothing: drop the connection.
            self._closing = True
            transport.abort()
            return
        faults = options.faults
        if faults is not None and faults.rules:  # an empty tuple costs one test
            fault = faults.take(request.path, self._client)
            if fault is not None:
                self._inject(fault, request, parsed.header_bytes, now)
                return
        response = handle(compiled, request, now, state.tokens, options.gate, memo=memo)
        self._write(response, options.keep_alive and parsed.keep_alive)
        sink = options.sink
        if sink is not None:
            # The request log keeps a request of a few head bytes whole, a larger one capped.
            if parsed.header_bytes > LOGGED_HEAD_MAX:
                request = capped(request)
            sink(request, response, now)

    # -- helpers ------------------------------------------------------------------------

    def _refuse_host(
        self, hosts: HostRule, request: Request, host: str | None, head_bytes: int, now: float
    ) -> None:
        """Answer a request for a Host name not allowed 403, as real IMDS refuses a token
        request that came through a proxy, log the name once and close."""
        hosts.refused(log, "IMDS", host, credentials=True)
        self._write(_HOST_REFUSED, False)
        sink = self._options.sink
        if sink is not None:
            sink(request if head_bytes <= LOGGED_HEAD_MAX else capped(request), _HOST_REFUSED, now)

    def _parse(self, data: bytes) -> None:
        """Parse ``data`` a slice at a time, keeping the rest once the client stops reading."""
        if self._held:
            data, self._held = self._held + data, b""
        parser = self._parser
        for start in range(0, len(data), SLICE_BYTES):
            if self._closing:
                return  # an answer ended the connection: the rest is not read
            if self._paused:
                self._held = data[start:]
                self._fresh = False  # the parse memo is for whole packets only
                return
            failure = feed(
                parser,
                data[start : start + SLICE_BYTES],
                malformed=_BAD_REQUEST_CLOSE,
                failed=_FAULT_STATUS[500],
                log=log,
            )
            if failure is not None:
                self._fail(failure)
                return

    def _inject(self, fault: Fault, request: Request, head_bytes: int, now: float) -> None:
        """Answer (or not) as the fault says; the connection closes afterwards."""
        transport = self._transport
        assert transport is not None
        options = self._options
        response = _NO_ANSWER
        if fault.kind == "status":
            response = _FAULT_STATUS[fault.status]
            self._write(response, False)
        elif fault.kind == "latency":
            state = self._state
            response = handle(state.compiled, request, now, state.tokens, options.gate)
            self._closing = True  # nothing more is read from this connection
            if options.faults is not None:
                options.faults.hold(transport)
            asyncio.get_running_loop().call_later(
                fault.latency_ms / 1000.0, self._write, response, False
            )
        elif fault.kind == "reset":
            self._closing = True
            sock = transport.get_extra_info("socket")
            if sock is not None:  # linger 0: close() sends a TCP RST, not a FIN
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:  # hang: say nothing; the client times out (or the idle timer closes it)
            self._closing = True
            if options.faults is not None:
                options.faults.hold(transport)
        if options.sink is not None:
            logged = request if head_bytes <= LOGGED_HEAD_MAX else capped(request)
            options.sink(logged, response, now)

    def _write(self, response: Response, keep: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        if response.hop_limit and response.hop_limit != self._hops:
            self._set_hops(response.hop_limit)
        transport.write(
            b"".join(
                (response.head, _DATE.get(), response.tail_keep if keep else response.tail_close)
            )
        )
        if keep:
            # Only note the time: re-arming a timer per answer costs more than the answer;
            # _idle re-arms itself for whatever is left of the deadline.
            self._active = self._loop.time()
        else:
            self._closing = True
            transport.close()

    def _set_hops(self, hops: int) -> None:
        """Send from now on with IP TTL / IPv6 hop limit ``hops`` (the token answer's).

        Set only when it changes, and not set back after the answer: on a kept-alive
        connection the rest of it goes out with the hop limit too. Real IMDS answers once
        per connection with the TTL on the socket, so its retransmissions and FIN carry it
        as well; setting it back right after the write would let a retransmitted token
        answer cross more hops than allowed. A client within reach of the token answer is
        within reach of the answers after it.
        """
        transport = self._transport
        # uvloop's socket object makes a new Python socket per call: one call per change.
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            return
        self._hops = hops
        with contextlib.suppress(OSError):
            if ":" in self._client:  # an IPv6 socket (the peer address tells, cheaply)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, hops)
            # The IPv4 TTL; on a dual-stack socket it applies to IPv4-mapped clients.
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, hops)

    def _fail(self, response: Response) -> None:
        if self._transport is not None and not self._closing:
            self._write(response, False)

    def _idle(self) -> None:
        if self._transport is not None:
            left = self._active + self._options.limits.idle_timeout - self._loop.time()
            if left > 0:  # answered since the timer was armed: wait for the rest
                self._timer = self._loop.call_later(left, self._idle)
                return
            # Abort, not close: an answer the client has not read by now is dropped, not
            # kept until it reads (close() would wait for that).
            self._closing = True
            self._transport.abort()


HOLD = 1.0
"""Seconds the first connection of a client a resolver is looking up waits for its answer
(without blocking the loop) before it is recognised by the ways after it."""


class FleetProtocol(IMDSProtocol):
    """A connection to a mock serving a fleet: answered as the instance it is recognised as.

    The recogniser is asked once, when the connection is made (its source address and the
    listener it came in on are known then), unless some member has host rules: then each
    request whose Host differs from the previous one is recognised again. A client no rule
    matches is the default instance's, or gets 404 for everything with
    ``fleet.unknown: reject``.
    """

    __slots__ = ("_early", "_host_seen", "_local", "_lookup_timer", "_refused", "_roster")

    def __init__(self, options: ServeOptions) -> None:
        super().__init__(options)
        self._refused = False
        # While a resolver looks the client up: the timer that stops waiting for it, and
        # what the client sent meanwhile (answered once it is recognised).
        self._lookup_timer: asyncio.TimerHandle | None = None
        self._early = b""
        # With host rules: the roster and local address to recognise each request with.
        self._roster: Roster | None = None
        self._local: tuple[str, int] | None = None
        self._host_seen: str | None = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        fleet = self._options.fleet
        if self._closing or fleet is None:
            return  # shed: nothing is answered
        if fleet.roster.recognizer.uses_local:
            sockname = transport.get_extra_info("sockname")
            self._local = (sockname[0], sockname[1]) if sockname else None
        if not self._recognize(fleet, hold=fleet.resolving):
            # A resolver is looking the client up (its first connection): read nothing
            # until its answer lands, at most HOLD seconds; the loop goes on meanwhile.
            stream: asyncio.Transport = transport  # type: ignore[assignment]
            stream.pause_reading()
            waiting = fleet.pending(self._client)
            assert self._loop is not None
            assert waiting is not None
            self._lookup_timer = self._loop.call_later(HOLD, self._release)
            waiting.add_done_callback(lambda _done: self._release())

    def _recognize(self, fleet: Fleet, *, hold: bool = False) -> bool:
        """Recognise the connection; False (nothing done) when ``hold`` and nothing
        recognised it while a resolver's lookup of the client is under way."""
        roster = fleet.roster
        found = roster.recognizer.connection(self._client, self._local)
        if found is None and hold and fleet.pending(self._client) is not None:
            return False
        if found is None or isinstance(found, tuple):
            self._enter(fleet, roster, found)
        else:  # PER_REQUEST: each request's Host decides
            self._roster = roster
        return True

    def _release(self) -> None:
        """The lookup the connection waited for ended (or HOLD passed): recognise it."""
        held, self._lookup_timer = self._lookup_timer, None
        if held is None:
            return
        held.cancel()
        transport, fleet = self._transport, self._options.fleet
        if transport is None or transport.is_closing() or fleet is None:
            return
        self._recognize(fleet)
        early, self._early = self._early, b""
        if early:
            self.data_received(early)
        if not self._paused and not transport.is_closing():
            transport.resume_reading()

    def _enter(self, fleet: Fleet, roster: Roster, found: Recognized | None) -> None:
        """Answer from now on as the instance ``found`` (None: no rule matched)."""
        self._why = fleet.seen(self._client, found, self._options.clock.now())
        state = None if found is None else roster.states.get(found.name)
        if state is None:
            self._refused = fleet.reject
            self._state, self._instance = fleet.default, "default"
        else:
            self._refused = False
            self._state, self._instance = state, found.name  # type: ignore[union-attr]

    def _answer(self, parsed: Parsed) -> None:
        roster = self._roster
        if roster is not None and parsed.host != self._host_seen:
            self._host_seen = parsed.host
            fleet = self._options.fleet
            assert fleet is not None
            found = roster.recognizer.recognize(self._client, self._local, parsed.host)
            self._enter(fleet, roster, found)
        if self._refused:
            self._refuse(parsed)
        else:
            super()._answer(parsed)

    def _refuse(self, parsed: Parsed) -> None:
        """Answer 404 to a client no instance matches (``fleet.unknown: reject``)."""
        transport = self._transport
        if transport is None or self._closing:
            return
        response = NOT_FOUND_HEAD if parsed.method == "HEAD" else NOT_FOUND
        options = self._options
        self._write(response, options.keep_alive and parsed.keep_alive)
        sink = options.sink
        if sink is not None:
            request = Request(
                parsed.method,
                parsed.path,
                self._client,
                parsed.token,
                parsed.token_ttl,
                parsed.forwarded,
                parsed.user_agent,
            )
            sink(
                request if parsed.header_bytes <= LOGGED_HEAD_MAX else capped(request),
                response,
                options.clock.now(),
            )


class ResolvingFleetProtocol(FleetProtocol):
    """A fleet's connection where resolvers may hold it: what the client sends while it
    waits for a lookup is kept (reading is paused: a few bytes at most) and answered once
    it is recognised. A fleet without resolvers does not pay for this on every read."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        if self._lookup_timer is None:
            super().data_received(data)
        else:
            self._early += data


class Server:
    """The IMDS listeners on one event loop.

    The keywords are built once into a :class:`ServeOptions` that every connection
    shares; ``sink`` and ``faults`` may be replaced later (a config reload changes the
    sink): new connections take the change.
    """

    def __init__(
        self,
        state: State,
        clock: Clock,
        *,
        keep_alive: bool = False,
        sink: RequestSink | None = None,
        gate: Gate | None = None,
        faults: FaultBook | None = None,
        limits: Limits | None = None,
        hosts: HostRule | None = None,
        fleet: Fleet | None = None,
    ) -> None:
        self.options = ServeOptions(
            state=state,
            clock=clock,
            keep_alive=keep_alive,
            sink=sink,
            gate=gate,
            faults=faults,
            # Shared by every connection of these listeners (the cap counts them all).
            limits=limits if limits is not None else Limits(),
            hosts=hosts,
            fleet=fleet,
        )
        self._servers: list[asyncio.base_events.Server] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def limits(self) -> Limits:
        """The connection limits and the open-connection count of these listeners."""
        return self.options.limits

    @property
    def sink(self) -> RequestSink | None:
        """Called with every answered request (the request log), or None."""
        return self.options.sink

    @sink.setter
    def sink(self, sink: RequestSink | None) -> None:
        self.options = replace(self.options, sink=sink)

    @property
    def faults(self) -> FaultBook | None:
        """The fault rules checked before the IMDS handler, or None."""
        return self.options.faults

    @faults.setter
    def faults(self, faults: FaultBook | None) -> None:
        self.options = replace(self.options, faults=faults)

    @property
    def fleet(self) -> Fleet | None:
        """The instances told apart by client, or None (one instance)."""
        return self.options.fleet

    @fleet.setter
    def fleet(self, fleet: Fleet | None) -> None:
        self.options = replace(self.options, fleet=fleet)
        if fleet is not None and self._loop is not None:
            self._defer(fleet, self._loop.call_soon_threadsafe)

    def protocol(self) -> IMDSProtocol:
        """A protocol instance for one new connection: a fleet's while clients must be told
        apart (one test per connection, none per request otherwise)."""
        options = self.options
        fleet = options.fleet
        if fleet is not None and fleet.active:
            return ResolvingFleetProtocol(options) if fleet.resolving else FleetProtocol(options)
        return IMDSProtocol(options)

    def _defer(self, fleet: Fleet, defer: Any) -> None:
        now = self.options.clock.now()
        fleet.defer = defer
        for state in fleet.states():
            state.documents.defer = defer
            if defer is not None:
                state.prepare(now)

    async def start(self, socks: Sequence[socket.socket]) -> None:
        """Serve on already-bound sockets.

        From now on the loop renders each next epoch's credential documents ahead of it.
        """
        loop = self._loop = asyncio.get_running_loop()
        state = self.options.state
        state.documents.defer = loop.call_soon_threadsafe
        state.prepare(self.options.clock.now())
        if self.options.fleet is not None:
            self._defer(self.options.fleet, loop.call_soon_threadsafe)
        for sock in socks:
            self._servers.append(await loop.create_server(self.protocol, sock=sock))

    def addresses(self) -> list[tuple[Any, ...]]:
        """The bound addresses (useful with port 0)."""
        out: list[tuple[Any, ...]] = []
        for srv in self._servers:
            out.extend(s.getsockname() for s in srv.sockets)
        return out

    async def stop(self) -> None:
        """Stop accepting; in-flight responses are already written in one call."""
        self.options.state.documents.defer = None
        if self.options.fleet is not None:
            self._defer(self.options.fleet, None)
        self._loop = None
        for srv in self._servers:
            srv.close()
        for srv in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 1.0)
        self._servers.clear()
