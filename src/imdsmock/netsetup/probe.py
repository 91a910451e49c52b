"""Whether the routed address really answers as the mock: a request, not a look at rules.

``route status`` asks ``http://169.254.169.254`` for the instance ID (IMDSv2, falling back to
a token-less GET as SDKs do) with a user agent of its own, and asks the mock's control API
what instance it serves and whether that request reached its request log: the address
"answers as this mock" only when it did. ``route up`` checks that something listens where
``--mock`` points. Plain HTTP with the standard library; read-only, short timeouts.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = ["DEFAULT_CONTROL_URL", "Answer", "listening", "report"]

DEFAULT_CONTROL_URL = "http://127.0.0.1:1339"
INSTANCE_ID = "/latest/meta-data/instance-id"
TIMEOUT = 1.0


def listening(host: str, port: int, timeout: float = TIMEOUT) -> bool:
    """Whether a TCP connection to ``host:port`` is accepted now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Answer:
    """What an address answered: the instance ID it serves, or why there is none."""

    instance_id: str | None
    problem: str | None = None


def _request(
    host: str, port: int, method: str, path: str, headers: dict[str, str]
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def ask_imds(host: str, agent: str, port: int = 80) -> Answer:
    """The instance ID ``host`` serves, as an SDK asks for it: a token first, without one
    when the token request is refused."""
    try:
        status, body = _request(
            host, port, "PUT", "/latest/api/token",
            {"X-aws-ec2-metadata-token-ttl-seconds": "60", "User-Agent": agent},
        )  # fmt: skip
        headers = {"User-Agent": agent}
        if status == 200:
            headers["X-aws-ec2-metadata-token"] = body.decode("ascii", "replace")
        status, body = _request(host, port, "GET", INSTANCE_ID, headers)
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, _why(exc))
    if status != 200:
        return Answer(None, f"it answers {status} to GET {INSTANCE_ID}")
    return Answer(body.decode("utf-8", "replace"))


def _why(exc: Exception) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {TIMEOUT:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__


class _Control:
    """The mock's control API, as much of it as the probe needs."""

    def __init__(self, url: str, token: str | None) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str) -> Any:
        status, body = _request(self.host, self.port, "GET", self.prefix + path, self.headers)
        data = json.loads(body)
        if status != 200:
            raise ValueError(data.get("error", f"status {status}"))
        return data


# What a control API that is not there, or not ours, or refuses us, raises.
_UNANSWERED = (OSError, ValueError, KeyError, TypeError, http.client.HTTPException)


def _unknown(name: str, answer: Answer, control_url: str, exc: Exception) -> str:
    what = f"serves {answer.instance_id}" if answer.instance_id else answer.problem
    reason = _why(exc) if isinstance(exc, OSError) else str(exc)
    return (
        f"{name}: {what}; whether as this mock is unknown: cannot ask the control API at "
        f"{control_url} ({reason}; see --control-url, IMDSMOCK_CONTROL_TOKEN)"
    )


def report(control_url: str, token: str | None, *, host: str = "169.254.169.254") -> str:
    """One line: whether ``http://HOST`` answers as the mock whose control API is at
    ``control_url`` (the probe's request reached that mock's request log), with the
    instance ID each serves when they differ."""
    control = _Control(control_url, token)
    agent = f"imdsmock-route-status/{secrets.token_hex(4)}"
    name = f"[{host}]" if ":" in host else host
    try:
        last = control.get("/v1/requests?limit=1")["requests"]
        after = last[-1]["seq"] if last else 0
        ours = control.get("/v1/metadata/" + quote(INSTANCE_ID.removeprefix("/latest/")))
    except _UNANSWERED as exc:
        return _unknown(name, ask_imds(host, agent), control_url, exc)
    answer = ask_imds(host, agent)
    query = f"/v1/requests?after={after}&path={quote(INSTANCE_ID, safe='')}&limit=1000"
    try:
        logged = control.get(query)["requests"]
    except _UNANSWERED as exc:
        return _unknown(name, answer, control_url, exc)
    reached = any(r.get("user-agent") == agent for r in logged)
    if reached and answer.instance_id is not None:
        return f"{name}: answers as this mock (instance {answer.instance_id}, {control_url})"
    if reached:
        return f"{name}: reaches this mock ({control_url}), but {answer.problem}"
    if answer.instance_id is None:
        return f"{name}: does not answer as this mock ({answer.problem})"
    return (
        f"{name}: answers, but not as this mock: it serves {answer.instance_id} and the "
        f"request never reached the mock at {control_url} (which serves {ours['value']})"
    )
