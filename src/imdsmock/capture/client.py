"""The HTTP side of a capture: requests to the one URL given, each bounded in time and bytes.

Every request is a new connection (real IMDS closes each one) to the host and port of the
URL, and nowhere else: redirects are not followed. A request that is not answered within
the timeout, a connection refused, an answer that is not HTTP, or more body bytes than the
capture may read end the capture with :class:`CaptureFailed` (exit status 1): the server,
not the command line, is at fault. A URL that is not ``http://HOST[:PORT]`` is a
:class:`~imdsmock.errors.ImdsMockError` (exit status 2).
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from imdsmock._version import __version__
from imdsmock.errors import ImdsMockError, quote

__all__ = ["Answer", "CaptureFailed", "Client", "Target", "parse_url"]

TOKEN_PATH = "/latest/api/token"
TOKEN_TTL = 21600
"""Seconds asked for the IMDSv2 token: the SDKs' usual figure (a token expiring during a
long walk is renewed on the first 401)."""

# IMDS sends the token's answer with an IP TTL of the hop limit: from a container behind a
# routed hop, a limit of 1 drops it and the PUT times out (SDKs then wait and fall back).
_HOP_HINT = " (in a container, a hop limit of 1 drops the token's answer: run it on the host)"
_URL_RULE = "an http:// URL of an IMDS: http://HOST[:PORT], e.g. http://169.254.169.254"


class CaptureFailed(ImdsMockError):
    """The server could not be reached or walked: exit status 1, not a bad command line."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the IMDS to capture answers."""

    host: str
    """Host name or address as connected to (an IPv6 address without brackets)."""
    port: int
    url: str
    """The URL as written back in messages and the output's header."""


def parse_url(text: str) -> Target:
    """``http://HOST[:PORT][/]`` -> a :class:`Target`; anything else is refused in one line."""
    try:
        split = urlsplit(text)
        port = split.port
    except ValueError:
        raise ImdsMockError(f"URL {quote(text)} is not a URL; expected {_URL_RULE}") from None
    host = split.hostname
    if split.scheme.lower() != "http" or not host:
        raise ImdsMockError(f"URL {quote(text)} is not {_URL_RULE}")
    if split.username is not None or split.query or split.fragment or split.path not in ("", "/"):
        raise ImdsMockError(
            f"URL {quote(text)} has more than a host and port; expected {_URL_RULE}"
        )
    shown = f"[{host}]" if ":" in host else host
    return Target(
        host=host,
        port=80 if port is None else port,
        url=f"http://{shown}" + (f":{port}" if port is not None else ""),
    )


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer: status, body and content type."""

    status: int
    body: bytes
    content_type: str


class Client:
    """Requests to one :class:`Target`, counted and bounded; holds the IMDSv2 token."""

    def __init__(self, target: Target, *, timeout: float, max_bytes: int) -> None:
        self.target = target
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.received = 0
        """Body bytes read so far, every answer counted."""
        self.requests = 0
        self.token: str | None = None

    def put_token(self) -> Answer:
        """Ask for an IMDSv2 token (the answer is the server's, whatever its status)."""
        headers = {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL)}
        return self.request("PUT", TOKEN_PATH, headers)

    def get(self, path: str, *, token: bool = True) -> Answer:
        """GET ``path`` with the token held (none held, or ``token=False``: IMDSv1)."""
        headers = {}
        if token and self.token is not None:
            headers["X-aws-ec2-metadata-token"] = self.token
        return self.request("GET", path, headers)

    def request(self, method: str, path: str, headers: dict[str, str]) -> Answer:
        """One request on a new connection, within the timeout and the byte budget."""
        deadline = time.monotonic() + self.timeout
        first = self.requests == 0
        self.requests += 1
        conn = http.client.HTTPConnection(self.target.host, self.target.port, timeout=self.timeout)
        try:
            conn.request(
                method, path, headers={"User-Agent": f"imdsmock-capture/{__version__}", **headers}
            )
            response = conn.getresponse()
            body = self._read(conn, response, deadline, f"{method} {path}")
        except TimeoutError:
            hint = _HOP_HINT if path == TOKEN_PATH else ""
            raise self._failed(
                first, f"{method} {path} was not answered within {self.timeout:g} s{hint}"
            ) from None
        except ConnectionRefusedError:
            raise self._failed(first, "connection refused") from None
        except http.client.RemoteDisconnected:
            raise self._failed(
                first, f"{method} {path}: the connection was closed without an answer"
            ) from None
        except http.client.HTTPException as exc:
            raise self._failed(
                first,
                f"{method} {path} was answered with something that is not HTTP "
                f"({type(exc).__name__})",
            ) from None
        except OSError as exc:
            raise self._failed(first, exc.strerror or str(exc) or type(exc).__name__) from None
        finally:
            conn.close()
        kind = response.getheader("Content-Type") or ""
        return Answer(response.status, body, kind)

    def _failed(self, first: bool, why: str) -> CaptureFailed:
        if first:
            return CaptureFailed(f"cannot reach {self.target.url}: {why}")
        return CaptureFailed(f"{self.target.url} stopped answering: {why}")

    def _read(
        self,
        conn: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        deadline: float,
        what: str,
    ) -> bytes:
        chunks: list[bytes] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if conn.sock is not None:
                conn.sock.settimeout(left)
            budget = self.max_bytes - self.received
            chunk = response.read(min(65536, budget + 1))
            if not chunk:
                return b"".join(chunks)
            self.received += len(chunk)
            if self.received > self.max_bytes:
                raise CaptureFailed(
                    f"{self.target.url} sent more than {self.max_bytes} bytes in all "
                    f"(at {what}); --max-bytes raises the limit"
                )
            chunks.append(chunk)
