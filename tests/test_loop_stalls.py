"""Slow work never stalls IMDS: reloading (or refusing) a config file of megabytes and
applying thousands of metadata edits happen off the event loop, and IMDS answers within its
usual latency meanwhile.

The real command serves; a client on new connections, one GET after another, measures the
longest gap between two answers while the work runs. The bound is generous (250 ms, a
quarter of the SDKs' 1 s timeout), widened only when the machine itself is slower: before
the work, the same client measures the gaps of an idle mock.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imdsmock.control.operations import MAX_EDITS
from mockprocess import MockProcess, mock_process

ID_PATH = "/latest/meta-data/instance-id"
BOUND = 0.25
# Paths of about 90 bytes each: some 2.7 MB of YAML.
PATHS = 30_000


class GapMeter:
    """GETs the instance id on new connections, one after another, in a thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.times: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", ID_PATH)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    self.failures.append(str(response.status))
            except OSError as exc:
                self.failures.append(repr(exc))
            finally:
                conn.close()
            self.times.append(time.monotonic())

    def worst_gap(self, since: float, until: float) -> float:
        """The longest time without an answer in [since, until]."""
        marks = [since, *(t for t in self.times if since <= t <= until), until]
        return max(b - a for a, b in itertools.pairwise(marks))

    def answers(self, since: float, until: float) -> int:
        return sum(1 for t in self.times if since <= t <= until)

    @contextmanager
    def running(self) -> Iterator[GapMeter]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(10)


@contextmanager
def measured(mp: MockProcess) -> Iterator[tuple[GapMeter, list[float]]]:
    """A running meter, and [start, end] of the work done in the block (after one second
    of idle baseline)."""
    with GapMeter(mp.port).running() as meter:
        time.sleep(1.0)
        span = [time.monotonic()]
        yield meter, span
        span.append(time.monotonic())
        time.sleep(0.2)


def assert_no_stall(meter: GapMeter, span: list[float]) -> None:
    """IMDS answered all along the work, never slower than the bound (or three times the
    idle gaps of this machine, if those are longer)."""
    start, end = span
    baseline = meter.worst_gap(start - 1.0, start)
    bound = max(BOUND, 3 * baseline)
    worst = meter.worst_gap(start, end)
    assert not meter.failures, meter.failures[:5]
    assert meter.answers(start, end) >= 10
    assert worst <= bound, f"IMDS stalled {worst:.3f} s (idle: {baseline:.3f} s)"


def big_config(*, valid: bool) -> str:
    """A config file of megabytes: many moved paths, and a bad value at the very end."""
    lines = ["paths:"]
    lines += [f"  meta-data/big/p{i}: value-{i:08d}-{'x' * 60}" for i in range(PATHS)]
    lines.append("instance: {instance-id: i-22222222222222222}")
    if not valid:
        lines.append("options: {hop-limit: 65}")
    return "\n".join(lines) + "\n"


def replace(file: Path, text: str) -> None:
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, file)


def test_refusing_a_config_of_megabytes_on_reload_does_not_stall_imds(tmp_path: Path) -> None:
    """A watched config file of megabytes with an error at its end is parsed and refused
    while IMDS keeps answering at its usual pace."""
    file = tmp_path / "config.yaml"
    file.write_text("instance: {instance-id: i-11111111111111111}\n")
    with mock_process(["-w", "-c", str(file)]) as mp, measured(mp) as (meter, span):
        replace(file, big_config(valid=False))
        mp.wait_for_stderr("invalid, keeping the previous config", timeout=120)
    assert_no_stall(meter, span)
    assert "options.hop-limit is 65" in mp.stderr()


def test_taking_a_config_of_megabytes_on_reload_does_not_stall_imds(tmp_path: Path) -> None:
    """A watched config file of megabytes is parsed, built and compiled while IMDS keeps
    answering at its usual pace, then served whole."""
    file = tmp_path / "config.yaml"
    file.write_text("instance: {instance-id: i-11111111111111111}\n")
    with mock_process(["-w", "-c", str(file)]) as mp:
        with measured(mp) as (meter, span):
            replace(file, big_config(valid=True))
            mp.wait_for_get(ID_PATH, b"i-22222222222222222", timeout=120)
        assert mp.get(f"/latest/meta-data/big/p{PATHS - 1}")[0] == 200
    assert_no_stall(meter, span)


def test_thousands_of_metadata_edits_do_not_stall_imds() -> None:
    """PATCH /v1/metadata with as many edits as a request may make, again and again, and one
    with more than that (refused), leave IMDS answering at its usual pace."""
    with mock_process() as mp:
        with measured(mp) as (meter, span):
            for batch in range(12):
                edits = {
                    f"meta-data/tags/instance/k{batch}-{i}": "v" * 40 for i in range(MAX_EDITS)
                }
                status, body = mp.control("PATCH", "/v1/metadata", json.dumps(edits).encode())
                assert status == 200, body[:200]
            too_many = {f"meta-data/x{i}": "v" for i in range(12 * MAX_EDITS)}
            status, body = mp.control("PATCH", "/v1/metadata", json.dumps(too_many).encode())
            assert status == 400
            assert f"at most {MAX_EDITS} edits per request" in json.loads(body)["error"]
        assert mp.get(f"/latest/meta-data/tags/instance/k11-{MAX_EDITS - 1}") == (200, b"v" * 40)
    assert_no_stall(meter, span)
