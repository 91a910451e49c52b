"""Test support: the real server, on a real socket, in a background thread.

Imported by tests as ``from support import ...`` (not ``from conftest``: several
directories have a conftest.py, and test code importing one by name gets the wrong one).
"""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imdsmock.app import App, new_event_loop
from imdsmock.config.load import load
from imdsmock.config.schema import Config
from imdsmock.core.clock import Clock, ManualClock
from imdsmock.signing.signer import Signer, generate

# 2026-01-01T00:00:00Z: a fixed start makes Last-Modified, LastUpdated and pendingTime stable.
EPOCH = 1767225600.0
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Running:
    """A server running in this process: its App, address and clock."""

    app: App
    host: str
    port: int
    clock: Clock

    @property
    def url(self) -> str:
        """Base URL of the IMDS listener."""
        return f"http://{self.host}:{self.port}"

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
def serve(
    config: Config | None = None,
    clock: Clock | None = None,
    signer_override: Signer | None = None,
) -> Iterator[Running]:
    """Run the real server on an ephemeral port in a background thread."""
    cfg = config or make_config()
    clock = clock or ManualClock(EPOCH)
    app = App(cfg, clock=clock, signer=signer_override or shared_signer())
    socks = app.bind()
    ready = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        loop = new_event_loop()
        try:
            loop.run_until_complete(
                app.serve(socks, ready=lambda _a: ready.set(), install_signals=False)
            )
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert ready.wait(10), "server did not start"
    if errors:
        raise errors[0]
    host, port = socks[0].getsockname()[:2]
    try:
        yield Running(app, host, port, clock)
    finally:
        app.shutdown()
        thread.join(5)
