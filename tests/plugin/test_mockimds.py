"""imdsmock.MockIMDS: the in-process server, its configuration and its environment."""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from imdsmock import ConfigError, ImdsMockError, MockIMDS, load_config
from imdsmock.core.clock import SystemClock


def fetch(url: str) -> tuple[int, str]:
    """GET without a token; returns status and body."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_context_manager_serves_then_closes_its_port() -> None:
    """Inside the block the mock answers on 127.0.0.1; after it the port is closed."""
    with MockIMDS() as imds:
        assert imds.url.startswith("http://127.0.0.1:")
        assert fetch(imds.url + "/latest/meta-data/instance-id") == (200, "i-1234567890abcdef0")
        assert repr(imds) == f"<MockIMDS {imds.url}>"
        port = int(imds.url.rsplit(":", 1)[1])
    assert repr(imds) == "<MockIMDS not running>"
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass


@pytest.mark.parametrize("kind", ["config", "mapping", "file"])
def test_every_config_source_gives_the_same_instance(kind: str, tmp_path: Path) -> None:
    """A Config, a file-shaped mapping and a config file path configure the same instance."""
    data = {"instance": {"instance-type": "t3.nano", "tags": {"Env": "ci"}}}
    path = tmp_path / "instance.json"
    path.write_text(json.dumps(data))
    source = {"config": load_config(base=data, env={}), "mapping": data, "file": str(path)}
    with MockIMDS(source[kind], region="sa-east-1") as imds:
        assert imds.get_metadata("meta-data/instance-type") == "t3.nano"
        assert imds.get_metadata("meta-data/tags/instance") == "Env"
        assert imds.get_metadata("meta-data/placement/region") == "sa-east-1"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"colour": "red"}, "colour is 'red'; expected a short option (account_id, "),
        ({"regoin": "eu-west-1"}, "a section or a field; did you mean 'region'?"),
        ({"http_tokens": "sometimes"}, "http_tokens is 'sometimes'; expected one of"),
        ({"account_id": "12"}, "account_id is '12'; expected 12 digits"),
        ({"tags": {"bad key": "x"}}, "tags.bad key is 'bad key'; expected a tag key"),
        ({"clock": "sundial"}, "clock is 'sundial'; expected one of: manual, system"),
    ],
    ids=["unknown-key", "misspelt-key", "bad-value", "keyword-spelling", "entry", "bad-clock"],
)
def test_a_bad_override_raises_one_config_error_line(
    overrides: dict[str, Any], message: str
) -> None:
    """A wrong keyword names the keyword as written (account_id), the value and what is
    allowed, in one line."""
    with pytest.raises(ConfigError) as caught:
        MockIMDS(**overrides)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_process_environment_is_read_only_when_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """IMDSMOCK_* variables do not leak into a MockIMDS unless env= passes them."""
    monkeypatch.setenv("IMDSMOCK_REGION", "eu-north-1")
    assert MockIMDS().config.instance.region is None
    assert MockIMDS(env=os.environ).config.instance.region == "eu-north-1"


def test_a_mock_that_is_not_running_says_so() -> None:
    """Using the server before start() or after stop() raises a clear error."""
    imds = MockIMDS()
    with pytest.raises(ImdsMockError, match="not running"):
        imds.url  # noqa: B018 - the property access is the test
    with imds, pytest.raises(ImdsMockError, match="already running"):
        imds.start()
    with pytest.raises(ImdsMockError, match="not running"):
        imds.set_tag("A", "b")


def test_reset_reconfigures_the_instance_but_not_the_listeners() -> None:
    """reset() takes instance overrides; a listener setting is refused and changes nothing."""
    with MockIMDS() as imds:
        imds.reset(instance_type="m7i.large")
        assert imds.get_metadata("meta-data/instance-type") == "m7i.large"
        with pytest.raises(ConfigError, match="listeners cannot change"):
            imds.reset(port=1)
        assert imds.get_metadata("meta-data/instance-type") == "m7i.large"
        imds.reset()
        assert imds.get_metadata("meta-data/instance-type") == "m4.xlarge"


def test_reset_revokes_every_token() -> None:
    """A token issued (and used) before reset() is refused with 401 after it."""

    def call(url: str, method: str, headers: dict[str, str]) -> tuple[int, str]:
        req = urllib.request.Request(url, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    with MockIMDS() as imds:
        ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        status, token = call(imds.url + "/latest/api/token", "PUT", ttl)
        assert status == 200
        data = imds.url + "/latest/meta-data/instance-id"
        assert call(data, "GET", {"X-aws-ec2-metadata-token": token})[0] == 200
        imds.reset()
        assert call(data, "GET", {"X-aws-ec2-metadata-token": token})[0] == 401


def test_reset_forgets_armed_credential_failures() -> None:
    """Credential fetches armed to fail before reset() succeed after it."""
    with MockIMDS() as imds:
        role = imds.url + "/latest/meta-data/iam/security-credentials/baskinc-role"
        imds.fail_credentials(2)
        assert json.loads(fetch(role)[1])["Code"] == "AssumeRoleUnauthorizedAccess"
        imds.reset()
        assert json.loads(fetch(role)[1])["Code"] == "Success"


def test_on_the_system_clock_there_is_no_clock_to_advance() -> None:
    """clock='system' serves real time, and asking for the manual clock explains why not."""
    with MockIMDS(clock="system") as imds:
        with pytest.raises(ImdsMockError, match="clock='manual'"):
            imds.clock  # noqa: B018 - the property access is the test
        with pytest.raises(ConfigError, match="manual"):
            imds.advance(10)


def test_mockimds_runs_on_a_clock_object_and_reset_leaves_it_alone() -> None:
    """A clock object given to MockIMDS is the one served from; reset() forgets edits but
    does not touch a clock that is not the manual one, and `clock` says why it is absent."""
    clock = SystemClock()
    with MockIMDS(clock=clock) as imds:
        imds.set_metadata("meta-data/ami-id", "ami-0edited")
        assert fetch(imds.url + "/latest/meta-data/ami-id") == (200, "ami-0edited")
        imds.reset()
        assert fetch(imds.url + "/latest/meta-data/ami-id")[1] != "ami-0edited"
        assert imds.app.clock is clock
        with pytest.raises(ImdsMockError, match="runs on the system clock"):
            _ = imds.clock


def test_mockimds_takes_a_whole_config_section_as_a_keyword() -> None:
    """A section name (options=...) as a keyword configures that whole section."""
    with MockIMDS(options={"http-tokens": "required"}) as imds:
        assert imds.config.options.http_tokens == "required"
        assert fetch(imds.url + "/latest/meta-data/ami-id")[0] == 401


def test_manual_clock_refuses_to_go_backwards() -> None:
    """imds.clock.advance() with a negative number is a ValueError saying what is allowed."""
    with MockIMDS() as imds:
        with pytest.raises(ValueError, match="expected >= 0"):
            imds.clock.advance(-1)
        assert imds.clock.advance(0) == imds.clock.now()


def test_patched_environ_hides_other_credentials_and_restores_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside the block only the mock's variables are set; afterwards the old ones return."""
    monkeypatch.setenv("AWS_PROFILE", "dev")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALKEY")
    monkeypatch.delenv("AWS_REGION", raising=False)
    with MockIMDS(region="ca-central-1") as imds, imds.patched_environ() as values:
        assert {k: v for k, v in os.environ.items() if k.startswith("AWS_")} == values
        assert values["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == imds.url + "/"
        assert values["AWS_REGION"] == "ca-central-1"
        assert "AWS_REGION" not in imds.environ(region=False)
    assert os.environ["AWS_PROFILE"] == "dev"
    assert os.environ["AWS_ACCESS_KEY_ID"] == "AKIAREALKEY"
    assert "AWS_EC2_METADATA_SERVICE_ENDPOINT" not in os.environ
    assert "AWS_REGION" not in os.environ


def test_a_fault_fails_the_next_request_then_goes(imds: MockIMDS) -> None:
    """add_fault with a count of one answers 500 once, then the path serves again."""
    url = imds.url + "/latest/meta-data/ami-id"
    imds.add_fault(kind="status", status=500, path="/latest/meta-data/ami-id", count=1)
    assert fetch(url)[0] == 500
    assert fetch(url) == (200, "ami-0a887e401f7654935")


def test_rotating_credentials_serves_a_new_key(imds: MockIMDS) -> None:
    """rotate_credentials issues a new access key id on the role's credential path."""
    path = "meta-data/iam/security-credentials/baskinc-role"
    before = json.loads(imds.get_metadata(path) or "{}")["AccessKeyId"]
    imds.rotate_credentials()
    after = json.loads(imds.get_metadata(path) or "{}")["AccessKeyId"]
    assert before != after


def test_the_control_api_drives_the_same_mock(imds: MockIMDS) -> None:
    """The control listener of a MockIMDS sees what its methods change (one controller)."""
    assert imds.control_url is not None
    imds.require_tokens()
    with urllib.request.urlopen(imds.control_url + "/v1/options", timeout=2) as resp:
        assert json.loads(resp.read())["http-tokens"] == "required"
    assert fetch(imds.url + "/latest/meta-data/ami-id")[0] == 401


def test_metadata_changes_are_served_and_removed(imds: MockIMDS) -> None:
    """User data, tags and any path change on the wire as soon as the method returns."""
    imds.set_user_data("#cloud-config\n")
    imds.delete_tag("Test")
    imds.set_metadata("meta-data/custom/flag", "on")
    assert fetch(imds.url + "/latest/user-data") == (200, "#cloud-config\n")
    assert fetch(imds.url + "/latest/meta-data/tags/instance") == (200, "Name")
    assert fetch(imds.url + "/latest/meta-data/custom/flag") == (200, "on")
    imds.delete_metadata("meta-data/custom")
    assert fetch(imds.url + "/latest/meta-data/custom/flag")[0] == 404


def test_scenarios_are_listed_and_cancelled(imds: MockIMDS) -> None:
    """Rebalance and maintenance scenarios appear in the list and go when cancelled."""
    rebalance = imds.rebalance_recommendation()
    imds.maintenance_event("instance-stop", at="+1h")
    assert [s["type"] for s in imds.scenarios] == [
        "rebalance-recommendation",
        "maintenance-event",
    ]
    assert imds.get_metadata("meta-data/events/recommendations/rebalance") is not None
    imds.cancel_scenario(rebalance)
    assert imds.get_metadata("meta-data/events/recommendations/rebalance") is None
    assert [s["type"] for s in imds.scenarios] == ["maintenance-event"]


def test_options_switch_the_endpoint_off(imds: MockIMDS) -> None:
    """set_options(http_endpoint='disabled') makes every path answer 403, as on EC2."""
    assert imds.set_options(http_endpoint="disabled")["http-endpoint"] == "disabled"
    assert fetch(imds.url + "/latest/meta-data/instance-id")[0] == 403


def test_credential_failures_reach_the_client(imds: MockIMDS) -> None:
    """fail_credentials(1) fails the next credential fetch; expire_credentials backdates."""
    url = imds.url + "/latest/meta-data/iam/security-credentials/baskinc-role"
    imds.fail_credentials(1)
    assert json.loads(fetch(url)[1])["Code"] != "Success"
    assert json.loads(fetch(url)[1])["Code"] == "Success"
    assert imds.expire_credentials()["expired"] is True
    assert imds.expire_credentials(on=False)["expired"] is False


def test_advance_moves_the_clock_and_the_log_can_be_cleared(imds: MockIMDS) -> None:
    """advance() is clock.advance through the controller; clear_requests empties the log."""
    assert imds.advance(30) == imds.clock.start + 30
    fetch(imds.url + "/latest/meta-data/ami-id")
    assert len(imds.requests()) == 1
    imds.clear_faults()
    imds.clear_requests()
    assert imds.requests() == []
    with pytest.raises(AssertionError, match=r"no request for /latest/meta-data/ami-id"):
        imds.assert_requested("/latest/meta-data/ami-id")


def test_a_busy_port_fails_start_with_one_line(imds: MockIMDS) -> None:
    """A listener that cannot bind raises ServeError naming the address; nothing runs."""
    port = int(imds.url.rsplit(":", 1)[1])
    with pytest.raises(ImdsMockError, match="already in use"):
        MockIMDS(port=port).start()
