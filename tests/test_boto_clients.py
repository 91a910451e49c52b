"""Real AWS SDK clients (botocore/boto3) resolve credentials and region through the mock."""

from __future__ import annotations

import datetime

import boto3
import botocore.session
import pytest
from botocore.utils import IMDSRegionProvider

from support import Running, make_config, serve


def _session(url: str, pytest_env: pytest.MonkeyPatch) -> boto3.Session:
    pytest_env.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url + "/")
    return boto3.Session()


@pytest.mark.parametrize(
    ("mode", "v1_disabled"),
    [("optional", False), ("optional", True), ("required", True)],
    ids=["optional", "optional-v1-disabled", "required-v1-disabled"],
)
def test_boto3_resolves_credentials_and_region(
    aws_env: pytest.MonkeyPatch, mode: str, v1_disabled: bool
) -> None:
    """boto3 gets iam-role credentials and the region from the mock, in both token modes."""
    if v1_disabled:
        aws_env.setenv("AWS_EC2_METADATA_V1_DISABLED", "true")
    with serve(make_config(options={"http-tokens": mode})) as r:
        session = _session(r.url, aws_env)
        creds = session.get_credentials()
        assert creds is not None
        assert creds.method == "iam-role"
        frozen = creds.get_frozen_credentials()
        assert frozen.access_key.startswith("ASIA")
        assert len(frozen.access_key) == 20
        assert len(frozen.secret_key) == 40
        assert frozen.token
        # boto3 asks IMDS for the region through botocore's IMDS region provider.
        assert IMDSRegionProvider(session._session).provide() == "us-east-1"


def test_botocore_region_provider_reads_placement(aws_env: pytest.MonkeyPatch) -> None:
    """botocore's IMDS region provider answers the configured region (placement/zone)."""
    with serve(make_config(instance={"availability-zone": "eu-west-1b"})) as r:
        aws_env.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", r.url + "/")
        provider = IMDSRegionProvider(botocore.session.Session())
        assert provider.provide() == "eu-west-1"


def test_credentials_expiration_is_hours_ahead(
    running: Running, aws_env: pytest.MonkeyPatch
) -> None:
    """Served credentials expire hours ahead, so SDKs refresh normally (no extension path)."""
    aws_env.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", running.url + "/")
    creds = boto3.Session().get_credentials()
    assert creds is not None
    expiry = creds._expiry_time  # type: ignore[attr-defined]
    start = datetime.datetime.fromtimestamp(running.clock.now(), tz=datetime.UTC)
    assert expiry - start >= datetime.timedelta(hours=5)
