"""The project's image run as the Helm chart's pods run it, on the real Docker engine.

Each container is started from the chart's rendered pod spec (tests/chartkit.py renders it
with the real Helm engine): its arguments, variables, volumes (ConfigMap and Secret files,
emptyDir as tmpfs, hostPath as host directories) and security context (user, read-only
root, capabilities dropped and added, no privilege escalation) become `docker run` flags.
The pod's shared network namespace is a container's, joined with `--network container:`.
So the image's entrypoint is shown to suit both modes under the chart's restrictions:
service mode's mock and its helm test pod; node mode's mock and `imdsmock route node`
(its rules in place, removed by the preStop hook's command, SIGTERM ending it cleanly),
and the dummy link (the init container, then the mock binding 169.254.169.254:80 as root
with NET_BIND_SERVICE alone, in a namespace whose unprivileged ports start at 1024 as a
node's do).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("helm_python", reason="helm-python-sdk is in the test extra")

from chartkit import documents, render

pytestmark = pytest.mark.docker

TOKEN = "chart-test-" + secrets.token_hex(8)
NAME = f"imdsmock-chart-{os.getpid()}"


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def pod(values: dict[str, Any], kind: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The pod spec of the chart's workload (or test Pod) of ``kind``, and every object."""
    objs = documents(render({**values, "image": {"repository": "imdsmock", "tag": "local"}}))
    (workload,) = [o for o in objs if o["kind"] == kind]
    spec = workload["spec"] if kind == "Pod" else workload["spec"]["template"]["spec"]
    return spec, objs


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion from the variables set before."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), text)


class Pod:
    """Containers of one pod: a shared network namespace, volumes on the host."""

    def __init__(self, spec: dict[str, Any], objs: list[dict[str, Any]], tmp: Path) -> None:
        self.spec = spec
        self.objs = objs
        self.tmp = tmp
        self.started: list[str] = []
        self.fields = {"spec.nodeName": "node-1", "status.hostIP": ""}

    def volume_flags(self, c: dict[str, Any]) -> list[str]:
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        flags: list[str] = []
        for mount in c.get("volumeMounts", []):
            volume, path = volumes[mount["name"]], mount["mountPath"]
            ro = ":ro" if mount.get("readOnly") else ""
            if "emptyDir" in volume:
                flags += ["--tmpfs", f"{path}:rw,mode=1777"]
                continue
            source = self.tmp / mount["name"]
            if "configMap" in volume:
                (cm,) = [o for o in self.objs if o["kind"] == "ConfigMap"]
                source.mkdir(exist_ok=True)
                for key, text in cm["data"].items():
                    (source / key).write_text(text, encoding="utf-8")
            elif "secret" in volume:
                source.mkdir(exist_ok=True)
                for item in volume["secret"]["items"]:
                    (source / item["path"]).write_text(TOKEN, encoding="utf-8")
            elif volume["hostPath"]["type"] == "FileOrCreate":
                source.touch()
            else:
                source.mkdir(exist_ok=True)
            source.chmod(0o755 if source.is_dir() else 0o644)
            flags += ["-v", f"{source}:{path}{ro}"]
        return flags

    def env(self, c: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in c.get("env", []):
            if "value" in item:
                env[item["name"]] = _expand(item["value"], env)
            elif "fieldRef" in item["valueFrom"]:
                env[item["name"]] = self.fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
            else:
                assert "secretKeyRef" in item["valueFrom"]
                env[item["name"]] = TOKEN
        return env

    def run_flags(self, c: dict[str, Any], network: list[str]) -> list[str]:
        sc = c["securityContext"]
        user = str(sc["runAsUser"])
        flags = [*network, "--user", f"{user}:{sc.get('runAsGroup', user)}"]
        if sc["readOnlyRootFilesystem"]:
            flags.append("--read-only")
        flags += ["--cap-drop", "ALL"]
        for cap in sc["capabilities"].get("add", []):
            flags += ["--cap-add", cap]
        assert not sc.get("privileged", False)
        if sc["allowPrivilegeEscalation"] is False:
            flags += ["--security-opt", "no-new-privileges"]
        for key, value in self.env(c).items():
            flags += ["-e", f"{key}={value}"]
        return [*flags, *self.volume_flags(c)]

    def start(self, name: str, network: list[str], *, wait: bool = False) -> tuple[str, int]:
        """Start the container ``name`` of the pod spec (detached, unless ``wait``)."""
        (c,) = [
            x for x in [*self.spec.get("initContainers", []), *self.spec["containers"]]
            if x["name"] == name
        ]  # fmt: skip
        env = self.env(c)
        argv = ["docker", "run", "--name", f"{NAME}-{name}", "--label", "imdsmock.test=chart"]
        argv += [] if wait else ["-d"]
        argv += self.run_flags(c, network)
        if "command" in c:
            argv += ["--entrypoint", c["command"][0], c["image"], *c["command"][1:]]
        else:
            argv.append(c["image"])
        argv += [_expand(arg, env) for arg in c.get("args", [])]
        done = _run(argv, timeout=120)
        self.started.append(f"{NAME}-{name}")
        return (done.stdout + done.stderr).strip(), done.returncode

    def exec(self, name: str, *argv: str) -> tuple[int, str]:
        done = _run(["docker", "exec", f"{NAME}-{name}", *argv], timeout=60)
        return done.returncode, (done.stdout + done.stderr).strip()

    def probe(self, name: str, timeout: float = 30) -> str:
        """Run the container's readiness probe until it passes; its output."""
        (c,) = [x for x in self.spec["containers"] if x["name"] == name]
        command = c["readinessProbe"]["exec"]["command"]
        deadline = time.monotonic() + timeout
        while True:
            status, out = self.exec(name, *command)
            if status == 0:
                return out
            if time.monotonic() > deadline:
                logs = _run(["docker", "logs", f"{NAME}-{name}"]).stdout
                pytest.fail(f"{name} never ready: {out}\n{logs[-2000:]}")
            time.sleep(0.5)

    def remove(self) -> None:
        for name in reversed(self.started):
            _run(["docker", "rm", "-f", name])


@contextlib.contextmanager
def running(spec: dict[str, Any], objs: list[dict[str, Any]], tmp: Path) -> Iterator[Pod]:
    p = Pod(spec, objs, tmp)
    try:
        yield p
    finally:
        p.remove()


def ip_of(container: str) -> str:
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    return _run(["docker", "inspect", "-f", fmt, container]).stdout.strip()


def our_rules(p: Pod, name: str) -> str:
    status, out = p.exec(name, "iptables-save", "-t", "nat")
    assert status == 0, out
    return "\n".join(line for line in out.splitlines() if "IMDSMOCK" in line)


def test_service_mode_pod_and_its_helm_test(images: dict[str, str], tmp_path: Path) -> None:
    """The mock runs as the Deployment has it (user 10001, read-only root, no capability,
    config and token from files) and turns ready; the helm test pod's two containers pass
    through the Service's name; the control API refuses a request without the token."""
    network = f"{NAME}-svc"
    assert _run(["docker", "network", "create", network]).returncode == 0
    spec, objs = pod({"mode": "service"}, "Deployment")
    test_spec, _ = pod({"mode": "service"}, "Pod")
    try:
        with running(spec, objs, tmp_path) as mock:
            out, status = mock.start(
                "imdsmock", ["--network", network, "--network-alias", "imdsmock"]
            )
            assert status == 0, out
            assert "healthy: instance-id i-" in mock.probe("imdsmock")
            # Docker has no Service: the test pod's URLs name the Service's ports, which map
            # to the container's (80 -> imds 1338, 1339 -> control 1339).
            (service,) = [o for o in objs if o["kind"] == "Service"]
            ports = {
                str(p["port"]): str(
                    next(c["containerPort"] for c in spec["containers"][0]["ports"]
                         if c["name"] == p["targetPort"])
                )
                for p in service["spec"]["ports"]
            }  # fmt: skip
            for c in test_spec["containers"]:
                for item in c["env"]:
                    if "value" in item:
                        item["value"] = re.sub(
                            r"(http://imdsmock):(\d+)",
                            lambda m: f"{m[1]}:{ports[m[2]]}",
                            item["value"],
                        )
            helm_test = Pod(test_spec, objs, tmp_path)
            try:
                for name in ("imds", "control"):
                    out, status = helm_test.start(name, ["--network", network], wait=True)
                    assert status == 0, f"helm test container {name}: {out}"
                refused = _run(
                    ["docker", "run", "--rm", "--network", network, images["mock"],
                     "ctl", "--url", "http://imdsmock:1339", "state"]
                )  # fmt: skip
                assert refused.returncode != 0
                assert "token" in (refused.stdout + refused.stderr)
            finally:
                helm_test.remove()
    finally:
        _run(["docker", "network", "rm", network])


def test_node_mode_agent_routes_and_cleans_up(images: dict[str, str], tmp_path: Path) -> None:
    """The DaemonSet's two containers share one network namespace as on a node: the mock
    (no capability, user 10001) listens on the namespace's address and turns ready; the
    routing container (root, NET_ADMIN and NET_RAW only, read-only root) puts its DNAT in
    place to that address; the preStop command removes it; SIGTERM ends it with status 0."""
    spec, objs = pod({"mode": "node", "node": {"podLookup": False}}, "DaemonSet")
    holder = f"{NAME}-pause-node"
    started = _run(
        ["docker", "run", "-d", "--name", holder, "--label", "imdsmock.test=chart",
         "--entrypoint", "sleep", images["mock"], "600"]
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        with running(spec, objs, tmp_path) as agent:
            agent.fields["status.hostIP"] = node_ip = ip_of(holder)
            shared = ["--network", f"container:{holder}"]
            out, status = agent.start("imdsmock", shared)
            assert status == 0, out
            assert "healthy: instance-id i-" in agent.probe("imdsmock")
            out, status = agent.start("route", shared)
            assert status == 0, out
            deadline = time.monotonic() + 30
            while "DNAT" not in our_rules(agent, "route") and time.monotonic() < deadline:
                time.sleep(0.5)
            rules = our_rules(agent, "route")
            assert f"--to-destination {node_ip}:1338" in rules
            assert "-i cali+" in rules
            (route,) = [c for c in spec["containers"] if c["name"] == "route"]
            pre_stop = route["lifecycle"]["preStop"]["exec"]["command"]
            status, out = agent.exec("route", *pre_stop)
            assert status == 0, out
            assert our_rules(agent, "route") == ""
            stopped = _run(["docker", "stop", "-t", "20", f"{NAME}-route"], timeout=60)
            assert stopped.returncode == 0
            code = _run(["docker", "inspect", "-f", "{{.State.ExitCode}}", f"{NAME}-route"])
            assert code.stdout.strip() == "0"
    finally:
        _run(["docker", "rm", "-f", holder])


@contextlib.contextmanager
def pause(image: str, name: str, *extra: str) -> Iterator[str]:
    """A container holding a network namespace for a pod's containers (the pause container)."""
    started = _run(
        ["docker", "run", "-d", "--name", name, "--label", "imdsmock.test=chart", *extra,
         "--entrypoint", "sleep", image, "600"]
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        yield name
    finally:
        _run(["docker", "rm", "-f", name])


DUMMY = {"mode": "node", "node": {"podLookup": False, "dummyLink": True}}
# A node's network namespace: unprivileged ports start at 1024 (Docker makes it 0).
NODE_PORTS = ("--sysctl", "net.ipv4.ip_unprivileged_port_start=1024")


def test_dummy_link_mock_binds_port_80_with_net_bind_service_alone(
    images: dict[str, str], tmp_path: Path
) -> None:
    """With the dummy link the mock, root with NET_BIND_SERVICE and no other capability,
    binds 169.254.169.254:80 in a namespace whose unprivileged ports start at 1024, as a
    node's do, and turns ready (the address put on lo here: the link is the next test's)."""
    spec, objs = pod(DUMMY, "DaemonSet")
    with pause(images["mock"], f"{NAME}-pause-bind", *NODE_PORTS) as holder:
        added = _run(
            ["docker", "run", "--rm", "--network", f"container:{holder}", "--cap-add",
             "NET_ADMIN", "--user", "0", "--entrypoint", "ip", images["mock"],
             "addr", "add", "169.254.169.254/32", "dev", "lo"]
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        with running(spec, objs, tmp_path) as agent:
            agent.fields["status.hostIP"] = ip_of(holder)
            out, status = agent.start("imdsmock", ["--network", f"container:{holder}"])
            assert status == 0, out
            assert "healthy: instance-id i-" in agent.probe("imdsmock")


def test_dummy_link_init_container_then_route_and_prestop(
    images: dict[str, str], tmp_path: Path
) -> None:
    """The init container puts 169.254.169.254 on imdsmock0 and exits 0, the mock binds
    there and turns ready, the routing container holds the link, and the preStop command
    takes it away."""
    spec, objs = pod(DUMMY, "DaemonSet")
    with (
        pause(images["mock"], f"{NAME}-pause-link", *NODE_PORTS) as holder,
        running(spec, objs, tmp_path) as agent,
    ):
        probe = _run(
            ["docker", "run", "--rm", "--network", f"container:{holder}", "--cap-add",
             "NET_ADMIN", "--user", "0", "--entrypoint", "ip", images["mock"],
             "link", "add", "probe0", "type", "dummy"]
        )  # fmt: skip
        if probe.returncode != 0:
            pytest.skip(f"this kernel makes no dummy links ({probe.stderr.strip()})")
        agent.fields["status.hostIP"] = ip_of(holder)
        shared = ["--network", f"container:{holder}"]
        out, status = agent.start("link", shared, wait=True)
        assert status == 0, out
        out, status = agent.start("imdsmock", shared)
        assert status == 0, out
        assert "healthy: instance-id i-" in agent.probe("imdsmock")
        out, status = agent.start("route", shared)
        assert status == 0, out
        status, out = agent.exec("route", "ip", "-4", "addr", "show", "dev", "imdsmock0")
        assert "169.254.169.254/32" in out
        (route,) = [c for c in spec["containers"] if c["name"] == "route"]
        status, out = agent.exec("route", *route["lifecycle"]["preStop"]["exec"]["command"])
        assert status == 0, out
        status, out = agent.exec("route", "ip", "link", "show", "imdsmock0")
        assert status != 0
