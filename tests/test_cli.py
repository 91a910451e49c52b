"""Entry points and listeners, as a user starts them."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from mockprocess import EC2_METADATA_MOCK, IMDSMOCK, Command, free_port, mock_process, run_command

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def get(url: str) -> bytes:
    """The body of a GET on ``url``."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        return bytes(resp.read())


@pytest.mark.parametrize(
    "argv",
    [(str(BIN / "imdsmock"),), IMDSMOCK.argv, (str(BIN / "imdsmock"), "serve")],
    ids=["console-script", "python-m", "serve-subcommand"],
)
def test_entry_points_serve(argv: tuple[str, ...], tmp_path: Path) -> None:
    """`imdsmock`, `python -m imdsmock` and `imdsmock serve` serve IMDS and stop on SIGTERM."""
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    with mock_process(env=env, command=Command(argv)) as mp:
        assert mp.get("/latest/meta-data/instance-id") == (200, b"i-1234567890abcdef0")
        err = mp.stop()
    assert mp.proc.returncode == 0
    assert f"serving IMDS on http://127.0.0.1:{mp.port}" in err


def test_ec2_metadata_mock_command_exists() -> None:
    """The drop-in command `ec2-metadata-mock` is installed and answers --version."""
    exe = shutil.which("ec2-metadata-mock", path=str(BIN))
    assert exe is not None
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert result.stdout.strip()


def test_several_listeners_at_once(tmp_path: Path) -> None:
    """--listen adds listeners (IPv4 and IPv6) beside --host/--port; all serve."""
    if not socket.has_ipv6:
        pytest.skip("this machine has no IPv6 stack")
    p2, p3 = free_port("127.0.0.2"), free_port("::1")
    listen = ["--listen", f"127.0.0.2:{p2}", "--listen", f"[::1]:{p3}"]
    with mock_process(listen, env={"XDG_CACHE_HOME": str(tmp_path)}) as mp:
        for url in (
            f"http://127.0.0.1:{mp.port}/latest/meta-data/instance-id",
            f"http://127.0.0.2:{p2}/latest/meta-data/instance-id",
            f"http://[::1]:{p3}/latest/meta-data/instance-id",
        ):
            assert get(url) == b"i-1234567890abcdef0"


def test_version_subcommand() -> None:
    """`imdsmock version` and `imdsmock --version` print the package version."""
    from imdsmock import __version__

    for args in (["version"], ["--version"]):
        done = run_command(args)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == __version__


def test_readme_commands_match_ci() -> None:
    """The README's test command is what .ci/run runs, and its run command installs and serves."""
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```sh\n")[1:3]]
    run_command, test_command = blocks
    assert run_command.endswith("imdsmock")
    assert "pip install" in run_command
    assert test_command == "bash scripts/test"
    assert "exec bash scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_every_line_on_stderr_starts_with_the_command_and_the_level(tmp_path: Path) -> None:
    """What a command writes on stderr is `PROG: message`, `PROG: warning: message` or
    `PROG: error: message`, PROG being the command that runs: imdsmock, or ec2-metadata-mock
    for the records of the code both share."""
    config = tmp_path / "instance.yaml"
    config.write_text("instance: {region: eu-west-1}\n")
    with mock_process(["-c", str(config)]) as mock:
        config.write_text("instance: {region: [\n")
        mock.proc.send_signal(signal.SIGHUP)
        mock.wait_for_stderr("keeping the previous config")
        err = mock.stop()
    assert f"imdsmock: error: config file {config} is invalid, keeping the previous config" in err
    assert "imdsmock: serving IMDS on http://127.0.0.1:" in err
    assert all(line.startswith("imdsmock: ") for line in err.splitlines()), err
    with mock_process(command=EC2_METADATA_MOCK, env={"HOME": str(tmp_path)}) as mock:
        mock.proc.send_signal(signal.SIGHUP)
        mock.wait_for_stderr("SIGHUP ignored")
        err = mock.stop()
    assert "ec2-metadata-mock: warning: SIGHUP ignored: no config file to reload" in err
    assert all(line.startswith("ec2-metadata-mock: ") for line in err.splitlines()), err


@pytest.mark.parametrize("command", [IMDSMOCK, EC2_METADATA_MOCK], ids=["imdsmock", "aemm"])
def test_a_bad_log_level_is_one_line_and_exit_2(command: Command) -> None:
    """IMDSMOCK_LOG_LEVEL other than a logging level's name is one line naming it and the
    levels, exit 2 (it was a traceback)."""
    done = run_command(["--help"], {"IMDSMOCK_LOG_LEVEL": "loud"}, command=command)
    prog = "ec2-metadata-mock" if command.aemm else "imdsmock"
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"{prog}: error: IMDSMOCK_LOG_LEVEL is 'loud'; "
        "expected one of: DEBUG, INFO, WARNING, ERROR, CRITICAL\n"
    )
