"""What an outsider can make the mock hold: memory and descriptors stay within the bounds
docs/reliability.md states, measured on a real server process.

Every test starts ``imdsmock`` as its own process (its RSS and descriptor limit are its own)
and talks to it over loopback with raw sockets.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import select
import socket
import sys
import time
from pathlib import Path

from mockprocess import Command, MockProcess, free_port, mock_process

RELIABILITY = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
ID_REQUEST = b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def documented_mb(row: str) -> float:
    """The bound docs/reliability.md states in MB in the table row named ``row``."""
    text = RELIABILITY.read_text(encoding="utf-8")
    found = re.search(r"^\| " + re.escape(row) + r" \|.*\*\*([\d.]+) MB\*\*", text, re.MULTILINE)
    assert found is not None, f"docs/reliability.md has no bound for {row!r}"
    return float(found.group(1))


def exchange(mp: MockProcess, data: bytes) -> bytes:
    """Send ``data`` to the IMDS listener on a new connection; all it answers until it closes."""
    out = b""
    with socket.create_connection(("127.0.0.1", mp.port), timeout=10) as sock:
        sock.sendall(data)
        while chunk := sock.recv(65536):
            out += chunk
    return out


def warm(mp: MockProcess) -> int:
    """Serve a few ordinary requests (so start-up allocations are done); the RSS then, KiB."""
    for _ in range(50):
        assert exchange(mp, ID_REQUEST).startswith(b"HTTP/1.1 200 ")
    return mp.rss_kib()


def test_distinct_long_paths_and_agents_keep_memory_bounded() -> None:
    """Thousands of distinct multi-KB paths, user agents and tokens (with a fault rule set)
    grow RSS by at most the bound on caches and the request log, and a page of the log read
    back stays small."""
    bound_kib = int(documented_mb("caches and the request log, together") * 1024)
    with mock_process() as mp:
        rule = b'{"kind": "status", "status": 503, "path": "/never/*"}'
        assert mp.control("POST", "/v1/faults", rule)[0] == 201
        idle = warm(mp)
        for i in range(3000):
            path = b"/latest/meta-data/%d/" % i + b"p" * 5000
            agent = b"agent-%d/" % i + b"a" * 5000
            token = b"%d" % i + b"t" * 3000
            head = (
                b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nUser-Agent: " + agent
                + b"\r\nX-aws-ec2-metadata-token: " + token + b"\r\n\r\n"
            )  # fmt: skip
            assert exchange(mp, head).startswith(b"HTTP/1.1 401 ")
        grown = mp.rss_kib() - idle
        assert grown <= bound_kib, f"RSS grew {grown} KiB, more than {bound_kib} KiB"
        status, body = mp.control("GET", "/v1/requests?limit=1000")
        assert status == 200
        assert len(body) < 1024 * 1024, len(body)


def test_megabyte_paths_under_a_raised_head_limit_keep_memory_bounded() -> None:
    """With max-header-bytes at 1 MiB, a few hundred distinct ~1 MB paths grow RSS by at
    most the bound on caches and the request log."""
    bound_kib = int(documented_mb("caches and the request log, together") * 1024)
    with mock_process(["--set", "server.max-header-bytes=1048576"]) as mp:
        idle = warm(mp)
        for i in range(200):
            path = b"/latest/meta-data/%d/" % i + b"p" * 1_000_000
            assert exchange(mp, b"GET " + path + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404 ")
        grown = mp.rss_kib() - idle
        assert grown <= bound_kib, f"RSS grew {grown} KiB, more than {bound_kib} KiB"
        status, body = mp.control("GET", "/v1/requests")
        assert status == 200
        assert len(body) < 256 * 1024, len(body)


PKCS7 = b"GET /latest/dynamic/instance-identity/pkcs7 HTTP/1.1\r\nHost: x\r\n\r\n"


def test_pipelining_clients_that_never_read_keep_memory_bounded() -> None:
    """Keep-alive connections pipelining requests without reading the answers are held back
    (the server stops reading) instead of buffered for: RSS stays within the bounds, and
    other clients are answered meanwhile."""
    caches = documented_mb("caches and the request log, together")
    per_connection = documented_mb("each open connection, at the default limits")
    pipeline = PKCS7 * 500
    with mock_process(["--keep-alive", "--set", "server.idle-timeout=60"]) as mp:
        idle = warm(mp)
        clients = [socket.create_connection(("127.0.0.1", mp.port)) for _ in range(4)]
        try:
            for sock in clients:
                sock.setblocking(False)
            sent = [0] * len(clients)
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline and min(sent) < 80:
                for i, sock in enumerate(clients):
                    if sent[i] < 80:
                        with contextlib.suppress(BlockingIOError):
                            sock.send(pipeline)  # a partial send only tears the last request
                            sent[i] += 1
                time.sleep(0.01)
            time.sleep(1)  # let the server do what it will with what it read
            grown = mp.rss_kib() - idle
            bound = (caches + len(clients) * per_connection) * 1024
            assert grown <= bound, f"RSS grew {grown} KiB, more than {bound} KiB"
            assert exchange(mp, ID_REQUEST).startswith(b"HTTP/1.1 200 ")
        finally:
            for sock in clients:
                sock.close()


def limited(files: int) -> Command:
    """``imdsmock`` run under a soft and hard open-file limit of ``files`` descriptors."""
    return Command(
        (
            sys.executable,
            "-c",
            "import resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({files}, {files})); "
            "from imdsmock.cli import main; sys.exit(main(sys.argv[1:]))",
        )
    )


def first_answers(socks: list[socket.socket], wait: float) -> list[bytes]:
    """What each connection has received within ``wait`` seconds (b"" for nothing, b"RST"
    for a reset)."""
    got = {sock: b"" for sock in socks}
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        pending = [sock for sock in socks if not got[sock]]
        ready, _, _ = select.select(pending, [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        for sock in ready:
            try:
                got[sock] = sock.recv(4096) or b"EOF"
            except ConnectionResetError:
                got[sock] = b"RST"
    return [got[sock] for sock in socks]


def test_idle_connection_flood_under_a_low_file_limit_leaves_every_listener_answering() -> None:
    """Under an open-file limit of 128, the budget is fitted under it (one warning), a flood
    of idle connections beyond it is shed with 429 instead of failing accepts, and IMDS,
    control, ECS and EKS answer while the flood stays."""
    ecs = free_port()
    eks = free_port()
    args = ["--set", "server.idle-timeout=60", "--ecs-listen", f"127.0.0.1:{ecs}"]
    args += ["--eks-listen", f"127.0.0.1:{eks}"]
    with mock_process(args, command=limited(128)) as mp:
        warnings = [line for line in mp.stderr_lines if "max-connections lowered" in line]
        assert len(warnings) == 1
        assert "from 1024 to 96 to fit the open-file limit (128" in warnings[0]
        flood = [socket.create_connection(("127.0.0.1", ecs)) for _ in range(200)]
        try:
            answers = first_answers(flood, wait=0.5)
            assert answers.count(b"") == 96  # held: every slot of the budget
            assert any(a.startswith(b"HTTP/1.1 429 Too Many Requests") for a in answers)
            time.sleep(1.2)  # the flood has now waited long enough to give up its slots
            assert mp.get("/latest/meta-data/instance-id") == (200, b"i-1234567890abcdef0")
            assert mp.control("GET", "/v1/clock")[0] == 200
            ecs_path = "/v2/credentials/6f1c2d9e-8a3b-4c5d-9e7f-0a1b2c3d4e5f"
            assert _get(ecs, ecs_path)[0] == 200
            assert _get(eks, "/v1/credentials", {"Authorization": "pod-token"})[0] == 200
        finally:
            for sock in flood:
                sock.close()
        assert mp.proc.poll() is None


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
