"""The ec2-metadata-mock command as a process: a missing config file and --save-config-to-file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mockprocess import free_port

LAUNCH = "import sys; from imdsmock.aemm import main; sys.exit(main(sys.argv[1:]))"


def _run_until_serving(args: list[str], home: Path) -> str:
    """Start ec2-metadata-mock with ``args``, wait until it answers, stop it; its stderr."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AEMM_", "IMDSMOCK_"))}
    env["HOME"] = str(home)
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args, "-n", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                url = f"http://127.0.0.1:{port}/latest/meta-data/instance-id"
                with urllib.request.urlopen(url, timeout=2) as resp:
                    assert resp.status == 200
                break
            except OSError:
                assert time.monotonic() < deadline, "ec2-metadata-mock did not start"
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    return err


def test_missing_config_file_is_a_warning_and_the_merged_config_is_saved(
    tmp_path: Path,
) -> None:
    """As AEMM does, a -c file that does not exist only warns, and -s writes the merged
    configuration to $HOME/.ec2-metadata-mock/.aemm-config-used.json."""
    missing = tmp_path / "nope.json"
    err = _run_until_serving(["-c", str(missing), "-s"], tmp_path)
    assert f"config file {missing} not found; using flags, AEMM_* and defaults" in err
    saved = json.loads((tmp_path / ".ec2-metadata-mock" / ".aemm-config-used.json").read_text())
    assert saved["server"]["port"]


def test_unwritable_save_location_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    """When the saved-config directory cannot be made, the mock warns and serves anyway."""
    (tmp_path / ".ec2-metadata-mock").write_text("a file where the directory should be")
    err = _run_until_serving(["-s"], tmp_path)
    assert "could not save the config to" in err
