"""``imdsmock ctl`` subcommands not covered elsewhere, against a real mock over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from imdsmock.clock import ManualClock
from imdsmock.ctl import main
from support import Running, make_config, serve

ROLE_PATH = "/latest/meta-data/iam/security-credentials/baskinc-role"


@pytest.fixture
def mock() -> Iterator[tuple[Running, str]]:
    """A mock with its control listener on port 0 (manual clock), and the control URL."""
    with serve(make_config(server={"control": True, "control-port": 0}), ManualClock()) as r:
        yield r, r.app.control_url() or ""


def _ctl(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_ctl_usage_error_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown subcommand prints one 'imdsmock ctl: error:' line and exits 2."""
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("imdsmock ctl: error: ")
    assert err.count("\n") == 1


def test_ctl_metadata_list_and_reset_show_and_drop_edits(
    mock: tuple[Running, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`metadata list` prints the run-time edits and `metadata reset` drops them all."""
    r, url = mock
    assert _ctl(capsys, "--url", url, "metadata", "set", "meta-data/ami-id", "ami-0edit")[0] == 0
    status, out, _ = _ctl(capsys, "--url", url, "--json", "metadata", "list")
    assert status == 0
    assert json.loads(out)["metadata"] == {"meta-data/ami-id": "ami-0edit"}
    assert r.get("/latest/meta-data/ami-id") == (200, b"ami-0edit")
    assert _ctl(capsys, "--url", url, "metadata", "reset")[0] == 0
    assert r.get("/latest/meta-data/ami-id")[1] != b"ami-0edit"


def test_ctl_scenario_field_without_equals_exits_2(
    mock: tuple[Running, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A scenario field that is not KEY=VALUE is refused in one line before any request."""
    _, url = mock
    status, _, err = _ctl(capsys, "--url", url, "scenario", "start", "spot-interruption", "stop")
    assert status == 2
    assert "scenario field 'stop' is not KEY=VALUE" in err
    assert _ctl(capsys, "--url", url, "--json", "scenario", "list")[1].count('"id"') == 0


def test_ctl_options_without_changes_prints_the_options(
    mock: tuple[Running, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`ctl options` with no flag prints the current options as KEY: VALUE lines."""
    _, url = mock
    status, out, _ = _ctl(capsys, "--url", url, "options")
    assert status == 0
    assert "http-tokens: optional" in out.splitlines()
    assert "hop-limit: 1" in out.splitlines()


def test_ctl_fault_add_list_remove_and_clear(
    mock: tuple[Running, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Faults added with every option are listed in a table, removed by id, and cleared."""
    r, url = mock
    base = ("--url", url)
    status, out, _ = _ctl(
        capsys,
        *base,
        "--json",
        "fault",
        "add",
        "status",
        "--status",
        "503",
        "--path",
        "/latest/meta-data/ami-id",
        "--client",
        "127.0.0.1",
        "--probability",
        "1",
    )
    assert status == 0
    fault_id = json.loads(out)["id"]
    assert r.get("/latest/meta-data/ami-id")[0] == 503
    assert r.get("/latest/meta-data/instance-id")[0] == 200
    _ctl(capsys, *base, "fault", "add", "latency", "--latency-ms", "1", "--count", "1")
    status, out, _ = _ctl(capsys, *base, "fault", "list")
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["ID", "KIND", "PATH"]
    assert len(rows) == 2
    assert _ctl(capsys, *base, "fault", "remove", fault_id)[0] == 0
    assert r.get("/latest/meta-data/ami-id")[0] == 200
    assert _ctl(capsys, *base, "fault", "clear")[0] == 0
    assert _ctl(capsys, *base, "fault", "list")[1].strip() == "(none)"
    status, _, err = _ctl(capsys, *base, "fault", "remove", fault_id)
    assert status == 2
    assert fault_id in err


def test_ctl_credentials_rotate_expire_and_fail_reach_imds(
    mock: tuple[Running, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`credentials rotate|expire|fail` change what the role path serves, and --off restores."""
    r, url = mock
    base = ("--url", url)
    first = json.loads(r.get(ROLE_PATH)[1])
    assert _ctl(capsys, *base, "credentials", "rotate")[0] == 0
    rotated = json.loads(r.get(ROLE_PATH)[1])
    assert rotated["AccessKeyId"] != first["AccessKeyId"]
    assert _ctl(capsys, *base, "credentials", "expire")[0] == 0
    expired = json.loads(r.get(ROLE_PATH)[1])
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.clock.now()))
    assert expired["Expiration"] <= now
    assert _ctl(capsys, *base, "credentials", "expire", "--off")[0] == 0
    assert json.loads(r.get(ROLE_PATH)[1])["Expiration"] > expired["Expiration"]
    assert _ctl(capsys, *base, "credentials", "fail", "1")[0] == 0
    assert json.loads(r.get(ROLE_PATH)[1])["Code"] != "Success"
    assert json.loads(r.get(ROLE_PATH)[1])["Code"] == "Success"


def test_ctl_clock_show_advance_and_reset(
    mock: tuple[Running, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`clock show` prints the manual clock; `advance` moves it and `reset` brings it back."""
    _, url = mock
    base = ("--url", url, "--json")
    start = json.loads(_ctl(capsys, *base, "clock", "show")[1])
    assert start["kind"] == "manual"
    assert json.loads(_ctl(capsys, *base, "clock", "advance", "90")[1])["elapsed"] == 90
    assert json.loads(_ctl(capsys, *base, "clock", "reset")[1])["elapsed"] == 0


def test_ctl_requests_filters_reach_the_request_log(
    mock: tuple[Running, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`ctl requests` passes method, path, status, client and limit filters to the log."""
    r, url = mock
    r.get("/latest/meta-data/ami-id")
    r.get("/latest/meta-data/nope")
    status, out, _ = _ctl(
        capsys,
        "--url",
        url,
        "--json",
        "requests",
        "--method",
        "GET",
        "--path",
        "/latest/meta-data/",
        "--status",
        "404",
        "--client",
        "127.0.0.1",
        "--limit",
        "5",
    )
    assert status == 0
    assert [e["path"] for e in json.loads(out)["requests"]] == ["/latest/meta-data/nope"]


def test_ctl_certificate_and_state_print_readably(
    mock: tuple[Running, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`ctl certificate` prints the PEM; `ctl state` prints KEY: VALUE lines with JSON values."""
    _, url = mock
    status, out, _ = _ctl(capsys, "--url", url, "certificate")
    assert status == 0
    assert out.startswith("-----BEGIN CERTIFICATE-----")
    assert out.endswith("-----END CERTIFICATE-----\n")
    status, out, _ = _ctl(capsys, "--url", url, "state")
    config_line = next(line for line in out.splitlines() if line.startswith("config: "))
    assert "instance-id" in json.loads(config_line.removeprefix("config: "))["instance"]


def test_ctl_sends_the_bearer_token() -> None:
    """With --token the control API accepts the call; without it ctl reports the 401 and exits 2."""
    cfg = make_config(server={"control": True, "control-port": 0, "control-token": "t0k"})
    with serve(cfg, ManualClock()) as r:
        url = r.app.control_url() or ""
        assert main(["--url", url, "--token", "t0k", "options", "--hop-limit", "2"]) == 0
        assert r.app.controller.options()["hop-limit"] == 2
        assert main(["--url", url, "state"]) == 2


def test_ctl_pointed_at_a_non_json_server_reports_its_answer(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error answer that is not the API's JSON (here: the IMDS listener's 404 page) is
    reported in one line with the status's text, exit 2."""
    status, _, err = _ctl(capsys, "--url", running.url, "state")
    assert status == 2
    assert err.startswith("imdsmock ctl: error: ")
    assert "404" in err
