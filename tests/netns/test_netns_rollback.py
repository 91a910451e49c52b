"""``route up`` and ``route down`` are transactions: a failure or a signal at any step
leaves the namespace as it was, and ``down`` always reaches the state before the first ``up``.

Failures are real ones: a directory of wrapped ``ip``, ``iptables`` and ``nft`` first on
PATH makes the Nth call fail (or hang until the test signals ``imdsmock``), for every N.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from netns_topology import FaultyTools, Topology, existing_rules, snapshot

from mockprocess import IMDSMOCK

BACKENDS = ("iptables-nft", "iptables-legacy", "nft")
#: For each backend, another one to switch to (and its different options).
OTHER = {"iptables-nft": "nft", "iptables-legacy": "iptables-nft", "nft": "iptables-legacy"}
FULL = ("--credentials-port", "1339", "--ipv6")


def records(tmp_path: Path) -> list[str]:
    """The contents of every route record in the test's run directory."""
    return sorted(p.read_text() for p in (tmp_path / "run").glob("route-net*.json"))


def one_line_error(stderr: str) -> str:
    """Assert ``stderr`` is one ``imdsmock route: error:`` line; return it."""
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("imdsmock route: error: "), stderr
    return stderr


def workstation(topo: Topology, backend: str, tmp_path: Path) -> tuple[str, FaultyTools]:
    """A namespace with someone else's rule and alias, and the faulty tools."""
    ws = topo.ns("ws")
    existing_rules(topo, ws, backend)
    return ws, FaultyTools(tmp_path / "tools", topo.env)


@pytest.mark.parametrize(
    ("backend", "mode"),
    [*((b, "fail") for b in BACKENDS), ("iptables-nft", "after")],
    ids=[*(f"{b}-fails" for b in BACKENDS), "iptables-nft-runs-then-fails"],
)
def test_a_failure_at_any_call_of_up_leaves_the_namespace_as_it_was(
    topo: Topology, tmp_path: Path, backend: str, mode: str
) -> None:
    """For every call ``up`` makes, that call failing (or running and then failing) makes
    ``up`` exit non-zero with one line, with the namespace and the record as before."""
    ws, tools = workstation(topo, backend, tmp_path)
    before = snapshot(topo, ws)
    args = ("up", "--backend", backend, *FULL)
    topo.route(ws, *args, env=tools.env)
    total = len(tools.calls)
    topo.route(ws, "down")
    assert snapshot(topo, ws) == before
    for n in range(1, total + 1):
        tools.arm(**{mode: n})
        done = topo.route(ws, *args, check=False, env=tools.env)
        failed = tools.calls[n - 1]
        assert done.returncode == 1, f"{failed}: {done.stdout}{done.stderr}"
        one_line_error(done.stderr)
        assert snapshot(topo, ws) == before, f"not restored after a failure of {failed}"
        assert records(tmp_path) == [], failed


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failure_while_up_changes_a_previous_up_puts_that_one_back(
    topo: Topology, tmp_path: Path, backend: str
) -> None:
    """``up`` with every option, then ``up`` with another backend and none of them failing
    at any call: the first ``up``'s rules, aliases and record stay; when it succeeds,
    ``down`` restores the namespace as it was before the first ``up``."""
    ws, tools = workstation(topo, backend, tmp_path)
    before = snapshot(topo, ws)
    topo.route(ws, "up", "--backend", backend, *FULL)
    first, first_record = snapshot(topo, ws), records(tmp_path)
    args = ("up", "--backend", OTHER[backend])
    tools.arm(fail=10_000)
    converged = topo.route(ws, *args, env=tools.env)
    assert "already in place" not in converged.stdout
    total = len(tools.calls)
    topo.route(ws, "up", "--backend", backend, *FULL)
    assert snapshot(topo, ws) == first
    for n in range(1, total + 1):
        tools.arm(fail=n)
        done = topo.route(ws, *args, check=False, env=tools.env)
        assert done.returncode == 1, tools.calls[n - 1]
        one_line_error(done.stderr)
        assert snapshot(topo, ws) == first, f"not put back after {tools.calls[n - 1]}"
        assert records(tmp_path) == first_record
    topo.route(ws, *args)
    topo.route(ws, "down")
    assert snapshot(topo, ws) == before
    assert records(tmp_path) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failure_at_any_call_of_down_keeps_the_routes_and_the_record(
    topo: Topology, tmp_path: Path, backend: str
) -> None:
    """``down`` failing at any call puts back what it had removed and keeps the record; the
    next ``down`` still restores the namespace as it was before ``up``."""
    ws, tools = workstation(topo, backend, tmp_path)
    before = snapshot(topo, ws)
    topo.route(ws, "up", "--backend", backend, *FULL)
    routed, record = snapshot(topo, ws), records(tmp_path)
    tools.arm(fail=10_000)
    topo.route(ws, "down", env=tools.env)
    total = len(tools.calls)
    topo.route(ws, "up", "--backend", backend, *FULL)
    for n in range(1, total + 1):
        tools.arm(fail=n)
        done = topo.route(ws, "down", check=False, env=tools.env)
        assert done.returncode == 1, tools.calls[n - 1]
        one_line_error(done.stderr)
        assert snapshot(topo, ws) == routed, f"not put back after {tools.calls[n - 1]}"
        assert records(tmp_path) == record
    topo.route(ws, "down")
    assert snapshot(topo, ws) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_signal_mid_plan_stops_the_step_rolls_back_and_exits_with_one_line(
    topo: Topology, tmp_path: Path, backend: str
) -> None:
    """SIGTERM or SIGINT while any changing step hangs: the step is stopped, what was
    applied is rolled back, and ``up`` exits 128+signal with one line, at once."""
    ws, tools = workstation(topo, backend, tmp_path)
    before = snapshot(topo, ws)
    args = ("up", "--backend", backend, *FULL)
    topo.route(ws, *args, env=tools.env)
    changing = tools.changing_calls()
    topo.route(ws, "down")
    argv = [*IMDSMOCK.argv, "route", *args]
    for index, n in enumerate(changing):
        stop = (signal.SIGTERM, signal.SIGINT)[index % 2]
        tools.arm(sleep=n)
        proc = topo.spawn(ws, argv, env=tools.env)
        tools.wait_until_sleeping()
        started = time.monotonic()
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=30)
        assert time.monotonic() - started < 10
        assert proc.returncode == 128 + stop, err
        assert f"up interrupted by {stop.name}; rolled back" in one_line_error(err)
        assert snapshot(topo, ws) == before, f"not restored after {tools.calls[n - 1]}"
        assert records(tmp_path) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_up_killed_outright_leaves_a_record_that_down_acts_on(
    topo: Topology, tmp_path: Path, backend: str
) -> None:
    """SIGKILL cannot be rolled back, but the record is written before each step, so for
    a kill at any changing step ``down`` restores the namespace as it was."""
    ws, tools = workstation(topo, backend, tmp_path)
    before = snapshot(topo, ws)
    args = ("up", "--backend", backend, *FULL)
    topo.route(ws, *args, env=tools.env)
    changing = tools.changing_calls()
    topo.route(ws, "down")
    argv = [*IMDSMOCK.argv, "route", *args]
    for n in changing:
        tools.arm(sleep=n)
        proc = topo.spawn(ws, argv, env=tools.env)
        sleeper = tools.wait_until_sleeping()
        proc.kill()
        proc.communicate(timeout=30)
        os.killpg(sleeper, signal.SIGKILL)
        assert records(tmp_path) != [], tools.calls[n - 1]
        topo.route(ws, "down")
        assert snapshot(topo, ws) == before, f"down after a kill at {tools.calls[n - 1]}"
        assert records(tmp_path) == []
