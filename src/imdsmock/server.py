"""The thin asyncio adapter: bytes in, :func:`imdsmock.imds.handle`, bytes out.

One :class:`IMDSProtocol` per connection, parsing with ``httptools`` (the C parser uvicorn
uses) and keeping only the headers IMDS cares about. Responses are pre-rendered; the
server adds the ``Date`` line from a once-a-second cache and writes one buffer. Real IMDS
closes every connection after the answer; keep-alive is opt-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
import time
from collections.abc import Callable, Sequence
from email.utils import formatdate
from typing import Any

import httptools

from .clock import Clock
from .config import Listen
from .errors import ServeError
from .faults import Fault, FaultBook
from .imds import Gate, Request, handle
from .state import State
from .wire import Response, error

__all__ = ["IMDSProtocol", "Limits", "RequestSink", "Server", "bind_sockets"]

log = logging.getLogger("imdsmock.server")

# Limits that keep one client from holding resources (documented in docs/reliability.md).
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
IDLE_TIMEOUT = 10.0
MAX_CONNECTIONS = 1024


class Limits:
    """Per-listener-group limits and the open-connection count they guard.

    ``idle_timeout`` is a deadline, not a per-byte timer: a connection must finish its
    request within it (slow headers included), and a kept-alive one must send the next
    request within it. Connections beyond ``max_connections`` are answered 429 and closed
    at once (real IMDS caps simultaneous connections and throttles with 429,
    real-imds.md §A10), so accepted requests keep being served. The count is only touched
    on the event loop thread (connection_made / connection_lost), so it needs no lock.
    """

    __slots__ = ("idle_timeout", "max_connections", "max_header_bytes", "open")

    def __init__(
        self,
        *,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.max_header_bytes = max_header_bytes
        self.open = 0


_BAD_REQUEST_CLOSE = error(400)
_TOO_LARGE = error(431)
# Injected faults (imdsmock.faults): pre-rendered answers, and "no answer" for the log.
_FAULT_STATUS = {status: error(status) for status in (429, 500, 503)}
_NO_ANSWER = Response(0, b"", b"", b"")

RequestSink = Callable[[Request, Response, float], None]


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
        "_body_bytes",
        "_client",
        "_clock",
        "_closing",
        "_faults",
        "_forwarded",
        "_gate",
        "_header_bytes",
        "_keep_alive",
        "_limits",
        "_loop",
        "_parser",
        "_path",
        "_shed",
        "_sink",
        "_sock",
        "_state",
        "_timer",
        "_token",
        "_token_ttl",
        "_transport",
        "_ua",
        "_url",
    )

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
    ) -> None:
        self._state = state
        self._clock = clock
        self._keep_alive = keep_alive
        self._limits = limits if limits is not None else Limits()
        self._sink = sink
        self._gate = gate
        self._faults = faults
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._client = ""
        self._closing = False
        self._shed = False
        self._active = 0.0  # loop time of the last keep-alive answer (see _idle)
        self._sock: Any = None  # the socket, fetched once for hop-limit answers
        self._timer: asyncio.TimerHandle | None = None
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._token: str | None = None
        self._token_ttl: str | None = None
        self._forwarded = False
        self._ua: str | None = None
        self._header_bytes = 0
        self._body_bytes = 0

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self._client = peer[0] if peer else ""
        limits = self._limits
        limits.open += 1
        self._loop = asyncio.get_running_loop()
        if limits.open > limits.max_connections:
            # Shed load: answer 429 at once and send FIN, but read (and drop) what the
            # client sends for a moment: closing on its unread request would send a TCP
            # RST that destroys the 429 before the client reads it.
            self._closing = self._shed = True
            response = _FAULT_STATUS[429]
            stream: asyncio.Transport = transport  # type: ignore[assignment]
            stream.write(b"".join((response.head, _DATE.get(), response.tail_close)))
            stream.write_eof()
            self._timer = self._loop.call_later(1.0, stream.close)
            return
        self._timer = self._loop.call_later(limits.idle_timeout, self._idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._limits.open -= 1
        if self._timer is not None:
            self._timer.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(_BAD_REQUEST_CLOSE)
        except httptools.HttpParserError as exc:
            # httptools wraps what a callback raised (HttpParserCallbackError) and keeps
            # it as the context: a limit is 431/400, a bug is 500 (logged), never silence.
            cause = exc.__context__
            if cause is None:
                self._fail(_BAD_REQUEST_CLOSE)
            elif isinstance(cause, _TooLarge):
                self._fail(cause.response)
            else:
                log.error("request failed", exc_info=cause)
                self._fail(_FAULT_STATUS[500])

    def eof_received(self) -> bool | None:
        # Half-closed by the client: a delayed answer (latency fault) is still written;
        # otherwise close, as everything received has been answered.
        return True if self._closing and not self._shed and self._transport is not None else None

    # -- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)
        if self._header_bytes > self._limits.max_header_bytes:
            raise _TooLarge(_TOO_LARGE)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self._limits.max_header_bytes:
            raise _TooLarge(_TOO_LARGE)
        n = name.lower()
        if n == b"x-aws-ec2-metadata-token":
            self._token = value.decode("latin-1")
        elif n == b"x-aws-ec2-metadata-token-ttl-seconds":
            self._token_ttl = value.decode("latin-1")
        elif n == b"x-forwarded-for":
            self._forwarded = True
        elif n == b"user-agent":
            self._ua = value.decode("latin-1")
        elif n == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
            raise _TooLarge(_BAD_REQUEST_CLOSE)  # refuse now rather than wait for the body

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > MAX_BODY_BYTES:
            raise _TooLarge(_BAD_REQUEST_CLOSE)

    def on_message_complete(self) -> None:
        transport = self._transport
        if transport is None or self._closing:
            return
        url = self._url
        try:
            path = url.decode("ascii")
        except UnicodeDecodeError:
            path = url.decode("latin-1")
        method = self._parser.get_method().decode("ascii", "replace")
        request = Request(
            method,
            path,
            self._client,
            self._token,
            self._token_ttl,
            self._forwarded,
            self._ua,
        )
        now = self._clock.now()
        state = self._state
        snapshot = state.snapshot
        if snapshot.halted(now):
            # A terminated instance answers nothing: drop the connection.
            self._closing = True
            transport.abort()
            return
        faults = self._faults
        if faults is not None and faults.rules:  # an empty tuple costs one test
            fault = faults.take(path, self._client)
            if fault is not None:
                self._inject(fault, request, now)
                return
        response = handle(snapshot, request, now, state.tokens, self._gate)
        keep = self._keep_alive and self._parser.should_keep_alive()
        self._write(response, keep)
        if self._sink is not None:
            self._sink(request, response, now)

    # -- helpers ------------------------------------------------------------------------

    def _inject(self, fault: Fault, request: Request, now: float) -> None:
        """Answer (or not) as the fault says; the connection closes afterwards."""
        transport = self._transport
        assert transport is not None
        response = _NO_ANSWER
        if fault.kind == "status":
            response = _FAULT_STATUS[fault.status]
            self._write(response, False)
        elif fault.kind == "latency":
            state = self._state
            response = handle(state.snapshot, request, now, state.tokens, self._gate)
            self._closing = True  # nothing more is read from this connection
            if self._faults is not None:
                self._faults.hold(transport)
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
            if self._faults is not None:
                self._faults.hold(transport)
        if self._sink is not None:
            self._sink(request, response, now)

    def _write(self, response: Response, keep: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        tail = response.tail_keep if keep else response.tail_close
        if response.hop_limit:
            self._set_hops(response.hop_limit)
        transport.write(b"".join((response.head, _DATE.get(), tail)))
        if response.hop_limit and keep:
            self._set_hops(None)
        if keep:
            # Only note the time: re-arming a timer per answer costs more than the answer;
            # _idle re-arms itself for whatever is left of the deadline.
            self._active = self._loop.time()
        else:
            self._closing = True
            transport.close()

    def _set_hops(self, hops: int | None) -> None:
        """Send the next packets with IP TTL / IPv6 hop limit ``hops`` (None: default)."""
        sock = self._sock
        if sock is None:
            transport = self._transport
            sock = transport.get_extra_info("socket") if transport else None
            if sock is None:
                return
            self._sock = sock
        value = -1 if hops is None else hops
        with contextlib.suppress(OSError):
            if sock.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, value)
                # IPv4-mapped clients on a dual-stack socket use the IPv4 TTL.
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 64 if value < 0 else value)
            else:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 64 if value < 0 else value)

    def _fail(self, response: Response) -> None:
        if self._transport is not None and not self._closing:
            self._write(response, False)

    def _idle(self) -> None:
        if self._transport is not None:
            left = self._active + self._limits.idle_timeout - self._loop.time()
            if left > 0:  # answered since the timer was armed: wait for the rest
                self._timer = self._loop.call_later(left, self._idle)
                return
            self._closing = True
            self._transport.close()


class _TooLarge(Exception):
    """A request over a limit; carries the pre-rendered answer (431 head, 400 body)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def bind_sockets(listens: Sequence[Listen]) -> list[socket.socket]:
    """Bind every listener up front, so an address in use fails before anything serves."""
    socks: list[socket.socket] = []
    try:
        for item in listens:
            socks.append(_bind(item))
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def _bind(item: Listen) -> socket.socket:
    host = item.host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, item.port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ServeError(_bind_message(item, exc)) from None
    return sock


def _bind_message(item: Listen, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"listen address {item} is already in use; choose another port (--port)"
    if exc.errno == errno.EACCES:
        return (
            f"listen address {item} needs privilege (ports below 1024 need root or "
            "CAP_NET_BIND_SERVICE); use a port >= 1024 or run with that capability"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"listen address {item} is not an address of this machine; add it first "
            "(see `imdsmock route up`) or listen on 127.0.0.1"
        )
    return f"cannot listen on {item}: {exc.strerror}"


class Server:
    """IMDS listeners (and any extra protocol factories) on one event loop."""

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
    ) -> None:
        self.state = state
        self.clock = clock
        self.keep_alive = keep_alive
        self.sink = sink
        self.gate = gate
        self.faults = faults
        # Shared by every connection of these listeners (the connection cap counts them all).
        self.limits = limits if limits is not None else Limits()
        self._servers: list[asyncio.base_events.Server] = []

    def protocol(self) -> IMDSProtocol:
        """A protocol instance for one new connection."""
        return IMDSProtocol(
            self.state,
            self.clock,
            keep_alive=self.keep_alive,
            sink=self.sink,
            gate=self.gate,
            faults=self.faults,
            limits=self.limits,
        )

    async def start(
        self,
        socks: Sequence[socket.socket],
        extra: Sequence[tuple[socket.socket, Callable[[], asyncio.Protocol]]] = (),
    ) -> None:
        """Serve on already-bound sockets."""
        loop = asyncio.get_running_loop()
        for sock in socks:
            self._servers.append(await loop.create_server(self.protocol, sock=sock))
        for sock, factory in extra:
            self._servers.append(await loop.create_server(factory, sock=sock))

    def addresses(self) -> list[tuple[Any, ...]]:
        """The bound addresses (useful with port 0)."""
        out: list[tuple[Any, ...]] = []
        for srv in self._servers:
            out.extend(s.getsockname() for s in srv.sockets)
        return out

    async def stop(self) -> None:
        """Stop accepting; in-flight responses are already written in one call."""
        for srv in self._servers:
            srv.close()
        for srv in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 1.0)
        self._servers.clear()
