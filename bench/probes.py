"""Measurements that are not load: cold start, the boto3 credential fetch, token minting."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .servers import free_port, spawn


def cold_start_ms() -> float:
    """Milliseconds from spawning ``python -m imdsmock`` to its first 200 response."""
    port = free_port()
    argv = [sys.executable, "-m", "imdsmock", "--port", str(port)]
    argv += ["--control-port", str(free_port())]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMDSMOCK_", "AEMM_"))}
    request = b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n"
    start = time.perf_counter()
    proc = spawn(argv, env)
    try:
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    s.sendall(request)
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return (time.perf_counter() - start) * 1000
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("imdsmock exited before answering") from None
                time.sleep(0.0005)
            if time.perf_counter() - start > 30:
                raise RuntimeError("imdsmock did not answer within 30 s")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)


BOTO_SCRIPT = """\
import time
t0 = time.perf_counter()
import boto3
t1 = time.perf_counter()
creds = boto3.Session().get_credentials().get_frozen_credentials()
t2 = time.perf_counter()
assert creds.access_key.startswith("ASIA"), creds.access_key
print(f"{(t1 - t0) * 1000:.3f} {(t2 - t1) * 1000:.3f}")
"""


def boto3_credentials_ms(port: int) -> tuple[float, float]:
    """A fresh Python process fetches role credentials through IMDSv2 with boto3.

    Returns (whole process wall time, the ``get_credentials()`` call alone) in ms.
    """
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp, "empty")
        empty.write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_CONFIG_FILE=str(empty),
            AWS_SHARED_CREDENTIALS_FILE=str(empty),
            AWS_EC2_METADATA_SERVICE_ENDPOINT=f"http://127.0.0.1:{port}/",
            AWS_METADATA_SERVICE_TIMEOUT="1",
            AWS_METADATA_SERVICE_NUM_ATTEMPTS="1",
        )
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", BOTO_SCRIPT],
            check=False,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = (time.perf_counter() - start) * 1000
    if out.returncode != 0:
        raise RuntimeError(f"boto3 could not fetch credentials: {out.stderr.strip()[-300:]}")
    return wall, float(out.stdout.split()[1])


def mint_tokens(port: int, count: int, out: Path) -> Path:
    """Ask imdsmock for ``count`` IMDSv2 tokens (six-hour TTL); one per line in ``out``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    tokens = []
    try:
        for _ in range(count):
            conn.request(
                "PUT",
                "/latest/api/token",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
            )
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"token PUT answered {resp.status}")
            tokens.append(body.decode())
            if resp.will_close:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    finally:
        conn.close()
    out.write_text("\n".join(tokens) + "\n")
    return out
