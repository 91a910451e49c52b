"""Soak: everything at once against the real command, on loopback, for a bounded time.

Raw GET load (several threads, a new connection per request as real IMDS demands),
IMDSv2 token churn (a fresh token per request), real boto3 credential and region
resolution in a subprocess, control-API changes (metadata, options, scenarios, credential
rotation) and config-file reloads all run together. The rules: no 5xx that no fault asked
for, no crash, no client waits as long as the SDK timeout (1 s), and memory stays flat
(the token cache and the request log are bounded), shown by RSS sampled every second.

The CI version runs ``SOAK_SECONDS`` (20 s); ``pytest -m slow`` runs the long one
(``IMDSMOCK_SOAK_SECONDS``, default 300 s). ``IMDSMOCK_SOAK_REPORT=FILE`` writes the
numbers as JSON (quoted in docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from mockprocess import MockProcess, clean_env, mock_process

SOAK_SECONDS = 20.0
SDK_TIMEOUT = 1.0
PATHS = [
    b"/latest/meta-data/instance-id",
    b"/latest/meta-data/",
    b"/latest/dynamic/instance-identity/document",
    b"/latest/meta-data/iam/security-credentials/baskinc-role",
    b"/latest/meta-data/placement/availability-zone",
    b"/latest/meta-data/network/interfaces/macs/",
    b"/latest/meta-data/no-such-path",
]
BOTO_SCRIPT = """
import sys, time, botocore.session
from botocore.utils import InstanceMetadataRegionFetcher
end = time.monotonic() + float(sys.argv[1])
ok = 0
while time.monotonic() < end:
    session = botocore.session.Session()
    creds = session.get_credentials().get_frozen_credentials()
    assert creds.access_key.startswith("ASIA") and creds.token, creds
    fetcher = InstanceMetadataRegionFetcher(timeout=1, num_attempts=1, base_url=sys.argv[2])
    region = fetcher.retrieve_region()
    assert region, region
    ok += 1
print(ok)
"""


@dataclass
class Tally:
    """What the load threads saw (one lock for all)."""

    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, seconds: float) -> None:
        """Count one answer and its latency."""
        with self.lock:
            self.statuses[status] += 1
            self.slowest = max(self.slowest, seconds)

    def fail(self, what: str) -> None:
        """Record a request that got no well-formed answer."""
        with self.lock:
            self.failures.append(what)


def raw_get(port: int, path: bytes, headers: bytes = b"") -> tuple[int, bytes]:
    """One GET on a new connection with raw sockets (cheap enough to load the server)."""
    with socket.create_connection(("127.0.0.1", port), timeout=SDK_TIMEOUT * 5) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: 169.254.169.254\r\n%s\r\n" % (path, headers))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head[9:12]), body


def raw_put_token(port: int) -> str:
    """A fresh IMDSv2 token."""
    with socket.create_connection(("127.0.0.1", port), timeout=SDK_TIMEOUT * 5) as sock:
        sock.sendall(
            b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\n"
            b"X-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 0\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    return body.decode()


def soak(mp: MockProcess, config: Path, seconds: float) -> dict[str, Any]:
    """Run the mixed load for ``seconds``; return the numbers."""
    stop = threading.Event()
    tally = Tally()
    rss: list[tuple[float, int]] = []
    counts: Counter[str] = Counter()
    started = time.monotonic()

    def timed(kind: str, call: Any) -> None:
        t0 = time.monotonic()
        try:
            status = call()
        except (OSError, ValueError, AssertionError) as exc:
            tally.fail(f"{kind}: {exc!r}")
            return
        tally.add(status, time.monotonic() - t0)

    def get_load(offset: int) -> None:
        i = offset
        while not stop.is_set():
            path = PATHS[i % len(PATHS)]
            timed("get", lambda p=path: raw_get(mp.port, p)[0])
            i += 1

    def token_churn() -> None:
        while not stop.is_set():

            def one() -> int:
                token = raw_put_token(mp.port)
                header = b"X-aws-ec2-metadata-token: %s\r\n" % token.encode()
                return raw_get(mp.port, PATHS[0], header)[0]

            timed("token", one)

    def control() -> None:
        i = 0
        while not stop.is_set():
            calls = [
                ("PUT", f"/v1/metadata/meta-data/tags/instance/Soak{i % 50}", {"value": str(i)}),
                ("PATCH", "/v1/options", {"hop-limit": 1 + i % 3}),
                ("POST", "/v1/scenarios", {"type": "spot-interruption", "at": "+1h", "id": "s"}),
                ("DELETE", "/v1/scenarios/s", None),
                ("POST", "/v1/credentials/rotate", {}),
            ]
            method, path, body = calls[i % len(calls)]
            data = json.dumps(body).encode() if body is not None else b""
            status, text = mp.control(method, path, data)
            if status >= 500:
                tally.fail(f"control {method} {path}: {status} {text[:200]!r}")
            counts["control"] += 1
            i += 1
            time.sleep(0.02)

    def reloads() -> None:
        i = 0
        while not stop.is_set():
            tmp = config.with_suffix(".tmp")
            tmp.write_text(yaml.safe_dump({"instance": {"tags": {"Reload": str(i)}}}))
            os.replace(tmp, config)
            counts["reloads"] += 1
            i += 1
            stop.wait(0.6)

    def sample_rss() -> None:
        while not stop.is_set():
            rss.append((round(time.monotonic() - started, 1), mp.rss_kib()))
            stop.wait(1.0)

    boto = subprocess.Popen(
        [sys.executable, "-c", BOTO_SCRIPT, str(seconds), f"http://127.0.0.1:{mp.port}/"],
        env=_boto_env(mp, config.parent),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    threads = [threading.Thread(target=get_load, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=f) for f in (token_churn, control, reloads, sample_rss)]
    for t in threads:
        t.start()
    try:
        out, err = boto.communicate(timeout=seconds + 60)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert boto.returncode == 0, err[-2000:]
    served = sum(tally.statuses.values())
    return {
        "seconds": round(time.monotonic() - started, 1),
        "requests": served,
        "requests_per_second": round(served / seconds),
        "statuses": dict(sorted(tally.statuses.items())),
        "failures": tally.failures,
        "slowest_seconds": round(tally.slowest, 3),
        "boto3_resolutions": int(out.strip() or 0),
        "control_changes": counts["control"],
        "config_reloads": counts["reloads"],
        "rss_kib": rss,
        "peak_rss_kib": max(k for _, k in rss),
    }


def _boto_env(mp: MockProcess, tmp: Path) -> dict[str, str]:
    empty = tmp / "aws-empty"
    empty.write_text("")
    return clean_env(
        {
            "AWS_CONFIG_FILE": str(empty),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty),
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{mp.port}/",
            "AWS_METADATA_SERVICE_TIMEOUT": str(int(SDK_TIMEOUT)),
            "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "1",
        }
    )


def check(report: dict[str, Any], mp: MockProcess) -> None:
    """The soak's rules."""
    path = os.environ.get("IMDSMOCK_SOAK_REPORT")
    if path:
        Path(path).write_text(json.dumps(report, indent=2))
    assert report["failures"] == [], report["failures"][:5]
    assert all(status < 500 for status in report["statuses"]), report["statuses"]
    assert set(report["statuses"]) <= {200, 404}, report["statuses"]
    assert report["slowest_seconds"] < SDK_TIMEOUT, report["slowest_seconds"]
    assert report["boto3_resolutions"] > 0
    assert report["config_reloads"] > 1
    assert mp.proc.poll() is None, "the mock died"
    assert "Traceback" not in mp.stderr()
    # Flat memory: after the first quarter (imports, first tables, log filling up) RSS
    # grows by less than 16 MiB however long the soak runs.
    samples = [kib for _, kib in report["rss_kib"]]
    settled = samples[len(samples) // 4 :]
    assert max(settled) - settled[0] < 16 * 1024, report["rss_kib"]


def _run(tmp_path: Path, seconds: float) -> None:
    config = tmp_path / "imdsmock.yaml"
    config.write_text(yaml.safe_dump({"instance": {"tags": {"Reload": "start"}}}))
    with mock_process(["-w", "-c", str(config)], env={"IMDSMOCK_LOG_LEVEL": "WARNING"}) as mp:
        report = soak(mp, config, seconds)
        check(report, mp)
    summary = {k: v for k, v in report.items() if k != "rss_kib"}
    print("soak:", json.dumps(summary))


def test_soak_short(tmp_path: Path) -> None:
    """A short soak of every kind of load at once: no 5xx, no crash, no slow answer, flat RSS."""
    _run(tmp_path, float(os.environ.get("IMDSMOCK_SOAK_CI_SECONDS", SOAK_SECONDS)))


@pytest.mark.slow
@pytest.mark.skipif(
    "'slow' not in config.getoption('markexpr')", reason="long soak: run with -m slow"
)
def test_soak_long(tmp_path: Path) -> None:
    """The same soak for minutes (IMDSMOCK_SOAK_SECONDS, default 300)."""
    _run(tmp_path, float(os.environ.get("IMDSMOCK_SOAK_SECONDS", "300")))
