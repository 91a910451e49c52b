"""Entry points and listeners, as a user starts them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port(family: int = socket.AF_INET, host: str = "127.0.0.1") -> int:
    with socket.socket(family) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 10.0) -> bytes:
    """GET ``url`` until it answers (the server is starting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bytes(resp.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize(
    "command",
    [[str(BIN / "imdsmock")], [sys.executable, "-m", "imdsmock"], [str(BIN / "imdsmock"), "serve"]],
    ids=["console-script", "python-m", "serve-subcommand"],
)
def test_entry_points_serve(command: list[str], tmp_path: Path) -> None:
    """`imdsmock`, `python -m imdsmock` and `imdsmock serve` serve IMDS and stop on SIGTERM."""
    port, cport = free_port(), free_port()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--control-port", str(cport)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = wait_http(f"http://127.0.0.1:{port}/latest/meta-data/instance-id")
        assert body == b"i-1234567890abcdef0"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
        assert proc.returncode == 0
        assert f"serving IMDS on http://127.0.0.1:{port}" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


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
    p1, p2, p3 = free_port(), free_port(), free_port(socket.AF_INET6, "::1")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "imdsmock", "--port", str(p1), "--listen", f"127.0.0.2:{p2}",
         "--listen", f"[::1]:{p3}", "--control-port", str(free_port())],
        env=env,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for url in (
            f"http://127.0.0.1:{p1}/latest/meta-data/instance-id",
            f"http://127.0.0.2:{p2}/latest/meta-data/instance-id",
            f"http://[::1]:{p3}/latest/meta-data/instance-id",
        ):
            assert wait_http(url) == b"i-1234567890abcdef0"
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_version_subcommand() -> None:
    """`imdsmock version` and `imdsmock --version` print the package version."""
    from imdsmock import __version__

    for args in (["version"], ["--version"]):
        out = subprocess.run(
            [sys.executable, "-m", "imdsmock", *args], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip() == __version__


def test_readme_commands_match_ci() -> None:
    """The README's test command is what .ci/run runs, and its run command installs and serves."""
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```sh\n")[1:3]]
    run_command, test_command = blocks
    assert run_command.endswith("imdsmock")
    assert "pip install" in run_command
    assert test_command == "bash scripts/test"
    assert "exec bash scripts/test" in (ROOT / ".ci" / "run").read_text()
