"""What the dashboard asks of the control listener, over HTTP: the request log's long poll."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from imdsmock.core.clock import ManualClock
from support import Running, control_config, serve


class Control:
    """The control listener of a running mock, asked over HTTP/1.1."""

    def __init__(self, running: Running, token: str | None = None) -> None:
        url = running.app.control_url()
        assert url is not None
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "", parts.port or 0
        self.imds = running
        self.token = token

    def request(
        self, method: str, target: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on a new connection: status, headers (lower-case names), body."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, target, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def json(self, target: str) -> tuple[int, Any]:
        """GET ``target`` (with the bearer token when set); status and decoded JSON."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        status, _, body = self.request("GET", target, headers)
        return status, json.loads(body)


@pytest.fixture
def control() -> Iterator[Control]:
    """A mock on a manual clock with its control listener on port 0."""
    with serve(control_config(), clock=ManualClock()) as r:
        yield Control(r)


# -- the request log's long poll --------------------------------------------------------------


def test_long_poll_answers_as_soon_as_a_request_is_logged(control: Control) -> None:
    """?after=SEQ&wait=S holds an empty answer and sends the next logged request when it comes."""
    answer: list[Any] = []
    poll = threading.Thread(
        target=lambda: answer.append(control.json("/v1/requests?after=0&wait=20"))
    )
    poll.start()
    time.sleep(0.3)  # the poll is held now: the log is empty
    assert answer == []
    control.imds.get("/latest/meta-data/instance-id")
    poll.join(10)
    assert not poll.is_alive()
    status, data = answer[0]
    assert status == 200
    assert [e["path"] for e in data["requests"]] == ["/latest/meta-data/instance-id"]


def test_long_poll_with_nothing_new_answers_empty_when_the_wait_ends(control: Control) -> None:
    """A held poll with nothing new answers an empty list once its wait is over."""
    started = time.monotonic()
    assert control.json("/v1/requests?after=0&wait=1") == (200, {"requests": [], "next": None})
    assert time.monotonic() - started >= 0.75


@pytest.mark.parametrize(
    ("query", "field"),
    [("wait=26", "wait"), ("wait=-1", "wait"), ("wait=1.5", "wait"), ("after=x", "after")],
    ids=["wait-too-long", "wait-negative", "wait-fraction", "after-not-a-number"],
)
def test_bad_cursor_or_wait_is_a_400_naming_it(control: Control, query: str, field: str) -> None:
    """A wait outside 0-25 whole seconds, or a cursor that is not a number, is refused."""
    status, data = control.json(f"/v1/requests?{query}")
    assert status == 400
    assert data["field"] == field


def test_shutdown_with_a_held_long_poll_closes_it() -> None:
    """Stopping the mock while a long poll is held closes that connection cleanly."""
    with serve(control_config(), clock=ManualClock()) as r:
        control = Control(r)
        conn = http.client.HTTPConnection(control.host, control.port, timeout=10)
        conn.request("GET", "/v1/requests?after=0&wait=20")
        time.sleep(0.3)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    conn.close()
