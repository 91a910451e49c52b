"""``route node`` for real: a node namespace, its pods, the agent, and the upstream IMDS.

The ``node`` namespace has a bridge ``cni0`` (10.210.0.1/24) with two pods on it, each a
namespace of its own behind a veth, routed by the node as a CNI's pods are; its uplink
(10.211.0.2) leads to an ``up`` namespace that holds 169.254.169.254 with another mock
standing in for the real IMDS of the node. The agent is the real mock (a fleet: one
instance per pod address) and ``imdsmock route node`` in the node namespace; a "host
network" process is anything run in the node namespace itself.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns_topology import TOKEN_PROBE, FaultyTools, Topology, snapshot

from mockprocess import IMDSMOCK

NODE_IP = "10.211.0.2"
PODS = {"pod1": "10.210.0.11", "pod2": "10.210.0.12"}
REAL_IMDS_ID = "i-0feedfacefeedface"

FLEET = f"""
options:
  hop-limit: 2
instances:
  - name: pod1
    match: {{source: [{PODS["pod1"]}]}}
    instance: {{instance-id: i-0aaaaaaaaaaaaaaa1, iam-role: pod1-role}}
  - name: pod2
    match: {{source: [{PODS["pod2"]}]}}
    instance: {{instance-id: i-0bbbbbbbbbbbbbbb2, iam-role: pod2-role}}
"""

#: Run in a pod: the instance ID (with a token) and the role botocore's IMDS fetcher finds.
SDK_PROBE = """
import json, urllib.request
from botocore.utils import InstanceMetadataFetcher
base = "http://169.254.169.254/latest"
put = urllib.request.Request(base + "/api/token", method="PUT",
                             headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
token = urllib.request.urlopen(put, timeout=2).read().decode()
get = urllib.request.Request(base + "/meta-data/instance-id",
                             headers={"X-aws-ec2-metadata-token": token})
creds = InstanceMetadataFetcher(timeout=1, num_attempts=1).retrieve_iam_role_credentials()
print(json.dumps({"instance": urllib.request.urlopen(get, timeout=2).read().decode(),
                  "role": creds.get("role_name"), "key": creds.get("access_key")}))
"""

INSTANCE_ID = ["curl", "-s", "-m", "2", "http://169.254.169.254/latest/meta-data/instance-id"]


class Node:
    """The node, its pods and the upstream IMDS of one test."""

    def __init__(self, topo: Topology, nat: str = "kube") -> None:
        """``nat``: the node's own nat rules: ``kube`` (kube-proxy's jump and a
        masquerade), ``masquerade`` (no PREROUTING rule) or ``none``."""
        self.topo = topo
        self.node, self.up = topo.ns("node"), topo.ns("up")
        topo.link(self.node, f"{NODE_IP}/24", self.up, "10.211.0.1/24")
        topo.sh(self.node, "ip", "route", "add", "default", "via", "10.211.0.1")
        topo.sh(self.up, "ip", "route", "add", "10.210.0.0/24", "via", NODE_IP)
        topo.sh(self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        topo.sh(self.node, "ip", "link", "add", "cni0", "type", "bridge")
        topo.sh(self.node, "ip", "addr", "add", "10.210.0.1/24", "dev", "cni0")
        topo.sh(self.node, "ip", "link", "set", "cni0", "up")
        self.pods: dict[str, str] = {}
        for name, address in PODS.items():
            pod = topo.ns(name)
            port, _ = topo.link(self.node, None, pod, f"{address}/24")
            topo.sh(self.node, "ip", "link", "set", port, "master", "cni0")
            topo.sh(pod, "ip", "route", "add", "default", "via", "10.210.0.1")
            self.pods[name] = pod
        # The node's real IMDS, one hop up, as on EC2; and rules a node already has.
        topo.sh(self.up, "ip", "addr", "add", "169.254.169.254/32", "dev", "lo")
        topo.mock(self.up, "169.254.169.254", 80, "--instance-id", REAL_IMDS_ID)
        rule = ("iptables", "-w", "-t", "nat")
        if nat == "kube":
            topo.sh(self.node, *rule, "-N", "KUBE-SERVICES")
            topo.sh(self.node, *rule, "-A", "PREROUTING", "-j", "KUBE-SERVICES")
            topo.sh(self.node, "nft", "add", "table", "inet", "kube")
        if nat != "none":
            topo.sh(self.node, *rule, "-A", "POSTROUTING", "-s", "10.210.0.0/24", "!", "-o",
                    "cni0", "-j", "MASQUERADE")  # fmt: skip
        topo.settle(self.node)

    def start_mock(self, *extra: str) -> subprocess.Popen[str]:
        """The agent's mock, on the node's address, serving one instance per pod."""
        config = self.topo.tmp / "fleet.yaml"
        config.write_text(FLEET, encoding="ascii")
        return self.topo.mock(self.node, NODE_IP, 1338, "-c", str(config), *extra)

    def agent(self, *args: str) -> subprocess.Popen[str]:
        """``route node`` in the foreground, once it says it is ready."""
        proc = self.topo.spawn(self.node, [*IMDSMOCK.argv, "route", "node", *args])
        wait_for_line(proc, "imdsmock route node: ready")
        return proc

    def route_node(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``imdsmock route node ARGS`` in the node namespace, to its end."""
        return self.topo.route(self.node, "node", *args, check=check)

    def sdk(self, pod: str) -> dict[str, str]:
        """What a pod's SDK call to 169.254.169.254 gets."""
        found: dict[str, str] = json.loads(self.topo.py(self.pods[pod], "-c", SDK_PROBE).stdout)
        return found

    def host_network_instance(self) -> str:
        """What a host-network process of the node reaches at 169.254.169.254."""
        return self.topo.sh(self.node, *INSTANCE_ID).stdout

    def state(self) -> str:
        """The node's addresses, routes and every rule set (counters dropped)."""
        return snapshot(self.topo, self.node)


def wait_for_line(proc: subprocess.Popen[str], wanted: str, timeout: float = 20) -> None:
    """Read ``proc``'s stdout (unbuffered, from its descriptor) until ``wanted`` shows."""
    assert proc.stdout is not None
    fd, seen = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and wanted.encode() not in seen:
        if select.select([fd], [], [], 0.2)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            seen += chunk
    if wanted.encode() not in seen:
        raise AssertionError(f"no {wanted!r} in {seen!r}: {proc.poll()=}")


@pytest.fixture
def cluster(topo: Topology) -> Node:
    """A node with two pods and an upstream IMDS, nothing of ours in place."""
    return Node(topo)


BACKENDS = ["iptables-nft", "iptables-legacy", "nft"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_pod_gets_its_own_instance_and_the_node_keeps_its_real_imds(
    cluster: Node, backend: str
) -> None:
    """Each pod's SDK call to 169.254.169.254 reaches the agent's mock and gets the
    instance and role of its own address; the node's host-network processes (the agent's
    among them) reach the node's IMDS before, while and after the agent routes."""
    assert cluster.host_network_instance() == REAL_IMDS_ID
    cluster.start_mock()
    agent = cluster.agent("--mock", f"{NODE_IP}:1338", "--backend", backend)
    assert cluster.sdk("pod1")["instance"] == "i-0aaaaaaaaaaaaaaa1"
    assert cluster.sdk("pod1")["role"] == "pod1-role"
    second = cluster.sdk("pod2")
    assert (second["instance"], second["role"]) == ("i-0bbbbbbbbbbbbbbb2", "pod2-role")
    assert second["key"] != cluster.sdk("pod1")["key"]
    assert cluster.host_network_instance() == REAL_IMDS_ID
    agent.send_signal(signal.SIGTERM)
    out, _ = agent.communicate(timeout=30)
    assert agent.returncode == 0
    assert "SIGTERM: removed" in out
    assert cluster.host_network_instance() == REAL_IMDS_ID
    pod = cluster.topo.sh(cluster.pods["pod1"], *INSTANCE_ID, check=False)
    assert pod.stdout == REAL_IMDS_ID  # the pod's packets go the node's way again


@pytest.mark.parametrize("backend", BACKENDS)
def test_rules_are_idempotent_and_gone_after_sigterm(cluster: Node, backend: str) -> None:
    """A second route node changes nothing; SIGTERM leaves the node exactly as before."""
    cluster.start_mock()
    before = cluster.state()
    args = ("--mock", f"{NODE_IP}:1338", "--ecs", "--interface", "cni0", "--interface",
            "!eth0", "--backend", backend)  # fmt: skip
    agent = cluster.agent(*args)
    during = cluster.state()
    assert during != before
    again = cluster.route_node(*args, "--once")
    assert "(already in place)" in again.stdout
    assert cluster.state() == during
    status = cluster.route_node("--status").stdout
    assert "IMDSMOCK-NODE" in status or "imdsmock_node" in status
    agent.send_signal(signal.SIGTERM)
    agent.communicate(timeout=30)
    assert agent.returncode == 0
    assert cluster.state() == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_after_sigkill_the_prestop_command_removes_the_rules(cluster: Node, backend: str) -> None:
    """Killed outright, the agent leaves its rules; ``route node --down`` (the preStop hook)
    removes them from the record and by name, and a second --down has nothing to do."""
    cluster.start_mock()
    before = cluster.state()
    agent = cluster.agent("--mock", f"{NODE_IP}:1338", "--backend", backend)
    agent.kill()
    agent.communicate(timeout=10)
    assert cluster.state() != before
    assert cluster.sdk("pod2")["role"] == "pod2-role"  # still routed: nobody removed them
    assert "removed" in cluster.route_node("--down").stdout
    assert cluster.state() == before
    assert cluster.route_node("--down").stdout == "imdsmock route node: nothing to remove\n"


def test_a_new_agent_takes_over_the_rules_a_killed_one_left(cluster: Node) -> None:
    """A restarted agent (new port) replaces the left rules in place, then removes them."""
    cluster.start_mock()
    before = cluster.state()
    first = cluster.agent("--mock", f"{NODE_IP}:1999")
    first.kill()
    first.communicate(timeout=10)
    second = cluster.agent("--mock", f"{NODE_IP}:1338")
    assert cluster.sdk("pod1")["instance"] == "i-0aaaaaaaaaaaaaaa1"
    second.send_signal(signal.SIGTERM)
    second.communicate(timeout=30)
    assert cluster.state() == before


def test_sighup_puts_back_rules_someone_else_removed(cluster: Node) -> None:
    """Another tool flushed our chain: SIGHUP makes the agent put it back."""
    cluster.start_mock()
    agent = cluster.agent("--mock", f"{NODE_IP}:1338", "--backend", "iptables-nft")
    cluster.topo.sh(cluster.node, "iptables-nft", "-w", "-t", "nat", "-F", "IMDSMOCK-NODE")
    assert cluster.topo.sh(cluster.pods["pod1"], *INSTANCE_ID).stdout == REAL_IMDS_ID
    agent.send_signal(signal.SIGHUP)
    wait_for_line(agent, "SIGHUP: rules checked")
    assert cluster.sdk("pod1")["role"] == "pod1-role"


HOP_CASES = [
    # where the mock runs, its hop limit, what the pod's token PUT gets
    pytest.param("node", 1, "token", id="on-the-node-hop1-works"),
    pytest.param("upstream", 1, "timeout", id="one-routed-hop-hop1-times-out"),
    pytest.param("upstream", 2, "token", id="one-routed-hop-hop2-works"),
]


@pytest.mark.parametrize(("where", "hop_limit", "outcome"), HOP_CASES)
def test_hop_limit_counts_the_routed_hops_between_pod_and_mock(
    cluster: Node, where: str, hop_limit: int, outcome: str
) -> None:
    """The token answer leaves the mock with TTL = hop limit. A mock on the node answers
    the pod without forwarding, so 1 is enough; a mock the node forwards to (another
    machine) is one routed hop away: 1 dies on the way, 2 arrives."""
    topo = cluster.topo
    if where == "node":
        topo.mock(cluster.node, NODE_IP, 1338, "--hop-limit", str(hop_limit))
        target = f"{NODE_IP}:1338"
    else:
        topo.sh(cluster.up, "ip", "addr", "add", "10.212.0.1/32", "dev", "lo")
        topo.sh(cluster.node, "ip", "route", "add", "10.212.0.1/32", "via", "10.211.0.1")
        topo.mock(cluster.up, "10.212.0.1", 1338, "--hop-limit", str(hop_limit),
                  "--control-port", "1349")  # fmt: skip
        target = "10.212.0.1:1338"
    cluster.agent("--mock", target, "--interface", "cni0")
    got = topo.py(cluster.pods["pod1"], "-c", TOKEN_PROBE).stdout.strip()
    assert got == outcome


def dummy_links_work(topo: Topology, ns: str) -> bool:
    """Whether this kernel makes dummy links (some VM kernels are built without)."""
    made = topo.sh(ns, "ip", "link", "add", "probe0", "type", "dummy", check=False)
    topo.sh(ns, "ip", "link", "del", "probe0", check=False)
    return made.returncode == 0


def test_dummy_link_mode_holds_the_address_for_pods_and_the_node(cluster: Node) -> None:
    """--dummy-link: no rules; 169.254.169.254 on imdsmock0 and the mock listening there.
    Pods reach it, and so do the node's own processes (the address is local now):
    that is the trade-off docs/networking.md names. SIGTERM removes the link."""
    if not dummy_links_work(cluster.topo, cluster.node):
        pytest.skip("this kernel has no dummy link type (ip link add type dummy fails)")
    before = cluster.state()
    agent = cluster.agent("--dummy-link")
    cluster.topo.mock(cluster.node, "169.254.169.254", 80, "--instance-id", "i-0dddddddddddddddd")
    pod = cluster.topo.sh(cluster.pods["pod1"], *INSTANCE_ID)
    assert pod.stdout == "i-0dddddddddddddddd"
    assert cluster.host_network_instance() == "i-0dddddddddddddddd"
    agent.send_signal(signal.SIGTERM)
    agent.communicate(timeout=30)
    assert agent.returncode == 0
    assert cluster.state() == before


def test_without_dummy_links_the_dummy_link_mode_is_one_line_and_changes_nothing(
    cluster: Node,
) -> None:
    """On a kernel built without dummy links, --dummy-link says so in one line (exit 1)
    and leaves the node as it was."""
    if dummy_links_work(cluster.topo, cluster.node):
        pytest.skip("this kernel has dummy links (the dummy-link mode test runs instead)")
    before = cluster.state()
    done = cluster.route_node("--dummy-link", "--once", check=False)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "no dummy links: CONFIG_DUMMY; route without --dummy-link" in done.stderr
    assert "rolled back, the node is as it was before" in done.stderr
    assert cluster.state() == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failure_at_any_step_rolls_the_node_back(cluster: Node, backend: str) -> None:
    """Call N of route node --once fails, for every changing call: exit 1, one line, the
    node as before (an earlier agent's rules included) and its record too."""
    topo = cluster.topo
    tools = FaultyTools(topo.tmp / "tools", topo.env)
    args = ("--mock", f"{NODE_IP}:1338", "--ecs", "--backend", backend, "--once")
    cluster.route_node("--mock", f"{NODE_IP}:1500", "--backend", "nft", "--once")
    before = cluster.state()
    record = sorted(p.name for p in (topo.tmp / "run").iterdir())
    tools.arm()
    topo.sh(cluster.node, *IMDSMOCK.argv, "route", "node", *args, env=tools.env)
    changing = tools.changing_calls()
    assert changing
    topo.sh(cluster.node, *IMDSMOCK.argv, "route", "node", "--down")
    cluster.route_node("--mock", f"{NODE_IP}:1500", "--backend", "nft", "--once")
    assert cluster.state() == before
    for call in changing:
        tools.arm(fail=call)
        done = topo.sh(cluster.node, *IMDSMOCK.argv, "route", "node", *args, env=tools.env,
                       check=False)  # fmt: skip
        assert done.returncode == 1, (call, done.stderr)
        assert done.stderr.count("\n") == 1
        assert "rolled back, the node is as it was before" in done.stderr
        assert cluster.state() == before, f"call {call}: {tools.calls}"
        assert sorted(p.name for p in (topo.tmp / "run").iterdir()) == record


def test_sigterm_while_installing_rolls_back_with_status_143(cluster: Node) -> None:
    """A SIGTERM while a changing command runs: rolled back, exit 128 + 15, one line."""
    topo = cluster.topo
    tools = FaultyTools(topo.tmp / "tools", topo.env)
    before = cluster.state()
    tools.arm()
    args = ["route", "node", "--mock", f"{NODE_IP}:1338", "--backend", "iptables-nft", "--once"]
    topo.sh(cluster.node, *IMDSMOCK.argv, *args, env=tools.env)
    last = tools.changing_calls()[-1]
    topo.sh(cluster.node, *IMDSMOCK.argv, "route", "node", "--down")
    tools.arm(sleep=last)
    proc = topo.spawn(cluster.node, [*IMDSMOCK.argv, *args], env=tools.env)
    tools.wait_until_sleeping()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "node interrupted by SIGTERM; rolled back" in err
    assert cluster.state() == before


def test_removal_retries_when_a_command_fails_once(cluster: Node) -> None:
    """The first removal command fails (as when the xtables lock is held too long): the
    agent tries again and still leaves the node as it was."""
    topo = cluster.topo
    tools = FaultyTools(topo.tmp / "tools", topo.env)
    before = cluster.state()
    topo.sh(cluster.node, *IMDSMOCK.argv, "route", "node", "--mock", f"{NODE_IP}:1338",
            "--backend", "iptables-legacy", "--once")  # fmt: skip
    tools.arm()
    topo.sh(cluster.node, *IMDSMOCK.argv, "route", "node", "--down", env=tools.env)
    first = tools.changing_calls()[0]
    topo.sh(cluster.node, *IMDSMOCK.argv, "route", "node", "--mock", f"{NODE_IP}:1338",
            "--backend", "iptables-legacy", "--once")  # fmt: skip
    tools.arm(fail=first)
    done = topo.sh(cluster.node, *IMDSMOCK.argv, "route", "node", "--down", env=tools.env)
    assert "removed" in done.stdout
    assert cluster.state() == before
    assert not Path(topo.tmp / "run").exists() or not list((topo.tmp / "run").iterdir())


#: Run in the node namespace: the stub Kubernetes API serving node-1's pods, printing its URL.
KUBE_API = f"""
import time
from kubestub import KubeStub
stub = KubeStub().start()
stub.add(stub.pod("web-1", "{PODS["pod1"]}", namespace="shop", labels={{"app": "web"}}))
stub.add(stub.pod("report-7", "{PODS["pod2"]}", namespace="jobs",
                  annotations={{"imdsmock.io/instance": "batch"}}))
stub.add(stub.pod("imdsmock-agent", "{NODE_IP}", namespace="imds", host_network=True))
stub.add(stub.pod("elsewhere", "10.210.0.99", node="node-2"))
print(stub.url, flush=True)
while True:
    time.sleep(60)
"""

KUBE_FLEET = """
instance: {{instance-id: i-0d0d0d0d0d0d0d0d0, iam-role: node-default}}
options: {{hop-limit: 2}}
fleet:
  recognize: [kubernetes]
  kubernetes-api: {url}
  kubernetes-node: node-1
instances:
  - name: web
    match: {{pod: [{{namespace: shop, labels: {{app: web}}}}]}}
    instance: {{instance-id: i-0aaaaaaaaaaaaaaa1, iam-role: web-role}}
  - name: batch
    instance: {{instance-id: i-0bbbbbbbbbbbbbbb2, iam-role: batch-role}}
"""


def test_the_kubernetes_lookup_names_each_pod_routed_by_the_agent(cluster: Node) -> None:
    """With the pod lookup (a stub API server serving node-1's pods): each pod routed by
    route node is recognised by its pod IP, which the DNAT keeps: web-1 by its labels,
    report-7 by its annotation; the clients table names the pods. The agent's own
    host-network pod (the node's address) is no pod: asking the mock directly it gets the
    default instance, and at 169.254.169.254 it still reaches the node's real IMDS."""
    topo = cluster.topo
    tests = Path(__file__).resolve().parents[1]
    env = {**topo.env, "PYTHONPATH": f"{tests}:{topo.env['PYTHONPATH']}"}
    api = topo.spawn(cluster.node, [sys.executable, "-c", KUBE_API], env=env)
    assert api.stdout is not None
    url = api.stdout.readline().strip()
    config = topo.tmp / "kube-fleet.yaml"
    config.write_text(KUBE_FLEET.format(url=url), encoding="ascii")
    topo.mock(cluster.node, NODE_IP, 1338, "-c", str(config))
    cluster.agent("--mock", f"{NODE_IP}:1338", "--interface", "cni0")
    deadline = time.monotonic() + 15
    while cluster.sdk("pod1")["role"] != "web-role":  # the watch lists the pods at start
        assert time.monotonic() < deadline, "web-1 never recognised"
        time.sleep(0.2)
    assert cluster.sdk("pod1")["instance"] == "i-0aaaaaaaaaaaaaaa1"
    batch = cluster.sdk("pod2")
    assert (batch["instance"], batch["role"]) == ("i-0bbbbbbbbbbbbbbb2", "batch-role")
    clients = topo.sh(cluster.node, "curl", "-s", "http://127.0.0.1:1339/v1/instances/web/clients")
    assert "pod shop/web-1" in clients.stdout
    assert PODS["pod1"] in clients.stdout
    direct = topo.sh(
        cluster.node, "curl", "-s", f"http://{NODE_IP}:1338/latest/meta-data/instance-id"
    )
    assert direct.stdout == "i-0d0d0d0d0d0d0d0d0"
    assert cluster.host_network_instance() == REAL_IMDS_ID


@pytest.mark.parametrize("nat", ["none", "masquerade"])
def test_what_iptables_nft_made_for_our_chain_goes_with_it(topo: Topology, nat: str) -> None:
    """On a node without a nat PREROUTING chain (or without any nat table), iptables-nft
    makes them for our jump; SIGTERM, --down after SIGKILL, and a rollback at each changing
    call delete them again, so the node's rule set is exactly as before."""
    cluster = Node(topo, nat=nat)
    cluster.start_mock()
    before = cluster.state()
    args = ("--mock", f"{NODE_IP}:1338", "--backend", "iptables-nft")
    agent = cluster.agent(*args)
    assert "chain PREROUTING" in topo.sh(cluster.node, "nft", "list", "table", "ip", "nat").stdout
    agent.send_signal(signal.SIGTERM)
    agent.communicate(timeout=30)
    assert cluster.state() == before
    killed = cluster.agent(*args)
    killed.kill()
    killed.communicate(timeout=10)
    cluster.route_node("--down")
    assert cluster.state() == before
    tools = FaultyTools(topo.tmp / "tools", topo.env)
    tools.arm()
    topo.sh(cluster.node, *IMDSMOCK.argv, "route", "node", *args, "--once", env=tools.env)
    changing = tools.changing_calls()
    cluster.route_node("--down")
    for call in changing:
        tools.arm(fail=call)
        done = topo.sh(cluster.node, *IMDSMOCK.argv, "route", "node", *args, "--once",
                       env=tools.env, check=False)  # fmt: skip
        assert done.returncode == 1, (call, done.stderr)
        assert cluster.state() == before, f"call {call}: {tools.calls}"
