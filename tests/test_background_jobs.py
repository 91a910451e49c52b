"""Background jobs (credential refresher, config watcher) are supervised while serving."""

from __future__ import annotations

import logging
import threading

import pytest

from imdsmock.app import serve_in_thread
from support import offline_app, status_from


def test_failed_background_job_is_logged_in_one_line_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A job that raises is logged (job, error) and run again after a pause; serving goes on."""
    app = offline_app()
    runs: list[int] = []
    second_run = threading.Event()

    async def flaky() -> None:
        runs.append(len(runs) + 1)
        if len(runs) == 1:
            raise RuntimeError("STS said no")
        second_run.set()

    app.background.append(flaky)
    with caplog.at_level(logging.ERROR, logger="imdsmock"):
        thread = serve_in_thread(app, app.bind())
        try:
            assert second_run.wait(10), "the failed job was not restarted"
            host, port = app.server.addresses()[0][:2]
            assert status_from(host, port, "/latest/meta-data/instance-id") == 200
        finally:
            app.shutdown()
            thread.join(5)
    assert runs == [1, 2]
    failures = [r.getMessage() for r in caplog.records if "background job" in r.getMessage()]
    assert len(failures) == 1
    assert "flaky" in failures[0]
    assert "RuntimeError: STS said no" in failures[0]
    assert "restarting in 1 s" in failures[0]
    assert "\n" not in failures[0]
