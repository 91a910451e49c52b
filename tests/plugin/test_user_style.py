"""The pytest plugin as a user writes tests with it: only the ``imds`` fixture and marker.

Nothing here imports imdsmock: the fixture comes from the ``pytest11`` entry point.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import boto3
import pytest


def interruption_notice(endpoint: str) -> dict[str, str] | None:
    """A spot-interruption handler under test: IMDSv2, None until a notice is posted."""
    token_request = urllib.request.Request(
        endpoint + "latest/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
    )
    with urllib.request.urlopen(token_request, timeout=2) as resp:
        token = resp.read().decode()
    notice_request = urllib.request.Request(
        endpoint + "latest/meta-data/spot/instance-action",
        headers={"X-aws-ec2-metadata-token": token},
    )
    try:
        with urllib.request.urlopen(notice_request, timeout=2) as resp:
            notice: dict[str, str] = json.loads(resp.read())
            return notice
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def test_boto3_takes_region_and_credentials_from_the_instance(imds):
    """A boto3 session made in the test finds the instance's region and role credentials."""
    session = boto3.Session()
    credentials = session.get_credentials()
    assert session.region_name == "us-east-1"
    assert credentials.method == "iam-role"
    assert credentials.access_key.startswith("ASIA")
    imds.assert_no_imdsv1()


@pytest.mark.imds(region="eu-west-1", http_tokens="required")
def test_marker_configures_the_instance_for_one_test(imds):
    """The imds marker sets region and IMDSv2-only mode, and boto3 still gets credentials."""
    session = boto3.Session()
    assert session.region_name == "eu-west-1"
    assert session.get_credentials().method == "iam-role"
    imds.assert_no_imdsv1()
    imds.assert_requested("/latest/meta-data/iam/security-credentials/")


def test_spot_handler_sees_the_notice_after_the_clock_advances(imds):
    """A notice scheduled a minute ahead appears when the manual clock gets there."""
    endpoint = imds.environ()["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
    imds.spot_interruption(action="stop", at="+60s")
    assert interruption_notice(endpoint) is None
    imds.clock.advance(60)
    notice = interruption_notice(endpoint)
    assert notice is not None
    assert notice["action"] == "stop"
    imds.assert_no_imdsv1()


@pytest.mark.imds(scenario={"type": "spot-interruption", "action": "hibernate"})
def test_marker_starts_a_scenario_with_the_test(imds):
    """A scenario given to the marker is running when the test starts."""
    endpoint = imds.environ()["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
    assert interruption_notice(endpoint) == {
        "action": "hibernate",
        "time": imds.get_metadata("meta-data/spot/termination-time"),
    }


def test_a_token_less_call_fails_the_imdsv2_only_assertion(imds):
    """A plain GET without a token is reported by assert_no_imdsv1, with its user agent."""
    url = imds.environ()["AWS_EC2_METADATA_SERVICE_ENDPOINT"] + "latest/meta-data/instance-id"
    with urllib.request.urlopen(url, timeout=2) as resp:
        assert resp.read() == b"i-1234567890abcdef0"
    with pytest.raises(AssertionError, match=r"(?s)IMDSv1 .*Python-urllib"):
        imds.assert_no_imdsv1()


@pytest.mark.imds(tags={"Team": "data"}, user_data="#!/bin/sh\necho hi")
def test_tags_and_user_data_come_from_the_marker(imds):
    """Tags and user data given to the marker replace the defaults for this test."""
    assert imds.get_metadata("meta-data/tags/instance") == "Team"
    assert imds.get_metadata("user-data") == "#!/bin/sh\necho hi"


@pytest.mark.parametrize(
    "imds",
    [{"instance_type": "t3.micro"}, {"instance_type": "c7g.large", "architecture": "arm64"}],
    ids=["x86", "graviton"],
    indirect=True,
)
def test_indirect_parameters_configure_the_instance(imds):
    """An indirect parameter is a dict of options, like the marker's keywords."""
    assert imds.get_metadata("meta-data/instance-type") in ("t3.micro", "c7g.large")


def test_first_of_two_changes_everything(imds):
    """Changes made here (tag, options, scenario, fault, clock) must not leak (next test)."""
    imds.set_tag("Leaked", "yes")
    imds.require_tokens()
    imds.spot_interruption()
    imds.add_fault(kind="status", status=503, path="/latest/meta-data/ami-id")
    imds.clock.advance(3600)
    assert imds.get_metadata("meta-data/tags/instance/Leaked") == "yes"


def test_second_of_two_sees_a_fresh_instance(imds):
    """The previous test's changes are gone: state is reset for every test."""
    assert imds.get_metadata("meta-data/tags/instance/Leaked") is None
    assert imds.get_metadata("meta-data/spot/instance-action") is None
    assert imds.config.options.http_tokens == "optional"
    assert imds.scenarios == []
    assert imds.requests() == []
    assert imds.clock.now() == imds.clock.start
    url = imds.url + "/latest/meta-data/ami-id"
    with urllib.request.urlopen(url, timeout=2) as resp:
        assert resp.status == 200
