"""A small asynchronous client of the Kubernetes API: GET a JSON document, or follow a
watch stream line by line, over HTTPS with a service account token (or plain HTTP to a
local proxy or a stub).

Only what the pod lookup needs: one request per connection, the answer parsed by
``httptools`` (chunked or sized bodies), nothing that blocks the event loop (a large list
is decoded in a worker thread). Where the API is and how to trust it comes from the
``fleet.kubernetes-*`` keys, else from the pod's own environment
(``KUBERNETES_SERVICE_HOST``/``_PORT``, the mounted service account): :func:`endpoint`.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools

from imdsmock._version import __version__
from imdsmock.config.schema import SERVICE_ACCOUNT, FleetConfig
from imdsmock.errors import ConfigError, ImdsMockError, quote

__all__ = ["ApiError", "Endpoint", "Gone", "endpoint", "get_json", "lines"]

CONNECT_TIMEOUT = 10.0
"""Seconds to connect (and shake hands) before the attempt counts as failed."""

READ_TIMEOUT = 60.0
"""Seconds a plain GET may go without receiving anything."""

BODY_MAX = 256 * 1024 * 1024
"""The largest answer read (a list of every pod of a big cluster fits)."""

LINE_MAX = 16 * 1024 * 1024
"""The longest line of a watch stream (one event: one pod object)."""

# Answers this large are decoded in a worker thread, not on the serving loop.
_THREAD_JSON = 64 * 1024


class ApiError(ImdsMockError):
    """The API could not be asked, or answered an error: ``status`` 0 when no answer came."""

    def __init__(self, message: str, status: int = 0) -> None:
        self.status = status
        super().__init__(message)


class Gone(ApiError):
    """410 Gone: the resource version asked for is too old (list again)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the API server is, and how to talk to it."""

    url: str
    """As logs name it: ``https://10.96.0.1:443``."""
    host: str
    port: int
    prefix: str
    """The URL's path, before ``/api/v1/...`` (a proxy may serve the API under one)."""
    tls: ssl.SSLContext | None = field(default=None, compare=False)
    token_file: str = ""

    def token(self) -> str | None:
        """The bearer token, read anew each time (kubelet rotates projected tokens)."""
        try:
            with open(self.token_file, encoding="utf-8") as f:
                token = f.read(64 * 1024).strip()
        except OSError:
            return None
        return token or None


def endpoint(fleet: FleetConfig, env: Mapping[str, str] | None = None) -> Endpoint:
    """The API server ``fleet.kubernetes-api`` names, else the one a pod's environment
    names (``KUBERNETES_SERVICE_HOST``, ``KUBERNETES_SERVICE_PORT``), over HTTPS.

    Raises :class:`~imdsmock.errors.ConfigError` when neither says where it is, or the CA
    file given cannot be read.
    """
    env = os.environ if env is None else env
    url = fleet.kubernetes_api.strip()
    if not url:
        host = env.get("KUBERNETES_SERVICE_HOST", "").strip()
        port = env.get("KUBERNETES_SERVICE_PORT", "").strip() or "443"
        if not host:
            raise ConfigError(
                "fleet.kubernetes-api",
                "",
                "the Kubernetes API's URL (https://HOST:PORT); it may be left empty only "
                "in a pod, where KUBERNETES_SERVICE_HOST is set",
            )
        url = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    try:
        parts = urlsplit(url)
        port_number = parts.port
    except ValueError:
        raise ConfigError("KUBERNETES_SERVICE_PORT", url, "a port from 1 to 65535") from None
    secure = parts.scheme == "https"
    tls = _context(fleet.kubernetes_ca_file) if secure else None
    return Endpoint(
        url=url.rstrip("/"),
        host=parts.hostname or "",
        port=port_number or (443 if secure else 80),
        prefix=parts.path.rstrip("/"),
        tls=tls,
        token_file=fleet.kubernetes_token_file,
    )


def _context(ca_file: str) -> ssl.SSLContext:
    """Checking the server against ``ca_file``; the system's CAs when the service
    account's default file is missing (outside a pod)."""
    if ca_file == f"{SERVICE_ACCOUNT}/ca.crt" and not os.path.exists(ca_file):
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise ConfigError(
            "fleet.kubernetes-ca-file",
            ca_file,
            f"a readable PEM file of CA certificates ({reason})",
        ) from None


async def get_json(api: Endpoint, target: str) -> Any:
    """The JSON document ``GET target`` answers (a 2xx); :class:`ApiError` otherwise."""
    async with _Exchange(api, target) as exchange:
        await exchange.head(READ_TIMEOUT)
        body = await exchange.body(READ_TIMEOUT)
    try:
        if len(body) > _THREAD_JSON:
            return await asyncio.to_thread(json.loads, body)
        return json.loads(body)
    except ValueError as exc:
        raise ApiError(f"{api.url} answered {target} with no JSON document ({exc})") from None


async def lines(api: Endpoint, target: str, idle: float) -> AsyncIterator[bytes]:
    """Each line of the stream ``GET target`` answers (a watch), as it arrives; ends when
    the server ends the stream. Nothing received for ``idle`` seconds is an error."""
    async with _Exchange(api, target) as exchange:
        await exchange.head(idle)
        buffer = exchange.reply.buffer
        while True:
            newline = buffer.find(b"\n")
            if newline >= 0:
                line = bytes(buffer[:newline])
                del buffer[: newline + 1]
                if line.strip():
                    yield line
                continue
            if len(buffer) > LINE_MAX:
                raise ApiError(f"{api.url}: a watch event longer than {LINE_MAX} bytes")
            if exchange.reply.complete or not await exchange.more(idle):
                if buffer.strip():
                    yield bytes(buffer)
                return


class _Reply:
    """httptools' callbacks: the status, the framing headers, the body so far."""

    __slots__ = ("buffer", "complete", "framed", "headers_done")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.headers_done = False
        self.complete = False
        self.framed = False  # a Content-Length or chunked body (else it ends at close)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.buffer += body

    def on_message_complete(self) -> None:
        self.complete = True


class _Exchange:
    """One request on a connection of its own, and reading its answer."""

    def __init__(self, api: Endpoint, target: str) -> None:
        self.api = api
        self.target = target
        self.reply = _Reply()
        self._parser = httptools.HttpResponseParser(self.reply)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.status = 0

    async def __aenter__(self) -> _Exchange:
        api = self.api
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    api.host,
                    api.port,
                    ssl=api.tls,
                    server_hostname=api.host if api.tls is not None else None,
                ),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise ApiError(f"cannot connect to {api.url} ({_reason(exc)})") from None
        self._reader, self._writer = reader, writer
        host = f"[{api.host}]" if ":" in api.host else api.host
        head = [
            f"GET {api.prefix}{self.target} HTTP/1.1",
            f"Host: {host}:{api.port}",
            "Accept: application/json",
            f"User-Agent: imdsmock/{__version__}",
            "Connection: close",
        ]
        token = api.token()
        if token is not None:
            head.append(f"Authorization: Bearer {token}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        writer = self._writer
        if writer is not None:
            # Aborted, not closed: a TLS goodbye would wait for the server (a cancelled
            # watch must end at once, before the app closes its loop).
            writer.transport.abort()

    async def more(self, idle: float) -> bool:
        """Read what comes next into the reply; False at the end of the stream."""
        assert self._reader is not None
        try:
            data = await asyncio.wait_for(self._reader.read(65536), idle)
        except TimeoutError:
            raise ApiError(f"{self.api.url}: nothing received for {idle:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise ApiError(f"{self.api.url}: {_reason(exc)}") from None
        if not data:
            if self.reply.headers_done and not self.reply.framed:
                self.reply.complete = True  # a body that ends where the connection does
            return False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise ApiError(f"{self.api.url} answered something not HTTP ({exc})") from None
        return True

    async def head(self, idle: float) -> None:
        """Read up to the end of the headers; an error status raises (after its body)."""
        while not self.reply.headers_done:
            if not await self.more(idle):
                raise ApiError(f"{self.api.url} closed the connection before answering")
        self.status = self._parser.get_status_code()
        if not 200 <= self.status < 300:
            try:
                text = await self.body(idle)
            except ApiError:
                text = b""
            message = _status_message(text)
            where = f"{self.api.url} answered {self.status} to GET {self.target}"
            detail = f": {quote(message, 200)}" if message else ""
            error = Gone if self.status == 410 else ApiError
            raise error(where + detail, self.status)

    async def body(self, idle: float) -> bytes:
        """The whole body (at most :data:`BODY_MAX` bytes)."""
        reply = self.reply
        while not reply.complete:
            if len(reply.buffer) > BODY_MAX:
                raise ApiError(f"{self.api.url}: an answer longer than {BODY_MAX} bytes")
            if not await self.more(idle) and not reply.complete:
                raise ApiError(f"{self.api.url} closed the connection mid-answer")
        return bytes(reply.buffer)


def _status_message(body: bytes) -> str:
    """The message of a Kubernetes ``Status`` answer, else the body's first line."""
    try:
        status = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip().partition("\n")[0]
    if isinstance(status, dict) and isinstance(status.get("message"), str):
        return str(status["message"])
    return ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:g} s"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
