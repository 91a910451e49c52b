"""What the docker way makes of the engine's answers, byte by byte: a scripted server on a
unix socket answers each request with given bytes (status lines, chunked and sized bodies,
broken ones), and the listing's containers are read whatever shape their networks have.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from imdsmock.core.recognize import Workload
from imdsmock.serve.docker import DockerResolver, containers, get_json, workload
from imdsmock.serve.resolve import ResolveError


async def _scripted(path: Path, reply: bytes) -> asyncio.AbstractServer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(answer, str(path))


def _ask(tmp_path: Path, reply: bytes) -> Any:
    async def scenario() -> Any:
        sock = tmp_path / "engine.sock"
        server = await _scripted(sock, reply)
        try:
            return await get_json(str(sock), "/containers/json")
        finally:
            server.close()
            sock.unlink()

    return asyncio.run(scenario())


OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


def test_bodies_sized_chunked_or_to_the_end(tmp_path: Path) -> None:
    assert _ask(tmp_path, OK + b"Content-Length: 2\r\n\r\n[]") == []
    chunked = OK + b"Transfer-Encoding: chunked\r\n\r\n1\r\n[\r\n1;x=y\r\n]\r\n0\r\n\r\n"
    assert _ask(tmp_path, chunked) == []
    assert _ask(tmp_path, OK + b"Connection: close\r\n\r\n[1]") == [1]
    big = json.dumps([{"Id": "x" * 64}] * 5000).encode()  # parsed off the loop
    assert len(_ask(tmp_path, OK + b"Content-Length: %d\r\n\r\n%s" % (len(big), big))) == 5000


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom",
         "the Docker engine answered 500 to /containers/json: b'boom'"),
        (OK + b"Content-Length: 3\r\n\r\nnot", "the Docker engine's answer to /containers/json "
         "is not JSON"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "the Docker engine answered 'SSH-2.0-OpenSSH'"),
        (b"HTTP/1.1 200", "the Docker engine closed the connection"),
        (OK + b"Content-Length: 10\r\n\r\n[]", "the Docker engine closed the connection"),
        (OK + b"Content-Length: 999999999999\r\n\r\n", "the Docker engine's answer is too large"),
        (OK + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", "the Docker engine sent a malformed "
         "chunk"),
        (OK + b"Transfer-Encoding: chunked\r\n\r\n5\r\n[]", "the Docker engine closed the "
         "connection"),
        (OK + b"Transfer-Encoding: chunked\r\n\r\n2\r\n[", "the Docker engine closed the "
         "connection"),
    ],
    ids=["status", "not-json", "not-http", "head-cut", "body-cut", "too-large", "bad-chunk",
         "chunk-cut", "chunk-line-cut"],
)  # fmt: skip
def test_a_broken_answer_is_one_error_line(tmp_path: Path, reply: bytes, message: str) -> None:
    with pytest.raises(ResolveError) as caught:
        _ask(tmp_path, reply)
    assert str(caught.value) == message


def test_no_engine_at_the_socket(tmp_path: Path) -> None:
    with pytest.raises(ResolveError, match="no Docker engine socket at "):
        asyncio.run(get_json(str(tmp_path / "none.sock"), "/containers/json"))


def test_every_address_of_every_network_of_a_listing() -> None:
    listing = [
        {
            "Id": "c1",
            "Names": ["/shop-web-1"],
            "Labels": {
                "com.docker.compose.service": "web",
                "com.docker.compose.project": "shop",
                "com.docker.compose.container-number": "1",
            },
            "NetworkSettings": {
                "Networks": {
                    "front": {"IPAddress": "172.18.0.5", "GlobalIPv6Address": "fd00::5"},
                    "back": {"IPAddress": "172.19.0.5", "GlobalIPv6Address": ""},
                    "again": {"IPAddress": "172.19.0.5"},
                    "odd": {"IPAddress": "not an address"},
                    "junk": "x",
                }
            },
        },
        {"Id": "c2", "Names": ["/hosted"], "NetworkSettings": {"Networks": {"host": {}}}},
        {"Id": "c3", "Labels": {"imdsmock.instance": ""}, "NetworkSettings": None},
        "not a container",
    ]
    found = list(containers(listing))
    web = Workload("docker", "c1", "shop.web-1", ("shop-web-1", "web"), None)
    assert found == [("172.18.0.5", web), ("fd00::5", web), ("172.19.0.5", web)]
    assert workload(listing[2]) == Workload("docker", "c3", "c3", ("c3",), None)  # type: ignore[arg-type]
    with pytest.raises(ResolveError, match="not a list"):
        list(containers({"message": "page not found"}))


def test_events_forget_what_went_and_ignore_the_rest() -> None:
    resolver = DockerResolver("/nowhere")
    web = Workload("docker", "c1", "web", ("web",))
    other = Workload("docker", "c2", "other", ("other",))
    for client, found in (("10.0.0.1", web), ("10.0.0.2", other), ("10.0.0.3", None)):
        resolver.learn(client, found)
    before = resolver.epoch
    for line in (b"", b"not json", b"[1]", json.dumps({"Type": "container"}).encode()):
        resolver._event(line)
    assert resolver.epoch == before
    leave = {
        "Type": "network",
        "Action": "disconnect",
        "Actor": {"Attributes": {"container": "c1"}},
    }
    resolver._event(json.dumps(leave).encode())
    assert resolver.lookup("10.0.0.1") is None
    assert resolver.lookup("10.0.0.2") == other
    assert resolver.epoch == before + 1
    resolver._event(json.dumps({"status": "start", "id": "c2"}).encode())  # the older form
    assert resolver.lookup("10.0.0.2") is None
    assert resolver.epoch == before + 1  # a start is no death
