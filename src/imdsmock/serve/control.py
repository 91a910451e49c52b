"""The control listener: its own socket, apart from every IMDS listener.

It listens on 127.0.0.1:1339 by default, so nothing routed to 169.254.169.254 can reach
it. Binding it to any other address needs a bearer token (``--control-token``,
``IMDSMOCK_CONTROL_TOKEN`` or ``--control-token-file``) and then every request must carry
``Authorization: Bearer <token>``; only the dashboard page and its files, which hold no
secret, are served without it. Each connection answers one request and closes
(:mod:`imdsmock.serve.http`); a long poll of the request log is held on its connection,
looking at the log again every :data:`POLL_EVERY` seconds, until an entry comes or its wait
is over.

Browsers on the same machine reach loopback too, so before any route is looked at a request
is refused (403) when its ``Host`` is not an IP address, ``localhost`` or an allowed name
(DNS rebinding), when it carries an ``Origin`` other than the API's own (a cross-site
page; ``null`` included), and (415) when it has a body that is not ``application/json``
(the content types a page may send without asking first are not JSON). See
:mod:`imdsmock.serve.hosts`.

The route table (:mod:`imdsmock.control.routes`, and through it the controller and the OpenAPI
document) is imported when the first request is answered, not when the listener is bound:
most runs never call the control API, and start-up time counts.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from imdsmock.config.addresses import Listen
from imdsmock.config.schema import ServerConfig
from imdsmock.errors import ConfigError, ServeError, quote
from imdsmock.serve.hosts import SETTING, HostRule, same_origin
from imdsmock.serve.http import MIB, Answer, Hold, HTTPProtocol, Request
from imdsmock.serve.limits import Limits
from imdsmock.serve.listen import Binding, bind_sockets

if TYPE_CHECKING:
    from imdsmock.control.operations import Controller

__all__ = [
    "POLL_EVERY",
    "ControlProtocol",
    "bind_control",
    "checked_token",
    "control_token",
    "is_loopback",
]

POLL_EVERY = 0.2
"""Seconds between two looks at the request log while a long poll is held."""


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
    """The control token from the configuration or its file (None when unset), without
    the whitespace around it (a header value loses it too)."""
    if server.control_token is not None:
        return server.control_token.strip()  # never blank: the configuration refuses that
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


def checked_token(server: ServerConfig) -> str | None:
    """The control token (None when unset), after refusing a non-loopback address without
    one: what :func:`bind_control` refuses before it binds."""
    token = control_token(server)
    if token is None and not is_loopback(server.control_host):
        raise ServeError(
            f"the control API would listen on {server.control_host}, which is not a loopback "
            "address, without a token; set --control-token (or IMDSMOCK_CONTROL_TOKEN, "
            "--control-token-file) or keep --control-host 127.0.0.1"
        )
    return token


def bind_control(server: ServerConfig) -> tuple[socket.socket, str | None]:
    """Bind the control listener; refuse a non-loopback address without a token."""
    token = checked_token(server)
    listen = Listen(host=server.control_host, port=server.control_port)
    (sock,) = bind_sockets([Binding(listen, "server.control-port", "server.control-host")])
    return sock, token


class ControlProtocol(HTTPProtocol):
    """One connection to the control listener: :func:`imdsmock.control.routes.handle`, JSON
    errors, a 1 MiB body limit and 30 s to send the request (and to be answered: a long poll
    waits at most 25 s).

    Answered from a worker thread: a call may parse a large body and build and compile a
    new snapshot, and IMDS keeps answering on the event loop meanwhile (the controller is
    safe to call from any thread).
    """

    log = logging.getLogger("imdsmock.control")
    max_body = MIB
    idle_timeout = 30.0
    threaded = True

    def __init__(
        self,
        controller: Controller,
        token: str | None,
        hosts: HostRule,
        limits: Limits,
        connections: set[HTTPProtocol] | None = None,
    ) -> None:
        super().__init__(limits, connections)
        self._controller = controller
        self._token = token
        self._hosts = hosts
        self._deadline: float | None = None  # when a held long poll answers empty

    def screen_head(self, headers: Mapping[str, str]) -> Answer | None:
        # Host and Origin are checked before the body is read: a page of another site (or a
        # rebinding name) gets its 403 without the mock reading up to 1 MiB for it.
        host = headers.get("host")
        if not self._hosts.allows(host):
            self._hosts.refused(self.log, "control", host, credentials=False)
            return _refusal(
                403,
                f"Host {quote(host or '')} is not allowed here; expected an IP address, localhost "
                f"or a name in {SETTING}",
                "Host",
                ["an IP address", "localhost", "a name in server.allowed-hosts"],
            )
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, host):
            own = f"http://{host}" if host else None
            return _refusal(
                403,
                f"Origin {quote(origin)} is not the control API's own; expected "
                f"{own or 'no Origin'} (requests from other sites are refused)",
                "Origin",
                [own] if own else [],
            )
        return None

    def screen(self, request: Request) -> Answer | None:
        headers = request.headers
        if request.body:
            kind = headers.get("content-type")
            if kind is None or kind.partition(";")[0].strip().lower() != "application/json":
                return _refusal(
                    415,
                    f"Content-Type is {quote(kind) if kind is not None else 'missing'}; "
                    "expected application/json for a request body",
                    "Content-Type",
                    ["application/json"],
                )
        return None

    def handle(self, request: Request) -> Answer | Hold:
        from imdsmock.control.routes import (  # on first use (see the module docstring)
            ControlRequest,
            handle,
        )

        control = ControlRequest(
            request.method, request.target, request.body, request.headers.get("authorization")
        )
        response = handle(self._controller, control, self._token)
        if response.wait:
            now = time.monotonic()
            if self._deadline is None:
                self._deadline = now + response.wait
            if now + POLL_EVERY < self._deadline:
                return Hold(POLL_EVERY)
        status, body, content_type, allow, headers, _ = response
        return _answer(status, content_type, body, headers, allow)

    def error(self, status: int, message: str) -> Answer:
        return _refusal(status, message, None, [])


def _refusal(status: int, message: str, field: str | None, allowed: list[str]) -> Answer:
    """The control API's JSON error, on one line."""
    body = json.dumps({"error": message, "field": field, "allowed": allowed}).encode() + b"\n"
    return _answer(status, "application/json", body)


def _answer(
    status: int,
    content_type: str,
    body: bytes,
    extra: tuple[tuple[str, str], ...] = (),
    allow: str | None = None,
) -> Answer:
    """The answer with the route's own headers; API answers are never cached."""
    cached = any(name == "Cache-Control" for name, _ in extra)
    headers = [*(() if cached else [("Cache-Control", "no-store")]), *extra]
    if status == 401:
        headers.append(("WWW-Authenticate", 'Bearer realm="imdsmock"'))
    if allow:
        headers.append(("Allow", allow))
    return Answer(status, content_type, body, tuple(headers))
