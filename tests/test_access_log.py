"""``--log-requests``: one access-log line on stderr per answered request, and none without it.

The real ``imdsmock`` command runs in a subprocess and curl is the client.
"""

from __future__ import annotations

import re
import subprocess
import time
from calendar import timegm

from mockprocess import MockProcess, mock_process

ID_PATH = "/latest/meta-data/instance-id"
# 2026-11-26T01:02:03.456Z 127.0.0.1 GET /latest/meta-data/instance-id 200 19 v2
LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d{3}Z (?P<client>\S+) (?P<method>[A-Z]+) "
    r"(?P<path>\S+) (?P<status>\d{3}|-) (?P<size>\d+|-) (?P<token>v1|v2|-)$"
)


def curl(mp: MockProcess, path: str, *args: str) -> str:
    """curl ``path`` on the mock's IMDS port; the body."""
    url = f"http://127.0.0.1:{mp.port}{path}"
    done = subprocess.run(["curl", "-sS", *args, url], capture_output=True, text=True, check=True)
    return done.stdout


def talk(mp: MockProcess) -> None:
    """A token PUT, a GET with it, a GET without one, a 404 and a HEAD."""
    token = curl(
        mp, "/latest/api/token", "-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 60"
    )
    assert curl(mp, ID_PATH, "-H", f"X-aws-ec2-metadata-token: {token}") == "i-1234567890abcdef0"
    curl(mp, ID_PATH)
    curl(mp, "/latest/meta-data/no-such-thing")
    curl(mp, "/latest/meta-data/ami-id", "-I")


def access_lines(stderr: str) -> list[re.Match[str]]:
    """The access-log lines among everything the process printed."""
    return [m for m in map(LINE.match, stderr.splitlines()) if m is not None]


def test_log_requests_prints_one_access_line_per_request() -> None:
    """With --log-requests every request is one stderr line: UTC time, client, method, path,
    status, body bytes and the token use (v2 sent, v1 token-less data request, - otherwise)."""
    with mock_process(["--log-requests"], env={"TZ": "America/New_York"}) as mp:
        talk(mp)
        started = time.time()
    lines = access_lines(mp.stderr())
    rows = [
        (m["client"], m["method"], m["path"], m["status"], m["size"], m["token"]) for m in lines
    ]
    assert rows == [
        ("127.0.0.1", "PUT", "/latest/api/token", "200", "56", "-"),
        ("127.0.0.1", "GET", ID_PATH, "200", "19", "v2"),
        ("127.0.0.1", "GET", ID_PATH, "200", "19", "v1"),
        ("127.0.0.1", "GET", "/latest/meta-data/no-such-thing", "404", "336", "v1"),
        ("127.0.0.1", "HEAD", "/latest/meta-data/ami-id", "200", "0", "v1"),
    ]
    logged = timegm(time.strptime(lines[0]["time"], "%Y-%m-%dT%H:%M:%S"))
    assert abs(logged - started) < 300, "the time is UTC, whatever TZ says"


def test_without_log_requests_nothing_is_printed_per_request() -> None:
    """Without the flag the same requests print no access line."""
    with mock_process() as mp:
        talk(mp)
    assert "serving IMDS on" in mp.stderr()
    assert access_lines(mp.stderr()) == []
