"""Security: the IMDS listener is only IMDS, and secrets never reach a log.

Covered elsewhere, not repeated here: a proxied token request (X-Forwarded-For) is 403
(test_imds_protocol.py), a non-loopback control bind needs a token and then the bearer
(test_control_api.py), credentials never in reprs or `imdsmock config` output
(test_credentials_*.py).
"""

from __future__ import annotations

import json

import pytest

from imdsmock.api import MockIMDS
from imdsmock.serve.control import is_loopback
from mockprocess import mock_process
from support import make_config, serve

CONTROL_ROUTES = [
    ("GET", "/v1/state"),
    ("GET", "/openapi.json"),
    ("GET", "/v1/requests"),
    ("GET", "/v1/certificate"),
    ("PUT", "/v1/metadata/meta-data/instance-id"),
    ("PATCH", "/v1/options"),
    ("POST", "/v1/faults"),
    ("POST", "/v1/scenarios"),
    ("POST", "/v1/clock/advance"),
    ("DELETE", "/v1/requests"),
]


@pytest.mark.parametrize(("method", "path"), CONTROL_ROUTES, ids=[p for _, p in CONTROL_ROUTES])
def test_imds_listener_serves_nothing_of_the_control_api(method: str, path: str) -> None:
    """Control routes sent to the IMDS listener are 404/405 and change nothing."""
    cfg = make_config(server={"control": True, "control-port": 0})
    with serve(cfg) as r:
        body = json.dumps({"value": "i-0000000000000dead", "http-tokens": "required"}).encode()
        status, _, answer = r.request(method, path, {"Content-Type": "application/json"}, body)
        assert status in (404, 405)
        assert b"openapi" not in answer
        assert b"BEGIN CERTIFICATE" not in answer
        assert r.get("/latest/meta-data/instance-id") == (200, b"i-1234567890abcdef0")
        assert r.app.config.options.http_tokens == "optional"
        assert r.app.faults.rules == ()


def test_control_api_listens_on_loopback_by_default() -> None:
    """With no configuration the control listener binds 127.0.0.1 only."""
    with MockIMDS() as imds:
        url = imds.control_url
    assert url is not None
    assert url.startswith("http://127.0.0.1:")
    assert is_loopback(url.split("//")[1].rsplit(":", 1)[0])


def test_secrets_never_reach_the_log() -> None:
    """With --log-requests and DEBUG logging no token, key or control secret is printed."""
    control_secret = "control-secret-4d1f0a"
    wrong_bearer = "wrong-bearer-9c3e7b"
    args = ["--log-requests", "--control-token", control_secret]
    with mock_process(args, env={"IMDSMOCK_LOG_LEVEL": "DEBUG"}) as mp:
        status, token = mp.request(
            "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        )
        assert status == 200
        auth = {"X-aws-ec2-metadata-token": token.decode()}
        role = "/latest/meta-data/iam/security-credentials/baskinc-role"
        status, doc = mp.get(role, auth)
        assert status == 200
        creds = json.loads(doc)
        assert mp.get(role, {"X-aws-ec2-metadata-token": "A" * 56})[0] == 401
        identity = "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance"
        status, ident_doc = mp.get(identity, auth)
        ident = json.loads(ident_doc) if status == 200 else {}
        bearer = {"Authorization": f"Bearer {control_secret}"}
        assert mp.control("GET", "/v1/state", headers=bearer)[0] == 200
        assert mp.control("GET", "/v1/state", headers={"Authorization": wrong_bearer})[0] == 401
        status, logged = mp.control("GET", "/v1/requests", headers=bearer)
        assert status == 200
        mp.proc.terminate()
        mp.proc.wait(5)
    secrets = [
        control_secret,
        wrong_bearer,
        token.decode(),
        creds["SecretAccessKey"],
        creds["Token"],
        *(ident.get(k) for k in ("SecretAccessKey", "Token") if ident.get(k)),
    ]
    output = mp.stderr()
    assert "GET" in output or "serving IMDS" in output
    for secret in secrets:
        assert secret not in output
    # The request log served by the control API keeps whether a token was sent, not it.
    assert token not in logged
