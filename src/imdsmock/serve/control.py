"""The control listener: its own socket, apart from every IMDS listener.

It listens on 127.0.0.1:1339 by default, so nothing routed to 169.254.169.254 can reach
it. Binding it to any other address needs a bearer token (``--control-token``,
``IMDSMOCK_CONTROL_TOKEN`` or ``--control-token-file``) and then every request must carry
``Authorization: Bearer <token>``. Each connection answers one request and closes.

The route table (:mod:`imdsmock.control.routes`, and through it the controller and the OpenAPI
document) is imported when the first request is answered, not when the listener is bound:
most runs never call the control API, and start-up time counts (issue 9).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING

import httptools

from imdsmock.config.schema import Listen, ServerConfig
from imdsmock.core.wire import REASONS
from imdsmock.errors import ConfigError, ServeError
from imdsmock.serve.httpparse import Refused, feed
from imdsmock.serve.listen import bind_sockets

if TYPE_CHECKING:
    from imdsmock.control.operations import Controller
    from imdsmock.control.routes import ControlResponse

__all__ = ["ControlProtocol", "bind_control", "control_token", "is_loopback"]

log = logging.getLogger("imdsmock.control")

MAX_BODY = 1024 * 1024
MAX_HEADERS = 16 * 1024
IDLE_TIMEOUT = 30.0


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def control_token(server: ServerConfig) -> str | None:
    """The control token from the configuration or its file (None when unset)."""
    if server.control_token:
        return server.control_token
    if server.control_token_file:
        path = Path(server.control_token_file)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            raise ConfigError(
                "server.control-token-file", str(path), "a readable file holding the token"
            ) from None
        if not token:
            raise ConfigError("server.control-token-file", str(path), "a file that is not empty")
        return token
    return None


def bind_control(server: ServerConfig) -> tuple[socket.socket, str | None]:
    """Bind the control listener; refuse a non-loopback address without a token."""
    token = control_token(server)
    if token is None and not is_loopback(server.control_host):
        raise ServeError(
            f"the control API would listen on {server.control_host}, which is not a loopback "
            "address, without a token; set --control-token (or IMDSMOCK_CONTROL_TOKEN, "
            "--control-token-file) or keep --control-host 127.0.0.1"
        )
    (sock,) = bind_sockets([Listen(host=server.control_host, port=server.control_port)])
    return sock, token


class ControlProtocol(asyncio.Protocol):
    """One connection to the control listener: parse, :func:`control.handle`, close."""

    def __init__(self, controller: Controller, token: str | None) -> None:
        self._controller = controller
        self._token = token
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body = bytearray()
        self._auth: str | None = None
        self._size = 0
        self._done = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._timer = asyncio.get_running_loop().call_later(IDLE_TIMEOUT, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        # A limit raised in a callback is 431/413 (as on the IMDS listener), a bug 500.
        failure = feed(
            self._parser,
            data,
            malformed=_plain_error(400, "malformed HTTP request"),
            upgrade=_plain_error(400, "upgrades are not supported"),
            failed=_plain_error(500, "internal error (see the mock's log)"),
            log=log,
        )
        if failure is not None:
            self._send(failure)

    # httptools callbacks

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._grow_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._grow_head(len(name) + len(value))
        if name.lower() == b"authorization":
            self._auth = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > MAX_BODY:
            raise Refused(_plain_error(413, "body too large (at most 1 MiB)"))

    def on_message_complete(self) -> None:
        if self._done:
            return
        from imdsmock.control.routes import (  # on first use (see the module docstring)
            ControlRequest,
            handle,
        )

        request = ControlRequest(
            self._parser.get_method().decode("ascii", "replace"),
            self._url.decode("latin-1"),
            bytes(self._body),
            self._auth,
        )
        try:
            response = handle(self._controller, request, self._token)
        except Exception:  # a bug must not kill the listener; the client gets a 500
            log.exception("control request %s %s failed", request.method, request.target)
            response = _plain_error(500, "internal error (see the mock's log)")
        self._send(response, head=request.method == "HEAD")

    def _grow_head(self, n: int) -> None:
        self._size += n
        if self._size > MAX_HEADERS:
            raise Refused(_plain_error(431, "request head too large (at most 16 KiB)"))

    def _send(self, response: ControlResponse, *, head: bool = False) -> None:
        if self._done:
            return  # one answer per connection (an upgrade error follows a complete request)
        self._done = True
        transport = self._transport
        if transport is None:
            return
        lines = [
            f"HTTP/1.1 {response.status} {_reason(response.status)}",
            f"Date: {formatdate(usegmt=True)}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            "Cache-Control: no-store",
            "Connection: close",
        ]
        if response.status == 401:
            lines.append('WWW-Authenticate: Bearer realm="imdsmock"')
        if response.allow:
            lines.append(f"Allow: {response.allow}")
        head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        transport.write(head_bytes if head else head_bytes + response.body)
        transport.close()


def _reason(status: int) -> str:
    return {201: "Created", 413: "Content Too Large"}.get(status) or REASONS.get(status, "")


def _plain_error(status: int, message: str) -> ControlResponse:
    from imdsmock.control.routes import ControlResponse  # on first use (see the module docstring)

    body = json.dumps({"error": message, "field": None, "allowed": []}).encode() + b"\n"
    return ControlResponse(status, body)
