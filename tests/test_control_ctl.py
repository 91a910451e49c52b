"""``imdsmock ctl`` drives a running mock over HTTP, option for option with the API."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from imdsmock.control.ctl import main
from imdsmock.core.clock import ManualClock
from mockprocess import clean_env, mock_process, run_command
from support import Running, control_config, serve

ROLE_PATH = "/latest/meta-data/iam/security-credentials/baskinc-role"


def _ctl(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["--url", url, *args])
    out, err = capsys.readouterr()
    return status, out, err


@dataclass
class Ctl:
    """``imdsmock ctl --url URL ARGS`` against a running mock: call it with ARGS for the exit
    status, stdout and stderr."""

    mock: Running
    url: str
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str) -> tuple[int, str, str]:
        return _ctl(self.url, self.capsys, *args)


@pytest.fixture
def ctl(capsys: pytest.CaptureFixture[str]) -> Iterator[Ctl]:
    """A mock with its control listener on port 0 (manual clock), and ctl pointed at it."""
    with serve(control_config(), clock=ManualClock()) as r:
        yield Ctl(r, r.app.control_url() or "", capsys)


def test_ctl_options_switch_tokens_required_and_back(ctl: Ctl) -> None:
    """`ctl options --http-tokens required` makes token-less IMDS requests 401."""
    r = ctl.mock
    status, out, _ = ctl("options", "--http-tokens", "required")
    assert status == 0
    assert "http-tokens: required" in out
    assert r.get("/latest/meta-data/instance-id")[0] == 401
    assert ctl("options", "--http-tokens", "optional")[0] == 0
    assert r.get("/latest/meta-data/instance-id")[0] == 200


def test_ctl_options_without_changes_prints_the_options(ctl: Ctl) -> None:
    """`ctl options` with no flag prints the current options as KEY: VALUE lines."""
    status, out, _ = ctl("options")
    assert status == 0
    assert "http-tokens: optional" in out.splitlines()
    assert "hop-limit: 1" in out.splitlines()


def test_ctl_metadata_scenario_fault_and_clock(ctl: Ctl) -> None:
    """Metadata, scenario, fault and clock subcommands take effect on the IMDS listener."""
    r = ctl.mock
    assert ctl("metadata", "set", "meta-data/tags/instance/Owner", "alice")[0] == 0
    assert r.get("/latest/meta-data/tags/instance/Owner") == (200, b"alice")
    status, out, _ = ctl("metadata", "get", "meta-data/tags/instance/Owner")
    assert "value: alice" in out
    assert ctl("metadata", "delete", "meta-data/tags/instance/Owner")[0] == 0
    assert r.get("/latest/meta-data/tags/instance/Owner")[0] == 404

    status, out, _ = ctl(
        "--json", "scenario", "start", "spot-interruption", "action=stop", "at=+30s"
    )
    assert status == 0
    scenario_id = json.loads(out)["id"]
    assert r.get("/latest/meta-data/spot/instance-action")[0] == 404
    assert ctl("clock", "advance", "30")[0] == 0
    assert b'"stop"' in r.get("/latest/meta-data/spot/instance-action")[1]
    status, out, _ = ctl("scenario", "list")
    assert scenario_id in out
    assert out.splitlines()[0].split() == ["ID", "TYPE", "AT"]
    assert ctl("scenario", "cancel", scenario_id)[0] == 0

    assert ctl("fault", "add", "status", "--status", "429", "--count", "1")[0] == 0
    assert r.get("/latest/meta-data/ami-id")[0] == 429
    assert r.get("/latest/meta-data/ami-id")[0] == 200
    assert ctl("fault", "list")[1].strip() == "(none)"


def test_ctl_metadata_list_and_reset_show_and_drop_edits(ctl: Ctl) -> None:
    """`metadata list` prints the run-time edits and `metadata reset` drops them all."""
    r = ctl.mock
    assert ctl("metadata", "set", "meta-data/custom/flag", "on")[0] == 0
    status, out, _ = ctl("--json", "metadata", "list")
    assert status == 0
    assert json.loads(out)["metadata"] == {"meta-data/custom/flag": "on"}
    assert r.get("/latest/meta-data/custom/flag") == (200, b"on")
    assert ctl("metadata", "reset")[0] == 0
    assert r.get("/latest/meta-data/custom/flag")[0] == 404


def test_ctl_scenario_field_without_equals_exits_2(ctl: Ctl) -> None:
    """A scenario field that is not KEY=VALUE is refused in one line before any request."""
    status, _, err = ctl("scenario", "start", "spot-interruption", "stop")
    assert status == 2
    assert "scenario field 'stop' is not KEY=VALUE" in err
    assert ctl("--json", "scenario", "list")[1].count('"id"') == 0


def test_ctl_fault_add_list_remove_and_clear(ctl: Ctl) -> None:
    """Faults added with every option are listed in a table, removed by id, and cleared."""
    r = ctl.mock
    status, out, _ = ctl(
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
    ctl("fault", "add", "latency", "--latency-ms", "1", "--count", "1")
    status, out, _ = ctl("fault", "list")
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["ID", "KIND", "PATH"]
    assert len(rows) == 2
    assert ctl("fault", "remove", fault_id)[0] == 0
    assert r.get("/latest/meta-data/ami-id")[0] == 200
    assert ctl("fault", "clear")[0] == 0
    assert ctl("fault", "list")[1].strip() == "(none)"
    status, _, err = ctl("fault", "remove", fault_id)
    assert status == 2
    assert fault_id in err


def test_ctl_credentials_rotate_expire_and_fail_reach_imds(ctl: Ctl) -> None:
    """`credentials rotate|expire|fail` change what the role path serves, and --off restores."""
    r = ctl.mock
    first = json.loads(r.get(ROLE_PATH)[1])
    assert ctl("credentials", "rotate")[0] == 0
    rotated = json.loads(r.get(ROLE_PATH)[1])
    assert rotated["AccessKeyId"] != first["AccessKeyId"]
    assert ctl("credentials", "expire")[0] == 0
    expired = json.loads(r.get(ROLE_PATH)[1])
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.clock.now()))
    assert expired["Expiration"] <= now
    assert ctl("credentials", "expire", "--off")[0] == 0
    assert json.loads(r.get(ROLE_PATH)[1])["Expiration"] > expired["Expiration"]
    assert ctl("credentials", "fail", "1")[0] == 0
    assert json.loads(r.get(ROLE_PATH)[1])["Code"] != "Success"
    assert json.loads(r.get(ROLE_PATH)[1])["Code"] == "Success"


def test_ctl_clock_show_advance_and_reset(ctl: Ctl) -> None:
    """`clock show` prints the manual clock; `advance` moves it and `reset` brings it back."""
    start = json.loads(ctl("--json", "clock", "show")[1])
    assert start["kind"] == "manual"
    assert json.loads(ctl("--json", "clock", "advance", "90")[1])["elapsed"] == 90
    assert json.loads(ctl("--json", "clock", "reset")[1])["elapsed"] == 0


def test_ctl_clock_prints_times_as_rfc3339(ctl: Ctl) -> None:
    """`ctl clock` prints now and the start as RFC 3339 UTC times and the elapsed time in
    seconds (the API's JSON keeps POSIX seconds)."""
    started = ctl.mock.app.controller.clock()["started"]
    status, out, _ = ctl("clock", "advance", "90.5")
    assert status == 0
    assert out.splitlines() == [
        "kind: manual",
        f"now: {_rfc3339(started + 90.5)}",
        f"started: {_rfc3339(started)}",
        "elapsed: 90.5 s",
    ]
    assert re.fullmatch(r"now: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", out.splitlines()[1])


def test_ctl_requests_and_imdsv1_report_tables(ctl: Ctl) -> None:
    """`ctl requests` and `ctl report imdsv1` print tables naming the client and agent."""
    ctl.mock.request("GET", "/latest/meta-data/ami-id", {"User-Agent": "legacy-agent/1.0"})
    status, out, _ = ctl("requests", "--imdsv1")
    assert status == 0
    assert "/latest/meta-data/ami-id" in out
    status, out, _ = ctl("report", "imdsv1")
    header, row = out.splitlines()
    assert header.split()[:2] == ["CLIENT", "USER-AGENT"]
    assert row.split()[:3] == ["127.0.0.1", "legacy-agent/1.0", "1"]
    assert ctl("requests", "--clear")[0] == 0
    assert ctl("requests")[1].strip() == "(none)"


def test_ctl_requests_filters_reach_the_request_log(ctl: Ctl) -> None:
    """`ctl requests` passes method, path, status, client and limit filters to the log."""
    ctl.mock.get("/latest/meta-data/ami-id")
    ctl.mock.get("/latest/meta-data/nope")
    status, out, _ = ctl(
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


def test_ctl_requests_shows_a_page_and_follows_them_all(ctl: Ctl) -> None:
    """`ctl requests` prints the newest page and says how to get older ones; --all follows
    every page."""
    for i in range(120):
        ctl.mock.get(f"/latest/meta-data/p{i}")
    status, out, err = ctl("requests")
    assert status == 0
    assert len(out.splitlines()) == 1 + 100
    first_seq = out.splitlines()[1].split()[0]
    assert f"older requests not shown: add --before {first_seq} for the next page" in err
    status, out, err = ctl("requests", "--before", first_seq)
    assert (status, len(out.splitlines()), err) == (0, 1 + 20, "")
    status, out, err = ctl("--json", "requests", "--all", "--limit", "50")
    assert status == 0
    assert err == ""
    answer = json.loads(out)
    assert answer["next"] is None
    assert [e["path"] for e in answer["requests"]] == [
        f"/latest/meta-data/p{i}" for i in range(120)
    ]


def test_ctl_certificate_and_state_print_readably(ctl: Ctl) -> None:
    """`ctl certificate` prints the PEM; `ctl state` prints KEY: VALUE lines with JSON values."""
    status, out, _ = ctl("certificate")
    assert status == 0
    assert out.startswith("-----BEGIN CERTIFICATE-----")
    assert out.endswith("-----END CERTIFICATE-----\n")


def test_ctl_state_prints_readable_sections(ctl: Ctl) -> None:
    """`ctl state` prints one section per part of the state, nested mappings indented as
    `key: value` lines, records as tables and times as RFC 3339: no JSON on any line."""
    ctl.mock.app.controller.start_scenario({"type": "spot-interruption", "at": "+2m"})
    status, out, _ = ctl("state")
    assert status == 0
    lines = out.splitlines()
    sections = [line for line in lines if line and not line.startswith(" ")]
    assert sections == [
        "config:",
        "options:",
        "metadata: (none)",
        "scenarios:",
        "faults: (none)",
        "credentials:",
        "clock:",
        "requests: 0",
        f"imds-urls: {ctl.mock.url}",
    ]
    assert "  server:" in lines
    assert "    host: 127.0.0.1" in lines
    assert "  instance:" in lines
    assert "    instance-id: i-1234567890abcdef0" in lines
    assert "      Name: test-instance" in lines  # instance.tags, a mapping in a mapping
    assert "  http-tokens: optional" in lines
    scenarios = lines.index("scenarios:")
    assert lines[scenarios + 1].split() == ["ID", "TYPE", "AT"]
    assert lines[scenarios + 2].split()[1] == "spot-interruption"
    assert re.fullmatch(r"  now: \d{4}-\d\d-\d\dT[0-9:.]+Z", lines[lines.index("clock:") + 2])
    assert not [line for line in lines if "{" in line or "[" in line]


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@contextlib.contextmanager
def follow(
    url: str, *args: str, json_lines: bool = False
) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    """`imdsmock ctl [--json] requests --follow ARGS` as a process; its stdout lines arrive
    on a queue. Interrupted (SIGINT) and waited for after the block."""
    ctl = ["ctl", "--json"] if json_lines else ["ctl"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "imdsmock", *ctl, "requests", "--follow", *args],
        env=clean_env({"IMDSMOCK_CONTROL_URL": url}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True)
    reader.start()
    with proc:
        try:
            yield proc, lines
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            proc.wait(10)
            reader.join(10)


def _next_line(lines: queue.Queue[str]) -> str:
    return lines.get(timeout=10).rstrip("\n")


def test_ctl_requests_follow_prints_each_new_request_as_one_line(ctl: Ctl) -> None:
    """`requests --follow` prints the newest requests, then each new one as it is logged:
    time, client, method and path, status, whether a token was sent, user agent; its
    filters are `ctl requests`' filters; Ctrl-C ends it quietly."""
    r = ctl.mock
    started = _rfc3339(r.app.controller.clock()["now"])
    r.request("GET", "/latest/meta-data/ami-id", {"User-Agent": "before/1"})
    with follow(ctl.url, "--path", "/latest/meta-data/") as (proc, lines):
        assert _next_line(lines) == (
            f"{started}  127.0.0.1  GET /latest/meta-data/ami-id  200  token=no  before/1"
        )
        token = r.request(
            "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        )
        r.request("GET", "/latest/dynamic/instance-identity/document")  # filtered out
        r.request(
            "GET",
            "/latest/meta-data/instance-id",
            {"X-aws-ec2-metadata-token": token[2].decode(), "User-Agent": "Botocore/1.34 x"},
        )
        r.request("GET", "/latest/meta-data/nope")
        assert _next_line(lines) == (
            f"{started}  127.0.0.1  GET /latest/meta-data/instance-id  200  token=yes  "
            "Botocore/1.34 x"
        )
        assert _next_line(lines) == (
            f"{started}  127.0.0.1  GET /latest/meta-data/nope  404  token=no  -"
        )
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130
        assert proc.stderr is not None
        assert proc.stderr.read() == ""
    assert lines.empty()


def test_ctl_requests_follow_json_prints_one_object_per_line(ctl: Ctl) -> None:
    """With --json, --follow prints each new entry as one JSON object per line, starting
    after --after SEQ when given."""
    r = ctl.mock
    for path in ("/latest/meta-data/ami-id", "/latest/meta-data/instance-id"):
        r.get(path)
    with follow(ctl.url, "--after", "1", json_lines=True) as (_, lines):
        first = json.loads(_next_line(lines))
        assert (first["seq"], first["path"]) == (2, "/latest/meta-data/instance-id")
        r.get("/latest/meta-data/hostname")
        assert json.loads(_next_line(lines))["path"] == "/latest/meta-data/hostname"


@pytest.mark.parametrize("flag", [["--all"], ["--before", "5"], ["--clear"]])
def test_ctl_requests_follow_refuses_paging_flags(ctl: Ctl, flag: list[str]) -> None:
    """--follow with --all, --before or --clear is one line naming the flag, exit 2."""
    status, _, err = ctl("requests", "--follow", *flag)
    assert status == 2
    assert err == f"imdsmock ctl: error: --follow cannot be combined with {flag[0]}\n"


def test_ctl_rejected_request_prints_one_line_and_exits_2(ctl: Ctl) -> None:
    """A request the API rejects prints its one-line error and exits 2; nothing changes."""
    status, _, err = ctl("options", "--hop-limit", "99")
    assert status == 2
    assert err.count("\n") == 1
    assert "options.hop-limit" in err
    status, _, err = ctl("clock", "advance", "-1")
    assert status == 2
    assert "seconds" in err
    assert ctl.mock.app.controller.options()["hop-limit"] == 1


def test_ctl_usage_error_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown subcommand prints one 'imdsmock ctl: error:' line and exits 2."""
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("imdsmock ctl: error: ")
    assert err.count("\n") == 1


def test_ctl_unreachable_mock_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """With no mock at the URL, ctl says so in one line and exits 1."""
    status, _, err = _ctl("http://127.0.0.1:9", capsys, "state")
    assert status == 1
    assert "cannot reach the control API" in err


def test_ctl_pointed_at_a_non_json_server_reports_its_answer(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    """An answer that is not the API's JSON (here: the IMDS listener's XHTML 404 page, and
    its 200 text for a path it serves) is reported in one line naming the status and the
    content type, exit 2."""
    status, _, err = _ctl(running.url, capsys, "state")
    assert status == 2
    assert err == (
        f"imdsmock ctl: error: {running.url} answered 404 Not Found (text/html), not the "
        "control API's JSON: is it the control API's URL?\n"
    )


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1:1339", "127.0.0.1:1339", "http://", "http://h:99999", "http://[::1",
     "http://h:0", "http://h/x?y=1", "http://h/ x", "http://h\n"],
    ids=["ftp", "no-scheme", "no-host", "port-range", "bad-ipv6", "port-0", "query", "space",
         "newline"],
)  # fmt: skip
def test_ctl_refuses_a_url_that_is_not_the_control_api_s(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--url (or IMDSMOCK_CONTROL_URL) must be http(s)://HOST[:PORT][/PATH]: anything else
    is one line and exit 2 before any connection (ftp:// would hang)."""
    with pytest.raises(SystemExit) as exc:
        main(["--url", url, "state"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("imdsmock ctl: error: argument --url: ")
    assert err.count("\n") == 1
    proc = run_command(["ctl", "state"], {"IMDSMOCK_CONTROL_URL": url}, timeout=10)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "IMDSMOCK_CONTROL_URL" in proc.stderr


def test_a_missing_or_wrong_token_says_how_to_give_one() -> None:
    """Without the control token, or with a wrong one, imdsmock ctl exits 2 with one line that
    names --token and IMDSMOCK_CONTROL_TOKEN; the variable then lets the call through."""
    with mock_process(["--control-token", "t0k-9f2"]) as mp:
        env = {"IMDSMOCK_CONTROL_URL": f"http://127.0.0.1:{mp.control_port}"}
        line = (
            "imdsmock ctl: error: missing or wrong bearer token; send the server's control "
            "token as 'Authorization: Bearer TOKEN' (imdsmock ctl: --token or "
            "IMDSMOCK_CONTROL_TOKEN)"
        )
        for extra in ([], ["--token", "wrong"]):
            proc = run_command(["ctl", *extra, "state"], env)
            assert (proc.returncode, proc.stderr.splitlines()) == (2, [line])
        proc = run_command(["ctl", "state"], {**env, "IMDSMOCK_CONTROL_TOKEN": "t0k-9f2"})
        assert proc.returncode == 0, proc.stderr


def test_imdsmock_ctl_command_runs_as_a_subprocess(ctl: Ctl) -> None:
    """`imdsmock ctl --json state` works through the real entry point and IMDSMOCK_CONTROL_URL."""
    proc = run_command(["ctl", "--json", "state"], {"IMDSMOCK_CONTROL_URL": ctl.url})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["clock"]["kind"] == "manual"


@pytest.mark.parametrize(
    ("answer", "code", "text"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", 1, "cannot reach the control API at"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 15\r\n\r\n<html>\n</html>\n",
            2,
            "answered 200 OK (text/html), not the control API's JSON",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n{x\n\n",
            2,
            "answered 200 OK (application/json), not the control API's JSON",
        ),
        (
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 6\r\n\r\na\nb\nc\n",
            2,
            "answered 502 Bad Gateway (no content type)",
        ),
    ],
    ids=["not-http", "html", "bad-json", "proxy-error"],
)
def test_ctl_pointed_at_another_server_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str], answer: bytes, code: int, text: str
) -> None:
    """Whatever another server answers (bytes that are not HTTP, HTML, broken JSON, a
    proxy's error page), ctl prints one line: 'cannot reach' (exit 1) when it is not HTTP,
    else the status and content type (exit 2)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def serve_once() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(answer)

        thread = threading.Thread(target=serve_once, daemon=True)
        thread.start()
        status, _, err = _ctl(f"http://127.0.0.1:{port}", capsys, "state")
        thread.join(5)
    assert status == code
    assert err.count("\n") == 1
    assert text in err
