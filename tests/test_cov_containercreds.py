"""Container credential endpoints (ECS, EKS) over a raw socket: methods, paths, bad HTTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from support import make_config, serve

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDphcHAifQ.c2ln"


@pytest.fixture
def endpoints() -> Iterator[dict[str, tuple[str, int]]]:
    """The ECS and EKS endpoint addresses of a running mock."""
    cfg = make_config(
        server={"ecs-listen": ["127.0.0.1:0"], "eks-listen": ["127.0.0.1:0"]},
        credentials={"container-token": TOKEN},
    )
    with serve(cfg) as r:
        out = {}
        for kind in ("ecs", "eks"):
            (url,) = r.app.containers.urls(kind)
            host, port = url.removeprefix("http://").rsplit(":", 1)
            out[kind] = (host, int(port))
        yield out


def _raw(address: tuple[str, int], data: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("kind", ["ecs", "eks"])
def test_container_endpoint_answers_post_with_405(
    endpoints: dict[str, tuple[str, int]], kind: str
) -> None:
    """Only GET and HEAD are served: a POST gets 405 Method Not Allowed, as the agents answer."""
    answer = _raw(endpoints[kind], b"POST /v1/credentials HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 405 ")
    assert b"Method Not Allowed" in answer


def test_ecs_endpoint_answers_an_unrelated_path_with_the_agents_404(
    endpoints: dict[str, tuple[str, int]],
) -> None:
    """A path that is not under /v2/credentials gets the ECS agent's plain 404 page."""
    answer = _raw(endpoints["ecs"], b"GET /metadata HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert answer.endswith(b"\r\n\r\n404 page not found\n")


@pytest.mark.parametrize("kind", ["ecs", "eks"])
def test_container_endpoint_answers_malformed_http_with_400(
    endpoints: dict[str, tuple[str, int]], kind: str
) -> None:
    """Bytes that are not HTTP get 400 Bad Request and the connection closes."""
    answer = _raw(endpoints[kind], b"\x00\x01 garbage\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_container_endpoint_answers_an_upgrade_request_once_as_plain_http(
    endpoints: dict[str, tuple[str, int]],
) -> None:
    """A request asking to upgrade (e.g. to WebSocket) gets one plain HTTP answer, then the close."""
    answer = _raw(
        endpoints["eks"],
        b"GET /v1/credentials HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + TOKEN.encode()
        + b"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.count(b"HTTP/1.1 ") == 1


@pytest.mark.parametrize("kind", ["ecs", "eks"])
def test_container_endpoint_answers_a_huge_head_with_431(
    endpoints: dict[str, tuple[str, int]], kind: str
) -> None:
    """Request headers past 16 KiB get 431 Request Header Fields Too Large, then the close."""
    big = b"X-Big: " + b"b" * 20_000 + b"\r\n"
    answer = _raw(endpoints[kind], b"GET /v1/credentials HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert answer.endswith(b"\r\n\r\n431 Request Header Fields Too Large\n")
