"""Exact bytes on the wire, pinned by golden files (tests/golden/*.http).

Each file holds the whole response as the server wrote it, with the Date header (the
only part that depends on the wall clock) replaced by a placeholder. Regenerate after an
intended change with ``IMDSMOCK_UPDATE_GOLDEN=1 pytest tests/test_golden.py``.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

from support import Running, make_config, serve

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("IMDSMOCK_UPDATE_GOLDEN") == "1"

CASES = [
    ("versions", "GET", "/", {}),
    ("latest", "GET", "/latest/", {}),
    ("meta-data", "GET", "/latest/meta-data/", {}),
    ("placement", "GET", "/latest/meta-data/placement", {}),
    ("instance-id", "GET", "/latest/meta-data/instance-id", {}),
    ("instance-id-head", "HEAD", "/latest/meta-data/instance-id", {}),
    ("iam-info", "GET", "/latest/meta-data/iam/info", {}),
    ("iam-role-listing", "GET", "/latest/meta-data/iam/security-credentials/", {}),
    ("credentials", "GET", "/latest/meta-data/iam/security-credentials/baskinc-role", {}),
    (
        "credentials-extended",
        "GET",
        "/latest/meta-data/iam/security-credentials-extended/baskinc-role",
        {},
    ),
    ("identity-credentials-info", "GET", "/latest/meta-data/identity-credentials/ec2/info", {}),
    ("identity-document", "GET", "/latest/dynamic/instance-identity/document", {}),
    ("instance-identity-listing", "GET", "/latest/dynamic/instance-identity/", {}),
    ("events-scheduled", "GET", "/latest/meta-data/events/maintenance/scheduled", {}),
    ("interface", "GET", "/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/", {}),
    ("public-keys", "GET", "/latest/meta-data/public-keys/", {}),
    ("user-data", "GET", "/latest/user-data", {}),
    ("400-ttl", "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "0"}),
    ("401-token", "GET", "/latest/meta-data/", {"X-aws-ec2-metadata-token": "bogus"}),
    (
        "403-forwarded",
        "PUT",
        "/latest/api/token",
        {"X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "10.1.1.1"},
    ),
    ("404", "GET", "/latest/meta-data/nope", {}),
    ("405-token", "GET", "/latest/api/token", {}),
]


def raw_request(r: Running, method: str, path: str, headers: dict[str, str]) -> bytes:
    """Send one request by hand and read the whole answer (the server closes)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 169.254.169.254", "User-Agent: golden"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((r.host, r.port), timeout=5) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture(scope="module")
def golden_server() -> Running:
    """The default instance at a fixed time with a fixed credential seed."""
    with serve(make_config()) as r:
        yield r  # type: ignore[misc]


@pytest.mark.parametrize(("name", "method", "path", "headers"), CASES, ids=[c[0] for c in CASES])
def test_response_bytes_match_golden(
    golden_server: Running, name: str, method: str, path: str, headers: dict[str, str]
) -> None:
    """The response, headers and body, is byte for byte the pinned one."""
    data = raw_request(golden_server, method, path, headers)
    data = re.sub(rb"\r\nDate: [^\r]+\r\n", b"\r\nDate: <date>\r\n", data)
    file = GOLDEN / f"{name}.http"
    if UPDATE:
        file.write_bytes(data)
    assert data == file.read_bytes()


def test_token_response_shape() -> None:
    """The token answer has the exact header set of real IMDS (token itself varies)."""
    with serve() as r:
        data = raw_request(
            r, "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "21600"}
        )
    head, _, body = data.partition(b"\r\n\r\n")
    names = [line.split(b":")[0] for line in head.split(b"\r\n")[1:]]
    assert names == [
        b"Content-Type",
        b"Accept-Ranges",
        b"X-Aws-Ec2-Metadata-Token-Ttl-Seconds",
        b"Content-Length",
        b"Date",
        b"Server",
        b"Connection",
    ]
    assert len(body) == 56
