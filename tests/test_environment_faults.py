"""Faults of the mock's own environment: its config file, its signals, its port.

The real ``imdsmock`` command runs in a subprocess; the file is changed under it the way
editors, config-management tools and people do, and clients keep asking meanwhile.
(A port already in use is tests/test_config.py::test_port_in_use_names_the_listeners_setting.)
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from pathlib import Path

import yaml

from mockprocess import MockProcess, mock_process

A = "i-0000000000000aaaa"
B = "i-0000000000000bbbb"
C = "i-0000000000000cccc"
DEFAULT = "i-1234567890abcdef0"
ID_PATH = "/latest/meta-data/instance-id"


def config_text(instance_id: str) -> str:
    """A config file serving ``instance_id`` (and padding, so writes take several steps)."""
    tags = {f"Tag{i:03d}": "x" * 40 for i in range(60)}
    return yaml.safe_dump({"instance": {"instance-id": instance_id, "tags": tags}})


class Sampler:
    """A client asking for the instance id in a loop, keeping every answer."""

    def __init__(self, mp: MockProcess) -> None:
        self.mp = mp
        self.answers: list[tuple[int, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.answers.append(self.mp.get(ID_PATH))
            time.sleep(0.005)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_watched_file_torn_broken_or_deleted_keeps_serving(tmp_path: Path) -> None:
    """A watched file written in pieces, made invalid or deleted never serves a wrong instance."""
    file = tmp_path / "imdsmock.yaml"
    file.write_text(config_text(A))
    with mock_process(["-w", "-c", str(file)]) as mp, Sampler(mp) as sampler:
        mp.wait_for_get(ID_PATH, A.encode())
        # Non-atomic rewrite: truncate, write half, pause, write the rest (like `>` or an
        # editor saving in place). Neither the empty nor the half file may be served.
        text = config_text(B)
        with file.open("w") as f:
            f.flush()
            time.sleep(0.05)
            f.write(text[: len(text) // 2])
            f.flush()
            time.sleep(0.1)
            f.write(text[len(text) // 2 :])
        mp.wait_for_get(ID_PATH, B.encode())
        # Invalid content: one error line, the previous configuration keeps serving.
        file.write_text("instance: {instance-id: nope}\n")
        time.sleep(1.0)
        assert mp.get(ID_PATH) == (200, B.encode())
        assert "keeping the previous config" in mp.stderr()
        # Deleted: still serving; recreated atomically (rename over): picked up.
        file.unlink()
        time.sleep(0.6)
        assert mp.get(ID_PATH) == (200, B.encode())
        tmp = tmp_path / "imdsmock.yaml.tmp"
        tmp.write_text(config_text(C))
        os.replace(tmp, file)
        mp.wait_for_get(ID_PATH, C.encode())
        assert mp.proc.poll() is None
    statuses = {status for status, _ in sampler.answers}
    bodies = {body.decode() for _, body in sampler.answers}
    assert statuses == {200}
    assert bodies <= {A, B, C}, bodies - {A, B, C}
    assert DEFAULT not in bodies
    assert "Traceback" not in mp.stderr()


def test_sighup_reloads_the_config_file(tmp_path: Path) -> None:
    """SIGHUP reloads the file even when its stat did not change (forced reload)."""
    file = tmp_path / "imdsmock.yaml"
    file.write_text(config_text(A))
    with mock_process(["-w", "-c", str(file)]) as mp:
        mp.wait_for_get(ID_PATH, A.encode())
        before = os.stat(file)
        with file.open("r+") as f:  # same inode, same size, then the old times back
            f.write(config_text(B))
        os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
        time.sleep(0.8)
        assert mp.get(ID_PATH) == (200, A.encode()), "reloaded without the signal"
        mp.proc.send_signal(signal.SIGHUP)
        mp.wait_for_get(ID_PATH, B.encode(), timeout=3)
        assert mp.proc.poll() is None


def test_sighup_without_watch_reloads_the_config_file(tmp_path: Path) -> None:
    """Without -w, SIGHUP reloads the file (server settings such as log-requests too); a bad
    file logs one line and keeps the old configuration; the process lives on."""
    file = tmp_path / "imdsmock.yaml"
    file.write_text(config_text(A))
    with mock_process(["-c", str(file)]) as mp:
        mp.wait_for_get(ID_PATH, A.encode())
        file.write_text(config_text(B) + "server: {log-requests: true}\n")
        os.kill(mp.proc.pid, signal.SIGHUP)
        mp.wait_for_get(ID_PATH, B.encode())
        # A connection accepted before the reload keeps the old sink (new connections take
        # the new one), so the request that first saw B may be unlogged: ask once more.
        assert mp.get(ID_PATH) == (200, B.encode())
        mp.wait_for_stderr(f"GET {ID_PATH} 200")
        file.write_text("instance: {instance-id: nope}\n")
        os.kill(mp.proc.pid, signal.SIGHUP)
        mp.wait_for_stderr("keeping the previous config")
        assert mp.get(ID_PATH) == (200, B.encode())
        assert mp.proc.poll() is None
    assert mp.stderr().count("keeping the previous config") == 1
    assert "Traceback" not in mp.stderr()


def test_sighup_without_a_config_file_is_logged_and_ignored() -> None:
    """With no config file SIGHUP logs one line and the mock keeps serving."""
    with mock_process() as mp:
        os.kill(mp.proc.pid, signal.SIGHUP)
        mp.wait_for_stderr("SIGHUP ignored")
        os.kill(mp.proc.pid, signal.SIGHUP)
        mp.wait_for_stderr("SIGHUP ignored", count=2)
        assert mp.get(ID_PATH) == (200, DEFAULT.encode())
        assert mp.proc.poll() is None


def test_sigterm_during_load_finishes_requests_and_exits_within_a_second() -> None:
    """On SIGTERM under load every answered request is complete and the exit takes < 1 s."""
    with mock_process() as mp:
        done = threading.Event()
        complete = 0
        torn: list[BaseException] = []
        lock = threading.Lock()

        def client() -> None:
            nonlocal complete
            while not done.is_set():
                try:
                    status, body = mp.get(ID_PATH)
                except (ConnectionRefusedError, ConnectionResetError):
                    continue  # not accepted (yet or any more): nothing was in flight
                except http.client.RemoteDisconnected:
                    continue  # accepted by the kernel after the listener closed
                except (http.client.IncompleteRead, OSError) as exc:
                    with lock:
                        torn.append(exc)
                    continue
                assert (status, body) == (200, DEFAULT.encode())
                with lock:
                    complete += 1

        threads = [threading.Thread(target=client, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        assert complete > 0
        started = time.monotonic()
        mp.proc.send_signal(signal.SIGTERM)
        code = mp.proc.wait(5)
        elapsed = time.monotonic() - started
        time.sleep(0.1)
        done.set()
        for t in threads:
            t.join(10)
    assert code == 0
    assert elapsed < 1.0
    assert not torn, torn[:3]
    assert "Traceback" not in mp.stderr()
