"""Real credentials from a profile: assumed through STS, long-term or temporary keys, and the
failures (STS refusing, STS answering something that is not STS XML, no keys at all).

STS is moto on loopback, or a stand-in HTTP server answering one canned body.
"""

from __future__ import annotations

import calendar
import contextlib
import http.server
import io
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import boto3
import pytest
from moto.server import ThreadedMotoServer

from imdsmock.cli import main
from imdsmock.config.schema import Config
from imdsmock.core.clock import ManualClock
from imdsmock.core.credentials import rotate_now
from imdsmock.instance.credentials import UNAVAILABLE_CODE
from imdsmock.serve.awscreds import RETRY
from mockprocess import mock_process
from support import Running, make_config, serve

ROLE_ARN = "arn:aws:iam::123456789012:role/app-role"
ROLE_PATH = "/latest/meta-data/iam/security-credentials/baskinc-role"
IDENTITY_PATH = "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance"
# Not AWS's documented example key: moto answers GetSessionToken with that one.
SOURCE_KEY = "AKIASOURCEKEYEXAMPLE"
SOURCE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
LONG_TERM = f"[src]\naws_access_key_id = {SOURCE_KEY}\naws_secret_access_key = {SOURCE_SECRET}\n"
# Profile 'src' assumes this role; without these keys it serves its own keys' session.
ASSUME = {"role-arn": ROLE_ARN, "role-session-name": "imdsmock-test"}


@pytest.fixture(scope="module")
def sts_url() -> Iterator[str]:
    """A moto STS-compatible server on an ephemeral loopback port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _profile(
    env: pytest.MonkeyPatch, tmp_path: Path, sts: str, credentials: str = LONG_TERM
) -> None:
    """Profile 'src' with the given credentials-file body; STS at ``sts``; no IMDS fallback."""
    creds = tmp_path / "credentials"
    creds.write_text(credentials)
    config = tmp_path / "config"
    config.write_text("[profile src]\nregion = us-east-1\n")
    env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    env.setenv("AWS_CONFIG_FILE", str(config))
    env.setenv("AWS_ENDPOINT_URL_STS", sts)
    env.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def profile_env(aws_env: pytest.MonkeyPatch, tmp_path: Path, sts_url: str) -> pytest.MonkeyPatch:
    """A throw-away profile 'src' with long-term keys, and STS pointed at moto."""
    _profile(aws_env, tmp_path, sts_url)
    return aws_env


def _wait(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _profile_config(*, server: dict[str, object] | None = None, **extra: object) -> Config:
    """Real credentials from profile 'src': 900 s sets, refreshed 300 s ahead; plus ``extra``
    (credentials keys) and ``server`` keys."""
    return make_config(
        server=server or {},
        credentials={
            "source": "profile",
            "profile": "src",
            "duration-seconds": 900,
            "refresh-ahead": 300,
            **extra,
        },
    )


def _serve_profile(**extra: object) -> contextlib.AbstractContextManager[Running]:
    """The mock serving ``_profile_config(**extra)`` on a manual clock started now."""
    return serve(_profile_config(**extra), ManualClock(time.time()))


def _fetched_or_failed(r: Running) -> str | None:
    """Wait for the refresher's first fetch or failure; the failure line, if any."""
    refresher = r.app.refresher
    assert refresher is not None
    _wait(lambda: refresher.fetches >= 1 or refresher.last_error is not None)
    return refresher.last_error


# -- an assumed role ----------------------------------------------------------------------------


def test_assumed_role_credentials_are_served_refreshed_and_accepted(
    profile_env: pytest.MonkeyPatch, sts_url: str
) -> None:
    """The mock serves the assumed role's keys, refreshes them, and STS accepts them."""
    with _serve_profile(**ASSUME) as r:
        refresher = r.app.refresher
        assert refresher is not None
        _wait(lambda: refresher.fetches >= 1)
        doc = json.loads(r.get(ROLE_PATH)[1])
        assert doc["Code"] == "Success"
        assert doc["AccessKeyId"].startswith("ASIA")
        assert doc["AccessKeyId"] != SOURCE_KEY
        # A request signed with the served keys is accepted by the STS endpoint.
        sts = boto3.client(
            "sts",
            region_name="us-east-1",
            aws_access_key_id=doc["AccessKeyId"],
            aws_secret_access_key=doc["SecretAccessKey"],
            aws_session_token=doc["Token"],
        )
        arn = sts.get_caller_identity()["Arn"]
        assert arn == "arn:aws:sts::123456789012:assumed-role/app-role/imdsmock-test"
        # Ahead of expiry (here: asked for now) the refresher fetches a new set.
        r.app.state.swap(lambda s: rotate_now(s, r.clock.now()))
        _wait(lambda: refresher.fetches >= 2)
        doc2 = json.loads(r.get(ROLE_PATH)[1])
        assert doc2["AccessKeyId"] != doc["AccessKeyId"]
        # The refresh is also due by the clock: refresh-ahead seconds before expiry.
        assert isinstance(r.clock, ManualClock)
        r.clock.advance(900 - 300 + 30)
        _wait(lambda: refresher.fetches >= 3)


def test_failed_source_keeps_last_set_until_expiry(
    profile_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """When the source fails the mock says why in one line and serves the last set until
    it expires; then the role path answers EC2's failure document."""
    clock = ManualClock(time.time())
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger("imdsmock").addHandler(handler)
    logging.getLogger("imdsmock").setLevel(logging.INFO)
    try:
        with serve(_profile_config(**ASSUME), clock) as r:
            refresher = r.app.refresher
            assert refresher is not None
            _wait(lambda: refresher.fetches >= 1)
            good = json.loads(r.get(ROLE_PATH)[1])
            profile_env.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")  # nothing there
            clock.advance(900 - 300 + 30)
            _wait(lambda: refresher.last_error is not None)
            assert "cannot get credentials from profile 'src'" in refresher.last_error
            assert "\n" not in refresher.last_error
            assert json.loads(r.get(ROLE_PATH)[1])["AccessKeyId"] == good["AccessKeyId"]
            clock.advance(300)
            failed = json.loads(r.get(ROLE_PATH)[1])
            assert failed["Code"] == UNAVAILABLE_CODE
    finally:
        logging.getLogger("imdsmock").removeHandler(handler)
    logged = stream.getvalue()
    assert "serving the last valid set until it expires" in logged
    for secret in (good["SecretAccessKey"], good["Token"], SOURCE_SECRET):
        assert secret not in logged


def test_no_secret_appears_in_logs_or_config_output(
    profile_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """Secrets (served keys, source keys, container token) are in no log line or output."""
    caplog.set_level(logging.DEBUG)
    cfg = make_config(
        server={"log-requests": True, "eks-listen": ["127.0.0.1:0"]},
        credentials={
            "source": "profile",
            "profile": "src",
            "role-arn": ROLE_ARN,
            "duration-seconds": 900,
            "refresh-ahead": 300,
            "container-token": "very-secret-container-token",
        },
    )
    with serve(cfg, ManualClock(time.time())) as r:
        refresher = r.app.refresher
        assert refresher is not None
        _wait(lambda: refresher.fetches >= 1)
        token = r.token()
        doc = json.loads(r.get(ROLE_PATH, token)[1])
        r.get(ROLE_PATH)
    config_file = tmp_path / "imdsmock.yaml"
    config_file.write_text(
        "credentials:\n  seed: my-secret-seed\n  container-token: very-secret-container-token\n"
    )
    assert main(["config", "--config", str(config_file)]) == 0
    out, err = capsys.readouterr()
    everything = out + err + caplog.text
    assert "***" in out
    for secret in (
        doc["SecretAccessKey"],
        doc["Token"],
        SOURCE_SECRET,
        "very-secret-container-token",
        "my-secret-seed",
    ):
        assert secret not in everything


def _raw_get(port: int, target: str, host: str, extra: str = "") -> tuple[int, bytes]:
    """GET ``target`` with exactly this Host header; the status and the body."""
    request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        answer = b"".join(iter(lambda: s.recv(65536), b""))
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_real_credentials_are_served_only_to_ip_addresses_localhost_and_allowed_names(
    profile_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With real credentials the IMDS, ECS and EKS listeners answer a Host name a rebinding
    page could hold with an empty 403 (and the target's host counts in absolute form); IP
    addresses, localhost and server.allowed-hosts are served; each refused name is logged
    once, naming the setting. With fake credentials IMDS answers any name."""
    with serve() as fake:
        assert _raw_get(fake.port, ROLE_PATH, "evil.example")[0] == 200
    server = {
        "allowed-hosts": ["imds"],
        "ecs-listen": ["127.0.0.1:0"],
        "eks-listen": ["127.0.0.1:0"],
    }
    cfg = _profile_config(server=server, **ASSUME, **{"container-token": "pod"})
    caplog.set_level(logging.WARNING)
    with serve(cfg, ManualClock(time.time())) as r:
        refresher = r.app.refresher
        assert refresher is not None
        _wait(lambda: refresher.fetches >= 1)
        assert r.app.containers is not None
        (ecs,), (eks,) = r.app.containers.urls("ecs"), r.app.containers.urls("eks")
        listeners = [
            (r.port, ROLE_PATH, ""),
            (urlsplit(ecs).port or 0, cfg.credentials.ecs_relative_uri, ""),
            (urlsplit(eks).port or 0, "/v1/credentials", "Authorization: pod\r\n"),
        ]
        for port, path, extra in listeners:
            for host in ("evil.example", "evil.example:80", "169.254.169.254.evil.example"):
                for _ in range(2):
                    status, body = _raw_get(port, path, host, extra)
                    assert status == 403, (port, host)
                    assert b"AccessKey" not in body
            status, body = _raw_get(port, "http://evil.example" + path, "169.254.169.254", extra)
            assert status == 403
            for host in ("169.254.169.254", f"127.0.0.1:{port}", "localhost", "[::1]:80", "imds"):
                status, body = _raw_get(port, path, host, extra)
                assert status == 200, (port, host)
                assert json.loads(body)["AccessKeyId"].startswith("ASIA")
        assert r.get("/latest/meta-data/instance-id")[0] == 200  # the usual client
    refusals = [m for m in caplog.messages if m.startswith("refused a request for Host")]
    assert len(refusals) == 3 * 2  # evil.example and the IP-looking name, per listener
    assert all("server.allowed-hosts" in m and "real credentials" in m for m in refusals)


def test_profile_settings_are_validated() -> None:
    """Bad real-credential settings fail with one line naming key, value and what is allowed."""
    with pytest.raises(Exception, match=r"credentials\.role-arn is 'nope'"):
        make_config(credentials={"source": "profile", "role-arn": "nope"})
    with pytest.raises(Exception, match=r"credentials\.refresh-ahead is 900; expected less"):
        make_config(credentials={"source": "profile", "duration-seconds": 900})
    with pytest.raises(Exception, match=r"credentials\.source is 'vault'"):
        make_config(credentials={"source": "vault"})


# -- a profile's own keys ----------------------------------------------------------------------


def test_long_term_profile_keys_are_served_as_a_session_token(
    profile_env: pytest.MonkeyPatch,
) -> None:
    """A profile with long-term keys and no role: the mock serves STS session credentials."""
    with _serve_profile() as r:
        assert _fetched_or_failed(r) is None
        doc = json.loads(r.get(ROLE_PATH)[1])
    # IMDS only serves temporary keys: STS's session token (moto's canned key), not the source.
    assert doc["Code"] == "Success"
    assert doc["AccessKeyId"] != SOURCE_KEY
    assert doc["SecretAccessKey"] != SOURCE_SECRET
    assert doc["Token"]


def test_temporary_profile_keys_are_served_as_they_are(
    aws_env: pytest.MonkeyPatch, tmp_path: Path, sts_url: str
) -> None:
    """Keys that are already temporary (credential_process) are served unchanged, with their
    own expiry, and STS is not asked."""
    out = {
        "Version": 1,
        "AccessKeyId": "ASIATEMPORARYEXAMPLE",
        "SecretAccessKey": "temporary-secret",
        "SessionToken": "temporary-session-token",
        "Expiration": "2099-01-01T00:00:00Z",
    }
    script = tmp_path / "process.py"
    script.write_text(f"print({json.dumps(json.dumps(out))})\n")
    config = f"[src]\ncredential_process = {sys.executable} {script}\n"
    _profile(aws_env, tmp_path, "http://127.0.0.1:9", config)
    with _serve_profile() as r:
        assert _fetched_or_failed(r) is None
        doc = json.loads(r.get(ROLE_PATH)[1])
    assert doc["AccessKeyId"] == "ASIATEMPORARYEXAMPLE"
    assert doc["Token"] == "temporary-session-token"
    assert doc["Expiration"] == "2099-01-01T00:00:00Z"


def test_profile_without_credentials_fails_in_one_line(
    aws_env: pytest.MonkeyPatch, tmp_path: Path, sts_url: str
) -> None:
    """A profile that has no keys at all is reported as such, in one line."""
    _profile(aws_env, tmp_path, sts_url, "[other]\naws_access_key_id = x\n")
    with _serve_profile() as r:
        error = _fetched_or_failed(r)
    assert error == "profile 'src' has no credentials"


# -- STS failing ------------------------------------------------------------------------------


class _FakeSts(http.server.BaseHTTPRequestHandler):
    """An STS endpoint that answers every call with one canned status and body."""

    hits: ClassVar[list[bytes]] = []  # the request bodies, replaced per server by _fake_sts
    status = 403
    body = (
        b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
        b"<Type>Sender</Type><Code>InvalidClientTokenId</Code>"
        b"<Message>The security token included in the request is invalid.</Message>"
        b"</Error><RequestId>4f1c6d1e-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    )

    def do_POST(self) -> None:
        self.hits.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.send_response(self.status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _fake_sts(status: int, body: bytes, hits: list[bytes] | None = None) -> Iterator[str]:
    """Serve ``status`` and ``body`` to every STS call; each request body goes to ``hits``."""
    fields = {"status": status, "body": body, "hits": [] if hits is None else hits}
    handler = type("Handler", (_FakeSts,), fields)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_sts_error_answer_is_reported_with_its_code(
    aws_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """When STS refuses the keys, the failure line names the profile, STS's code and message."""
    with _fake_sts(403, _FakeSts.body) as url:
        _profile(aws_env, tmp_path, url)
        with _serve_profile() as r:
            error = _fetched_or_failed(r)
    assert error == (
        "cannot get credentials from profile 'src': InvalidClientTokenId: "
        "The security token included in the request is invalid."
    )


_STS_NS = b' xmlns="https://sts.amazonaws.com/doc/2011-06-15/"'
_NOT_STS = [
    (b"this is not STS", "answered something that is not STS XML (syntax error: line 1, column 0)"),
    (
        b"<html><body>Sign in to use the Wi-Fi</body></html>",
        "answered XML without GetSessionTokenResult",
    ),
    (
        b"<GetSessionTokenResponse" + _STS_NS + b"><GetSessionTokenResult><Credentials>"
        b"<Expiration>soon</Expiration></Credentials></GetSessionTokenResult>"
        b"</GetSessionTokenResponse>",
        'answered XML botocore cannot read (Invalid timestamp "soon"',
    ),
    (
        b"<GetSessionTokenResponse"
        + _STS_NS
        + b"><GetSessionTokenResult/></GetSessionTokenResponse>",
        "answered without complete Credentials",
    ),
]


def _failure_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        rec.getMessage()
        for rec in caplog.records
        if rec.name == "imdsmock.credentials" and rec.levelno >= logging.WARNING
    ]


@pytest.mark.parametrize(
    ("body", "reason"), _NOT_STS, ids=["not-xml", "html-page", "bad-timestamp", "no-credentials"]
)
def test_sts_answer_that_is_not_sts_xml_is_logged_in_one_line_and_retried(
    aws_env: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    reason: str,
) -> None:
    """An STS endpoint answering something that is not STS XML is one log line naming the
    endpoint and why, the role path answers EC2's failure document, and the fetch is retried."""
    caplog.set_level(logging.WARNING, logger="imdsmock.credentials")
    hits: list[bytes] = []
    with _fake_sts(200, body, hits) as url:
        _profile(aws_env, tmp_path, url)
        with _serve_profile() as r:
            error = _fetched_or_failed(r)
            role = json.loads(r.get(ROLE_PATH)[1])
            asked = len(hits)
            assert isinstance(r.clock, ManualClock)
            r.clock.advance(RETRY)
            _wait(lambda: len(hits) > asked)
            _wait(lambda: len(_failure_lines(caplog)) >= 2)  # the retry failed the same way
    assert error is not None
    assert error.startswith(f"cannot get credentials from profile 'src': STS at {url} {reason}")
    assert "\n" not in error
    assert role["Code"] == UNAVAILABLE_CODE
    assert hits[0].startswith(b"Action=GetSessionToken&")
    first, second = _failure_lines(caplog)[:2]
    meanwhile = "the role answers EC2's failure document until a fetch succeeds (retry in 30 s)"
    assert first == second == f"{error}; {meanwhile}"
    assert body.decode() not in first  # a body can hold secrets: never logged


def test_last_good_set_is_served_while_sts_answers_something_that_is_not_xml(
    profile_env: pytest.MonkeyPatch,
) -> None:
    """Once STS starts answering something that is not STS XML, the refresher keeps serving
    the last set it got until that set expires, then EC2's failure document."""
    with _fake_sts(200, b"<html>gateway timeout</html") as bad, _serve_profile() as r:
        refresher = r.app.refresher
        assert refresher is not None
        assert _fetched_or_failed(r) is None
        good = json.loads(r.get(ROLE_PATH)[1])
        profile_env.setenv("AWS_ENDPOINT_URL_STS", bad)
        assert isinstance(r.clock, ManualClock)
        r.clock.advance(900 - 300 + 30)  # the refresh is due
        _wait(lambda: refresher.last_error is not None)
        kept = json.loads(r.get(ROLE_PATH)[1])
        r.clock.advance(300)  # the kept set has expired
        expired = json.loads(r.get(ROLE_PATH)[1])
    assert f"STS at {bad} answered something that is not STS XML" in (refresher.last_error or "")
    assert kept["AccessKeyId"] == good["AccessKeyId"]
    assert expired["Code"] == UNAVAILABLE_CODE


def test_profile_set_can_be_served_expired_and_reports_its_state(
    profile_env: pytest.MonkeyPatch,
) -> None:
    """With a real set held, `expire` serves it already expired and the controller reports
    source, availability and switches without any key."""
    with _serve_profile() as r:
        assert _fetched_or_failed(r) is None
        good = json.loads(r.get(ROLE_PATH)[1])
        described = r.app.controller.expire_credentials(True)
        expired = json.loads(r.get(ROLE_PATH)[1])
        identity = json.loads(r.get(IDENTITY_PATH)[1])
    assert described["source"] == "profile"
    assert described["available"] is True
    assert described["expired"] is True
    assert good["SecretAccessKey"] not in json.dumps(described)
    assert expired["AccessKeyId"] == good["AccessKeyId"]
    assert expired["Expiration"] < good["LastUpdated"]
    # The instance-identity credentials stay fake, but expire with the real set.
    assert identity["AccessKeyId"] != good["AccessKeyId"]
    assert identity["Expiration"] == good["Expiration"]


def test_profile_source_without_a_set_serves_failure_and_fake_identity_credentials(
    aws_env: pytest.MonkeyPatch, tmp_path: Path, sts_url: str
) -> None:
    """Before any real set was fetched the role path answers EC2's failure document, the
    identity credentials are still served, and the controller says no set is available."""
    _profile(aws_env, tmp_path, sts_url, "[other]\naws_access_key_id = x\n")
    with _serve_profile() as r:
        assert _fetched_or_failed(r) is not None
        role = json.loads(r.get(ROLE_PATH)[1])
        identity_status, identity = r.get(IDENTITY_PATH)
        described = r.app.controller.expire_credentials(False)
    assert role["Code"] != "Success"
    assert identity_status == 200
    assert json.loads(identity)["Code"] == "Success"
    assert described["available"] is False
    assert described["expiration"] is None


def test_missing_profile_failure_document_is_dated_at_start_and_logged_truthfully(
    tmp_path: Path,
) -> None:
    """With a profile that does not exist, the real CLI serves EC2's failure document
    stamped with the start time (not 1970), and its log does not promise a last valid set."""
    empty = tmp_path / "empty"
    empty.write_text("")
    env = {
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    started = time.time()
    args = ["--credentials-source", "profile", "--profile", "nope"]
    with mock_process(args, env) as mp:
        mp.wait_for_stderr("cannot get credentials from profile 'nope'")
        status, body = mp.get(ROLE_PATH)
    doc = json.loads(body)
    assert status == 200
    assert doc["Code"] == UNAVAILABLE_CODE
    stamped = calendar.timegm(time.strptime(doc["LastUpdated"], "%Y-%m-%dT%H:%M:%SZ"))
    assert started - 2 <= stamped <= time.time()
    assert "last valid set" not in mp.stderr()
    assert "failure document until a fetch succeeds" in mp.stderr()
