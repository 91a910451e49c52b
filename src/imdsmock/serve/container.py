"""The ECS and EKS Pod Identity container credential endpoints, on listeners of their own.

SDKs read container credentials from ``http://169.254.170.2`` +
``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` (the ECS agent), or from
``AWS_CONTAINER_CREDENTIALS_FULL_URI`` with the ``Authorization`` header taken from
``AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]`` (EKS Pod Identity: ``169.254.170.23``,
``/v1/credentials``). Both serve the same credential source as the IMDS role path, so the
keys agree everywhere.

:func:`answer` is pure (snapshot, request, time -> bytes); :class:`ContainerEndpoints`
binds the listeners up front and serves them on the App's event loop, one request per
connection (:mod:`imdsmock.serve.http`). Errors are shaped like the real agents': the ECS
agent answers JSON errors, the EKS agent Go's ``http.Error`` text (400 "Service account
token cannot be empty" without a token).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from imdsmock.config.addresses import parse_listen
from imdsmock.config.schema import Config
from imdsmock.core.clock import Clock
from imdsmock.core.credentials import RefreshFailures, current_set
from imdsmock.core.snapshot import Snapshot
from imdsmock.core.state import State
from imdsmock.errors import ConfigError
from imdsmock.instance.credentials import role_arn
from imdsmock.instance.imdsjson import imds_time
from imdsmock.instance.model import facts
from imdsmock.serve.hosts import HostRule
from imdsmock.serve.http import Answer, HTTPProtocol, Request, reason
from imdsmock.serve.limits import Limits
from imdsmock.serve.listen import Binding, bind_sockets, url

__all__ = ["EKS_PATH", "ContainerEndpoints", "Kind", "answer"]

Kind = Literal["ecs", "eks"]
EKS_PATH = "/v1/credentials"


def answer(
    kind: Kind,
    snapshot: Snapshot,
    *,
    method: str,
    path: str,
    authorization: str | None,
    now: float,
    expected_token: str | None,
    failures: RefreshFailures | None = None,
) -> tuple[int, str, bytes]:
    """Status, content type and body for one container-endpoint request; an armed
    ``failures`` makes the fetch fail."""
    path = path.split("?", 1)[0]
    if method not in ("GET", "HEAD"):
        return _text(405, "Method Not Allowed")
    if kind == "ecs":
        if path != snapshot.config.credentials.ecs_relative_uri:
            if path.rstrip("/") in ("/v2/credentials", "/v1/credentials"):
                return _ecs_error("NoIdInRequest", "CredentialsV2Request: No ID in the request")
            if path.startswith(("/v2/credentials/", "/v1/credentials/")):
                return _ecs_error(
                    "InvalidIdInRequest", "CredentialsV2Request: Credentials not found"
                )
            return _text(404, "404 page not found")
    else:
        if path != EKS_PATH:
            return _text(404, "404 page not found")
        if not authorization:
            return _text(400, "Service account token cannot be empty")
        if expected_token is not None and authorization != expected_token:
            return _text(
                400,
                "(InvalidTokenException): The service account token is not valid, fault: client",
            )
    creds = current_set(snapshot, now)
    failing = failures is not None and failures.remaining > 0 and failures.take()
    if creds is None or creds.code != "Success" or failing:
        if kind == "ecs":
            return _ecs_error("InvalidIdInRequest", "CredentialsV2Request: Credentials not found")
        return _text(500, "(ServiceUnavailableException): credentials unavailable, fault: server")
    inst = snapshot.config.instance
    account = creds.account_id or inst.account_id
    if kind == "ecs":
        arn = creds.role_arn or role_arn(
            inst.account_id, inst.iam_role or "", facts(inst, snapshot.started).partition
        )
        doc: dict[str, str] = {"RoleArn": arn}
    else:
        doc = {}
    doc.update(
        AccessKeyId=creds.access_key_id,
        SecretAccessKey=creds.secret_access_key,
        Token=creds.token,
    )
    if kind == "eks":
        doc["AccountId"] = account
    doc["Expiration"] = imds_time(creds.expiration)
    return 200, "application/json", json.dumps(doc, separators=(",", ":")).encode()


def _text(status: int, message: str) -> tuple[int, str, bytes]:
    # Go's http.Error: text/plain with a trailing newline.
    return status, "text/plain; charset=utf-8", (message + "\n").encode()


def _ecs_error(code: str, message: str) -> tuple[int, str, bytes]:
    body = {"code": code, "message": message, "HTTPErrorCode": 400}
    return 400, "application/json", json.dumps(body, separators=(",", ":")).encode()


class _Protocol(HTTPProtocol):
    """One connection to a container endpoint: :func:`answer`, errors as Go's server words them."""

    log = logging.getLogger("imdsmock.containercreds")

    def __init__(self, endpoints: ContainerEndpoints, kind: Kind) -> None:
        super().__init__(endpoints.limits)
        self._endpoints = endpoints
        self._kind = kind

    def screen_head(self, headers: Mapping[str, str]) -> Answer | None:
        hosts = self._endpoints.hosts
        host = headers.get("host")
        if hosts is None or hosts.allows(host):
            return None
        hosts.refused(self.log, self._kind.upper(), host, credentials=True)
        return self.error(403, "")

    def handle(self, request: Request) -> Answer:
        ep = self._endpoints
        return _answer(
            *answer(
                self._kind,
                ep.state.snapshot,
                method=request.method,
                path=request.target,
                authorization=request.headers.get("authorization"),
                now=ep.clock.now(),
                expected_token=ep.token,
                failures=ep.state.failures,
            )
        )

    def error(self, status: int, message: str) -> Answer:
        # The agents are Go programs: Go's server states a refused request's status only.
        return _answer(*_text(status, f"{status} {reason(status)}"))


def _answer(status: int, content_type: str, body: bytes) -> Answer:
    # Go's http.Error marks its text answers nosniff.
    if content_type.startswith("text/plain"):
        return Answer(status, content_type, body, (("X-Content-Type-Options", "nosniff"),))
    return Answer(status, content_type, body)


class ContainerEndpoints:
    """The ECS- and EKS-style listeners configured in ``server.ecs-listen``/``eks-listen``."""

    def __init__(
        self,
        state: State,
        clock: Clock,
        config: Config,
        *,
        hosts: HostRule | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.state = state
        self.clock = clock
        self.config = config
        # The connection budget, shared with the app's other listeners.
        self.limits = limits if limits is not None else Limits()
        # The Host values answered, or None for any (see imdsmock.serve.hosts).
        self.hosts = hosts
        self.token = _expected_token(config)
        self._socks: list[tuple[Kind, socket.socket]] = []
        self._servers: list[asyncio.AbstractServer] = []

    def bind(self) -> None:
        """Bind every configured listener now (idempotent; ServeError on failure)."""
        if self._socks:
            return
        server = self.config.server
        kinds: tuple[tuple[Kind, str, tuple[str, ...]], ...] = (
            ("ecs", "server.ecs-listen", server.ecs_listen),
            ("eks", "server.eks-listen", server.eks_listen),
        )
        pairs = [
            (kind, Binding(parse_listen(spec, key), key, key))
            for kind, key, specs in kinds
            for spec in specs
        ]
        socks = bind_sockets([binding for _, binding in pairs])
        self._socks = [(kind, sock) for (kind, _), sock in zip(pairs, socks, strict=True)]

    async def start(self) -> None:
        """Serve the bound listeners on the running loop."""
        self.bind()
        loop = asyncio.get_running_loop()
        for kind, sock in self._socks:
            self._servers.append(
                await loop.create_server(lambda k=kind: _Protocol(self, k), sock=sock)  # type: ignore[misc]
            )

    async def stop(self) -> None:
        """Stop accepting connections."""
        for srv in self._servers:
            srv.close()
        for srv in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 1.0)
        self._servers.clear()
        self._socks.clear()

    def urls(self, kind: Kind) -> list[str]:
        """Base URLs of the bound listeners of one kind (useful with port 0)."""
        return [url(sock.getsockname()) for k, sock in self._socks if k == kind]


def _expected_token(config: Config) -> str | None:
    creds = config.credentials
    if creds.container_token is not None:
        return creds.container_token
    if creds.container_token_file is None:
        return None
    try:
        return Path(creds.container_token_file).read_text(encoding="utf-8").strip()
    except OSError:
        raise ConfigError(
            "credentials.container-token-file",
            creds.container_token_file,
            "a readable file holding the authorization token",
        ) from None
