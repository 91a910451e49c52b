"""Test support: the real server, on a real socket, in a background thread.

Imported by tests as ``from support import ...`` (not ``from conftest``: several
directories have a conftest.py, and test code importing one by name gets the wrong one).
"""

from __future__ import annotations

import contextlib
import http.client
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

from imdsmock.api import MockIMDS
from imdsmock.app import App
from imdsmock.config.load import load
from imdsmock.config.schema import Config
from imdsmock.core.clock import Clock, ManualClock
from imdsmock.core.snapshot import Snapshot, build_snapshot
from imdsmock.signing.keys import generate
from imdsmock.signing.signer import Signer

# 2026-01-01T00:00:00Z: a fixed start makes Last-Modified, LastUpdated and pendingTime stable.
EPOCH = 1767225600.0
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Running:
    """A :class:`MockIMDS` serving in this process, with raw-HTTP helpers for tests."""

    imds: MockIMDS
    host: str
    port: int
    clock: Clock

    @property
    def app(self) -> App:
        """The running :class:`App` (its state, faults, gate and signer)."""
        return self.imds.app

    @property
    def url(self) -> str:
        """Base URL of the IMDS listener."""
        return self.imds.url

    def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on a new connection; returns status, headers and body."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        """GET ``path`` (with an IMDSv2 token when given); returns status and body."""
        headers = {"X-aws-ec2-metadata-token": token} if token else None
        status, _, body = self.request("GET", path, headers)
        return status, body

    def token(self, ttl: int = 21600) -> str:
        """A fresh IMDSv2 token."""
        status, _, body = self.request(
            "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)}
        )
        assert status == 200, status
        return body.decode()


def status_from(host: str, port: int, path: str, source: str | None = None) -> int:
    """GET ``path`` on a new connection to ``host:port``, from the local address ``source``
    when given (e.g. 127.0.0.2 to be a second client); the status."""
    conn = http.client.HTTPConnection(
        host, port, timeout=5, source_address=(source, 0) if source else None
    )
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


_SIGNER: Signer | None = None


def shared_signer() -> Signer:
    """One generated key per test session (RSA key generation is slow)."""
    global _SIGNER  # noqa: PLW0603 - a per-session cache
    if _SIGNER is None:
        _SIGNER = generate()
    return _SIGNER


def make_config(**sections: Any) -> Config:
    """A config from file-shaped sections, with a fixed credential seed; env ignored."""
    base: dict[str, Any] = {"server": {"host": "127.0.0.1", "port": 0, "control": False}}
    base["credentials"] = {"seed": "test-seed"}
    for name, value in sections.items():
        key = name.replace("_", "-")
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return load(env={}, base=base)


def control_config(**server: Any) -> Config:
    """``make_config`` with the control listener on: loopback, port 0, plus ``server`` keys."""
    return make_config(server={"control": True, "control-port": 0, **server})


@contextlib.contextmanager
def serve(config: Config | None = None, clock: Clock | None = None) -> Iterator[Running]:
    """Run the real server through :class:`MockIMDS` on an ephemeral port of 127.0.0.1.

    ``config`` defaults to :func:`make_config`; ``clock`` to a manual clock at :data:`EPOCH`.
    """
    clock = clock or ManualClock(EPOCH)
    with MockIMDS(config or make_config(), clock=clock) as imds:
        host, port = imds.app.server.addresses()[0][:2]
        yield Running(imds, host, port, clock)


def base_snapshot(config: Config | None = None) -> Snapshot:
    """The configured instance as the pure handler takes it, started at :data:`EPOCH`.

    No App, no sockets: for tests of the core (``imds.handle``, tables, scenarios).
    """
    return build_snapshot(config or make_config(), signer=shared_signer(), started=EPOCH)


def offline_app(config: Config | None = None) -> App:
    """An :class:`App` that is built but not served, on a manual clock at :data:`EPOCH`.

    For what a configuration serves (``app.state.compiled.lookup(path, now)``), the handler
    fed in-process, and reloads, where no socket is needed.
    """
    return App(config or make_config(), clock=ManualClock(EPOCH))


@contextlib.contextmanager
def calls_to(function: Callable[..., Any]) -> Iterator[list[str]]:
    """Record the calls of ``function`` made by this thread in the body (by profiling
    calls, not by replacing anything)."""
    code: CodeType = function.__code__
    seen: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code is code:
            seen.append(code.co_name)

    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(None)
