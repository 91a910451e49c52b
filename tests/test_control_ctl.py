"""``imdsmock ctl`` drives a running mock over HTTP, option for option with the API."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from imdsmock.clock import ManualClock
from imdsmock.ctl import main
from support import Running, make_config, serve


@pytest.fixture
def running_ctl() -> Iterator[tuple[Running, str]]:
    """A mock with its control listener on port 0, and the control URL."""
    cfg = make_config(server={"control": True, "control-port": 0})
    with serve(cfg, clock=ManualClock()) as r:
        yield r, r.app.control_url() or ""


def _ctl(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["--url", url, *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_ctl_options_switch_tokens_required_and_back(
    running_ctl: tuple[Running, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`ctl options --http-tokens required` makes token-less IMDS requests 401."""
    r, url = running_ctl
    status, out, _ = _ctl(url, capsys, "options", "--http-tokens", "required")
    assert status == 0
    assert "http-tokens: required" in out
    assert r.get("/latest/meta-data/instance-id")[0] == 401
    assert _ctl(url, capsys, "options", "--http-tokens", "optional")[0] == 0
    assert r.get("/latest/meta-data/instance-id")[0] == 200


def test_ctl_metadata_scenario_fault_and_clock(
    running_ctl: tuple[Running, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Metadata, scenario, fault and clock subcommands take effect on the IMDS listener."""
    r, url = running_ctl
    assert _ctl(url, capsys, "metadata", "set", "meta-data/tags/instance/Owner", "alice")[0] == 0
    assert r.get("/latest/meta-data/tags/instance/Owner") == (200, b"alice")
    status, out, _ = _ctl(url, capsys, "metadata", "get", "meta-data/tags/instance/Owner")
    assert "value: alice" in out
    assert _ctl(url, capsys, "metadata", "delete", "meta-data/tags/instance/Owner")[0] == 0
    assert r.get("/latest/meta-data/tags/instance/Owner")[0] == 404

    status, out, _ = _ctl(
        url, capsys, "--json", "scenario", "start", "spot-interruption", "action=stop", "at=+30s"
    )
    assert status == 0
    scenario_id = json.loads(out)["id"]
    assert r.get("/latest/meta-data/spot/instance-action")[0] == 404
    assert _ctl(url, capsys, "clock", "advance", "30")[0] == 0
    assert b'"stop"' in r.get("/latest/meta-data/spot/instance-action")[1]
    status, out, _ = _ctl(url, capsys, "scenario", "list")
    assert scenario_id in out
    assert out.splitlines()[0].split() == ["ID", "TYPE", "AT"]
    assert _ctl(url, capsys, "scenario", "cancel", scenario_id)[0] == 0

    assert _ctl(url, capsys, "fault", "add", "status", "--status", "429", "--count", "1")[0] == 0
    assert r.get("/latest/meta-data/ami-id")[0] == 429
    assert r.get("/latest/meta-data/ami-id")[0] == 200
    assert _ctl(url, capsys, "fault", "list")[1].strip() == "(none)"


def test_ctl_requests_and_imdsv1_report_tables(
    running_ctl: tuple[Running, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`ctl requests` and `ctl report imdsv1` print tables naming the client and agent."""
    r, url = running_ctl
    r.request("GET", "/latest/meta-data/ami-id", {"User-Agent": "legacy-agent/1.0"})
    status, out, _ = _ctl(url, capsys, "requests", "--imdsv1")
    assert status == 0
    assert "/latest/meta-data/ami-id" in out
    status, out, _ = _ctl(url, capsys, "report", "imdsv1")
    header, row = out.splitlines()
    assert header.split()[:2] == ["CLIENT", "USER-AGENT"]
    assert row.split()[:3] == ["127.0.0.1", "legacy-agent/1.0", "1"]
    assert _ctl(url, capsys, "requests", "--clear")[0] == 0
    assert _ctl(url, capsys, "requests")[1].strip() == "(none)"


def test_ctl_rejected_request_prints_one_line_and_exits_2(
    running_ctl: tuple[Running, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A request the API rejects prints its one-line error and exits 2; nothing changes."""
    r, url = running_ctl
    status, _, err = _ctl(url, capsys, "options", "--hop-limit", "99")
    assert status == 2
    assert err.count("\n") == 1
    assert "options.hop-limit" in err
    status, _, err = _ctl(url, capsys, "clock", "advance", "-1")
    assert status == 2
    assert "seconds" in err
    assert r.app.controller.options()["hop-limit"] == 1


def test_ctl_unreachable_mock_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """With no mock at the URL, ctl says so in one line and exits 1."""
    status, _, err = _ctl("http://127.0.0.1:9", capsys, "state")
    assert status == 1
    assert "cannot reach the control API" in err


def test_imdsmock_ctl_command_runs_as_a_subprocess(running_ctl: tuple[Running, str]) -> None:
    """`imdsmock ctl --json state` works through the real entry point and IMDSMOCK_CONTROL_URL."""
    _, url = running_ctl
    proc = subprocess.run(
        [sys.executable, "-m", "imdsmock", "ctl", "--json", "state"],
        env={"IMDSMOCK_CONTROL_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["clock"]["kind"] == "manual"
