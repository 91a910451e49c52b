"""Real credentials from a profile, assumed through an STS endpoint (moto) on loopback."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from imdsmock.cli import main
from imdsmock.clock import ManualClock
from imdsmock.credentials import UNAVAILABLE_CODE, rotate_now
from support import make_config, serve

ROLE_ARN = "arn:aws:iam::123456789012:role/app-role"
ROLE_PATH = "/latest/meta-data/iam/security-credentials/baskinc-role"
SOURCE_KEY = "AKIAIOSFODNN7EXAMPLE"
SOURCE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


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


@pytest.fixture
def profile_env(aws_env: pytest.MonkeyPatch, tmp_path: Path, sts_url: str) -> pytest.MonkeyPatch:
    """A throw-away profile 'src' with long-term keys, and STS pointed at moto."""
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[src]\naws_access_key_id = {SOURCE_KEY}\naws_secret_access_key = {SOURCE_SECRET}\n"
    )
    config = tmp_path / "config"
    config.write_text("[profile src]\nregion = us-east-1\n")
    aws_env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    aws_env.setenv("AWS_CONFIG_FILE", str(config))
    aws_env.setenv("AWS_ENDPOINT_URL_STS", sts_url)
    return aws_env


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _profile_config(**extra: object) -> object:
    return make_config(
        credentials={
            "source": "profile",
            "profile": "src",
            "role-arn": ROLE_ARN,
            "role-session-name": "imdsmock-test",
            "duration-seconds": 900,
            "refresh-ahead": 300,
            **extra,
        }
    )


def test_assumed_role_credentials_are_served_refreshed_and_accepted(
    profile_env: pytest.MonkeyPatch, sts_url: str
) -> None:
    """The mock serves the assumed role's keys, refreshes them, and STS accepts them."""
    with serve(_profile_config(), ManualClock(time.time())) as r:  # type: ignore[arg-type]
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
        with serve(_profile_config(), clock) as r:  # type: ignore[arg-type]
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


def test_profile_settings_are_validated() -> None:
    """Bad real-credential settings fail with one line naming key, value and what is allowed."""
    with pytest.raises(Exception, match=r"credentials\.role-arn is 'nope'"):
        make_config(credentials={"source": "profile", "role-arn": "nope"})
    with pytest.raises(Exception, match=r"credentials\.refresh-ahead is 900; expected less"):
        make_config(credentials={"source": "profile", "duration-seconds": 900})
    with pytest.raises(Exception, match=r"credentials\.source is 'vault'"):
        make_config(credentials={"source": "vault"})
