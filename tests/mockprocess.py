"""The real mock commands in a subprocess, for tests of signals, files, entry points and memory.

:func:`mock_process` is the one way tests start ``imdsmock`` (or ``ec2-metadata-mock``) as a
serving process: free ports, a clean environment, stderr collected, stopped after the block.
:func:`run_command` runs one to its end (a subcommand, or a start that must fail).
"""

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Command:
    """How to start a mock command: its argv, and which flags put it on given ports."""

    argv: tuple[str, ...]
    aemm: bool = False
    """The ec2-metadata-mock interface (``-n HOST -p PORT``, no control listener)."""

    @property
    def ready(self) -> str:
        """What the command prints on stderr once every listener serves."""
        return "ec2-metadata-mock: serving " if self.aemm else "serving IMDS on"

    def listen(self, port: int, control_port: int) -> list[str]:
        """The flags that serve IMDS on 127.0.0.1:``port`` (and control on ``control_port``)."""
        if self.aemm:
            return ["-n", "127.0.0.1", "-p", str(port)]
        return ["--port", str(port), "--control-port", str(control_port)]


IMDSMOCK = Command((sys.executable, "-m", "imdsmock"))
EC2_METADATA_MOCK = Command(
    (
        sys.executable,
        "-c",
        "import sys; from imdsmock.cli import aemm_main; sys.exit(aemm_main(sys.argv[1:]))",
    ),
    aemm=True,
)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` (IPv4 or IPv6) that is free right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class MockProcess:
    """A running mock command: its process, ports and collected stderr."""

    proc: subprocess.Popen[str]
    port: int
    control_port: int
    stderr_lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def get(
        self, path: str, headers: dict[str, str] | None = None, *, token: str | None = None
    ) -> tuple[int, bytes]:
        """GET ``path`` on a new connection (with an IMDSv2 ``token`` when given)."""
        if token is not None:
            headers = {**(headers or {}), "X-aws-ec2-metadata-token": token}
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

    def wait_for_get(self, path: str, body: bytes, timeout: float = 5.0) -> None:
        """Poll until GET ``path`` answers 200 with ``body`` (e.g. after a reload)."""
        deadline = time.monotonic() + timeout
        while self.get(path) != (200, body):
            assert self.proc.poll() is None, f"the mock exited: {self.stderr()}"
            assert time.monotonic() < deadline, f"never served {body!r}: {self.stderr()}"
            time.sleep(0.05)

    def wait_for_stderr(self, text: str, count: int = 1, timeout: float = 5.0) -> None:
        """Poll until ``text`` has appeared ``count`` times on the process's stderr."""
        deadline = time.monotonic() + timeout
        while self.stderr().count(text) < count:
            assert time.monotonic() < deadline, f"never printed {text!r}: {self.stderr()}"
            time.sleep(0.02)

    def rss_kib(self) -> int:
        """Resident set size of the process, KiB (from /proc/PID/status)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")

    def stderr(self) -> str:
        """Everything the process wrote to stderr so far."""
        return "".join(self.stderr_lines)

    def stop(self) -> str:
        """SIGTERM the process (kill it if it hangs), wait for it; all of its stderr.

        Idempotent; the exit status is then ``proc.returncode``.
        """
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None
            if self.proc.stderr is not None:
                self.proc.stderr.close()
        return self.stderr()


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
    """The environment without IMDSMOCK_*, AEMM_* and AWS_* variables, plus ``extra``."""
    prefixes = ("IMDSMOCK_", "AEMM_", "AWS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(extra or {})
    return env


def run_command(
    args: Sequence[str],
    env: dict[str, str] | None = None,
    *,
    command: Command = IMDSMOCK,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """Run ``command ARGS`` to its end in a clean environment (plus ``env``); its exit
    status, stdout and stderr."""
    return subprocess.run(
        [*command.argv, *args],
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def mock_process(
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 15,
    *,
    command: Command = IMDSMOCK,
    starting: Callable[[MockProcess], None] | None = None,
) -> Iterator[MockProcess]:
    """Start ``command ARGS`` on free ports of 127.0.0.1 and wait until it serves; stop it
    after the block (SIGTERM, then kill). ``starting`` is called with the process as soon as
    it is spawned, before it serves (to act on it while it starts)."""
    port, control_port = free_port(), free_port()
    argv = [*command.argv, *args, *command.listen(port, control_port)]
    proc = subprocess.Popen(
        argv, env=clean_env(env), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    mp = MockProcess(proc, port, control_port)
    assert proc.stderr is not None
    stream = proc.stderr

    def pump() -> None:
        for line in stream:
            mp.stderr_lines.append(line)

    mp._reader = threading.Thread(target=pump, daemon=True)
    mp._reader.start()
    try:
        if starting is not None:
            starting(mp)
        deadline = time.monotonic() + timeout
        while command.ready not in mp.stderr():
            assert proc.poll() is None, f"the mock exited: {mp.stderr()}"
            assert time.monotonic() < deadline, f"the mock did not start: {mp.stderr()}"
            time.sleep(0.02)
        yield mp
    finally:
        mp.stop()
