"""Support for the plugin tests: run pytest on a user's project in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

RunPytest = Callable[..., subprocess.CompletedProcess[str]]


def run_pytest(
    where: Path, files: dict[str, str], *args: str, autoload: bool = False
) -> subprocess.CompletedProcess[str]:
    """Write ``files`` into ``where`` and run pytest there as a user's project would.

    Without ``autoload`` only this plugin is loaded (by module name): the venv's other
    plugins (hypothesis, schemathesis) take seconds to import and are not under test.
    """
    for name, text in files.items():
        (where / name).write_text(textwrap.dedent(text))
    # CI and BUILD_NUMBER make pytest print its short summary untruncated (each error's
    # line a second time): the user's run reads the same here and in CI without them.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "PYTEST_")) and k not in ("CI", "BUILD_NUMBER")
    }
    plugins = [] if autoload else ["-p", "imdsmock.pytest_plugin"]
    if not autoload:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"]
    return subprocess.run(
        [*argv, "--strict-markers", *plugins, *args],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def user_project(tmp_path: Path) -> RunPytest:
    """``user_project(files, *args)``: run pytest on those files in a fresh directory."""

    def run(files: dict[str, str], *args: str, autoload: bool = False) -> Any:
        return run_pytest(tmp_path, files, *args, autoload=autoload)

    return run
