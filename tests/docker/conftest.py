"""The real Docker engine for the compose recipe tests: images built once, one compose project
per test, torn down always, and a per-recipe report at the end of the run.

Without a reachable engine (or without compose) every test marked ``docker`` is skipped with
the reason, and the run ends with a ``docker recipes`` section saying so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPES_DIR = REPO / "examples" / "compose"
# The offline base (scripts/build-base-image); the recipes default to python:3.12-slim.
BASE_IMAGE = os.environ.get("IMDSMOCK_BASE_IMAGE", "imdsmock-base:bookworm")
MOCK_IMAGE = "imdsmock:local"
APP_IMAGE = "imdsmock-demo-app:local"
PROJECT_PREFIX = "imdsmock-test-"
LABEL_PROJECT = "com.docker.compose.project"


def _run(argv: list[str], timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kw)


def compose_command() -> list[str] | None:
    """``docker compose`` when the plugin is installed, else ``docker-compose``, else None."""
    if shutil.which("docker") and _run(["docker", "compose", "version"]).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


_problem: list[str | None] = []


def engine_problem() -> str | None:
    """Why the Docker tests cannot run here, or None when the engine and compose answer."""
    if not _problem:
        _problem.append(_find_problem())
    return _problem[0]


def _find_problem() -> str | None:
    if not shutil.which("docker"):
        return "no Docker engine reachable: the docker CLI is not installed"
    try:
        info = _run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=20)
    except subprocess.TimeoutExpired:
        return "no Docker engine reachable: `docker info` timed out"
    if info.returncode != 0 or not info.stdout.strip():
        detail = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"no Docker engine reachable: {detail}"
    if compose_command() is None:
        return "Docker compose missing: neither `docker compose` nor `docker-compose` runs"
    return None


# ---------------------------------------------------------------------------------------
# Skipping and the end-of-run report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every docker-marked test, with the reason, when the engine is not reachable."""
    docker_items = [item for item in items if item.get_closest_marker("docker")]
    if not docker_items:
        return
    problem = engine_problem()
    if problem is not None:
        for item in docker_items:
            item.add_marker(pytest.mark.skip(reason=problem))


_report: dict[str, list[str]] = {}
_skips: set[str] = set()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect what each recipe test proved (also from xdist workers) or why it skipped."""
    recipe = dict(report.user_properties).get("recipe")
    if report.when == "call" and recipe is not None:
        proofs = [str(v) for k, v in report.user_properties if k == "proof"]
        outcome = "PASSED" if report.passed else "FAILED"
        _report[str(recipe)] = [outcome, *proofs]
    elif report.when == "setup" and report.failed and "docker" in report.keywords:
        _report[report.nodeid.rpartition("::")[2]] = ["ERROR", "setup failed (images or engine)"]
    if report.skipped and "docker" in report.keywords and isinstance(report.longrepr, tuple):
        _skips.add(str(report.longrepr[2]).removeprefix("Skipped: "))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line per recipe: what its end-to-end run proved, or why the recipes were skipped."""
    if not _report and not _skips:
        return
    terminalreporter.write_sep("=", "docker recipes")
    for recipe, (outcome, *proofs) in sorted(_report.items()):
        terminalreporter.write_line(f"{recipe}: {outcome}: {'; '.join(proofs) or 'nothing'}")
    for reason in sorted(_skips):
        terminalreporter.write_line(f"docker recipes SKIPPED: {reason}")


# ---------------------------------------------------------------------------------------
# Images, built once per session and cached by tag


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """Build the mock and demo-app images from the offline base (cached by the engine)."""
    _remove_stale_projects()
    built = _run(["bash", str(REPO / "scripts" / "build-base-image")], timeout=1200)
    assert built.returncode == 0, built.stderr
    for tag, dockerfile in (
        (MOCK_IMAGE, "Dockerfile"),
        (APP_IMAGE, "examples/compose/demo-app/Dockerfile"),
    ):
        # The build stage gets a tag of its own, so that the engine keeps exactly one (the
        # cache for the next run) and earlier ones can be pruned.
        stage = tag.replace(":", "-build:")
        for extra in (["--target", "build", "-t", stage], ["-t", tag]):
            result = _run(
                ["docker", "build", "-q", "-f", dockerfile, *extra,
                 "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "."],
                timeout=900,
                cwd=REPO,
            )  # fmt: skip
            assert result.returncode == 0, f"docker build {tag}: {result.stderr[-3000:]}"
    # Earlier builds of these tags, now untagged.
    for label in ("imdsmock.image", "imdsmock.stage"):
        _run(["docker", "image", "prune", "-f", "--filter", f"label={label}"])
    return {"mock": MOCK_IMAGE, "app": APP_IMAGE, "base": BASE_IMAGE}


# ---------------------------------------------------------------------------------------
# One compose project per test


def free_port() -> int:
    """A TCP port free on the host's loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Stack:
    """A compose project started from one recipe's own compose file, as a user would."""

    recipe: str
    project: str
    compose: list[str]
    control_port: int
    control_token: str = field(repr=False)
    down_done: bool = False

    @property
    def file(self) -> Path:
        return RECIPES_DIR / self.recipe / "compose.yaml"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "IMDSMOCK_BASE_IMAGE": BASE_IMAGE,
            "IMDSMOCK_CONTROL_PORT": str(self.control_port),
            "IMDSMOCK_CONTROL_TOKEN": self.control_token,
        }

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run one compose command for this project."""
        argv = [*self.compose, "-p", self.project, "-f", str(self.file), *args]
        return _run(argv, timeout=timeout, env=self.env(), cwd=self.file.parent)

    def up(self) -> None:
        """``up -d`` with the images built by the session; fails with compose's own words."""
        result = self.run("up", "-d", "--no-build", timeout=300)
        if result.returncode != 0:
            logs = self.run("logs", "--no-color").stdout[-4000:]
            pytest.fail(f"compose up failed:\n{result.stderr[-3000:]}\n{logs}")

    def exec(self, service: str, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        """Run a command in a service's container; its status and stdout (stderr appended)."""
        flags = [f"-e{k}={v}" for k, v in (env or {}).items()]
        result = self.run("exec", "-T", *flags, service, *argv, timeout=60)
        return result.returncode, result.stdout + result.stderr

    def logs(self, service: str) -> str:
        return self.run("logs", "--no-color", service).stdout

    def container_id(self, service: str) -> str:
        return self.run("ps", "-q", service).stdout.strip()

    def control(
        self, method: str, path: str, body: object = None, token: str | None = ""
    ) -> tuple[int, Any]:
        """Call the control API from the host through the published loopback port."""
        headers = {"Content-Type": "application/json"}
        token = self.control_token if token == "" else token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.control_port}{path}", data=data, method=method,
            headers=headers,
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except OSError as exc:  # nothing answered: connection refused, reset or closed
            return 0, str(exc)

    def down(self) -> None:
        """``down -v`` with the recipe's own file; idempotent."""
        if not self.down_done:
            self.run("down", "-v", "--remove-orphans", "--timeout", "5", timeout=180)
            self.down_done = True

    @staticmethod
    def inspect(obj: str, fmt: str) -> str:
        """``docker inspect --format`` on a container or image."""
        return _run(["docker", "inspect", "--format", fmt, obj]).stdout.strip()

    @staticmethod
    def wait(predicate: Any, timeout: float) -> Any:
        """Call ``predicate`` until it returns something truthy or ``timeout`` s pass."""
        return wait_until(predicate, timeout)

    def leftovers(self) -> list[str]:
        """Containers, networks and volumes still labelled with this project."""
        return _leftovers(f"label={LABEL_PROJECT}={self.project}")


def _leftovers(filter_: str) -> list[str]:
    found = []
    for kind, fmt in (
        ("container", "{{.Names}}"),
        ("network", "{{.Name}}"),
        ("volume", "{{.Name}}"),
    ):
        cmd = ["docker", kind, "ls", "--filter", filter_, "--format", fmt]
        if kind == "container":
            cmd.insert(3, "-a")
        out = _run(cmd).stdout.split()
        found += [f"{kind} {name}" for name in out]
    return found


def _remove_stale_projects() -> None:
    """Remove what test projects of dead processes left (a run killed mid-test)."""
    names = set()
    for kind in ("container", "network", "volume"):
        cmd = ["docker", kind, "ls", "--filter", f"label={LABEL_PROJECT}", "--format",
               f'{{{{.Label "{LABEL_PROJECT}"}}}}']  # fmt: skip
        if kind == "container":
            cmd.insert(3, "-a")
        names.update(_run(cmd).stdout.split())
    for name in names:
        pid = name.rsplit("-", 1)[-1]
        if not name.startswith(PROJECT_PREFIX) or not pid.isdigit() or _alive(int(pid)):
            continue
        label = f"label={LABEL_PROJECT}={name}"
        for found in _leftovers(label):  # containers first, then networks, then volumes
            kind, obj = found.split(" ", 1)
            _run(["docker", kind, "rm", *(["-f"] if kind == "container" else []), obj])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_until(predicate: Any, timeout: float, interval: float = 0.25) -> Any:
    """Call ``predicate`` until it returns something truthy or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@contextlib.contextmanager
def _one_stack_at_a_time() -> Iterator[None]:
    # Recipes publish ports and claim fixed link-local subnets: under pytest-xdist, workers
    # take turns instead of colliding.
    with open(Path("/tmp") / "imdsmock-docker-tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@dataclass
class Container:
    """One container started with ``docker run -d`` by a test."""

    id: str

    def exec(self, *argv: str, env: dict[str, str] | None = None, wait: float = 0) -> int:
        """Exit status of a command in the container; with ``wait``, retry until it is 0."""
        flags = [f"-e{k}={v}" for k, v in (env or {}).items()]

        def status() -> int:
            return _run(["docker", "exec", *flags, self.id, *argv]).returncode

        first = wait_until(lambda: status() == 0, wait) if wait else None
        return 0 if first else status()


@pytest.fixture
def docker_run() -> Iterator[Any]:
    """``docker_run(image, *args)`` -> a running Container, force-removed afterwards."""
    started: list[str] = []

    def run(image: str, *args: str) -> Container:
        result = _run(["docker", "run", "-d", "--label", f"{PROJECT_PREFIX}pid={os.getpid()}",
                       image, *args])  # fmt: skip
        assert result.returncode == 0, result.stderr
        started.append(result.stdout.strip())
        return Container(started[-1])

    try:
        yield run
    finally:
        if started:
            _run(["docker", "rm", "-f", "-v", *started])


@pytest.fixture
def docker_inspect() -> Any:
    """``docker_inspect(obj, fmt)``: ``docker inspect --format fmt obj``."""
    return Stack.inspect


@pytest.fixture
def compose_stack(images: dict[str, str]) -> Iterator[Any]:
    """A factory: ``compose_stack(recipe)`` -> a Stack, always brought down afterwards."""
    compose = compose_command()
    assert compose is not None
    made: list[Stack] = []

    def make(recipe: str) -> Stack:
        stack = Stack(
            recipe=recipe,
            project=f"{PROJECT_PREFIX}{recipe}-{os.getpid()}",
            compose=compose,
            control_port=free_port(),
            control_token=secrets.token_urlsafe(16),
        )
        made.append(stack)
        return stack

    with _one_stack_at_a_time():
        try:
            yield make
        finally:
            for stack in made:
                stack.down()
