"""ec2-metadata-mock end to end: the real CLI process, real sockets, short real delays."""

from __future__ import annotations

import base64
import calendar
import contextlib
import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mockprocess import EC2_METADATA_MOCK, Command, MockProcess, mock_process, run_command


def aemm(*args: str, home: Path) -> contextlib.AbstractContextManager[MockProcess]:
    """Run ``ec2-metadata-mock ARGS -n 127.0.0.1 -p PORT`` (``$HOME`` at ``home``) until
    the block ends."""
    return mock_process(args, env={"HOME": str(home)}, command=EC2_METADATA_MOCK)


def get(mock: MockProcess, path: str, token: str | None = None) -> tuple[int, str]:
    """GET a path; returns status and body as text."""
    status, body = mock.get(path, token=token)
    return status, body.decode()


def epoch(stamp: str) -> float:
    """An IMDS timestamp as POSIX seconds."""
    return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))


def test_spot_stop_with_delay_appears_after_the_delay(tmp_path: Path) -> None:
    """`ec2-metadata-mock spot -a stop -d 3`: 404, then the stop notice two minutes ahead."""
    # The delay counts from the process start; 3 s leaves room for a slow start on a busy machine.
    with aemm("spot", "-a", "stop", "-d", "3", home=tmp_path) as mock:
        status, _ = get(mock, "/latest/meta-data/spot/instance-action")
        assert status == 404
        assert "spot/" not in get(mock, "/latest/meta-data/")[1].split("\n")
        deadline = time.monotonic() + 8
        while status == 404 and time.monotonic() < deadline:
            time.sleep(0.05)
            status, body = get(mock, "/latest/meta-data/spot/instance-action")
        seen = time.time()
        assert status == 200
        notice = json.loads(body)
        assert notice["action"] == "stop"
        assert abs(epoch(notice["time"]) - (seen + 120)) < 3
        time.sleep(1.1)
        assert json.loads(get(mock, "/latest/meta-data/spot/instance-action")[1]) == notice
        assert get(mock, "/latest/meta-data/events/maintenance/scheduled") == (200, "[ ]")
        assert get(mock, "/latest/meta-data/autoscaling/target-lifecycle-state")[0] == 404


def test_a_termination_watcher_sees_the_notice_at_the_configured_time(tmp_path: Path) -> None:
    """A node-termination-handler-style IMDSv2 poll loop sees the notice 4 s after start."""
    # 4 s: longer than a start on a busy machine, so the loop polls before the notice is due.
    with aemm("-I", "-d", "4", home=tmp_path) as mock:
        status, answer = mock.request(
            "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        )
        assert status == 200
        token = answer.decode()
        assert get(mock, "/latest/meta-data/spot/instance-action")[0] == 401  # -I: v2 only
        polls = 0
        while True:
            status, body = get(mock, "/latest/meta-data/spot/instance-action", token)
            if status == 200:
                break
            assert status == 404
            polls += 1
            assert polls < 200, "no notice within 10 s"
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
        assert get(mock, md + "spot/instance-action")[0] == 200
        assert get(mock, md + "spot/termination-time")[0] == 200
        assert get(mock, md + "events/recommendations/rebalance")[0] == 200
        assert json.loads(get(mock, md + "events/maintenance/scheduled")[1])[0]["State"] == (
            "active"
        )
        assert get(mock, md + "autoscaling/target-lifecycle-state") == (200, "Terminated")


def test_watch_reloads_everything_and_survives_a_broken_file(tmp_path: Path) -> None:
    """-w swaps values, moved paths, listings and scenarios; a broken file keeps the old."""
    file = tmp_path / "aemm.json"
    file.write_text(json.dumps({"spot": {"action": "terminate"}}))
    with aemm("-w", "-c", str(file), home=tmp_path) as mock:
        md = "/latest/meta-data/"
        assert json.loads(get(mock, md + "spot/instance-action")[1])["action"] == "terminate"
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
        while get(mock, md + "instance-id")[1] != "i-0000000000000abcd":
            assert time.monotonic() < deadline, "no reload within 5 s"
            time.sleep(0.05)
        assert json.loads(get(mock, md + "spot/instance-action")[1])["action"] == "stop"
        assert get(mock, md + "tags/instance") == (200, "Env\nName")
        assert get(mock, md + "tags/instance/Test")[0] == 404
        file.write_text('{"spot": ')
        time.sleep(1.0)
        assert get(mock, md + "instance-id") == (200, "i-0000000000000abcd")
        err = mock.stop()
    errors = [line for line in err.splitlines() if "invalid, keeping the previous config" in line]
    assert len(errors) == 1
    assert "Traceback" not in err


def _instance_id_file(file: Path, instance_id: str) -> None:
    file.write_text(json.dumps({"metadata": {"values": {"instance-id": instance_id}}}))


def test_sighup_reloads_the_config_file_without_w_and_the_mock_lives_on(tmp_path: Path) -> None:
    """As imdsmock: SIGHUP reloads the -c file even without -w (the Go mock dies of it)."""
    file = tmp_path / "aemm.json"
    _instance_id_file(file, "i-0000000000000aaaa")
    path = "/latest/meta-data/instance-id"
    with aemm("-c", str(file), home=tmp_path) as mock:
        assert get(mock, path) == (200, "i-0000000000000aaaa")
        _instance_id_file(file, "i-0000000000000bbbb")
        time.sleep(0.6)  # longer than a -w poll: without -w the change alone reloads nothing
        assert get(mock, path) == (200, "i-0000000000000aaaa")
        mock.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while get(mock, path)[1] != "i-0000000000000bbbb":
            assert mock.proc.poll() is None, "ended by SIGHUP"
            assert time.monotonic() < deadline, "no reload within 5 s of SIGHUP"
            time.sleep(0.05)
        assert mock.proc.poll() is None
        err = mock.stop()
    assert mock.proc.returncode == 0
    assert f"reloaded configuration from {file}" in err


def test_sighup_without_a_config_file_is_logged_and_ignored(tmp_path: Path) -> None:
    """With no config file (no -c, AEMM_CONFIG_FILE or $HOME/aemm-config.*) each SIGHUP is
    one log line saying how to give one, and the mock keeps serving."""
    with aemm(home=tmp_path) as mock:
        assert get(mock, "/latest/meta-data/instance-id")[0] == 200
        for _ in range(2):
            mock.proc.send_signal(signal.SIGHUP)
            assert get(mock, "/latest/meta-data/instance-id")[0] == 200
        assert mock.proc.poll() is None
        err = mock.stop()
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
        assert get(mock, "/latest/meta-data/instance-id")[0] == 200
        err = mock.stop()
    assert f"config file {missing} not found; using flags, AEMM_* and defaults" in err
    saved = json.loads((tmp_path / ".ec2-metadata-mock" / ".aemm-config-used.json").read_text())
    assert saved["server"]["port"]


def test_unwritable_save_location_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    """When the saved-config directory cannot be made, the mock warns and serves anyway."""
    (tmp_path / ".ec2-metadata-mock").write_text("a file where the directory should be")
    with aemm("-s", home=tmp_path) as mock:
        assert get(mock, "/latest/meta-data/instance-id")[0] == 200
        err = mock.stop()
    assert "could not save the config to" in err


@pytest.mark.parametrize("argv", [["spot", "-a", "reboot"], ["-x", "nope"]])
def test_cli_bad_input_exits_2_with_one_line(argv: list[str], tmp_path: Path) -> None:
    """The real process prints one error line and exits 2 on bad input."""
    done = run_command(argv, {"HOME": str(tmp_path)}, command=EC2_METADATA_MOCK)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("ec2-metadata-mock: error: ")


# The installed console script, as a user (or AEMM's own suite, through a shim) runs it.
INSTALLED = Command((str(Path(sys.executable).parent / "ec2-metadata-mock"),), aemm=True)
MAC_77 = "/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:77/"
PRODUCT_CODES = ["4i20ezfza3p7xx2kt2g8weu2u"]


def _aemm_integ_config() -> dict[str, Any]:
    """AWS's Go mock's own end-to-end test config (a 10-digit account in the identity
    document, a path key it does not read), with a product code override added."""
    document = {
        "accountId": "9876543210",
        "imageId": "ami-0b69ea66ff7391e80",
        "availabilityZone": "us-east-1f",
        "ramdiskId": None,
        "kernelId": None,
        "devpayProductCodes": None,
        "marketplaceProductCodes": PRODUCT_CODES,
        "version": "2017-09-30",
        "privateIp": "10.0.7.10",
        "billingProducts": None,
        "instanceId": "i-0fedcba0987654321",
        "pendingTime": "2019-10-31T07:02:24Z",
        "architecture": "x86_64",
        "instanceType": "m4.xlarge",
        "region": "us-east-1",
    }
    return {
        "metadata": {
            "paths": {"ipv4-associations": MAC_77 + "ipv4-associations/192.0.2.54"},
            "values": {"mac": "0e:49:61:0f:c3:77", "public-ipv4": "54.92.157.77"},
        },
        "spot": {"action": "terminate", "time": "2020-01-07T01:03:47Z"},
        "dynamic": {"values": {"instance-identity-document": document}},
        "userdata": {"paths": {"userdata": "/latest/user-data"}, "values": {"userdata": "1234"}},
    }


def test_the_go_mocks_own_test_config_starts_warns_once_and_serves_it_as_given(
    tmp_path: Path,
) -> None:
    """With AEMM's test config the installed drop-in starts, warns once that real EC2 would
    require 12 digits, and serves the account and the product codes as given, in a document
    whose signature verifies."""
    file = tmp_path / "aemm-config-integ.json"
    file.write_text(json.dumps(_aemm_integ_config()))
    with mock_process(["-c", str(file)], {"HOME": str(tmp_path)}, command=INSTALLED) as mock:
        status, document = mock.get("/latest/dynamic/instance-identity/document")
        signature = base64.b64decode(mock.get("/latest/dynamic/instance-identity/signature")[1])
        owner = get(mock, MAC_77 + "owner-id")
        err = mock.stop()
    assert status == 200
    served = json.loads(document)
    assert served["accountId"] == "9876543210"
    assert served["marketplaceProductCodes"] == PRODUCT_CODES
    assert served["instanceId"] == "i-0fedcba0987654321"
    assert owner == (200, "9876543210")
    warnings = [line for line in err.splitlines() if "real EC2 would require" in line]
    assert warnings == [
        "ec2-metadata-mock: warning: dynamic.values.instance-identity-document.accountId is '9876543210'; "
        "real EC2 would require 12 digits (served as given)"
    ]
    assert (
        "ec2-metadata-mock: warning: unknown config key metadata.paths.ipv4-associations ignored; "
        "did you mean 'mac-ipv4-associations'?"
    ) in err.splitlines()
    # The certificate of the key the drop-in signed with (the same cache under $HOME).
    pem = run_command(["cert"], {"HOME": str(tmp_path)}).stdout
    key = x509.load_pem_x509_certificate(pem.encode()).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, document, padding.PKCS1v15(), hashes.SHA256())


def test_unknown_config_keys_are_one_warning_each_and_the_mock_serves(tmp_path: Path) -> None:
    """Misspelt keys in the config file start the mock (as the Go mock does), each with one
    warning line naming the key and its close match; the misspelt values take no effect."""
    file = tmp_path / "aemm.json"
    file.write_text(
        json.dumps({"spot": {"acton": "stop"}, "metadata": {"values": {"instance-idd": "i-0"}}})
    )
    with aemm("-c", str(file), home=tmp_path) as mock:
        action = json.loads(get(mock, "/latest/meta-data/spot/instance-action")[1])["action"]
        err = mock.stop()
    assert action == "terminate"
    lines = [line for line in err.splitlines() if "unknown config key" in line]
    assert lines == [
        "ec2-metadata-mock: warning: unknown config key spot.acton ignored; did you mean 'action'?",
        "ec2-metadata-mock: warning: unknown config key metadata.values.instance-idd ignored; "
        "did you mean 'instance-id'?",
    ]


def test_a_multi_line_token_header_gets_the_plain_400(tmp_path: Path) -> None:
    """The Go mock's suite sends the XHTML body of a refused token PUT as the token: a header
    value spanning lines, answered with the plain-text ``400 Bad Request``."""
    with aemm("-I", home=tmp_path) as mock:
        put = mock.request(
            "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "0"}
        )
        assert put[0] == 400
        token = put[1]
        assert token.count(b"\n") > 1
        with socket.create_connection(("127.0.0.1", mock.port), timeout=5) as sock:
            sock.sendall(
                b"GET /latest/meta-data HTTP/1.1\r\nHost: x\r\n"
                b"X-aws-ec2-metadata-token: " + token + b"\r\n\r\n"
            )
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"\r\nContent-Type: text/plain; charset=utf-8\r\n" in head
    assert body == b"400 Bad Request"


def test_help_describes_every_flag(tmp_path: Path) -> None:
    """`ec2-metadata-mock --help` gives every root flag a description, as the Go mock does."""
    done = run_command(["--help"], {"HOME": str(tmp_path)}, command=INSTALLED)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    flags = [
        ("-n STR, --hostname STR", "address to listen on"),
        ("-p STR, --port STR", "port to listen on"),
        ("-c STR, --config-file STR", "config file"),
        ("-s, --save-config-to-file", "save the merged configuration"),
        ("-w, --watch-config-file", "reload the config file"),
        ("-d INT, --mock-delay-sec INT", "seconds after start before the spot notice"),
        ("--mock-trigger-time STR", "RFC 3339 time at which the spot notice"),
        ("-x INT, --mock-ip-count INT", "how many distinct client IPs"),
        ("-I, --imdsv2", "require an IMDSv2 token"),
        ("--rebalance-delay-sec INT", "seconds after start before the rebalance"),
        ("--rebalance-trigger-time STR", "RFC 3339 time at which the rebalance"),
        ("--asg-termination-delay-sec INT", "seconds after start before target-lifecycle"),
        ("--asg-termination-trigger-time STR", "RFC 3339 time at which target-lifecycle"),
    ]
    for flag, words in flags:
        assert f"{flag} {words}" in text, flag
