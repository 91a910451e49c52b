"""Config watching: a changed file reloads everything at once; a broken one changes nothing."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from imdsmock.app import App
from imdsmock.config.load import load
from imdsmock.config.scenarios import parse_scenario
from imdsmock.config.schema import Config
from imdsmock.core.scenarios import started, with_scenarios
from imdsmock.watch import Watcher
from mockprocess import mock_process
from support import EPOCH, calls_to, make_config, offline_app, serve

BASE = {"server": {"host": "127.0.0.1", "port": 0, "control": False}}


def write(path: Path, data: dict[str, object]) -> None:
    """Write a YAML config file (with a test-friendly server section)."""
    path.write_text(yaml.safe_dump({**BASE, **data}))


def loader(path: Path) -> Config:
    """Load the file the way the CLI does (env ignored)."""
    return load(file=path, env={})


def body(app: App, path: str, after: float = 0.0) -> str | None:
    """What the app serves at ``path`` now (+after seconds), or None for 404."""
    entry = app.state.compiled.lookup(path, EPOCH + after)
    return None if entry is None else entry.get.body.decode()


@pytest.fixture
def watched(tmp_path: Path) -> tuple[App, Watcher, Path]:
    """An app built from a file, and a watcher on that file."""
    file = tmp_path / "imdsmock.yaml"
    write(file, {"instance": {"tags": {"Name": "one"}}})
    app = offline_app(loader(file))
    return app, Watcher(app, file, lambda: loader(file)), file


def test_reload_swaps_values_paths_listings_and_scenarios_together(
    watched: tuple[App, Watcher, Path],
) -> None:
    """After a reload the new values, paths, listings and scenarios are all served."""
    app, watcher, file = watched
    write(
        file,
        {
            "instance": {"tags": {"Env": "two"}, "instance-id": "i-0000000000000abcd"},
            "paths": {"meta-data/custom": "yes"},
            "scenarios": [{"type": "spot-interruption", "at": "+60s"}],
            "server": {**BASE["server"], "mock-ip-count": 3},
        },
    )
    assert watcher.reload()
    assert body(app, "meta-data/instance-id") == "i-0000000000000abcd"
    assert body(app, "meta-data/tags/instance") == "Env"
    assert body(app, "meta-data/custom") == "yes"
    assert "custom" in (body(app, "meta-data") or "").split("\n")
    assert body(app, "meta-data/spot/instance-action", 59) is None
    assert body(app, "meta-data/spot/instance-action", 60) is not None
    assert app.gate.limit == 3
    assert app.config.instance.instance_id == "i-0000000000000abcd"


def test_broken_file_keeps_the_previous_config_and_logs_one_line(
    watched: tuple[App, Watcher, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed or invalid file logs one error and the old snapshot keeps serving."""
    app, watcher, file = watched
    before = app.state.snapshot
    for text in ("instance: [", "instance: {instance-id: nope}\n", "scenarios: [{type: x}]\n"):
        file.write_text(text)
        with caplog.at_level(logging.ERROR, logger="imdsmock.watch"):
            caplog.clear()
            assert not watcher.reload()
        assert app.state.snapshot is before
        assert len(caplog.records) == 1
        assert "keeping the previous config" in caplog.records[0].getMessage()
    assert body(app, "meta-data/tags/instance/Name") == "one"


def test_reload_keeps_scenarios_started_at_run_time(watched: tuple[App, Watcher, Path]) -> None:
    """Scenarios added at run time (control API) survive a reload; config ones are replaced."""
    app, watcher, file = watched
    runtime = started({"type": "asg-lifecycle", "id": "live", "state": "InService"}, EPOCH)
    app.state.swap(lambda s: with_scenarios(s, (*s.scenarios, runtime)))
    write(file, {"scenarios": [{"type": "rebalance-recommendation"}]})
    assert watcher.reload()
    ids = sorted(s.id for s in app.state.snapshot.scenarios)
    assert ids == ["config-0", "live"]
    write(file, {})
    assert watcher.reload()
    assert [s.id for s in app.state.snapshot.scenarios] == ["live"]


def test_a_reload_parses_each_scenario_of_the_file_once(
    watched: tuple[App, Watcher, Path],
) -> None:
    """A reload parses the file's scenarios once, when the file is loaded; the scenarios
    the running configuration holds are not parsed again."""
    app, watcher, file = watched
    two = [{"type": "rebalance-recommendation"}, {"type": "asg-lifecycle", "state": "InService"}]
    write(file, {"scenarios": two})
    assert watcher.reload()
    write(file, {"scenarios": two, "instance": {"tags": {"Name": "two"}}})
    with calls_to(parse_scenario) as parsed:
        assert watcher.reload()
    assert len(parsed) == 2
    assert sorted(s.id for s in app.state.snapshot.scenarios) == ["config-0", "config-1"]
    assert body(app, "meta-data/tags/instance/Name") == "two"
    with calls_to(parse_scenario) as parsed:
        app.reconfigure(loader(file))
        assert parsed == ["parse_scenario", "parse_scenario"]  # by the loader alone
        app.reconfigure(app.config)
    assert parsed == ["parse_scenario", "parse_scenario"]


def test_every_reload_names_start_only_settings_that_differ_from_the_running_ones(
    watched: tuple[App, Watcher, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """A start-only setting is compared with the value in force: each reload that still
    differs names it again, and a file back at the running value names nothing."""
    _, watcher, file = watched
    write(file, {"server": {**BASE["server"], "control-port": 5000, "port": 1}})
    with caplog.at_level(logging.WARNING, logger="imdsmock.watch"):
        for _ in range(2):
            caplog.clear()
            assert watcher.reload()
            lines = [r.getMessage() for r in caplog.records]
            assert lines == [
                f"listen addresses changed in {file}; they apply after a restart",
                f"server.control-port changed in {file}; they apply after a restart",
            ]
        write(file, {})
        caplog.clear()
        assert watcher.reload()
        assert caplog.records == []


def test_a_reload_that_turns_on_log_requests_prints_access_lines(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """After a reconfiguration with log-requests on, each answered request prints its line."""
    with serve(make_config()) as r:
        r.get("/latest/meta-data/ami-id")
        r.app.reconfigure(make_config(server={"log-requests": True}))
        r.get("/latest/meta-data/instance-id")
    err = capfd.readouterr().err
    assert "/latest/meta-data/instance-id" in err
    assert "/latest/meta-data/ami-id" not in err


ID_PATH = "/latest/meta-data/instance-id"


def _watched_reload(tmp_path: Path, second: dict[str, Any]) -> str:
    """Under `imdsmock -w -c FILE`, rewrite the file with ``second`` (and a new instance id),
    wait until that id is served; the process's stderr."""
    file = tmp_path / "imdsmock.yaml"
    write(file, {})
    with mock_process(["-w", "-c", str(file)]) as mp:
        changed = {**second, "server": {**BASE["server"], **second.get("server", {})}}
        changed["instance"] = {**second.get("instance", {}), "instance-id": "i-0000000000000beef"}
        write(file, changed)
        mp.wait_for_get(ID_PATH, b"i-0000000000000beef")
        return mp.stop()


def test_imdsmock_watch_flag_polls_the_file(tmp_path: Path) -> None:
    """`imdsmock -w -c FILE` picks up an edited file within a second, over HTTP."""
    assert "reloaded configuration" in _watched_reload(tmp_path, {})


def test_a_reload_names_the_settings_that_apply_only_after_a_restart(tmp_path: Path) -> None:
    """A reload that turns on container endpoints or real credentials logs one line naming them."""
    err = _watched_reload(
        tmp_path,
        {
            "server": {"ecs-listen": ["127.0.0.1:0"]},
            "credentials": {"source": "profile", "profile": "elsewhere"},
        },
    )
    lines = [line for line in err.splitlines() if "after a restart" in line]
    assert len(lines) == 1, err
    for name in ("server.ecs-listen", "credentials.source", "credentials.profile"):
        assert name in lines[0]


def test_an_unreadable_file_on_sighup_is_one_reload_error_and_the_mock_lives(
    tmp_path: Path,
) -> None:
    """A file that cannot be read (a symlink loop) on SIGHUP logs the one reload error; later SIGHUPs do no harm."""
    file = tmp_path / "imdsmock.yaml"
    write(file, {})
    with mock_process(["-c", str(file)]) as mp:
        file.unlink()
        file.symlink_to(file.name)  # reading it fails with ELOOP
        failed = "is invalid, keeping the previous config"
        mp.proc.send_signal(signal.SIGHUP)
        mp.wait_for_stderr(failed)
        mp.proc.send_signal(signal.SIGHUP)
        mp.wait_for_stderr(failed, count=2)  # the second SIGHUP is answered, not fatal
        assert mp.get(ID_PATH) == (200, b"i-1234567890abcdef0")
    first = next(line for line in mp.stderr_lines if failed in line)
    assert f"config file {file} is invalid" in first, first


def test_watcher_loop_reloads_on_change_and_on_request(watched: tuple[App, Watcher, Path]) -> None:
    """run() polls the file's stat and reloads on a change, or when woken (SIGHUP's path)."""
    app, _, file = watched
    watcher = Watcher(app, file, lambda: loader(file), interval=0.01)

    async def scenario() -> None:
        task = asyncio.ensure_future(watcher.run())
        await asyncio.sleep(0.05)
        assert watcher.reloads == 0
        write(file, {"instance": {"instance-id": "i-0000000000000cafe"}})
        for _ in range(300):
            if watcher.reloads:
                break
            await asyncio.sleep(0.01)
        watcher._wake.set()
        for _ in range(300):
            if watcher.reloads == 2:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert watcher.reloads == 2
    assert body(app, "meta-data/instance-id") == "i-0000000000000cafe"
