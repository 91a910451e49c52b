"""ECS- and EKS-style container credential endpoints, and rotation seen by boto3."""

from __future__ import annotations

import datetime
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.credentials
import botocore.session
import pytest
from botocore.utils import InstanceMetadataFetcher

from imdsmock.config.schema import Config
from imdsmock.core.clock import ManualClock
from support import EPOCH, ROOT, Running, make_config, serve

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDphcHAifQ.c2ln"
ECS_URI = "/v2/credentials/6f1c2d9e-8a3b-4c5d-9e7f-0a1b2c3d4e5f"
ROLE_PATH = "/latest/meta-data/iam/security-credentials/baskinc-role"


def _config(**credentials: Any) -> Config:
    return make_config(
        server={"ecs-listen": ["127.0.0.1:0"], "eks-listen": ["127.0.0.1:0"]},
        credentials={"container-token": TOKEN, **credentials},
    )


def _get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


def _imds_keys(r: Running) -> dict[str, str]:
    doc: dict[str, str] = json.loads(r.get(ROLE_PATH)[1])
    return doc


def test_ecs_endpoint_serves_the_role_credentials_as_the_agent_does() -> None:
    """The relative URI answers compact JSON with RoleArn and the same keys as IMDS."""
    with serve(_config()) as r:
        (ecs,) = r.app.containers.urls("ecs")
        status, kind, body = _get(ecs, ECS_URI)
        assert status == 200
        assert kind == "application/json"
        doc = json.loads(body)
        assert list(doc) == ["RoleArn", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"]
        assert doc["RoleArn"] == "arn:aws:iam::515336597381:role/baskinc-role"
        imds = _imds_keys(r)
        assert doc["AccessKeyId"] == imds["AccessKeyId"]
        assert doc["Expiration"] == imds["Expiration"]
        assert b" " not in body


@pytest.mark.parametrize(
    ("path", "status", "needle"),
    [
        ("/v2/credentials/not-this-one", 400, b"InvalidIdInRequest"),
        ("/v2/credentials", 400, b"NoIdInRequest"),
        ("/other", 404, b"404 page not found"),
    ],
    ids=["unknown-id", "no-id", "other-path"],
)
def test_ecs_endpoint_refuses_other_ids(path: str, status: int, needle: bytes) -> None:
    """A credentials ID other than the configured one gets the agent's 400 JSON error."""
    with serve(_config()) as r:
        got, _, body = _get(r.app.containers.urls("ecs")[0], path)
        assert got == status
        assert needle in body


def test_eks_endpoint_serves_credentials_with_account_id() -> None:
    """/v1/credentials with the right token answers the Pod Identity agent's JSON."""
    with serve(_config()) as r:
        status, kind, body = _get(
            r.app.containers.urls("eks")[0], "/v1/credentials", {"Authorization": TOKEN}
        )
        assert status == 200
        assert kind == "application/json"
        doc = json.loads(body)
        assert list(doc) == ["AccessKeyId", "SecretAccessKey", "Token", "AccountId", "Expiration"]
        assert doc["AccountId"] == "515336597381"
        assert doc["AccessKeyId"] == _imds_keys(r)["AccessKeyId"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, b"Service account token cannot be empty\n"),
        ({"Authorization": "wrong"}, b"InvalidTokenException"),
    ],
    ids=["missing", "wrong"],
)
def test_eks_endpoint_refuses_missing_or_wrong_tokens(
    headers: dict[str, str], message: bytes
) -> None:
    """Without the configured token the EKS endpoint answers 400 as the agent does."""
    with serve(_config()) as r:
        status, kind, body = _get(r.app.containers.urls("eks")[0], "/v1/credentials", headers)
        assert status == 400
        assert kind == "text/plain; charset=utf-8"
        assert message in body
        assert b"ASIA" not in body


def test_container_endpoints_answer_unavailable_while_refreshes_fail() -> None:
    """An armed fail_refreshes also fails container fetches (ECS 400, EKS 500), then heals."""
    with serve(_config()) as r:
        r.app.state.failures.arm(2, "baskinc-role", EPOCH)
        ecs, eks = r.app.containers.urls("ecs")[0], r.app.containers.urls("eks")[0]
        assert _get(ecs, ECS_URI)[0] == 400
        assert _get(eks, "/v1/credentials", {"Authorization": TOKEN})[0] == 500
        assert _get(ecs, ECS_URI)[0] == 200


def test_token_file_is_read_at_start(tmp_path: Path) -> None:
    """credentials.container-token-file names the token; a missing file is a one-line error."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    cfg = make_config(
        server={"eks-listen": ["127.0.0.1:0"]},
        credentials={"container-token-file": str(token_file)},
    )
    with serve(cfg) as r:
        url = r.app.containers.urls("eks")[0]
        assert _get(url, "/v1/credentials", {"Authorization": TOKEN})[0] == 200
        assert _get(url, "/v1/credentials", {"Authorization": "x"})[0] == 400
    from imdsmock.errors import ConfigError

    bad = make_config(credentials={"container-token-file": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match=r"credentials\.container-token-file is"), serve(bad):
        pass


def test_bad_listen_values_are_one_line_errors() -> None:
    """ecs-listen / eks-listen take HOST:PORT, and say so."""
    from imdsmock.errors import ConfigError

    with pytest.raises(ConfigError, match=r"server.eks-listen is 'nope'; expected HOST:PORT"):
        make_config(server={"eks-listen": ["nope"]})


def test_boto3_reads_eks_full_uri_with_token_file(
    aws_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """boto3's container provider gets the keys through FULL_URI and the token file."""
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text(TOKEN)
    with serve(_config(), ManualClock(time.time())) as r:
        aws_env.setenv(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            r.app.containers.urls("eks")[0] + "/v1/credentials",
        )
        aws_env.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token_file))
        aws_env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        creds = boto3.Session().get_credentials()
        assert creds is not None
        assert creds.method == "container-role"
        frozen = creds.get_frozen_credentials()
        imds = _imds_keys(r)
        assert frozen.access_key == imds["AccessKeyId"]
        assert frozen.secret_key == imds["SecretAccessKey"]
        assert frozen.token == imds["Token"]


def test_boto3_refreshable_credentials_pick_up_rotation(aws_env: pytest.MonkeyPatch) -> None:
    """With a manual clock, a new set appears before expiry and boto3 refreshes onto it."""
    clock = ManualClock(time.time())
    cfg = make_config(credentials={"lifetime": 6 * 3600, "rotate-every": 3600})
    with serve(cfg, clock) as r:
        aws_env.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", r.url + "/")
        fetcher = InstanceMetadataFetcher(timeout=2, num_attempts=1, base_url=r.url + "/")
        first = fetcher.retrieve_iam_role_credentials()
        # The SDK's own clock parameter follows the manual clock (nothing is patched).
        creds = botocore.credentials.RefreshableCredentials(
            access_key=first["access_key"],
            secret_key=first["secret_key"],
            token=first["token"],
            expiry_time=datetime.datetime.fromisoformat(first["expiry_time"]),
            refresh_using=fetcher.retrieve_iam_role_credentials,
            method="iam-role",
            time_fetcher=lambda: datetime.datetime.fromtimestamp(clock.now(), tz=datetime.UTC),
        )
        before = creds.get_frozen_credentials()
        doc1 = _imds_keys(r)
        clock.advance(3600)  # one rotation period: a new set, the old one still valid 5 h
        doc2 = _imds_keys(r)
        assert doc2["AccessKeyId"] != doc1["AccessKeyId"]
        assert doc2["LastUpdated"] > doc1["LastUpdated"]
        assert doc2["Expiration"] > doc1["Expiration"]
        assert creds.get_frozen_credentials().access_key == before.access_key  # still fresh
        clock.advance(5 * 3600 - 14 * 60)  # 14 minutes before the first set expires
        after = creds.get_frozen_credentials()
        assert after.access_key != before.access_key
        assert after.access_key == _imds_keys(r)["AccessKeyId"]


def _can_unshare() -> str | None:
    if os.geteuid() != 0:
        return "needs root to make a network namespace"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare and ip (util-linux, iproute2)"
    return None


_ECS_SCRIPT = textwrap.dedent(
    """
    import json, subprocess, sys, time
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", "169.254.170.2/32", "dev", "lo"], check=True)
    sys.path.insert(0, sys.argv[1])
    import boto3
    from imdsmock.core.clock import ManualClock
    from imdsmock.core.credentials import current_set
    from support import make_config, serve
    cfg = make_config(server={"ecs-listen": ["169.254.170.2:80"]})
    with serve(cfg, ManualClock(time.time())) as r:
        creds = boto3.Session().get_credentials()
        served = current_set(r.app.state.snapshot, r.clock.now())
        frozen = creds.get_frozen_credentials()
    print(json.dumps({"method": creds.method, "same": frozen.access_key == served.access_key_id}))
    """
)


def test_boto3_reads_ecs_relative_uri(tmp_path: Path) -> None:
    """In a namespace where 169.254.170.2 exists, boto3 follows the ECS relative URI."""
    why = _can_unshare()
    if why is not None:
        pytest.skip(why)
    empty = tmp_path / "empty"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BOTO_"))}
    env.update(
        AWS_CONFIG_FILE=str(empty),
        AWS_SHARED_CREDENTIALS_FILE=str(empty),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=ECS_URI,
        PYTHONPATH=str(ROOT / "src"),
    )
    script = tmp_path / "ecs.py"
    script.write_text(_ECS_SCRIPT)
    out = subprocess.run(
        ["unshare", "-n", sys.executable, str(script), str(ROOT / "tests")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"method": "container-role", "same": True}


# -- raw HTTP on the container endpoints ------------------------------------------------


@pytest.fixture
def endpoints() -> Iterator[dict[str, tuple[str, int]]]:
    """The ECS and EKS endpoint addresses of a running mock."""
    with serve(_config()) as r:
        out = {}
        for kind in ("ecs", "eks"):
            (url,) = r.app.containers.urls(kind)
            host, port = url.removeprefix("http://").rsplit(":", 1)
            out[kind] = (host, int(port))
        yield out


@pytest.fixture(params=["ecs", "eks"])
def endpoint(
    request: pytest.FixtureRequest, endpoints: dict[str, tuple[str, int]]
) -> tuple[str, int]:
    """The address of each container endpoint in turn (ECS, then EKS)."""
    address: tuple[str, int] = endpoints[request.param]
    return address


def _raw(address: tuple[str, int], data: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_container_endpoint_answers_post_with_405(endpoint: tuple[str, int]) -> None:
    """Only GET and HEAD are served: a POST gets 405 Method Not Allowed, as the agents answer."""
    answer = _raw(endpoint, b"POST /v1/credentials HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 405 ")
    assert b"Method Not Allowed" in answer


def test_ecs_endpoint_answers_an_unrelated_path_with_the_agents_404(
    endpoints: dict[str, tuple[str, int]],
) -> None:
    """A path that is not under /v2/credentials gets the ECS agent's plain 404 page."""
    answer = _raw(endpoints["ecs"], b"GET /metadata HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert answer.endswith(b"\r\n\r\n404 page not found\n")


def test_container_endpoint_answers_malformed_http_with_400(endpoint: tuple[str, int]) -> None:
    """Bytes that are not HTTP get 400 Bad Request and the connection closes."""
    answer = _raw(endpoint, b"\x00\x01 garbage\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_container_endpoint_answers_an_upgrade_request_once_as_plain_http(
    endpoints: dict[str, tuple[str, int]],
) -> None:
    """A request asking to upgrade (e.g. to WebSocket) gets one plain HTTP answer, then the close."""
    answer = _raw(
        endpoints["eks"],
        b"GET /v1/credentials HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + TOKEN.encode()
        + b"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.count(b"HTTP/1.1 ") == 1


def test_container_endpoint_answers_a_huge_head_with_431(endpoint: tuple[str, int]) -> None:
    """Request headers past 16 KiB get 431 Request Header Fields Too Large, then the close."""
    big = b"X-Big: " + b"b" * 20_000 + b"\r\n"
    answer = _raw(endpoint, b"GET /v1/credentials HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert answer.endswith(b"\r\n\r\n431 Request Header Fields Too Large\n")
