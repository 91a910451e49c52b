"""The docker way on the real Docker engine: real containers on a user-defined network ask
the mock (served by this process on the network's gateway address) with curl; each is
recognised through the Engine API by its name, its imdsmock.instance label or the
template, and a container that takes the address of a stopped one is never served the
stopped one's instance.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imdsmock.app import App, serve_in_thread
from imdsmock.config.schema import Config
from imdsmock.config.template import derive
from support import make_config

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("IMDSMOCK_BASE_IMAGE", "imdsmock-base:bookworm")
# The label the suite's clean-up knows: what a killed run leaves is removed by the next.
PROJECT = f"imdsmock-test-fleetdocker-{os.getpid()}"
LABEL = f"com.docker.compose.project={PROJECT}"

WEB_ID = "i-0aaaaaaaaaaaaaaa1"
BATCH_ID = "i-0bbbbbbbbbbbbbbb2"


def _run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def base_image() -> str:
    """The offline base image (curl in it), built once per machine by the suite's script."""
    built = _run("bash", str(REPO / "scripts" / "build-base-image"), timeout=1200)
    assert built.returncode == 0, built.stderr
    return BASE_IMAGE


class Net:
    """A user-defined bridge network of this test, and the containers it starts on it."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.name = PROJECT
        self.started: list[str] = []
        for _ in range(20):  # a /24 no other network of this engine holds
            self.prefix = f"172.{random.randint(20, 31)}.{random.randint(0, 255)}"
            made = _run(
                "docker", "network", "create", "--label", LABEL,
                "--subnet", f"{self.prefix}.0/24", "--gateway", f"{self.prefix}.1", self.name,
            )  # fmt: skip
            if made.returncode == 0:
                break
            assert "overlap" in made.stderr, made.stderr
        else:  # pragma: no cover - twenty overlapping subnets in a row
            pytest.fail("no free /24 for the test network")
        self.gateway = f"{self.prefix}.1"

    def run(self, name: str, address: str | None, *labels: str) -> str:
        """Start a container named ``name`` at ``address`` (sleeping; None: on the host's
        network); its ID."""
        flags = [arg for label in (LABEL, *labels) for arg in ("--label", label)]
        where = ["--network", "host"] if address is None else [
            "--network", self.name, "--ip", address]  # fmt: skip
        made = _run(
            "docker", "run", "-d", "--name", name, *where, *flags, self.image, "sleep", "600"
        )
        assert made.returncode == 0, made.stderr
        self.started.append(made.stdout.strip())
        return self.started[-1]

    def stop(self, name: str) -> None:
        """Stop and remove a container (its address is free again)."""
        done = _run("docker", "rm", "-f", name)
        assert done.returncode == 0, done.stderr

    def curl(self, name: str, url: str) -> str:
        """What ``curl`` in the container gets: the body, or the status when not 200."""
        done = _run(
            "docker", "exec", name, "curl", "-s", "-m", "3", "-w", "\n%{http_code}", url
        )  # fmt: skip
        body, _, status = done.stdout.rpartition("\n")
        return body if status == "200" else f"status {status or done.returncode}"

    def close(self) -> None:
        if self.started:
            _run("docker", "rm", "-f", *self.started)
        _run("docker", "network", "rm", self.name)


@pytest.fixture
def net(base_image: str) -> Iterator[Net]:
    made = Net(base_image)
    try:
        yield made
    finally:
        made.close()


def until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@contextlib.contextmanager
def serving(config: Config) -> Iterator[App]:
    """The real mock served by this process (where the Python API would pick loopback,
    this one listens on the test network's gateway address, which its containers reach)."""
    app = App(config)
    thread = serve_in_thread(app, app.bind())
    try:
        yield app
    finally:
        app.shutdown()
        thread.join(5)


def config_for(net: Net, web: str) -> Config:
    return make_config(
        server={"host": net.gateway, "port": 0},
        instance={"instance-id": "i-0d0d0d0d0d0d0d0d0", "iam-role": "default-role"},
        fleet={"recognize": ["docker"], "unknown": "reject"},
        instances=[
            {"name": "web", "match": {"container": [web]},
             "instance": {"instance-id": WEB_ID, "iam-role": "web-role"}},
            {"name": "batch", "instance": {"instance-id": BATCH_ID, "iam-role": "batch-role"}},
        ],
        template={"ways": ["docker"], "instance": {"iam-role": "app-role"}},
    )  # fmt: skip


def test_each_container_gets_its_own_instance_and_a_reused_address_never_the_old_one(
    net: Net,
) -> None:
    pid = os.getpid()
    web, batch, job, intruder = (f"fleet-{n}-{pid}" for n in ("web", "batch", "job", "intruder"))
    config = config_for(net, web)
    with serving(config) as app:
        port = app.server.addresses()[0][1]
        base = f"http://{net.gateway}:{port}/latest/meta-data"
        ident, roles = f"{base}/instance-id", f"{base}/iam/security-credentials/"
        net.run(web, f"{net.prefix}.10")
        net.run(batch, f"{net.prefix}.11", "imdsmock.instance=batch")
        net.run(job, f"{net.prefix}.12")
        job_id = derive(config, "docker", job).instance["instance-id"]
        # The first connection of a container waits (at most a second) for the engine's
        # answer; on a busy machine it may be refused (fleet.unknown: reject), and the next
        # one is its own instance's.
        assert until(lambda: net.curl(web, ident) == WEB_ID), net.curl(web, ident)
        assert net.curl(web, roles) == "web-role"
        assert until(lambda: net.curl(batch, ident) == BATCH_ID), net.curl(batch, ident)
        assert net.curl(batch, roles) == "batch-role"
        assert until(lambda: net.curl(job, ident) == job_id), net.curl(job, ident)
        assert net.curl(job, roles) == "app-role"
        web_keys = net.curl(web, roles + "web-role")
        assert '"AccessKeyId"' in web_keys

        # web stops; a newcomer is given its address: never web's instance or credentials.
        net.stop(web)
        net.run(intruder, f"{net.prefix}.10")
        intruder_id = derive(config, "docker", intruder).instance["instance-id"]
        seen = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            seen.append(net.curl(intruder, ident))
            if seen[-1] == intruder_id:
                break
        assert WEB_ID not in seen, seen
        assert seen[-1] == intruder_id, seen
        assert net.curl(intruder, roles + "web-role").startswith("status 404")
        assert net.curl(intruder, roles) == "app-role"

        # job is started again (a new container, another address): the same instance.
        net.stop(job)
        net.run(job, f"{net.prefix}.13")
        assert until(lambda: net.curl(job, ident) == job_id), net.curl(job, ident)
        fleet = app.fleet
        assert fleet is not None
        assert {c.client for c in fleet.clients("web")} == {f"{net.prefix}.10"}

        # A container on the host's network has no address of its own: it asks from the
        # host's address, which no container has, so the docker way never recognises it,
        # even when it carries the label (here: refused, fleet.unknown being reject).
        hosted = f"fleet-hosted-{pid}"
        net.run(hosted, None, "imdsmock.instance=batch")
        answers = {net.curl(hosted, ident) for _ in range(5)}
        assert answers == {"status 404"}, answers
