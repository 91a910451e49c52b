"""Hostile HTTP on the IMDS listener: the mock answers right, closes, and holds nothing.

Every test talks raw bytes to the real server over TCP, because the cases (malformed
request lines, pipelining, half-closes, resets, slow headers) are below what HTTP client
libraries let one send.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from support import Running, make_config, serve

OK_REQUEST = b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n"
INSTANCE_ID = b"i-1234567890abcdef0"


def connect(r: Running, timeout: float = 5.0) -> socket.socket:
    """A raw TCP connection to the IMDS listener."""
    return socket.create_connection((r.host, r.port), timeout=timeout)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


def exchange(r: Running, data: bytes) -> bytes:
    """Send ``data`` on a new connection; return all the server sent before closing."""
    with connect(r) as sock:
        sock.sendall(data)
        return read_all(sock)


def status_of(answer: bytes) -> int:
    """The status code of the first response in ``answer``."""
    assert answer.startswith(b"HTTP/1.1 "), answer[:80]
    return int(answer[9:12])


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    """Poll ``predicate()`` until true (for server-side counters that settle after close)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def small_limits() -> Iterator[Running]:
    """A server with a one-second idle deadline and room for four connections."""
    cfg = make_config(server={"idle-timeout": 1, "max-connections": 4})
    with serve(cfg) as r:
        yield r


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01\x02garbage\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /latest/meta-data/ HTTP/1.1\r\nBad Header: x\r\n\r\n",
        b"GET /latest/meta-data/ HTTP/1.1\r\n: novalue\r\n\r\n",
        b"GET /latest/\x00 HTTP/1.1\r\n\r\n",
        b"GET /latest/meta-data/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /latest/meta-data/é HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"GET / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
        b"GET\r\n\r\n",
        b"GET /latest/meta-data/ HTTP/1.1\r\nX-aws-ec2-metadata-token: a\n<!DOCTYPE html>\r\n\r\n",
        b"GET /latest/meta-data/ HTTP/1.1\r\nX-aws-ec2-metadata-token: a\r\n b\r\n\r\n",
    ],
    ids=[
        "binary",
        "http-9.9",
        "space-in-name",
        "empty-name",
        "nul-in-path",
        "latin1-in-path",
        "utf8-in-path",
        "negative-length",
        "two-lengths",
        "length-and-chunked",
        "bad-chunk",
        "no-target",
        "multi-line-token",
        "folded-token",
    ],
)
def test_malformed_requests_get_400_and_close(running: Running, data: bytes) -> None:
    """A malformed request line, header or framing is answered with a plain-text
    ``400 Bad Request`` (as Go's net/http answers it, not IMDS's XHTML page) and closed."""
    answer = exchange(running, data)
    assert status_of(answer) == 400
    assert answer.count(b"HTTP/1.1 ") == 1
    assert b"Connection: close" in answer
    assert b"\r\nContent-Type: text/plain; charset=utf-8\r\n" in answer
    assert answer.endswith(b"\r\n\r\n400 Bad Request")
    assert b"Traceback" not in answer
    assert running.get("/latest/meta-data/instance-id") == (200, INSTANCE_ID)


@pytest.mark.parametrize(
    "data",
    [
        b"GET /latest/meta-data/ HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        b"GET /latest/meta-data/ HTTP/1.1\r\n" + b"X-Many: 0123456789\r\n" * 2_000 + b"\r\n",
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n",
    ],
    ids=["one-big-header", "many-headers", "long-url"],
)
def test_oversized_request_head_is_431(running: Running, data: bytes) -> None:
    """A request line plus headers over 16 KiB is answered 431 and closed, however it is split."""
    assert status_of(exchange(running, data)) == 431


def test_head_limit_is_configurable() -> None:
    """server.max-header-bytes moves the 431 limit; a head just under it is served."""
    with serve(make_config(server={"max-header-bytes": 2048})) as r:
        under = OK_REQUEST[:-2] + b"X-Pad: " + b"p" * 1500 + b"\r\n\r\n"
        over = OK_REQUEST[:-2] + b"X-Pad: " + b"p" * 2100 + b"\r\n\r\n"
        assert status_of(exchange(r, under)) == 200
        assert status_of(exchange(r, over)) == 431


@pytest.mark.parametrize(
    "data",
    [
        b"GET /latest/meta-data/instance-id HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /latest/meta-data/instance-id HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        b"GET /latest/meta-data/instance-id HTTP/1.1\r\nContent-Length: 65536\r\n\r\n"
        + b"b" * 65536,
    ],
    ids=["content-length", "chunked", "64KiB"],
)
def test_body_on_get_is_read_and_ignored(running: Running, data: bytes) -> None:
    """A GET with a body (up to 64 KiB) is answered as without one."""
    answer = exchange(running, data)
    assert status_of(answer) == 200
    assert answer.endswith(INSTANCE_ID)


def test_body_over_limit_is_refused_without_waiting(running: Running) -> None:
    """A Content-Length over 64 KiB is answered 400 at once, before any body arrives."""
    started = time.monotonic()
    answer = exchange(running, b"GET / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\nabc")
    assert status_of(answer) == 400
    assert time.monotonic() - started < 2
    chunked = b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n" + b"c" * 65536
    assert status_of(exchange(running, chunked + b"\r\n10\r\n" + b"c" * 16)) == 400


def test_pipelined_requests_answered_in_order() -> None:
    """With keep-alive, requests sent in one packet are answered in order on the connection."""
    with serve(make_config(server={"keep-alive": True})) as r:
        paths = [b"instance-id", b"ami-id", b"instance-type", b"nope", b"local-ipv4"]
        batch = b"".join(b"GET /latest/meta-data/%s HTTP/1.1\r\nHost: x\r\n\r\n" % p for p in paths)
        last = b"GET /latest/meta-data/hostname HTTP/1.1\r\nConnection: close\r\n\r\n"
        answer = exchange(r, batch + last)
    parts = answer.split(b"HTTP/1.1 ")[1:]
    assert [int(p[:3]) for p in parts] == [200, 200, 200, 404, 200, 200]
    assert parts[0].endswith(INSTANCE_ID)
    assert parts[1].endswith(b"ami-0a887e401f7654935")
    assert parts[2].endswith(b"m4.xlarge")


def test_pipelined_requests_read_late_are_all_answered_in_order() -> None:
    """With keep-alive, a client that pipelines megabytes of answers before reading any is
    held back, not dropped: once it reads, every request is answered, in order."""
    pkcs7 = b"GET /latest/dynamic/instance-identity/pkcs7 HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /latest/meta-data/instance-id HTTP/1.1\r\nConnection: close\r\n\r\n"
    with serve(make_config(server={"keep-alive": True})) as r:
        answer = exchange(r, pkcs7 * 3000 + last)  # ~6 MB of answers: more than any buffer
    statuses = [int(part[:3]) for part in answer.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [200] * 3001
    assert answer.endswith(INSTANCE_ID)


def test_client_that_never_reads_is_dropped_at_the_deadline() -> None:
    """A keep-alive client that pipelines requests and never reads its answers is dropped at
    the idle deadline, its unsent answers with it."""
    pkcs7 = b"GET /latest/dynamic/instance-identity/pkcs7 HTTP/1.1\r\nHost: x\r\n\r\n"
    with serve(make_config(server={"keep-alive": True, "idle-timeout": 1})) as r:
        sock = connect(r)
        assert wait_for(lambda: r.app.server.limits.open == 1)
        sock.setblocking(False)
        with sock:
            for _ in range(40):
                with contextlib.suppress(BlockingIOError):
                    sock.send(pkcs7 * 500)
            assert wait_for(lambda: r.app.server.limits.open == 0, timeout=4)


def test_pipelined_requests_without_keep_alive_get_one_answer(running: Running) -> None:
    """Real IMDS closes after each answer: of two pipelined requests only the first is answered."""
    answer = exchange(running, OK_REQUEST + b"GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n")
    assert answer.count(b"HTTP/1.1 ") == 1
    assert answer.endswith(INSTANCE_ID)


def test_upgrade_request_on_keep_alive_is_answered_once_and_closed() -> None:
    """With keep-alive, a request asking to upgrade gets one plain answer that closes."""
    with serve(make_config(server={"keep-alive": True})) as r:
        answer = exchange(r, OK_REQUEST[:-2] + b"Connection: upgrade\r\nUpgrade: h2c\r\n\r\n")
    assert answer.count(b"HTTP/1.1 ") == 1
    assert b"Connection: close\r\n" in answer
    assert answer.endswith(INSTANCE_ID)


def test_half_closed_client_gets_its_answer(running: Running) -> None:
    """A client that shuts down its sending side after the request still reads the answer."""
    with connect(running) as sock:
        sock.sendall(OK_REQUEST)
        sock.shutdown(socket.SHUT_WR)
        assert read_all(sock).endswith(INSTANCE_ID)


def test_half_closed_client_gets_a_delayed_answer(running: Running) -> None:
    """A half-closed client still gets an answer delayed by a latency fault."""
    running.app.faults.add({"kind": "latency", "latency-ms": 200, "count": 1})
    with connect(running) as sock:
        sock.sendall(OK_REQUEST)
        sock.shutdown(socket.SHUT_WR)
        assert read_all(sock).endswith(INSTANCE_ID)


def test_half_closed_before_a_full_request_is_closed(running: Running) -> None:
    """A client that half-closes in the middle of its request gets the connection closed."""
    with connect(running) as sock:
        sock.sendall(OK_REQUEST[:20])
        sock.shutdown(socket.SHUT_WR)
        assert read_all(sock) == b""
    assert wait_for(lambda: running.app.server.limits.open == 0)


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # linger 0: a TCP RST


@pytest.mark.parametrize(
    "sent",
    [b"", OK_REQUEST[:10], OK_REQUEST[:-2], OK_REQUEST],
    ids=["nothing", "part-line", "part-head", "whole-request"],
)
def test_reset_connections_free_their_slot(running: Running, sent: bytes) -> None:
    """Connections reset by the client at any point are forgotten; the server keeps serving."""
    for _ in range(20):
        sock = connect(running)
        if sent:
            sock.sendall(sent)
        _reset(sock)
    assert running.get("/latest/meta-data/instance-id") == (200, INSTANCE_ID)
    assert wait_for(lambda: running.app.server.limits.open == 0)


def test_closed_connections_are_freed_without_the_garbage_collector(running: Running) -> None:
    """A closed connection's protocol is freed at once (no reference cycle left for the
    garbage collector, whose full collections pause the server for milliseconds)."""
    from imdsmock.serve.server import IMDSProtocol

    def protocols() -> int:
        return sum(isinstance(o, IMDSProtocol) for o in gc.get_objects())

    gc.collect()
    gc.disable()
    try:
        before = protocols()
        for _ in range(20):
            assert status_of(exchange(running, OK_REQUEST)) == 200
        assert wait_for(lambda: running.app.server.limits.open == 0)
        assert protocols() <= before
    finally:
        gc.enable()


def test_idle_connection_closed_after_timeout(small_limits: Running) -> None:
    """A connection that sends nothing is closed when the idle deadline passes."""
    with connect(small_limits) as sock:
        started = time.monotonic()
        assert read_all(sock) == b""
        assert 0.8 < time.monotonic() - started < 3
    assert wait_for(lambda: small_limits.app.server.limits.open == 0)


def test_slow_headers_closed_at_the_deadline(small_limits: Running) -> None:
    """A slowloris client, one byte at a time, is cut off at the deadline, not kept alive."""
    with connect(small_limits) as sock:
        started = time.monotonic()
        closed = False
        for byte in OK_REQUEST[:-2]:
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # reset: the server closed the connection
                closed = True
                break
            time.sleep(0.05)
            if time.monotonic() - started > 3:
                break
        if not closed:
            assert read_all(sock) == b""
        assert time.monotonic() - started < 3
    assert wait_for(lambda: small_limits.app.server.limits.open == 0)


def test_keep_alive_connection_idles_out() -> None:
    """A kept-alive connection is closed when no next request arrives within the deadline."""
    cfg = make_config(server={"keep-alive": True, "idle-timeout": 1})
    with serve(cfg) as r, connect(r) as sock:
        sock.sendall(OK_REQUEST)
        started = time.monotonic()
        assert read_all(sock).endswith(INSTANCE_ID)
        assert 0.8 < time.monotonic() - started < 3


def test_connection_cap_sheds_with_429_and_serves_accepted(small_limits: Running) -> None:
    """Beyond max-connections new connections get 429 and close; accepted ones are served."""
    held = [connect(small_limits) for _ in range(4)]
    try:
        assert wait_for(lambda: small_limits.app.server.limits.open == 4)
        shed = exchange(small_limits, OK_REQUEST)
        assert status_of(shed) == 429
        for sock in held:
            sock.sendall(OK_REQUEST)
        for sock in held:
            assert read_all(sock).endswith(INSTANCE_ID)
    finally:
        for sock in held:
            sock.close()
    assert wait_for(lambda: small_limits.app.server.limits.open == 0)
    assert small_limits.get("/latest/meta-data/instance-id") == (200, INSTANCE_ID)


def test_connection_cap_holds_under_a_burst(small_limits: Running) -> None:
    """Under a burst of concurrent clients each gets 200 or 429, never an error or silence."""
    statuses: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(10):
            status = status_of(exchange(small_limits, OK_REQUEST))
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=client) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(statuses) == 120
    assert set(statuses) <= {200, 429}
    assert 200 in statuses
    assert wait_for(lambda: small_limits.app.server.limits.open == 0)


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/latest/meta-data/instance%2Did", 404),
        ("/latest/meta-data%2Finstance-id", 404),
        ("/latest/meta-data/tags/instance/%4Eame", 404),
        ("/latest/meta-data/instance-id?x=%00", 200),
        ("/latest/meta-data/instance-id#frag", 200),
        ("/latest/meta-data/%F0%9F%92%A9", 404),
    ],
    ids=["dash", "slash", "letter", "query", "fragment", "emoji"],
)
def test_percent_encoded_paths_are_not_decoded(running: Running, target: str, status: int) -> None:
    """Paths match as sent (no percent-decoding), so an encoded path is 404, never 5xx."""
    answer = exchange(running, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target.encode())
    assert status_of(answer) == status


TRAVERSALS = [
    "/../../../../etc/passwd",
    "/latest/../../../../etc/passwd",
    "/latest/meta-data/../../../../etc/passwd",
    "/latest/%2e%2e/%2e%2e/etc/passwd",
    "/latest/meta-data/..%2f..%2f..%2fetc%2fpasswd",
    "/latest/user-data/../../etc/passwd",
    "/latest/meta-data/./././instance-id/../../../etc/passwd",
    "//etc/passwd",
    "/latest/meta-data/..\\..\\..\\etc\\passwd",
    "/latest/meta-data/iam/security-credentials/../../../../proc/self/environ",
    "http://169.254.169.254/../../etc/passwd",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_path_traversal_is_404_and_opens_no_file(running: Running, target: str) -> None:
    """Traversal attempts answer 404 and the server opens no file while answering them."""
    opened: list[str] = []
    watching = threading.Event()

    def hook(event: str, args: tuple[object, ...]) -> None:
        if watching.is_set() and event == "open":
            opened.append(str(args[0]))

    _audit(hook)
    watching.set()
    try:
        answer = exchange(running, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target.encode())
    finally:
        watching.clear()
    assert status_of(answer) == 404
    assert b"root:" not in answer
    assert opened == []


_HOOKS: list[object] = []


def _audit(hook: object) -> None:
    # Audit hooks cannot be removed; install one dispatcher and swap what it calls.
    if not _HOOKS:

        def dispatch(event: str, args: tuple[object, ...]) -> None:
            if _HOOKS[-1] is not None:
                _HOOKS[-1](event, args)  # type: ignore[operator]

        _HOOKS.append(None)
        sys.addaudithook(dispatch)
    _HOOKS.append(hook)


# -- requests repeated byte for byte (the server's parse memo) ----------------------------


def test_head_limit_holds_for_a_request_another_server_already_served() -> None:
    """A head accepted by a server with a high limit is still 431 at one with a lower limit."""
    request = OK_REQUEST[:-2] + b"X-Pad: " + b"p" * 1100 + b"\r\n\r\n"
    with serve(make_config(server={"max-header-bytes": 4096})) as high:
        assert status_of(exchange(high, request)) == 200
        assert status_of(exchange(high, request)) == 200
    with serve(make_config(server={"max-header-bytes": 1024})) as low:
        assert status_of(exchange(low, request)) == 431


def test_repeated_request_bytes_are_judged_afresh_each_time() -> None:
    """Sending the same bytes again re-checks the token (it expires) and is logged again."""
    with serve(make_config(server={"keep-alive": True})) as r:
        token = r.token(ttl=5)
        request = (
            b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n"
            b"X-aws-ec2-metadata-token: " + token.encode() + b"\r\n\r\n"
        )
        with connect(r) as sock:
            for _ in range(3):
                sock.sendall(request)
                answer = sock.recv(65536)
                assert status_of(answer) == 200
                assert answer.endswith(INSTANCE_ID)
        r.clock.advance(6)
        assert status_of(exchange(r, request[:-2] + b"Connection: close\r\n\r\n")) == 401
        with connect(r) as sock:
            sock.sendall(request)
            assert status_of(sock.recv(65536)) == 401
        logged = [(e.path, e.status) for e in r.app.requests.entries() if e.method == "GET"]
        assert logged[-5:] == [
            ("/latest/meta-data/instance-id", s) for s in (200, 200, 200, 401, 401)
        ]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /latest/meta-data/instance-id HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /latest/meta-data/instance-id HTTP/1.0\r\n\r\n",
    ],
    ids=["connection-close", "http-1.0"],
)
def test_repeated_request_that_ends_the_connection_ends_it_every_time(
    request_bytes: bytes,
) -> None:
    """On a keep-alive server a request that asks to close closes, the first time and after."""
    with serve(make_config(server={"keep-alive": True})) as r:
        for _ in range(3):
            with connect(r) as sock:
                sock.sendall(request_bytes)
                answer = read_all(sock)  # returns only because the server closed
                assert b"Connection: close\r\n" in answer
                assert answer.endswith(INSTANCE_ID)
                assert answer.count(b"HTTP/1.1 ") == 1


def test_parse_memo_stays_bounded_when_no_request_repeats() -> None:
    """Thousands of distinct requests (a new path each) keep the parse memo within its bound."""
    import http.client

    from imdsmock.serve import memo as requestmemo

    pad = "p" * 1800  # large requests: the byte budget is reached in a few thousand
    count = requestmemo.PARSED_BUDGET // (1900 + requestmemo.PARSED_ENTRY_COST) + 300
    with serve(make_config(server={"keep-alive": True})) as r:
        conn = http.client.HTTPConnection(r.host, r.port, timeout=5)
        try:
            for i in range(count):
                conn.request("GET", f"/latest/meta-data/nope-{i}", headers={"X-Pad": pad})
                answer = conn.getresponse()
                answer.read()
                assert answer.status == 404
            held = sum(len(k) + requestmemo.PARSED_ENTRY_COST for k in requestmemo.PARSED)
            assert 0 < held <= requestmemo.PARSED_BUDGET
            conn.request("GET", "/latest/meta-data/instance-id")
            assert conn.getresponse().read() == INSTANCE_ID
        finally:
            conn.close()
