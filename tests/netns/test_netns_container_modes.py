"""Container modes, with namespaces acting as a bridge network and its containers.

The ``br`` namespace holds a bridge (Docker's ``docker0`` or a compose network), the mock
and the application are each a namespace with a veth on it; the mock is known by name
through ``/etc/netns/APP/hosts``, as compose's embedded DNS would answer it.
"""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns_topology import BOTO3_PROBE, FaultyTools, Topology, snapshot

SCRIPT = str(Path(__file__).resolve().parents[2] / "src/imdsmock/netsetup/imdsmock-route.sh")
HOSTS = "127.0.0.1 localhost\n10.200.0.2 imds\n"
PY = sys.executable


def bridge_network(topo: Topology, *, gateway: bool = True) -> tuple[str, str]:
    """A bridge with the mock at 10.200.0.2 and the app at 10.200.0.3; returns (mock, app).

    With ``gateway`` the app has a default route via the bridge's 10.200.0.1, as on a
    Docker bridge network; without it the app is on an ``internal`` network.
    """
    br, mock, app = topo.ns("br"), topo.ns("mock"), topo.ns("app")
    topo.sh(br, "ip", "link", "add", "br0", "type", "bridge")
    topo.sh(br, "ip", "addr", "add", "10.200.0.1/24", "dev", "br0")
    topo.sh(br, "ip", "link", "set", "br0", "up")
    for ns, addr in ((mock, "10.200.0.2/24"), (app, "10.200.0.3/24")):
        port, _ = topo.link(br, None, ns, addr)
        topo.sh(br, "ip", "link", "set", port, "master", "br0")
    if gateway:
        topo.sh(app, "ip", "route", "add", "default", "via", "10.200.0.1")
    topo.etc(app, "hosts", HOSTS)
    topo.etc(app, "resolv.conf", "nameserver 127.0.0.1\n")
    return mock, app


def method_of(probe_stdout: str) -> str | None:
    """How boto3 found credentials, from the probe's last line (``None``: it found none)."""
    found = json.loads(probe_stdout.strip().splitlines()[-1])
    return None if found is None else str(found["method"])


def nat_rules(topo: Topology, ns: str) -> str:
    """The nat rules of ``ns`` as the system's iptables lists them."""
    return topo.sh(ns, "iptables", "-w", "-t", "nat", "-S").stdout


def wait_for_line(proc: subprocess.Popen[str], wanted: str, timeout: float = 15) -> None:
    """Read ``proc``'s stdout until a line contains ``wanted``; fail after ``timeout``."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=0.2):
            line = proc.stdout.readline()
            if wanted in line:
                return
            if not line:
                break
    raise AssertionError(f"no {wanted!r} from {proc.args!r}: {proc.poll()=}")


ENTRYPOINTS = {
    "python": (PY, "-m", "imdsmock", "route", "container", "--mock", "imds:1338", "--"),
    "sh": ("dash", SCRIPT, "--mock", "imds:1338", "--"),
}


@pytest.mark.parametrize("gateway", [True, False], ids=["bridge", "internal"])
@pytest.mark.parametrize("entrypoint", sorted(ENTRYPOINTS))
def test_entrypoint_routes_imds_to_the_mock_then_runs_the_command(
    topo: Topology, entrypoint: str, gateway: bool
) -> None:
    """The entrypoint DNATs 169.254.169.254 to the mock by name, then boto3 in CMD gets creds."""
    mock, app = bridge_network(topo, gateway=gateway)
    topo.mock(mock, "10.200.0.2", 1338)
    done = topo.sh(app, *ENTRYPOINTS[entrypoint], PY, "-c", BOTO3_PROBE)
    assert method_of(done.stdout) == "iam-role"
    assert "169.254.169.254:80 -> 10.200.0.2:1338" in done.stderr


@pytest.mark.parametrize("entrypoint", sorted(ENTRYPOINTS))
def test_entrypoint_waits_for_the_mock_name_to_appear(topo: Topology, entrypoint: str) -> None:
    """A mock name that resolves only later is waited for, then the command runs."""
    mock, app = bridge_network(topo)
    hosts = Path("/etc/netns") / app / "hosts"
    hosts.write_text("127.0.0.1 localhost\n", encoding="ascii")
    topo.mock(mock, "10.200.0.2", 1338)
    proc = topo.spawn(app, [*ENTRYPOINTS[entrypoint], PY, "-c", BOTO3_PROBE])
    time.sleep(1.5)
    assert proc.poll() is None
    with hosts.open("r+", encoding="ascii") as same_inode:  # the bind mount keeps the inode
        same_inode.write(HOSTS)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert method_of(out) == "iam-role"


@pytest.mark.parametrize("entrypoint", sorted(ENTRYPOINTS))
def test_entrypoint_gives_up_with_one_line_when_the_name_never_resolves(
    topo: Topology, entrypoint: str
) -> None:
    """An unknown mock name fails after --timeout with exit status 2 and one clear line."""
    _, app = bridge_network(topo)
    argv = [a if a != "imds:1338" else "nowhere" for a in ENTRYPOINTS[entrypoint]]
    argv.insert(argv.index("--"), "--timeout")
    argv.insert(argv.index("--"), "1")
    done = topo.sh(app, *argv, "true", check=False)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "timed out after 1 s waiting for the mock's name 'nowhere'" in done.stderr
    assert "IMDSMOCK" not in nat_rules(topo, app)


SIDECARS = {
    "python": (PY, "-m", "imdsmock", "route", "sidecar", "--mock", "imds:1338"),
    "sh": ("dash", SCRIPT, "--sidecar", "--mock", "imds:1338"),
}


@pytest.mark.parametrize("sidecar", sorted(SIDECARS))
def test_sidecar_routes_the_app_namespace_and_cleans_up_on_sigterm(
    topo: Topology, sidecar: str
) -> None:
    """A sidecar in the app's namespace routes IMDS for an unchanged app; SIGTERM undoes it."""
    mock, app = bridge_network(topo)
    topo.mock(mock, "10.200.0.2", 1338)
    before = nat_rules(topo, app)
    proc = topo.spawn(app, SIDECARS[sidecar])
    wait_for_line(proc, "sidecar: ready")

    assert method_of(topo.py(app, "-c", BOTO3_PROBE).stdout) == "iam-role"

    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert nat_rules(topo, app) == before


def test_mock_holding_the_link_local_address_serves_apps_on_its_network(topo: Topology) -> None:
    """A network whose subnet holds 169.254.169.254, owned by the mock, needs no NAT at all.

    This is the compose recipe ``ipv4_address: 169.254.169.254`` on a 169.254.169.0/24
    network: the app reaches the mock on-link, and nothing in the app changes.
    """
    mock, app = bridge_network(topo)
    mock_if = topo.sh(mock, "ip", "-o", "link", "show", "type", "veth").stdout.split(":")[1]
    app_if = topo.sh(app, "ip", "-o", "link", "show", "type", "veth").stdout.split(":")[1]
    topo.sh(mock, "ip", "addr", "add", "169.254.169.254/24", "dev", mock_if.strip().split("@")[0])
    topo.sh(app, "ip", "addr", "add", "169.254.169.10/24", "dev", app_if.strip().split("@")[0])
    topo.mock(mock, "169.254.169.254", 80)

    assert method_of(topo.py(app, "-c", BOTO3_PROBE).stdout) == "iam-role"
    assert "IMDSMOCK" not in nat_rules(topo, app)


@pytest.mark.parametrize("backend", ["iptables-nft", "iptables-legacy", "nft"])
def test_sidecar_failing_or_stopped_at_any_step_leaves_the_namespace_as_it_was(
    topo: Topology, tmp_path: Path, backend: str
) -> None:
    """On an internal network (a route is added too), the sidecar's Nth call failing, for
    every N, exits 1 with one line and the app's namespace as before; SIGTERM while a step
    hangs does the same with exit 143; stopped when ready, it restores it too."""
    _, app = bridge_network(topo, gateway=False)
    tools = FaultyTools(tmp_path / "tools", topo.env)
    topo.settle(app)
    before = snapshot(topo, app)
    argv = [*SIDECARS["python"], "--backend", backend]
    proc = topo.spawn(app, argv, env=tools.env)
    wait_for_line(proc, "ready")
    total, changing = len(tools.calls), tools.changing_calls()
    assert snapshot(topo, app) != before
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert snapshot(topo, app) == before
    for n in range(1, total + 1):
        tools.arm(fail=n)
        done = topo.sh(app, *argv, check=False, env=tools.env, timeout=20)
        assert done.returncode == 1, tools.calls[n - 1]
        assert done.stderr.count("\n") == 1, done.stderr
        assert snapshot(topo, app) == before, f"not restored after {tools.calls[n - 1]}"
    tools.arm(sleep=changing[-1])
    proc = topo.spawn(app, argv, env=tools.env)
    tools.wait_until_sleeping()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "sidecar interrupted by SIGTERM; rolled back" in err
    assert snapshot(topo, app) == before


def shell_view(topo: Topology, ns: str) -> str:
    """What the shell entrypoint may change: addresses, routes and the nat rules as the
    system's iptables lists them (it cannot delete a table iptables-nft made)."""
    parts = (
        topo.sh(ns, "ip", "-o", "addr", "show").stdout,
        topo.sh(ns, "ip", "route", "show", "table", "all").stdout,
        nat_rules(topo, ns),
    )
    return "\n".join(parts)


def test_shell_sidecar_failing_at_any_changing_step_removes_what_it_added(
    topo: Topology, tmp_path: Path
) -> None:
    """The POSIX script: any command that changes the namespace failing (a route too, on an
    internal network) exits 1 with one line and leaves its routes and rules as before."""
    _, app = bridge_network(topo, gateway=False)
    tools = FaultyTools(tmp_path / "tools", topo.env)
    topo.settle(app)
    before = shell_view(topo, app)
    argv = SIDECARS["sh"]
    proc = topo.spawn(app, argv, env=tools.env)
    wait_for_line(proc, "ready")
    changing = tools.changing_calls()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert shell_view(topo, app) == before
    assert len(changing) >= 4
    for n in changing:
        tools.arm(fail=n)
        done = topo.sh(app, *argv, check=False, env=tools.env, timeout=20)
        assert done.returncode == 1, tools.calls[n - 1]
        assert done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("imdsmock-route: error: command failed: ")
        assert done.stderr.endswith(
            "injected failure at call " + f"{n}; removed our rules and the routes added\n"
        )
        assert shell_view(topo, app) == before, f"not restored after {tools.calls[n - 1]}"
