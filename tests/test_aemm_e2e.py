"""ec2-metadata-mock end to end: the real CLI process, real sockets, short real delays."""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mockprocess import free_port

LAUNCH = "import sys; from imdsmock.cli import aemm_main; sys.exit(aemm_main(sys.argv[1:]))"


class Mock:
    """A running ec2-metadata-mock process."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"
        self._err = ""

    def get(self, path: str, token: str | None = None) -> tuple[int, str]:
        """GET a path; returns status and body."""
        request = urllib.request.Request(self.url + path)
        if token:
            request.add_header("X-aws-ec2-metadata-token", token)
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def stderr(self) -> str:
        """Stop the process and return what it wrote to stderr."""
        self.stop()
        return self._err

    def stop(self) -> None:
        """SIGTERM the process (ours), wait for it and collect its stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
            self.proc.kill()
            _, err = self.proc.communicate(timeout=5)
        self._err += err or ""


@contextlib.contextmanager
def aemm(*args: str, home: Path, env: dict[str, str] | None = None) -> Iterator[Mock]:
    """Run ``ec2-metadata-mock ARGS -n 127.0.0.1 -p PORT`` until the block ends."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AEMM_", "IMDSMOCK_"))}
    clean.update(HOME=str(home), **(env or {}))
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args, "-n", "127.0.0.1", "-p", str(port)],
        env=clean,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    mock = Mock(proc, port)
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("ec2-metadata-mock did not start: " + mock.stderr()) from None
            time.sleep(0.02)
    try:
        yield mock
    finally:
        mock.stop()


def epoch(stamp: str) -> float:
    """An IMDS timestamp as POSIX seconds."""
    return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))


def test_spot_stop_with_delay_appears_after_the_delay(tmp_path: Path) -> None:
    """`ec2-metadata-mock spot -a stop -d 1`: 404, then the stop notice two minutes ahead."""
    with aemm("spot", "-a", "stop", "-d", "1", home=tmp_path) as mock:
        status, _ = mock.get("/latest/meta-data/spot/instance-action")
        assert status == 404
        assert "spot/" not in mock.get("/latest/meta-data/")[1].split("\n")
        deadline = time.monotonic() + 5
        while status == 404 and time.monotonic() < deadline:
            time.sleep(0.05)
            status, body = mock.get("/latest/meta-data/spot/instance-action")
        seen = time.time()
        assert status == 200
        notice = json.loads(body)
        assert notice["action"] == "stop"
        assert abs(epoch(notice["time"]) - (seen + 120)) < 3
        time.sleep(1.1)
        assert json.loads(mock.get("/latest/meta-data/spot/instance-action")[1]) == notice
        assert mock.get("/latest/meta-data/events/maintenance/scheduled") == (200, "[ ]")
        assert mock.get("/latest/meta-data/autoscaling/target-lifecycle-state")[0] == 404


def test_a_termination_watcher_sees_the_notice_at_the_configured_time(tmp_path: Path) -> None:
    """A node-termination-handler-style IMDSv2 poll loop sees the notice 2 s after start."""
    with aemm("-I", "-d", "2", home=tmp_path) as mock:
        put = urllib.request.Request(
            mock.url + "/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
        )
        with urllib.request.urlopen(put, timeout=2) as resp:
            token = resp.read().decode()
        assert mock.get("/latest/meta-data/spot/instance-action")[0] == 401  # -I: v2 only
        polls = 0
        while True:
            status, body = mock.get("/latest/meta-data/spot/instance-action", token)
            if status == 200:
                break
            assert status == 404
            polls += 1
            assert polls < 100, "no notice within 5 s"
            time.sleep(0.05)
        seen = time.time()
        notice = json.loads(body)
        # The notice appeared when it says: two minutes before its termination time.
        assert abs((epoch(notice["time"]) - 120) - seen) < 1.5
        assert polls > 0
        assert notice["action"] == "terminate"


def test_root_mode_interrupts_now(tmp_path: Path) -> None:
    """With no delay every mock answers from the first second (AEMM's defaults)."""
    with aemm(home=tmp_path) as mock:
        md = "/latest/meta-data/"
        assert mock.get(md + "spot/instance-action")[0] == 200
        assert mock.get(md + "spot/termination-time")[0] == 200
        assert mock.get(md + "events/recommendations/rebalance")[0] == 200
        assert json.loads(mock.get(md + "events/maintenance/scheduled")[1])[0]["State"] == (
            "active"
        )
        assert mock.get(md + "autoscaling/target-lifecycle-state") == (200, "Terminated")


def test_watch_reloads_everything_and_survives_a_broken_file(tmp_path: Path) -> None:
    """-w swaps values, moved paths, listings and scenarios; a broken file keeps the old."""
    file = tmp_path / "aemm.json"
    file.write_text(json.dumps({"spot": {"action": "terminate"}}))
    with aemm("-w", "-c", str(file), home=tmp_path) as mock:
        md = "/latest/meta-data/"
        assert json.loads(mock.get(md + "spot/instance-action")[1])["action"] == "terminate"
        file.write_text(
            json.dumps(
                {
                    "spot": {"action": "stop"},
                    "metadata": {
                        "values": {"instance-id": "i-0000000000000abcd"},
                        "paths": {"tags-instance-test": "/latest/meta-data/tags/instance/Env"},
                    },
                }
            )
        )
        deadline = time.monotonic() + 5
        while mock.get(md + "instance-id")[1] != "i-0000000000000abcd":
            assert time.monotonic() < deadline, "no reload within 5 s"
            time.sleep(0.05)
        assert json.loads(mock.get(md + "spot/instance-action")[1])["action"] == "stop"
        assert mock.get(md + "tags/instance") == (200, "Env\nName")
        assert mock.get(md + "tags/instance/Test")[0] == 404
        file.write_text('{"spot": ')
        time.sleep(1.0)
        assert mock.get(md + "instance-id") == (200, "i-0000000000000abcd")
        err = mock.stderr()
    errors = [line for line in err.splitlines() if "reload" in line and "failed" in line]
    assert len(errors) == 1
    assert "Traceback" not in err


def _instance_id_file(file: Path, instance_id: str) -> None:
    file.write_text(json.dumps({"metadata": {"values": {"instance-id": instance_id}}}))


def _until_serving(mock: Mock) -> str:
    """Read stderr up to the 'serving' line (printed once SIGHUP's handler is scheduled);
    a request answered after it means the handler is in. The lines read, for the caller."""
    assert mock.proc.stderr is not None
    head = ""
    while "ec2-metadata-mock: serving " not in head:
        line = mock.proc.stderr.readline()
        assert line, f"ended before serving: {head}"
        head += line
    return head


def test_sighup_reloads_the_config_file_without_w_and_the_mock_lives_on(tmp_path: Path) -> None:
    """As imdsmock: SIGHUP reloads the -c file even without -w (the Go mock dies of it)."""
    file = tmp_path / "aemm.json"
    _instance_id_file(file, "i-0000000000000aaaa")
    path = "/latest/meta-data/instance-id"
    with aemm("-c", str(file), home=tmp_path) as mock:
        head = _until_serving(mock)
        assert mock.get(path) == (200, "i-0000000000000aaaa")
        _instance_id_file(file, "i-0000000000000bbbb")
        time.sleep(0.6)  # longer than a -w poll: without -w the change alone reloads nothing
        assert mock.get(path) == (200, "i-0000000000000aaaa")
        mock.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while mock.get(path)[1] != "i-0000000000000bbbb":
            assert mock.proc.poll() is None, "ended by SIGHUP"
            assert time.monotonic() < deadline, "no reload within 5 s of SIGHUP"
            time.sleep(0.05)
        assert mock.proc.poll() is None
        err = head + mock.stderr()
    assert mock.proc.returncode == 0
    assert f"reloaded configuration from {file}" in err


def test_sighup_without_a_config_file_is_logged_and_ignored(tmp_path: Path) -> None:
    """With no config file (no -c, AEMM_CONFIG_FILE or $HOME/aemm-config.*) each SIGHUP is
    one log line saying how to give one, and the mock keeps serving."""
    with aemm(home=tmp_path) as mock:
        head = _until_serving(mock)
        assert mock.get("/latest/meta-data/instance-id")[0] == 200
        for _ in range(2):
            mock.proc.send_signal(signal.SIGHUP)
            assert mock.get("/latest/meta-data/instance-id")[0] == 200
        assert mock.proc.poll() is None
        err = head + mock.stderr()
    assert mock.proc.returncode == 0
    line = "SIGHUP ignored: no config file to reload (give -c FILE or AEMM_CONFIG_FILE)"
    assert err.count(line) == 2
    assert "Traceback" not in err


def test_missing_config_file_is_a_warning_and_the_merged_config_is_saved(
    tmp_path: Path,
) -> None:
    """As AEMM does, a -c file that does not exist only warns, and -s writes the merged
    configuration to $HOME/.ec2-metadata-mock/.aemm-config-used.json."""
    missing = tmp_path / "nope.json"
    with aemm("-c", str(missing), "-s", home=tmp_path) as mock:
        assert mock.get("/latest/meta-data/instance-id")[0] == 200
        err = mock.stderr()
    assert f"config file {missing} not found; using flags, AEMM_* and defaults" in err
    saved = json.loads((tmp_path / ".ec2-metadata-mock" / ".aemm-config-used.json").read_text())
    assert saved["server"]["port"]


def test_unwritable_save_location_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    """When the saved-config directory cannot be made, the mock warns and serves anyway."""
    (tmp_path / ".ec2-metadata-mock").write_text("a file where the directory should be")
    with aemm("-s", home=tmp_path) as mock:
        assert mock.get("/latest/meta-data/instance-id")[0] == 200
        err = mock.stderr()
    assert "could not save the config to" in err


@pytest.mark.parametrize("argv", [["spot", "-a", "reboot"], ["-x", "nope"]])
def test_cli_bad_input_exits_2_with_one_line(argv: list[str], tmp_path: Path) -> None:
    """The real process prints one error line and exits 2 on bad input."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEMM_")}
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH, *argv],
        env={**env, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("ec2-metadata-mock: error: ")
