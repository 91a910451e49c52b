"""scripts/test, the README's test command: one line per stage with its time, the expected
duration first, and the dangling images of ours removed at the end.

A copy of the script runs in a scratch repository whose tools are stand-ins (``.venv/bin``
ruff, mypy and pytest, the base-image script, ``docker`` and the Debian commands on PATH)
that record how they were called: nothing is installed, linted or built.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["apt", "venv/pip", "base image", "ruff", "ruff format", "mypy", "pytest"]
_TIME = r"\d+\.\d s"


def _tool(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def run_script(
    tmp_path: Path, *args: str, docker_up: bool = True, fail: dict[str, int] | None = None
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run a copy of scripts/test among stand-ins; its result and the stand-ins' call log
    (one ``NAME ARGS`` line per call). ``fail`` maps a stand-in to the status it exits with."""
    repo, bin_dir, calls = tmp_path / "repo", tmp_path / "bin", tmp_path / "calls"
    (repo / "scripts").mkdir(parents=True)
    (repo / "scripts" / "test").write_text((ROOT / "scripts" / "test").read_text())
    (repo / "pyproject.toml").write_text("")
    fail = fail or {}

    def record(name: str) -> str:
        return f'echo "{name} $*" >> {calls}; exit {fail.get(name, 0)}'

    _tool(repo / "scripts" / "build-base-image", f"{record('build-base-image')}")
    for name in ("python", "pip", "ruff", "mypy", "pytest"):
        _tool(repo / ".venv" / "bin" / name, record(name))
    installed = repo / ".venv" / ".installed"
    installed.write_text("")
    os.utime(repo / "pyproject.toml", (0, 0))
    apt_commands = ("ip", "iptables", "nft", "curl", "openssl", "debootstrap", "zsh")
    for name in (*apt_commands, "chromium", "chromedriver"):
        _tool(bin_dir / name, "exit 0")
    docker = record("docker") if docker_up else 'echo "docker $*" >> ' + f"{calls}; exit 1"
    _tool(bin_dir / "docker", docker)
    done = subprocess.run(
        ["bash", str(repo / "scripts" / "test"), *args],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, calls.read_text() if calls.exists() else ""


def test_each_stage_prints_one_line_with_its_time_after_the_expected_duration(
    tmp_path: Path,
) -> None:
    """The first line says how long a cold and a warm run take; then every stage prints one
    line with its time, in order, and the run ends with the total."""
    done, calls = run_script(tmp_path, "-k", "boto")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("scripts/test: ")]
    assert re.fullmatch(r"scripts/test: a cold run.* takes about \d+ minutes .*", lines[0])
    stage_lines = lines[1 : 1 + len(STAGES)]
    for name, line in zip(STAGES, stage_lines, strict=True):
        assert re.match(rf"scripts/test: {re.escape(name)}: {_TIME}", line), line
    assert "(all present)" in stage_lines[0]
    assert "(up to date)" in stage_lines[1]
    assert re.fullmatch(rf"scripts/test: total {_TIME}", lines[-1])
    assert "pytest -n auto --cov --cov-report=term-missing:skip-covered -k boto" in calls


def test_only_our_dangling_images_are_removed_even_when_pytest_fails(tmp_path: Path) -> None:
    """After pytest, ``docker image prune`` runs only with the labels our Dockerfiles set
    (never unfiltered, never ``-a``), also when tests failed; the script exits with pytest's
    status."""
    done, calls = run_script(tmp_path, fail={"pytest": 3})
    assert done.returncode == 3
    prunes = [line for line in calls.splitlines() if line.startswith("docker image prune")]
    assert prunes == [
        "docker image prune -f --filter label=imdsmock.image",
        "docker image prune -f --filter label=imdsmock.stage",
    ]
    for label in ("imdsmock.image", "imdsmock.stage"):
        assert f"LABEL {label}=" in (ROOT / "Dockerfile").read_text()
    assert "scripts/test: pytest: " in done.stdout
    assert "(exit 3)" in done.stdout
    assert "scripts/test: dangling imdsmock images removed: " in done.stdout


def test_without_docker_nothing_is_built_or_pruned(tmp_path: Path) -> None:
    """With no reachable engine the base image is skipped (said on its line) and no image
    is touched."""
    done, calls = run_script(tmp_path, docker_up=False)
    assert done.returncode == 0, done.stderr
    assert "scripts/test: base image: " in done.stdout
    assert "(skipped: no Docker engine)" in done.stdout
    assert "build-base-image" not in calls
    assert "image prune" not in calls


@pytest.mark.parametrize("tool", ["ruff", "mypy"])
def test_a_failing_check_stops_the_run_with_its_status(tmp_path: Path, tool: str) -> None:
    """A failing lint or type check ends the run with its status, says which stage failed
    after how long, and runs no tests."""
    done, calls = run_script(tmp_path, fail={tool: 1})
    assert done.returncode == 1
    assert re.search(rf"scripts/test: {tool}: failed \(exit 1\) after {_TIME}", done.stdout)
    assert "pytest" not in calls
