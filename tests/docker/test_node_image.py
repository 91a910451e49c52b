"""The project's image as the node-mode agent, on the real Docker engine.

The mock, unprivileged, holds a network namespace on a network of the test; a container
of the image runs ``imdsmock route node`` in that namespace through the image's own
entrypoint, as root with only NET_ADMIN and NET_RAW (as the chart's ``route`` container
shares the node's with the mock). A client container on the same network, routed to 169.254.169.254 through the
agent's address, is DNATed on the agent's ``eth0`` to the mock. ``docker stop`` (SIGTERM to
PID 1) removes the rules; after ``docker kill`` (SIGKILL) the preStop command, run in a
container joined to the namespace, does.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.docker

PROJECT = f"imdsmock-test-node-{os.getpid()}"
LABEL = f"com.docker.compose.project={PROJECT}"
NODE_ID = "i-0c0c0c0c0c0c0c0c0"
ROUTER = ("--user", "0", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW")
CLIENT = """
import urllib.request
print(urllib.request.urlopen("http://169.254.169.254/latest/meta-data/instance-id",
                             timeout=3).read().decode())
"""


def _run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


class Node:
    """A network of this test, and the containers started on it (all removed at the end)."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.started: list[str] = []
        for _ in range(20):  # a /24 no other network of this engine holds
            self.prefix = f"172.{random.randint(20, 31)}.{random.randint(0, 255)}"
            made = _run(
                "docker", "network", "create", "--label", LABEL,
                "--subnet", f"{self.prefix}.0/24", PROJECT,
            )  # fmt: skip
            if made.returncode == 0:
                break
            assert "overlap" in made.stderr, made.stderr
        else:  # pragma: no cover - twenty overlapping subnets in a row
            pytest.fail("no free /24 for the test network")
        self.agent_ip = f"{self.prefix}.2"

    def start(self, name: str, *argv: str) -> str:
        """``docker run -d`` of the image with ``argv`` (docker flags, then ``--``, then the
        image's arguments); the container's name."""
        flags, _, args = " ".join(argv).partition(" -- ")
        full = f"{PROJECT}-{name}"
        made = _run(
            "docker", "run", "-d", "--name", full, "--label", LABEL, *flags.split(),
            self.image, *args.split(),
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        self.started.append(full)
        return full

    def in_namespace(self, of: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``imdsmock ARGS`` as root with NET_ADMIN, in the network namespace of ``of``."""
        return _run(
            "docker", "run", "--rm", "--label", LABEL, "--network", f"container:{of}", *ROUTER,
            self.image, *args,
        )  # fmt: skip

    def logs(self, name: str) -> str:
        """What a container printed (the entrypoint merges stderr into stdout)."""
        return _run("docker", "logs", name).stdout

    def close(self) -> None:
        """Remove every container and the network."""
        if self.started:
            _run("docker", "rm", "-f", *reversed(self.started))
        _run("docker", "network", "rm", PROJECT)


@pytest.fixture
def node(images: dict[str, str]) -> Iterator[Node]:
    """A network for this test, with nothing on it yet."""
    made = Node(images["mock"])
    try:
        yield made
    finally:
        made.close()


def wait_for(check: str, name: str, node: Node, timeout: float = 30) -> str:
    """The logs of ``name`` once they hold ``check``."""
    deadline = time.monotonic() + timeout
    while check not in (logs := node.logs(name)):
        assert time.monotonic() < deadline, f"no {check!r} in {name}'s logs: {logs}"
        time.sleep(0.3)
    return logs


def test_the_image_routes_a_node_and_removes_its_rules_on_stop_or_by_the_prestop_command(
    node: Node,
) -> None:
    """The image's entrypoint runs route node as PID 1 with NET_ADMIN and NET_RAW only: a
    client routed through it reaches the mock; docker stop removes the rules; after a
    SIGKILL, route node --down in the namespace removes them."""
    mock = node.start(
        "mock", "--network", PROJECT, "--ip", node.agent_ip, "--", "--instance-id", NODE_ID
    )
    agent = node.start(
        "agent", "--network", f"container:{mock}", *ROUTER,
        "--", "route", "node", "--mock", f"{node.agent_ip}:1338", "--interface", "eth0",
    )  # fmt: skip
    wait_for("imdsmock route node: ready", agent, node)
    client = _run(
        "docker", "run", "--rm", "--label", LABEL, "--network", PROJECT, "--user", "0",
        "--cap-add", "NET_ADMIN", "--entrypoint", "sh", node.image, "-c",
        f"ip route add 169.254.169.254/32 via {node.agent_ip} && "
        f"for i in $(seq 50); do python3 -c '{CLIENT}' && exit 0; sleep 0.2; done; exit 1",
    )  # fmt: skip
    assert client.stdout.strip().splitlines()[-1:] == [NODE_ID], client.stderr
    status = node.in_namespace(mock, "route", "node", "--status")
    assert f"--to-destination {node.agent_ip}:1338" in status.stdout, status.stderr

    stopped = _run("docker", "stop", "-t", "20", agent)
    assert stopped.returncode == 0, stopped.stderr
    assert "SIGTERM: removed" in node.logs(agent)
    assert _run("docker", "inspect", "-f", "{{.State.ExitCode}}", agent).stdout.strip() == "0"
    left = node.in_namespace(mock, "route", "node", "--status").stdout
    assert "nothing of route node's is in place" in left

    # Again, then killed outright: the rules stay until the preStop command runs.
    again = node.start(
        "again", "--network", f"container:{mock}", *ROUTER,
        "--", "route", "node", "--mock", f"{node.agent_ip}:1338", "--interface", "eth0",
    )  # fmt: skip
    wait_for("imdsmock route node: ready", again, node)
    assert _run("docker", "kill", again).returncode == 0
    kept = node.in_namespace(mock, "route", "node", "--status").stdout
    assert "IMDSMOCK-NODE" in kept
    down = node.in_namespace(mock, "route", "node", "--down")
    assert "imdsmock route node: removed" in down.stdout, down.stderr
    left = node.in_namespace(mock, "route", "node", "--status").stdout
    assert "nothing of route node's is in place" in left
