"""What the dashboard asks of the control listener, over HTTP: the request log's long poll,
the page and its files.

What the page does in a browser is tested in test_dashboard.py; here a plain HTTP client checks
what the listener answers: a held poll of the request log, content types, cache and security
headers, and the token rules.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
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


# -- the page and its files --------------------------------------------------------------------


def test_root_answers_the_dashboard_page_as_html(control: Control) -> None:
    """GET / is the page: text/html, revalidated, locked to its own origin, never framed."""
    status, headers, body = control.request("GET", "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["cache-control"] == "no-cache"
    csp = headers["content-security-policy"]
    for rule in ("default-src 'none'", "script-src 'self'", "connect-src 'self'"):
        assert rule in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert b"<title>imdsmock</title>" in body
    assert b"{{" not in body  # every placeholder was filled
    assert not re.search(rb"(src|href)=\"(https?:)?//", body)  # nothing from another host


def test_page_lists_the_choices_the_api_accepts(control: Control) -> None:
    """The page's form choices are the values the modules that check them declare."""
    from imdsmock.config.scenarios import ACTIONS, ASG_STATES, EVENT_CODES
    from imdsmock.core.faults import KINDS

    body = control.request("GET", "/")[2].decode()
    found = re.search(r'<script id="choices" type="application/json">(.*?)</script>', body)
    assert found is not None
    choices = json.loads(found.group(1))
    assert choices["spot-actions"] == list(ACTIONS)
    assert choices["event-codes"] == list(EVENT_CODES)
    assert choices["asg-states"] == list(ASG_STATES)
    assert choices["fault-kinds"] == list(KINDS)
    assert choices["options"]["http-tokens"] == ["optional", "required"]
    assert choices["options"]["http-endpoint"] == ["enabled", "disabled"]


def test_files_are_linked_by_hash_and_kept_only_under_that_name(control: Control) -> None:
    """Each file the page links is served with its type; its name with the hash of its content
    may be kept a year, its plain name is revalidated."""
    page = control.request("GET", "/")[2].decode()
    links = re.findall(r'(?:src|href)="/ui/(\w+)\.([0-9a-f]{16})\.(\w+)"', page)
    types = {"app.js": "text/javascript", "style.css": "text/css", "icon.svg": "image/svg+xml"}
    assert {f"{stem}.{ext}" for stem, _, ext in links} == set(types)
    for stem, digest, ext in links:
        status, headers, body = control.request("GET", f"/ui/{stem}.{digest}.{ext}")
        assert status == 200
        assert headers["content-type"].startswith(types[f"{stem}.{ext}"])
        assert headers["cache-control"] == "public, max-age=31536000, immutable"
        assert hashlib.sha256(body).hexdigest()[:16] == digest
        plain = control.request("GET", f"/ui/{stem}.{ext}")
        assert plain[2] == body
        assert plain[1]["cache-control"] == "no-cache"
        assert control.request("GET", f"/ui/{stem}.{'0' * 16}.{ext}")[0] == 404


def test_head_of_the_page_has_headers_and_no_body(control: Control) -> None:
    """HEAD / answers the page's headers, with its length, and no body."""
    _, page_headers, page = control.request("GET", "/")
    status, headers, body = control.request("HEAD", "/")
    assert status == 200
    assert body == b""
    assert headers["content-length"] == str(len(page)) == page_headers["content-length"]


@pytest.mark.parametrize(
    ("method", "target", "expected"),
    [
        ("GET", "/ui/", 404),
        ("GET", "/ui/index.html", 404),
        ("GET", "/ui/__init__.py", 404),
        ("GET", "/ui/../routes.py", 404),
        ("GET", "/ui/nothing.js", 404),
        ("POST", "/", 405),
        ("DELETE", "/ui/app.js", 405),
    ],
    ids=["folder", "page-as-file", "module", "dot-dot", "unknown", "post-page", "delete-file"],
)
def test_only_the_page_and_its_files_are_served(
    control: Control, method: str, target: str, expected: int
) -> None:
    """Anything but GET/HEAD of / and the page's own files is a JSON error."""
    status, headers, body = control.request(method, target)
    assert status == expected
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]


def test_page_needs_no_token_but_every_api_call_does() -> None:
    """With a control token the page and its files load without it; the API answers 401."""
    cfg = control_config(**{"control-token": "s3cret"})
    with serve(cfg, clock=ManualClock()) as r:
        control = Control(r)
        assert control.request("GET", "/")[0] == 200
        page = control.request("GET", "/")[2].decode()
        script = re.search(r'src="(/ui/app\.[0-9a-f]+\.js)"', page)
        assert script is not None
        assert control.request("GET", script.group(1))[0] == 200
        assert b"s3cret" not in control.request("GET", script.group(1))[2]
        assert control.json("/v1/state")[0] == 401
        control.token = "s3cret"
        assert control.json("/v1/state")[0] == 200


def test_openapi_document_lists_the_page_and_files_as_public(control: Control) -> None:
    """The document describes / and /ui/{file}, needing no token; the log poll's parameters."""
    doc = control.json("/openapi.json")[1]
    for path in ("/", "/ui/{file}"):
        operation = doc["paths"][path]["get"]
        assert operation["security"] == []
        assert "401" not in operation["responses"]
    assert "401" in doc["paths"]["/v1/state"]["get"]["responses"]
    params = {p["name"]: p["schema"] for p in doc["paths"]["/v1/requests"]["get"]["parameters"]}
    assert params["wait"] == {"type": "integer", "minimum": 0, "maximum": 25}
    assert params["after"] == {"type": "integer", "minimum": 0}


def test_state_names_the_imds_listeners_as_bound(control: Control) -> None:
    """The state gives the IMDS listeners' URLs with the ports they were bound to."""
    urls = control.json("/v1/state")[1]["imds-urls"]
    assert urls == control.imds.app.addresses()
    assert urls[0] == control.imds.url
    assert not urls[0].endswith(":0")
