"""The two servers under test, as child processes on loopback ports: imdsmock and nginx.

Both are pinned to the same CPU (the load generator gets the other one) and stopped by
their process id when the benchmark ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER_CPU = "0"


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: a benchmark killed half-way leaves no server behind.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def spawn(
    argv: list[str], env: dict[str, str] | None = None, cpus: str | None = None
) -> subprocess.Popen[bytes]:
    """Start a server process pinned to the servers' CPU (or to ``cpus``)."""
    return subprocess.Popen(
        ["taskset", "-c", cpus or SERVER_CPU, *argv],
        env=env,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads run while we spawn
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_ports(count: int, first: int = 20000) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 nobody listens on right now, from
    ``first`` up: below the kernel's ephemeral range (32768 and up by default), so that
    no connection another process makes meanwhile takes one as its local port (1,000
    ports drawn from that range met one now and then, and the mock could not bind it)."""
    socks: list[socket.socket] = []
    try:
        port = first
        while len(socks) < count and port < 32768:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
            else:
                socks.append(s)
            port += 1
        if len(socks) < count:
            raise RuntimeError(f"fewer than {count} free ports from {first} to 32767")
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc, 10 ms ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    """Resident set size of one process, in KiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (nginx's workers)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.extend(int(c) for c in text)
    return out


def wait_http(
    port: int, path: str, deadline: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll until ``GET path`` answers 200 (raises after ``deadline`` seconds, or once
    ``proc`` has exited)."""
    end = time.monotonic() + deadline
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited (status {proc.returncode}) before answering")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                conn.request("GET", path)
                if conn.getresponse().status == 200:
                    return
            finally:
                conn.close()
        if time.monotonic() > end:
            raise RuntimeError(f"nothing answered 200 on 127.0.0.1:{port}{path}")
        time.sleep(0.005)


class Imdsmock:
    """``python -m imdsmock`` with keep-alive allowed (clients choose per request).

    ``src`` serves the ``imdsmock`` package found in that directory instead of the
    installed one (``bench.ab`` compares two source trees).
    """

    name = "imdsmock"

    def __init__(
        self,
        config_file: str | None = None,
        *,
        mode: str | None = None,
        src: str | None = None,
        timeout: float = 60,
        ports: tuple[int, int] | None = None,
    ) -> None:
        # ``ports``: the IMDS and control ports, given when the config names others that
        # must not be taken (a fleet's member listeners).
        self.port, control_port = ports or (free_port(), free_port())
        if mode is None:
            argv = [sys.executable, "-m", "imdsmock", "--host", "127.0.0.1"]
            argv += ["--port", str(self.port), "--control-port", str(control_port)]
            argv += ["--keep-alive"]
            if config_file:
                argv += ["--config", config_file]
        else:  # bench.serve: the same server with its optional features off or on
            assert config_file is not None
            cfg = json.loads(Path(config_file).read_text())
            cfg["server"] = {"host": "127.0.0.1", "port": self.port, "keep-alive": True}
            cfg["server"]["control-port"] = free_port()
            config_file = config_file.replace(".json", f"-{mode}.json")
            Path(config_file).write_text(json.dumps(cfg))
            if mode.startswith("workers"):
                argv = [sys.executable, "-m", "bench.workers", config_file, mode[7:]]
            else:
                argv = [sys.executable, "-m", "bench.serve", config_file, mode]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IMDSMOCK_", "AEMM_"))}
        env["IMDSMOCK_LOG_LEVEL"] = "WARNING"
        if src is not None:  # another source tree (bench.ab compares two)
            env["PYTHONPATH"] = os.pathsep.join((src, str(Path(__file__).resolve().parent.parent)))
        self.proc = spawn(argv, env, cpus="0,1" if mode and mode.startswith("workers") else None)
        try:
            wait_http(self.port, "/latest/meta-data/instance-id", timeout, self.proc)
        except RuntimeError:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        """The serving process."""
        return self.proc.pid

    def rss_kb(self) -> int:
        """Resident memory of the one imdsmock process."""
        return rss_kb(self.proc.pid)

    def stop(self) -> None:
        """Stop it by its process id."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    default_type text/plain;
    types {{ }}
    sendfile on;
    tcp_nopush on;
    open_file_cache max=20000 inactive=60s;
    keepalive_requests 1000000;
    keepalive_timeout 30s;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=1024;
        root {root};
        index index.txt;
        location / {{ }}
    }}
}}
"""


class Nginx:
    """Debian's nginx, one worker, serving a directory of files."""

    name = "nginx"

    def __init__(self, root: str) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        # The worker runs as nobody: it must be able to read the root and its parents.
        for parent in (Path(root), *Path(root).parents):
            if str(parent).startswith(tempfile.gettempdir() + "/"):
                parent.chmod(0o755)
        self.dir = tempfile.mkdtemp(prefix="imdsmock-bench-nginx-")
        self.port = free_port()
        conf = Path(self.dir, "nginx.conf")
        conf.write_text(NGINX_CONF.format(dir=self.dir, port=self.port, root=root))
        self.proc = spawn([binary, "-p", self.dir, "-c", str(conf)])
        try:
            wait_http(self.port, "/latest/meta-data/instance-id", 30)
        except RuntimeError:
            log = Path(self.dir, "error.log")
            self.stop()
            raise RuntimeError(f"nginx did not serve: {log.read_text()[-500:]}") from None

    @property
    def pid(self) -> int:
        """The worker (the master only supervises)."""
        workers = children(self.proc.pid)
        return workers[0] if workers else self.proc.pid

    def rss_kb(self) -> int:
        """Resident memory of the worker plus the master."""
        return rss_kb(self.proc.pid) + sum(rss_kb(c) for c in children(self.proc.pid))

    def stop(self) -> None:
        """Stop master and worker (SIGQUIT to the master's pid), remove the temp files."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
