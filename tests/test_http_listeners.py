"""The control and container-credential listeners share one small HTTP protocol: one answer
per connection, laid out alike, with the standard reason phrases. Every listener is reported
at a URL that works, an IPv6 address in brackets."""

from __future__ import annotations

import contextlib
import http
import json
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from imdsmock.errors import ServeError
from imdsmock.serve.http import reason
from support import Running, make_config, offline_app, serve

TOKEN = "control-secret"
AUTH = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
EKS_AUTH = b"Authorization: pod-token\r\n"


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    """A mock with a token-protected control listener and one ECS and one EKS listener."""
    server = {
        "control": True,
        "control-port": 0,
        "control-token": TOKEN,
        "ecs-listen": ["127.0.0.1:0"],
        "eks-listen": ["127.0.0.1:0"],
    }
    with serve(make_config(server=server, credentials={"container-token": "pod-token"})) as r:
        yield r


def _address(r: Running, listener: str) -> tuple[str, int]:
    if listener == "control":
        url = r.app.control_url() or ""
    else:
        assert r.app.containers is not None
        (url,) = r.app.containers.urls(listener)  # type: ignore[arg-type]
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or 0


def _exchange(address: tuple[str, int], data: bytes) -> bytes:
    """Send ``data`` on a new connection; return all the server sent before it closed."""
    with socket.create_connection(address, timeout=5) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def _head(answer: bytes) -> tuple[str, list[str]]:
    """The status line and the header names, in order."""
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    return head[0], [line.split(":", 1)[0] for line in head[1:]]


def _get(path: str, extra: bytes = b"", method: bytes = b"GET") -> bytes:
    return method + b" " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n"


ECS_PATH = "/v2/credentials/{id}"
BIG = b"X-Big: " + b"a" * 20_000 + b"\r\n"
MIB_BODY = b"Content-Length: 1048577\r\n\r\n" + b"{" * 1_048_577


@pytest.mark.parametrize(
    ("listener", "request_bytes", "status_line", "names"),
    [
        ("control", _get("/v1/clock", AUTH), "HTTP/1.1 200 OK", ["Cache-Control"]),
        ("control", _get("/v1/clock"), "HTTP/1.1 401 Unauthorized", ["Cache-Control", "WWW-Authenticate"]),
        ("control", _get("/openapi.json", AUTH, b"POST"), "HTTP/1.1 405 Method Not Allowed", ["Cache-Control", "Allow"]),
        ("control", _get("/nope", AUTH), "HTTP/1.1 404 Not Found", ["Cache-Control"]),
        ("control", b"NOT HTTP\r\n\r\n", "HTTP/1.1 400 Bad Request", ["Cache-Control"]),
        ("control", _get("/v1/clock", AUTH + BIG), "HTTP/1.1 431 Request Header Fields Too Large", ["Cache-Control"]),
        ("control", b"POST /v1/faults HTTP/1.1\r\n" + AUTH + MIB_BODY, "HTTP/1.1 413 Content Too Large", ["Cache-Control"]),
        ("ecs", _get("/metadata"), "HTTP/1.1 404 Not Found", ["X-Content-Type-Options"]),
        ("ecs", _get("/v2/credentials/other"), "HTTP/1.1 400 Bad Request", []),
        ("ecs", _get("/v2/credentials/x", b"Content-Length: 3\r\n", b"POST") + b"abc", "HTTP/1.1 405 Method Not Allowed", ["X-Content-Type-Options"]),
        ("eks", _get("/v1/credentials", EKS_AUTH), "HTTP/1.1 200 OK", []),
        ("eks", b"NOT HTTP\r\n\r\n", "HTTP/1.1 400 Bad Request", ["X-Content-Type-Options"]),
        ("eks", _get("/v1/credentials", BIG), "HTTP/1.1 431 Request Header Fields Too Large", ["X-Content-Type-Options"]),
    ],
    ids=[
        "control-200", "control-401", "control-405", "control-404", "control-malformed",
        "control-head-too-large", "control-body-too-large", "ecs-404", "ecs-400", "ecs-405",
        "eks-200", "eks-malformed", "eks-head-too-large",
    ],
)  # fmt: skip
def test_answers_are_laid_out_alike(
    running: Running, listener: str, request_bytes: bytes, status_line: str, names: list[str]
) -> None:
    """Every answer is status line, Content-Type, the listener's own headers, then Date,
    Content-Length and Connection: close, as Go's net/http writes them."""
    answer = _exchange(_address(running, listener), request_bytes)
    assert _head(answer) == (
        status_line,
        ["Content-Type", *names, "Date", "Content-Length", "Connection"],
    )
    assert b"\r\nConnection: close\r\n" in answer


@pytest.mark.parametrize(
    ("listener", "auth"),
    [("control", AUTH), ("ecs", b""), ("eks", EKS_AUTH)],
    ids=["control", "ecs", "eks"],
)
def test_one_answer_per_connection(running: Running, listener: str, auth: bytes) -> None:
    """Pipelined requests get one answer, to the first, and the connection closes."""
    second = _get("/v1/clock", auth)
    answer = _exchange(_address(running, listener), _get("/nope", auth) + second)
    assert answer.count(b"HTTP/1.1 ") == 1
    assert answer.startswith(b"HTTP/1.1 404 ")


@pytest.mark.parametrize(
    ("listener", "path", "extra"),
    [("control", "/openapi.json", AUTH), ("eks", "/v1/credentials", EKS_AUTH)],
    ids=["control", "eks"],
)
def test_head_answers_the_get_headers_without_the_body(
    running: Running, listener: str, path: str, extra: bytes
) -> None:
    """HEAD gets the GET's status and Content-Length and no body."""
    address = _address(running, listener)
    got = _exchange(address, _get(path, extra))
    head = _exchange(address, _get(path, extra, b"HEAD"))
    get_head, _, body = got.partition(b"\r\n\r\n")
    assert body
    assert head.endswith(b"\r\n\r\n")
    length = [line for line in get_head.split(b"\r\n") if line.startswith(b"Content-Length")]
    assert length == [f"Content-Length: {len(body)}".encode()]
    assert head.split(b"\r\n")[0] == get_head.split(b"\r\n")[0]
    assert length[0] in head


def test_reason_phrases_are_the_standard_ones() -> None:
    """Every status's reason phrase is http.HTTPStatus's, but 413 has HTTP's current name."""
    for status in http.HTTPStatus:
        wanted = "Content Too Large" if status == 413 else status.phrase
        assert reason(status.value) == wanted


def _fetch(url: str, headers: dict[str, str] | None = None) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
        body: bytes = r.read()
    return body


@pytest.mark.usefixtures("loopback6")
def test_ipv6_listeners_are_reported_at_bracketed_urls_that_work() -> None:
    """IMDS, control and container listeners on ::1 are reported as http://[::1]:PORT, and a
    client reaches each at that URL."""
    server = {
        "listen": ["[::1]:0"],
        "control": True,
        "control-host": "::1",
        "control-port": 0,
        "ecs-listen": ["[::1]:0"],
        "eks-listen": ["[::1]:0"],
    }
    config = make_config(server=server, credentials={"container-token": "pod-token"})
    with serve(config) as r:
        imds = r.app.addresses()[1]
        control = r.app.control_url() or ""
        assert r.app.containers is not None
        (ecs,), (eks,) = r.app.containers.urls("ecs"), r.app.containers.urls("eks")
        for url in (imds, control, ecs, eks):
            assert url.startswith("http://[::1]:"), url
        assert _fetch(imds + "/latest/meta-data/instance-id") == b"i-1234567890abcdef0"
        assert json.loads(_fetch(control + "/v1/clock"))["kind"] == "manual"
        rel = r.app.config.credentials.ecs_relative_uri
        assert "AccessKeyId" in json.loads(_fetch(ecs + rel))
        doc = json.loads(_fetch(eks + "/v1/credentials", {"Authorization": "pod-token"}))
        assert "AccountId" in doc


@pytest.mark.usefixtures("loopback6")
def test_a_bracketed_ipv6_host_in_use_is_named_once_bracketed() -> None:
    """A --host given as [::1] whose port is taken is named [::1]:PORT in the error."""
    with socket.socket(socket.AF_INET6) as taken:
        taken.bind(("::1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = offline_app(make_config(server={"host": "[::1]", "port": port}))
        with pytest.raises(ServeError) as info:
            app.bind()
    assert str(info.value) == (
        f"listen address [::1]:{port} is already in use; choose another port (--port or IMDSMOCK_PORT)"
    )


@pytest.mark.parametrize("listener", ["ecs", "eks"])
def test_container_connection_that_sends_nothing_is_closed_at_the_idle_deadline(
    listener: str,
) -> None:
    """A container-listener connection that sends no request is closed at server.idle-timeout."""
    server = {"idle-timeout": 1, "ecs-listen": ["127.0.0.1:0"], "eks-listen": ["127.0.0.1:0"]}
    with serve(make_config(server=server)) as r:
        with socket.create_connection(_address(r, listener), timeout=5) as sock:
            started = time.monotonic()
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(100) == b""
            assert 0.8 < time.monotonic() - started < 3
        assert _wait(lambda: r.app.limits.open == 0)


def test_every_listener_shares_one_connection_budget() -> None:
    """Connections to the control and container listeners count against max-connections
    with the IMDS ones: beyond it a new one, on any listener, is answered 429."""
    server = {
        "max-connections": 3,
        "control": True,
        "control-port": 0,
        "ecs-listen": ["127.0.0.1:0"],
        "eks-listen": ["127.0.0.1:0"],
    }
    with serve(make_config(server=server)) as r:
        held = [socket.create_connection(_address(r, name)) for name in ("control", "ecs", "eks")]
        try:
            assert _wait(lambda: r.app.limits.open == 3)
            for listener in ("control", "ecs", "eks"):
                status_line, _ = _head(_exchange(_address(r, listener), _get("/")))
                assert status_line == "HTTP/1.1 429 Too Many Requests", listener
            assert r.get("/latest/meta-data/instance-id")[0] == 429
        finally:
            for sock in held:
                sock.close()
        assert _wait(lambda: r.app.limits.open == 0)
        assert r.get("/latest/meta-data/instance-id")[0] == 200


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate()`` until true (server-side counts settle after a close)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_a_new_connection_takes_an_idle_ones_slot_but_not_a_long_polls() -> None:
    """With every slot taken, a new connection takes the slot of one that has waited over a
    second for its request; a control long poll waiting for a request keeps its own."""
    server = {"max-connections": 2, "control": True, "control-port": 0}
    with serve(make_config(server=server)) as r:
        poll = socket.create_connection(_address(r, "control"), timeout=10)
        poll.sendall(_get("/v1/requests?after=0&wait=10"))
        time.sleep(1.2)
        idle = socket.create_connection((r.host, r.port), timeout=5)
        assert _wait(lambda: r.app.limits.open == 2)
        time.sleep(1.2)
        try:
            assert r.get("/latest/meta-data/instance-id")[0] == 200
            with contextlib.suppress(ConnectionResetError):
                assert idle.recv(100) == b""  # dropped for the newcomer
            answer = b""
            while chunk := poll.recv(65536):
                answer += chunk
        finally:
            poll.close()
            idle.close()
    status_line, _ = _head(answer)
    assert status_line == "HTTP/1.1 200 OK"
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert [e["path"] for e in body["requests"]] == ["/latest/meta-data/instance-id"]
