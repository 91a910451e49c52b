"""The real ``imdsmock`` command in a subprocess, for tests of signals, files and memory."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class MockProcess:
    """A running ``python -m imdsmock``: its process, ports and collected stderr."""

    proc: subprocess.Popen[str]
    port: int
    control_port: int
    stderr_lines: list[str] = field(default_factory=list)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """GET ``path`` on a new connection; status and body."""
        return self.request("GET", path, headers)

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, bytes]:
        """One request to the IMDS listener."""
        return _request(self.port, method, path, headers, body)

    def control(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """One request to the control API."""
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        return _request(self.control_port, method, path, hdrs, body)

    def rss_kib(self) -> int:
        """Resident set size of the process, KiB (from /proc/PID/status)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")

    def stderr(self) -> str:
        """Everything the process wrote to stderr so far."""
        return "".join(self.stderr_lines)


def _request(
    port: int, method: str, path: str, headers: dict[str, str] | None, body: bytes
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without IMDSMOCK_* and AWS_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMDSMOCK_", "AWS_"))}
    env.update(extra or {})
    return env


@contextlib.contextmanager
def mock_process(
    args: Sequence[str] = (), env: dict[str, str] | None = None, timeout: float = 15
) -> Iterator[MockProcess]:
    """Start ``python -m imdsmock ARGS`` on free ports; stop it (SIGTERM, then kill) after."""
    port, control_port = free_port(), free_port()
    argv = [sys.executable, "-m", "imdsmock", "--port", str(port)]
    argv += ["--control-port", str(control_port), *args]
    proc = subprocess.Popen(
        argv, env=clean_env(env), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    mp = MockProcess(proc, port, control_port)
    assert proc.stderr is not None
    stream = proc.stderr

    def pump() -> None:
        for line in stream:
            mp.stderr_lines.append(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        while "serving IMDS on" not in mp.stderr():
            assert proc.poll() is None, f"imdsmock exited: {mp.stderr()}"
            assert time.monotonic() < deadline, f"imdsmock did not start: {mp.stderr()}"
            time.sleep(0.02)
        yield mp
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        reader.join(5)
        stream.close()
