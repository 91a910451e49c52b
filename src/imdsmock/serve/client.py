"""Requests to a mock as one client would make them: from a chosen source address, with
an IMDSv2 token of its own.

A fleet tells clients apart by their source address among other things; on Linux every
address of 127.0.0.0/8 is the loopback interface's, so a test can be client 127.0.0.2, then
127.0.0.3, without any set-up (macOS needs ``ifconfig lo0 alias 127.0.0.2``). The
connection is bound to the address before it connects, as ``http.client`` does with
``source_address``; one connection per request, as SDKs talk to IMDS.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

__all__ = ["Answer", "Session"]

TOKEN_PATH = "/latest/api/token"


class Answer(NamedTuple):
    """One answer: its status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON (an identity document, credentials ...)."""
        return json.loads(self.body)


class Session:
    """A client of the mock at ``url``, connecting from ``source`` (None: as the system
    chooses), that asks for an IMDSv2 token once and sends it with every request.

    ``token=False`` makes token-less (IMDSv1) requests instead.
    """

    def __init__(
        self, url: str, source: str | None = None, *, token: bool = True, ttl: int = 21600
    ) -> None:
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"not a mock's URL: {url!r}")
        self.host, self.port = parts.hostname, parts.port
        self.source = source
        self.ttl = ttl
        self._v2 = token
        self._token: str | None = None

    def __repr__(self) -> str:
        return f"<Session http://{self.host}:{self.port} from {self.source or 'any address'}>"

    @property
    def token(self) -> str | None:
        """The token sent with each request (asked for on first use); None for IMDSv1."""
        if self._v2 and self._token is None:
            answer = self.request(
                "PUT", TOKEN_PATH, {"X-aws-ec2-metadata-token-ttl-seconds": str(self.ttl)}
            )
            if answer.status != 200:
                raise ConnectionError(f"the mock refused a token: {answer.status}")
            self._token = answer.text
        return self._token

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Answer:
        """GET ``path`` (``/latest/meta-data/instance-id``), with the token."""
        token = self.token
        sent = dict(headers or {})
        if token is not None:
            sent.setdefault("X-aws-ec2-metadata-token", token)
        return self.request("GET", path, sent)

    def request(self, method: str, path: str, headers: Mapping[str, str] | None = None) -> Answer:
        """One request on a new connection from the source address, headers as given."""
        source = (self.source, 0) if self.source else None
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10, source_address=source)
        try:
            conn.request(method, path, headers=dict(headers or {}))
            response = conn.getresponse()
            body = response.read()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
        finally:
            conn.close()
