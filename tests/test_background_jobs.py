"""Background jobs (credential refresher, config watcher) are supervised while serving."""

from __future__ import annotations

import logging
import threading
from asyncio import new_event_loop

import pytest

from imdsmock.app import App
from imdsmock.core.clock import ManualClock
from support import EPOCH, make_config, shared_signer


def test_failed_background_job_is_logged_in_one_line_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A job that raises is logged (job, error) and run again after a pause; serving goes on."""
    app = App(make_config(), clock=ManualClock(EPOCH), signer=shared_signer())
    runs: list[int] = []
    second_run = threading.Event()

    async def flaky() -> None:
        runs.append(len(runs) + 1)
        if len(runs) == 1:
            raise RuntimeError("STS said no")
        second_run.set()

    app.background.append(flaky)
    socks = app.bind()
    loop = new_event_loop()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(app.serve(socks, install_signals=False)),
        daemon=True,
    )
    with caplog.at_level(logging.ERROR, logger="imdsmock"):
        thread.start()
        try:
            assert second_run.wait(10), "the failed job was not restarted"
        finally:
            app.shutdown()
            thread.join(5)
            loop.close()
    assert runs == [1, 2]
    failures = [r.getMessage() for r in caplog.records if "background job" in r.getMessage()]
    assert len(failures) == 1
    assert "flaky" in failures[0]
    assert "RuntimeError: STS said no" in failures[0]
    assert "restarting in 1 s" in failures[0]
    assert "\n" not in failures[0]
