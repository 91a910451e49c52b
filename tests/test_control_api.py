"""The control API, driven over HTTP on a running server and observed through IMDS."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.exceptions import NoCredentialsError

from imdsmock.cli import main as cli_main
from imdsmock.core.clock import ManualClock, SystemClock
from support import Running, control_config, serve

ROLE_PATH = "/latest/meta-data/iam/security-credentials/baskinc-role"


@dataclass
class Mock:
    """A running mock with its control API."""

    imds: Running
    control: str

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One control request; returns the status and the decoded JSON (or text)."""
        parts = urlsplit(self.control)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
        try:
            data = None if body is None else json.dumps(body).encode()
            sent = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers={**sent, **(headers or {})})
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        if resp.getheader("Content-Type", "").startswith("application/json"):
            return resp.status, json.loads(raw)
        return resp.status, raw.decode()

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        """GET on the IMDS listener."""
        return self.imds.get(path, token)


@pytest.fixture
def mock() -> Iterator[Mock]:
    """A mock on a manual clock started now, with its control listener on port 0."""
    with serve(control_config(), clock=ManualClock()) as r:
        url = r.app.control_url()
        assert url is not None
        yield Mock(r, url)


# -- isolation ------------------------------------------------------------------------------


def test_control_api_is_not_reachable_on_the_imds_listener(mock: Mock) -> None:
    """Control routes on the IMDS listener are IMDS 404s, and the ports differ."""
    for path in ("/v1/state", "/openapi.json", "/v1/options"):
        status, body = mock.get(path)
        assert status == 404
        assert b"<title>404 - Not Found</title>" in body
    status, _, _ = mock.imds.request("PATCH", "/v1/options", body=b'{"http-tokens": "required"}')
    assert status in (404, 405)
    assert mock.api("GET", "/v1/options")[1]["http-tokens"] == "optional"
    assert urlsplit(mock.control).port != mock.imds.port
    assert urlsplit(mock.control).hostname == "127.0.0.1"


def test_non_loopback_control_bind_without_token_is_refused_at_start_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Serving with the control API on a non-loopback address and no token exits 2 in one line."""
    status = cli_main(["--port", "0", "--control-host", "0.0.0.0", "--control-port", "0"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1
    assert "not a loopback address" in err
    assert "--control-token" in err


def test_non_loopback_control_bind_requires_the_bearer_token() -> None:
    """With a token, the control API refuses requests without it (401) and accepts it."""
    cfg = control_config(**{"control-host": "0.0.0.0", "control-token": "s3cret"})
    with serve(cfg, clock=ManualClock()) as r:
        url = r.app.control_url()
        assert url is not None
        m = Mock(r, url.replace("0.0.0.0", "127.0.0.1"))
        status, body = m.api("GET", "/v1/state")
        assert status == 401
        assert body["field"] == "Authorization"
        assert m.api("GET", "/v1/state", headers={"Authorization": "Bearer wrong"})[0] == 401
        status, _ = m.api(
            "PATCH",
            "/v1/options",
            {"http-tokens": "required"},
            headers={"Authorization": "Bearer s3cret"},
        )
        assert status == 200
        assert m.get("/latest/meta-data/instance-id")[0] == 401


def test_control_token_file_is_read(tmp_path: Any) -> None:
    """--control-token-file supplies the token a non-loopback control bind needs."""
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    cfg = control_config(**{"control-host": "0.0.0.0", "control-token-file": str(token_file)})
    with serve(cfg, clock=ManualClock()) as r:
        url = (r.app.control_url() or "").replace("0.0.0.0", "127.0.0.1")
        m = Mock(r, url)
        assert m.api("GET", "/v1/options")[0] == 401
        ok = m.api("GET", "/v1/options", headers={"Authorization": "Bearer from-file"})
        assert ok[0] == 200


# -- state, metadata, options ------------------------------------------------------------------


def test_state_reports_config_options_clock_and_scenarios(mock: Mock) -> None:
    """GET /v1/state returns the effective configuration, options, scenarios and clock."""
    status, state = mock.api("GET", "/v1/state")
    assert status == 200
    assert state["config"]["instance"]["instance-id"] == "i-1234567890abcdef0"
    assert state["config"]["credentials"]["seed"] == "***"
    assert state["options"]["http-tokens"] == "optional"
    assert state["clock"]["kind"] == "manual"
    assert state["scenarios"] == []


def test_metadata_set_replace_and_delete_show_on_imds(mock: Mock) -> None:
    """PUT and DELETE /v1/metadata/{path} change what IMDS serves, tags and user data included."""
    tag = "/latest/meta-data/tags/instance/Owner"
    assert mock.get(tag)[0] == 404
    status, _ = mock.api("PUT", "/v1/metadata/meta-data/tags/instance/Owner", {"value": "alice"})
    assert status == 200
    assert mock.get(tag) == (200, b"alice")
    assert b"Owner" in mock.get("/latest/meta-data/tags/instance")[1]
    mock.api("PUT", "/v1/metadata/meta-data/tags/instance/Owner", {"value": "bob"})
    assert mock.get(tag) == (200, b"bob")
    assert mock.api("GET", "/v1/metadata/meta-data/tags/instance/Owner")[1]["value"] == "bob"
    mock.api("PUT", "/v1/metadata/user-data", {"value": "#!/bin/sh\necho hi"})
    assert mock.get("/latest/user-data") == (200, b"#!/bin/sh\necho hi")
    assert mock.api("DELETE", "/v1/metadata/meta-data/tags/instance/Owner")[0] == 200
    assert mock.get(tag)[0] == 404
    assert mock.api("DELETE", "/v1/metadata/meta-data/public-ipv4")[0] == 200
    assert mock.get("/latest/meta-data/public-ipv4")[0] == 404
    mock.api("DELETE", "/v1/metadata")
    assert mock.get("/latest/meta-data/public-ipv4")[0] == 200


def test_metadata_patch_applies_several_edits_atomically(mock: Mock) -> None:
    """PATCH /v1/metadata applies all edits or, when one is bad, none of them."""
    bad = {"meta-data/tags/instance/A": "1", "nowhere/x": "2"}
    status, err = mock.api("PATCH", "/v1/metadata", bad)
    assert status == 400
    assert err["field"] == "path"
    assert mock.get("/latest/meta-data/tags/instance/A")[0] == 404
    good = {"meta-data/tags/instance/A": "1", "meta-data/tags/instance/Name": None}
    assert mock.api("PATCH", "/v1/metadata", good)[0] == 200
    assert mock.get("/latest/meta-data/tags/instance/A") == (200, b"1")
    assert mock.get("/latest/meta-data/tags/instance/Name")[0] == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PATCH", "/v1/options", {"http-tokens": "sometimes"}, "options.http-tokens"),
        ("PATCH", "/v1/options", {"hop-limit": 65}, "options.hop-limit"),
        ("PATCH", "/v1/options", {"colour": "blue"}, "options.colour"),
        ("PUT", "/v1/metadata/etc/passwd", {"value": "x"}, "path"),
        ("PUT", "/v1/metadata/meta-data/x", {"value": 5}, "metadata.meta-data/x"),
        ("POST", "/v1/faults", {"kind": "status", "status": 418}, "fault.status"),
        ("POST", "/v1/faults", {"kind": "explode"}, "fault.kind"),
        ("POST", "/v1/clock/advance", {"seconds": -5}, "seconds"),
        ("POST", "/v1/credentials/fail", {"count": "many"}, "count"),
        ("POST", "/v1/scenarios", {"type": "meteor-strike"}, None),
        ("PATCH", "/v1/options", "not an object", "body"),
    ],
    ids=[
        "bad-tokens",
        "hop-limit-range",
        "unknown-option",
        "path-outside-imds",
        "non-string-value",
        "fault-status",
        "fault-kind",
        "clock-backwards",
        "fail-count",
        "scenario-type",
        "body-shape",
    ],
)
def test_rejected_request_answers_400_and_changes_nothing(
    mock: Mock, method: str, path: str, body: Any, field: str | None
) -> None:
    """A bad request answers 400 JSON naming the field and what is allowed; state is unchanged."""
    before = mock.api("GET", "/v1/state")[1]
    status, err = mock.api(method, path, body)
    assert status == 400, err
    assert set(err) == {"error", "field", "allowed"}
    assert err["error"]
    if field is not None:
        assert err["field"] == field
    after = mock.api("GET", "/v1/state")[1]
    for key in ("config", "options", "metadata", "scenarios", "faults", "clock"):
        assert after[key] == before[key]


def test_unknown_route_and_wrong_method_are_json_errors(mock: Mock) -> None:
    """Unknown routes answer 404 and wrong methods 405 with Allow, both as JSON errors."""
    status, err = mock.api("GET", "/v1/nothing")
    assert status == 404
    assert err["field"] == "path"
    status, err = mock.api("POST", "/v1/options", {})
    assert status == 405
    assert set(err["allowed"]) == {"GET", "PATCH"}


@pytest.mark.parametrize(
    ("options", "path", "token", "expected"),
    [
        ({"http-tokens": "required"}, "/latest/meta-data/instance-id", False, 401),
        ({"http-tokens": "required"}, "/latest/meta-data/instance-id", True, 200),
        ({"http-endpoint": "disabled"}, "/latest/meta-data/instance-id", True, 403),
        ({"instance-metadata-tags": "disabled"}, "/latest/meta-data/tags/instance/Name", True, 404),
        ({"HttpTokens": "required"}, "/latest/meta-data/ami-id", False, 401),
    ],
    ids=["required-no-token", "required-token", "endpoint-disabled", "tags-off", "ec2-spelling"],
)
def test_options_switch_imds_behaviour_at_run_time(
    mock: Mock, options: dict[str, str], path: str, token: bool, expected: int
) -> None:
    """PATCH /v1/options changes IMDS behaviour at once, as ModifyInstanceMetadataOptions does."""
    tok = mock.imds.token() if token else None
    assert mock.get(path, tok)[0] == 200
    assert mock.api("PATCH", "/v1/options", options)[0] == 200
    assert mock.get(path, tok)[0] == expected


def test_hop_limit_option_reaches_the_token_response(mock: Mock) -> None:
    """PATCH hop-limit is validated, reported, and carried by the token response.

    (The IP TTL on the wire is observed behind a routed hop in tests/netns.)
    """
    assert mock.api("PATCH", "/v1/options", {"hop-limit": 2})[1]["hop-limit"] == 2
    assert mock.api("GET", "/v1/state")[1]["config"]["options"]["hop-limit"] == 2
    assert mock.imds.app.state.snapshot.config.options.hop_limit == 2
    assert len(mock.imds.token()) == 56


# -- scenarios ------------------------------------------------------------------------------------


def test_spot_interruption_started_over_http_appears_on_imds(mock: Mock) -> None:
    """POST /v1/scenarios with a spot interruption answers 201 and the notice is served."""
    action = "/latest/meta-data/spot/instance-action"
    assert mock.get(action)[0] == 404
    status, scenario = mock.api(
        "POST", "/v1/scenarios", {"type": "spot-interruption", "action": "terminate"}
    )
    assert status == 201
    status, body = mock.get(action)
    assert status == 200
    assert json.loads(body)["action"] == "terminate"
    listed = mock.api("GET", "/v1/scenarios")[1]["scenarios"]
    assert [s["id"] for s in listed] == [scenario["id"]]
    assert mock.api("DELETE", f"/v1/scenarios/{scenario['id']}")[0] == 200
    assert mock.get(action)[0] == 404
    assert mock.api("DELETE", f"/v1/scenarios/{scenario['id']}")[0] == 404


def test_scenario_at_a_later_time_waits_for_the_clock(mock: Mock) -> None:
    """A scenario started for +60s appears only after the manual clock is advanced."""
    rebalance = "/latest/meta-data/events/recommendations/rebalance"
    status, _ = mock.api(
        "POST", "/v1/scenarios", {"type": "rebalance-recommendation", "at": "+60s"}
    )
    assert status == 201
    assert mock.get(rebalance)[0] == 404
    clock = mock.api("POST", "/v1/clock/advance", {"seconds": 60})[1]
    assert clock["elapsed"] == 60
    assert mock.get(rebalance)[0] == 200
    assert mock.api("POST", "/v1/clock/reset")[1]["elapsed"] == 0
    assert mock.get(rebalance)[0] == 404


def test_clock_advance_on_a_system_clock_is_refused() -> None:
    """On the system clock, clock advance answers 400 pointing at --clock manual."""
    with serve(control_config(), clock=SystemClock()) as r:
        m = Mock(r, r.app.control_url() or "")
        status, err = m.api("POST", "/v1/clock/advance", {"seconds": 1})
        assert status == 400
        assert "--clock manual" in err["error"]


# -- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [429, 500, 503])
def test_status_fault_answers_the_status_for_count_requests(mock: Mock, code: int) -> None:
    """A status fault with a count answers that status for the next N matches, then recovers."""
    fault = {"kind": "status", "status": code, "path": "/latest/meta-data/*", "count": 2}
    status, rule = mock.api("POST", "/v1/faults", fault)
    assert status == 201
    assert rule["count"] == 2
    assert mock.get("/latest/dynamic/instance-identity/document")[0] == 200
    assert mock.get("/latest/meta-data/ami-id")[0] == code
    assert mock.get("/latest/meta-data/instance-id")[0] == code
    assert mock.get("/latest/meta-data/instance-id")[0] == 200
    assert mock.api("GET", "/v1/faults")[1]["faults"] == []


def test_fault_scoped_to_another_client_leaves_this_one_alone(mock: Mock) -> None:
    """A fault for client 10.0.0.0/8 does not touch requests from 127.0.0.1."""
    mock.api("POST", "/v1/faults", {"kind": "status", "status": 500, "client": "10.0.0.0/8"})
    assert mock.get("/latest/meta-data/ami-id")[0] == 200
    mock.api("POST", "/v1/faults", {"kind": "status", "status": 500, "client": "127.0.0.1"})
    assert mock.get("/latest/meta-data/ami-id")[0] == 500
    assert mock.api("DELETE", "/v1/faults")[0] == 200
    assert mock.get("/latest/meta-data/ami-id")[0] == 200


def test_fault_added_later_applies_to_a_path_no_rule_matched_before(mock: Mock) -> None:
    """A path served while no rule matched it is faulted as soon as a rule for it is added."""
    mock.api("POST", "/v1/faults", {"kind": "status", "status": 503, "path": "/latest/user-data*"})
    assert mock.get("/latest/meta-data/ami-id")[0] == 200
    assert mock.get("/latest/meta-data/ami-id")[0] == 200
    rule = {"kind": "status", "status": 500, "path": "/latest/meta-data/ami-id", "count": 1}
    mock.api("POST", "/v1/faults", rule)
    assert mock.get("/latest/meta-data/ami-id")[0] == 500
    assert mock.get("/latest/meta-data/ami-id")[0] == 200


def test_latency_fault_delays_the_answer(mock: Mock) -> None:
    """A latency fault answers correctly, but only after the added delay."""
    mock.api("POST", "/v1/faults", {"kind": "latency", "latency-ms": 300, "count": 1})
    start = time.monotonic()
    assert mock.get("/latest/meta-data/ami-id") == (200, b"ami-0a887e401f7654935")
    assert time.monotonic() - start >= 0.29


def test_reset_fault_drops_the_connection(mock: Mock) -> None:
    """A reset fault closes the connection without an answer."""
    mock.api("POST", "/v1/faults", {"kind": "reset", "count": 1})
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        mock.get("/latest/meta-data/ami-id")
    assert mock.get("/latest/meta-data/ami-id")[0] == 200
    logged = mock.api("GET", "/v1/requests?path=/latest/meta-data/ami-id")[1]["requests"]
    assert [e["status"] for e in logged] == [0, 200]


def test_hang_fault_makes_the_client_time_out(mock: Mock) -> None:
    """A hang fault never answers; the client times out (as after a dropped packet)."""
    _, rule = mock.api("POST", "/v1/faults", {"kind": "hang", "path": "/latest/api/token"})
    conn = http.client.HTTPConnection("127.0.0.1", mock.imds.port, timeout=0.3)
    try:
        conn.request(
            "PUT", "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "5"}
        )
        with pytest.raises(TimeoutError):
            conn.getresponse()
    finally:
        conn.close()
    assert mock.get("/latest/meta-data/ami-id")[0] == 200
    assert mock.api("DELETE", f"/v1/faults/{rule['id']}")[0] == 200
    assert mock.api("DELETE", f"/v1/faults/{rule['id']}")[0] == 404
    assert len(mock.imds.token()) == 56


def test_probability_fault_hits_some_requests(mock: Mock) -> None:
    """A fault with probability 0.5 fails some requests and lets others through."""
    mock.api("POST", "/v1/faults", {"kind": "status", "status": 503, "probability": 0.5})
    codes = {mock.get("/latest/meta-data/ami-id")[0] for _ in range(40)}
    assert codes == {200, 503}


# -- credentials ----------------------------------------------------------------------------------


def test_credentials_rotate_expire_and_fail(mock: Mock) -> None:
    """Credential operations change the role document IMDS serves."""
    first = json.loads(mock.get(ROLE_PATH)[1])
    assert mock.api("POST", "/v1/credentials/rotate")[0] == 200
    rotated = json.loads(mock.get(ROLE_PATH)[1])
    assert rotated["AccessKeyId"] != first["AccessKeyId"]
    assert mock.api("POST", "/v1/credentials/expire", {"on": True})[0] == 200
    expired = json.loads(mock.get(ROLE_PATH)[1])
    now_iso = mock.api("GET", "/v1/clock")[1]["now-iso"]
    assert expired["Expiration"] <= now_iso
    mock.api("POST", "/v1/credentials/expire", {"on": False})
    assert mock.api("POST", "/v1/credentials/fail", {"count": 1})[0] == 200
    failed = json.loads(mock.get(ROLE_PATH)[1])
    assert failed["Code"] != "Success"
    assert json.loads(mock.get(ROLE_PATH)[1])["Code"] == "Success"


# -- request log and the IMDSv1 report ------------------------------------------------------------


def test_request_log_records_filters_and_clears(mock: Mock) -> None:
    """The request log keeps method, path, status, client, user agent and token use."""
    token = mock.imds.token()
    mock.get("/latest/meta-data/ami-id", token)
    mock.get("/latest/meta-data/nothing")
    entries = mock.api("GET", "/v1/requests")[1]["requests"]
    assert [(e["method"], e["path"], e["status"], e["token"]) for e in entries] == [
        ("PUT", "/latest/api/token", 200, False),
        ("GET", "/latest/meta-data/ami-id", 200, True),
        ("GET", "/latest/meta-data/nothing", 404, False),
    ]
    assert entries[0]["client"] == "127.0.0.1"
    assert token not in json.dumps(entries)
    assert len(mock.api("GET", "/v1/requests?status=404")[1]["requests"]) == 1
    assert len(mock.api("GET", "/v1/requests?token=true")[1]["requests"]) == 1
    assert len(mock.api("GET", "/v1/requests?method=put&limit=5")[1]["requests"]) == 1
    assert mock.api("GET", "/v1/requests?colour=red")[0] == 400
    assert mock.api("DELETE", "/v1/requests")[0] == 200
    assert mock.api("GET", "/v1/requests")[1]["requests"] == []


def test_request_log_is_read_in_pages_newest_first(mock: Mock) -> None:
    """`GET /v1/requests` answers the newest 100 by default and links the next, older page."""
    for i in range(250):
        mock.get(f"/latest/meta-data/p{i}")
    status, page = mock.api("GET", "/v1/requests?path=/latest/meta-data/p")
    assert status == 200
    assert [e["path"] for e in page["requests"]] == [
        f"/latest/meta-data/p{i}" for i in range(150, 250)
    ]
    pages = [page["requests"]]
    while page["next"] is not None:
        assert "path=%2Flatest%2Fmeta-data%2Fp" in page["next"]
        page = mock.api("GET", page["next"])[1]
        pages.append(page["requests"])
    assert [len(p) for p in pages] == [100, 100, 50]
    seqs = [e["seq"] for p in reversed(pages) for e in p]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 250
    newer = mock.api("GET", f"/v1/requests?after={seqs[-3]}")[1]
    assert [e["seq"] for e in newer["requests"]] == seqs[-2:]
    assert newer["next"] is None
    assert len(mock.api("GET", "/v1/requests?limit=1000")[1]["requests"]) == 250


@pytest.mark.parametrize("limit", ["0", "1001", "-1"])
def test_request_log_page_size_is_bounded(mock: Mock, limit: str) -> None:
    """A page holds 1 to 1000 requests; another limit is a 400 naming the allowed range."""
    status, body = mock.api("GET", f"/v1/requests?limit={limit}")
    assert status == 400
    assert body["field"] == "limit"


def test_request_log_keeps_a_capped_path_and_user_agent(mock: Mock) -> None:
    """A request with a long path and user agent is logged with both cut short and marked."""
    path = "/latest/meta-data/" + "p" * 5000
    agent = "agent/" + "a" * 3000
    status, _, _ = mock.imds.request("GET", path, {"User-Agent": agent})
    assert status == 404
    (entry,) = mock.api("GET", "/v1/requests")[1]["requests"]
    assert entry["path"] == path[:512] + "..."
    assert entry["user-agent"] == agent[:256] + "..."
    assert entry["status"] == 404


def test_imdsv1_report_lists_the_busiest_hundred_groups(mock: Mock) -> None:
    """The IMDSv1 report names at most the 100 busiest (client, user agent) groups."""
    for i in range(105):
        mock.imds.request("GET", "/latest/meta-data/ami-id", {"User-Agent": f"agent-{i}"})
    mock.imds.request("GET", "/latest/meta-data/ami-id", {"User-Agent": "agent-7"})
    groups = mock.api("GET", "/v1/reports/imdsv1")[1]["clients"]
    assert len(groups) == 100
    assert (groups[0]["user-agent"], groups[0]["requests"]) == ("agent-7", 2)


def _boto_session(mock: Mock, env: pytest.MonkeyPatch) -> boto3.Session:
    env.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", mock.imds.url + "/")
    env.setenv("AWS_METADATA_SERVICE_TIMEOUT", "1")
    return boto3.Session()


def test_required_tokens_at_run_time_stop_an_imdsv1_boto3_client_and_the_report_names_it(
    mock: Mock, aws_env: pytest.MonkeyPatch
) -> None:
    """A boto3 client pushed onto IMDSv1 fails once tokens are required, and is reported.

    botocore falls back to IMDSv1 when the token PUT keeps failing (here: a 503 fault);
    after switching http-tokens to required its token-less fetch gets 401 and it finds no
    credentials, as on EC2; once the token path works again it switches to IMDSv2.
    """
    mock.api("POST", "/v1/faults", {"kind": "status", "status": 503, "path": "/latest/api/token"})
    creds = _boto_session(mock, aws_env).get_credentials()
    assert creds is not None
    assert creds.get_frozen_credentials().access_key.startswith("ASIA")
    report = mock.api("GET", "/v1/reports/imdsv1")[1]["clients"]
    assert len(report) == 1
    assert report[0]["client"] == "127.0.0.1"
    assert "Botocore/" in report[0]["user-agent"]
    assert report[0]["served"] >= 2
    assert ROLE_PATH in report[0]["paths"]

    mock.api("PATCH", "/v1/options", {"http-tokens": "required"})
    mock.api("DELETE", "/v1/requests")
    session = _boto_session(mock, aws_env)
    assert session.get_credentials() is None
    with pytest.raises(NoCredentialsError):
        session.client("sts", region_name="us-east-1").get_caller_identity()
    report = mock.api("GET", "/v1/reports/imdsv1")[1]["clients"]
    assert report[0]["rejected"] >= 1
    assert report[0]["served"] == 0

    mock.api("DELETE", "/v1/faults")
    mock.api("DELETE", "/v1/requests")
    assert _boto_session(mock, aws_env).get_credentials() is not None
    assert mock.api("GET", "/v1/reports/imdsv1")[1]["clients"] == []


# -- misc -----------------------------------------------------------------------------------------


def test_certificate_route_serves_the_signing_certificate(mock: Mock) -> None:
    """GET /v1/certificate returns the PEM that verifies the identity signatures."""
    status, pem = mock.api("GET", "/v1/certificate")
    assert status == 200
    assert pem == mock.imds.app.signer.certificate_pem()


def test_controller_is_the_python_api_of_the_same_operations(mock: Mock) -> None:
    """app.controller performs the operations in process, with the same effects on IMDS."""
    ctl = mock.imds.app.controller
    ctl.set_options(http_tokens="required")
    assert mock.get("/latest/meta-data/ami-id")[0] == 401
    ctl.set_options(http_tokens="optional")
    ctl.set_metadata("meta-data/tags/instance/Team", "core")
    assert mock.get("/latest/meta-data/tags/instance/Team") == (200, b"core")
    assert ctl.get_metadata("meta-data/tags/instance/Team") == "core"
    fault = ctl.add_fault({"kind": "status", "status": 429, "count": 1})
    assert fault["id"]
    assert mock.get("/latest/meta-data/ami-id")[0] == 429
    assert ctl.requests(status=429)[0]["path"] == "/latest/meta-data/ami-id"
    ctl.advance_clock(30)
    assert ctl.clock()["elapsed"] == 30
    ctl.clear_requests()
    assert ctl.requests() == []
