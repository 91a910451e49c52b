"""The docker way against a stub of the Docker Engine API on a unix socket: the real mock,
real clients from loopback addresses standing for containers, the engine's answers and
events played by the test (tests/docker/test_fleet_docker.py does the same with the real
engine and real containers).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from imdsmock.config.template import derive, member_name
from imdsmock.control import ctlview
from mockprocess import mock_process, run_command
from support import make_config, serve
from test_fleet_serve import ID, ask

TAGS = "/latest/meta-data/tags/instance/Name"
LOCAL = "/latest/meta-data/local-ipv4"


class Engine:
    """The engine's state as the stub serves it: containers and an events queue."""

    def __init__(self) -> None:
        self.containers: list[dict[str, Any]] = []
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.status = 200
        self.lists = 0
        self.chunked_lists = False
        self.delay = 0.0

    def run(self, cid: str, name: str, address: str, *, event: bool = True, **labels: str) -> None:
        """A container starts, on a user-defined network (its address only there)."""
        self.containers.append(
            {
                "Id": cid,
                "Names": [f"/{name}"],
                "Labels": labels,
                "NetworkSettings": {
                    "Networks": {
                        "app": {"IPAddress": address, "GlobalIPv6Address": ""},
                        "host": {"IPAddress": ""},
                    }
                },
            }
        )
        if event:
            self.events.put({"Type": "container", "Action": "start", "Actor": {"ID": cid}})

    def stop(self, cid: str) -> None:
        self.containers = [c for c in self.containers if c["Id"] != cid]
        self.events.put({"Type": "container", "Action": "die", "Actor": {"ID": cid}})


@contextlib.contextmanager
def stub_engine(path: Path) -> Iterator[Engine]:
    engine = Engine()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            with contextlib.suppress(OSError):  # the mock went away meanwhile
                self._get()

        def _get(self) -> None:
            if self.path == "/containers/json":
                engine.lists += 1
                time.sleep(engine.delay)
                body = json.dumps(engine.containers).encode()
                self.send_response(engine.status)
                if engine.chunked_lists:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for part in (body[:10], body[10:]):
                        if part:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                return
            assert self.path.startswith("/events?filters=")
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            while True:
                event = engine.events.get()
                if event is None:
                    self.wfile.write(b"0\r\n\r\n")
                    return
                data = json.dumps(event).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    server = Server(str(path), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield engine
    finally:
        engine.events.put(None)
        server.shutdown()
        server.server_close()


def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def fleet_config(socket: Path, **extra: Any) -> Any:
    sections: dict[str, Any] = {
        "instance": {"instance-id": "i-0d0d0d0d0d0d0d0d0"},
        "fleet": {"recognize": ["docker", "source"], "docker-socket": str(socket)},
        "instances": [
            {"name": "web", "match": {"container": ["web"]},
             "instance": {"instance-id": "i-0aaaaaaaaaaaaaaa1"}},
            {"name": "batch", "instance": {"instance-id": "i-0bbbbbbbbbbbbbbb2"}},
        ],
    }  # fmt: skip
    for key, value in extra.items():
        if isinstance(value, dict) and key in sections:
            sections[key] = {**sections[key], **value}
        else:
            sections[key] = value
    return make_config(**sections)


def instance_of(port: int, source: str) -> str:
    status, body = ask(port, ID, source)
    return body.decode() if status == 200 else str(status)


def test_containers_are_recognised_by_name_service_and_label(tmp_path: Path) -> None:
    """A container named web, a compose container of service web, one labelled
    imdsmock.instance=batch: each its instance from its first connection on (which waits
    for the engine's answer); a container nothing matches, and an address no container
    has, the default instance."""
    sock = tmp_path / "docker.sock"
    with stub_engine(sock) as engine, serve(fleet_config(sock)) as running:
        engine.run("c1", "web", "127.0.0.2")
        engine.run("c2", "shop-web-1", "127.0.0.3", **{
            "com.docker.compose.service": "web", "com.docker.compose.project": "shop",
            "com.docker.compose.container-number": "1"})  # fmt: skip
        engine.run("c3", "nightly", "127.0.0.4", **{"imdsmock.instance": "batch"})
        engine.run("c4", "other", "127.0.0.5")
        port = running.port
        assert instance_of(port, "127.0.0.2") == "i-0aaaaaaaaaaaaaaa1"
        assert engine.lists == 1
        # The one listing taught the mock every container: no lookup for the others.
        assert instance_of(port, "127.0.0.3") == "i-0aaaaaaaaaaaaaaa1"
        assert instance_of(port, "127.0.0.4") == "i-0bbbbbbbbbbbbbbb2"
        assert instance_of(port, "127.0.0.5") == "i-0d0d0d0d0d0d0d0d0"
        assert instance_of(port, "127.0.0.6") == "i-0d0d0d0d0d0d0d0d0"
        assert engine.lists == 2  # 127.0.0.6: nobody, asked once
        fleet = running.app.fleet
        assert fleet is not None
        assert {(c.client, c.why) for c in fleet.clients("web")} == {
            ("127.0.0.2", "container web"),
            ("127.0.0.3", "container web"),
        }
        assert fleet.clients("batch")[0].why == "docker nightly names it"


def test_a_stopped_containers_address_is_never_served_its_instance(tmp_path: Path) -> None:
    """metadataproxy's bug: web stops, another container takes its address; the newcomer
    is never served web's instance (nor its credentials), not even once.

    The engine reports the death before it hands the address out again, and a container
    takes far longer to start than the mock takes to read the event; here the stub's
    newcomer starts once the death was read (the real engine's test does it for real)."""
    sock = tmp_path / "docker.sock"
    config = fleet_config(sock, fleet={"unknown": "reject"})
    with stub_engine(sock) as engine, serve(config) as running:
        port = running.port
        engine.run("c1", "web", "127.0.0.2")
        assert eventually(lambda: instance_of(port, "127.0.0.2") == "i-0aaaaaaaaaaaaaaa1")
        engine.stop("c1")
        assert eventually(lambda: instance_of(port, "127.0.0.2") == "404")
        engine.run("c9", "intruder", "127.0.0.2")
        seen = {instance_of(port, "127.0.0.2") for _ in range(20)}
        assert "i-0aaaaaaaaaaaaaaa1" not in seen
        assert eventually(lambda: instance_of(port, "127.0.0.2") == "404")
        engine.run("c10", "web", "127.0.0.7")  # web again, elsewhere
        assert eventually(lambda: instance_of(port, "127.0.0.7") == "i-0aaaaaaaaaaaaaaa1")


def test_the_template_gives_each_unmatched_container_an_instance_of_its_own(
    tmp_path: Path,
) -> None:
    """With a template, containers no instance matches get one each, derived from their
    key (a compose container: PROJECT.SERVICE-NUMBER), the same when started again."""
    sock = tmp_path / "docker.sock"
    config = fleet_config(
        sock,
        template={"ways": ["docker"], "instance": {"iam-role": "app-role",
                  "subnet-ipv4-cidr-block": "10.9.0.0/16"}},
    )  # fmt: skip
    compose = {"com.docker.compose.project": "shop", "com.docker.compose.container-number": "1"}
    with stub_engine(sock) as engine, serve(config) as running:
        port = running.port
        engine.run("c1", "shop-api-1", "127.0.0.2", **compose, **{
            "com.docker.compose.service": "api"})  # fmt: skip
        engine.run("c2", "job", "127.0.0.3")
        engine.run("c3", "web", "127.0.0.4")
        expected = derive(config, "docker", "shop.api-1")
        wanted = expected.instance["instance-id"]
        assert instance_of(port, "127.0.0.2") == wanted  # the first request: made meanwhile
        assert ask(port, TAGS, "127.0.0.2")[1] == b"shop.api-1"
        local = ask(port, LOCAL, "127.0.0.2")[1].decode()
        assert local == expected.instance["local-ipv4"]
        assert local.startswith("10.9.")
        roles = ask(port, "/latest/meta-data/iam/security-credentials/", "127.0.0.2")[1]
        assert roles == b"app-role"
        # job was learnt from api's listing: its first request waits for its instance too.
        job = derive(config, "docker", "job").instance["instance-id"]
        assert instance_of(port, "127.0.0.3") == job
        # A named instance wins over the template.
        assert instance_of(port, "127.0.0.4") == "i-0aaaaaaaaaaaaaaa1"
        assert running.app.fleet is not None
        names = running.app.fleet.names()
        assert names == ["default", "web", "batch", "shop.api-1", "job"]
        # Started again (a new ID, another address): the same instance.
        engine.stop("c1")
        engine.run("c5", "shop-api-1", "127.0.0.9", **compose, **{
            "com.docker.compose.service": "api"})  # fmt: skip
        assert eventually(lambda: instance_of(port, "127.0.0.9") == wanted)
        assert running.app.fleet.names() == names
        listed = {i["name"]: i for i in running.imds.instances}
        assert listed["shop.api-1"]["template"] == "shop.api-1"
        assert listed["shop.api-1"]["instance-id"] == wanted
        assert "template" not in listed["web"]
        table = ctlview.fleet({"instances": list(listed.values())})
        assert table is not None
        assert any("shop.api-1" in line and "template=shop.api-1" in line for line in table)


def test_a_slow_engine_holds_a_first_connection_at_most_a_second(tmp_path: Path) -> None:
    """An engine slower than HOLD to answer: the first connection is answered after HOLD
    by the next way (the default instance here), the loop serving others meanwhile; a
    later one is the container's. A chunked listing is read as well."""
    sock = tmp_path / "docker.sock"
    with stub_engine(sock) as engine, serve(fleet_config(sock)) as running:
        port = running.port
        # 127.0.0.1 is nobody, known as such for RETRY_AFTER: its connections are not held.
        assert instance_of(port, "127.0.0.1") == "i-0d0d0d0d0d0d0d0d0"
        engine.run("c1", "web", "127.0.0.2", event=False)  # (its start event would drop that)
        engine.delay, engine.chunked_lists = 2.0, True
        started = time.monotonic()
        held = threading.Thread(target=lambda: answers.append(instance_of(port, "127.0.0.2")))
        answers: list[str] = []
        held.start()
        time.sleep(0.2)
        assert instance_of(port, "127.0.0.1") == "i-0d0d0d0d0d0d0d0d0"  # not held
        assert time.monotonic() - started < 0.9
        held.join()
        assert answers == ["i-0d0d0d0d0d0d0d0d0"]
        assert 0.9 < time.monotonic() - started < 1.9
        # The lookup still runs: the next connection is not held again.
        again = time.monotonic()
        assert instance_of(port, "127.0.0.2") == "i-0d0d0d0d0d0d0d0d0"
        assert time.monotonic() - again < 0.5
        # A client that goes away while held: nothing is answered, nothing breaks.
        with socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.9", 0)) as s:
            s.sendall(b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(1.2)
        assert eventually(lambda: instance_of(port, "127.0.0.2") == "i-0aaaaaaaaaaaaaaa1")


def test_the_template_limit_is_logged_once_per_client(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sock = tmp_path / "docker.sock"
    config = fleet_config(sock, template={"ways": ["docker"], "limit": 1})
    logs = caplog.at_level(logging.WARNING, logger="imdsmock")
    with logs, stub_engine(sock) as engine, serve(config) as running:
        port = running.port
        engine.run("c1", "one", "127.0.0.2")
        engine.run("c2", "two", "127.0.0.3")
        assert eventually(lambda: instance_of(port, "127.0.0.2") != "i-0d0d0d0d0d0d0d0d0")
        for _ in range(5):
            assert instance_of(port, "127.0.0.3") == "i-0d0d0d0d0d0d0d0d0"
            time.sleep(0.05)
    lines = [r.getMessage() for r in caplog.records if "template" in r.getMessage()]
    assert lines == [
        "docker: no instance made for client 127.0.0.3 (two): the template's limit of 1 "
        "instances is reached; it is recognised by the next way (logged once per client)"
    ]


def test_an_engine_that_cannot_be_asked_is_logged_once_per_client(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No engine at the socket: clients are recognised by the next way; one line for the
    watch, one per client (not per request)."""
    sock = tmp_path / "nothing.sock"
    config = fleet_config(sock, instances=[{"name": "web", "match": {"source": ["127.0.0.2"]},
                                            "instance": {"instance-id": "i-0aaaaaaaaaaaaaaa1"}}])  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="imdsmock"), serve(config) as running:
        for _ in range(3):
            assert instance_of(running.port, "127.0.0.2") == "i-0aaaaaaaaaaaaaaa1"
            assert instance_of(running.port, "127.0.0.3") == "i-0d0d0d0d0d0d0d0d0"
            time.sleep(0.1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        f"docker: cannot follow changes (no Docker engine socket at {sock}); answers are "
        "trusted for 2 s only until it can, retrying",
        f"docker lookup of client 127.0.0.2 failed (no Docker engine socket at {sock}); it "
        "is recognised by the next way until a lookup succeeds (logged once per client)",
        f"docker lookup of client 127.0.0.3 failed (no Docker engine socket at {sock}); it "
        "is recognised by the next way until a lookup succeeds (logged once per client)",
    ]


def test_template_names_are_names_and_unique() -> None:
    assert member_name("docker", "shop.api-1", ()) == "shop.api-1"
    assert member_name("docker", "Web_1", ()) == "web_1"
    assert member_name("docker", "web:1", ()).startswith("web-1-")
    assert member_name("docker", "web", ("web",)).startswith("web-")
    assert member_name("docker", "default", ()).startswith("default-")
    assert member_name("kubernetes", "shop/web-0", ()) == "shop.web-0"
    long = member_name("kubernetes", "shop/" + "x" * 80, ())
    assert len(long) == 63
    assert long.startswith("shop.xxx")
    assert member_name("docker", "web", ("web",)) == member_name("docker", "web", ("web",))


def test_ctl_gives_an_instance_container_rules(tmp_path: Path) -> None:
    """`ctl instances add NAME --container C` serves a new instance to container C; `set
    --container` moves it; the table shows the rule."""
    sock = tmp_path / "docker.sock"
    path = tmp_path / "fleet.yaml"
    path.write_text(
        f"fleet: {{recognize: [docker], docker-socket: '{sock}'}}\n"
        "instance: {instance-id: i-0d0d0d0d0d0d0d0d0}\n"
    )
    with stub_engine(sock) as engine, mock_process(["-c", str(path)]) as mp:
        url = ["--url", f"http://127.0.0.1:{mp.control_port}"]
        engine.run("c1", "api", "127.0.0.2")
        engine.run("c2", "api2", "127.0.0.3")
        keys = ["--set", "instance.instance-id=i-0cccccccccccccccc"]
        added = run_command(["ctl", *url, "instances", "add", "api", "--container", "api", *keys])
        assert added.returncode == 0, added.stderr
        assert eventually(lambda: instance_of(mp.port, "127.0.0.2") == "i-0cccccccccccccccc")
        assert instance_of(mp.port, "127.0.0.3") == "i-0d0d0d0d0d0d0d0d0"
        moved = run_command(["ctl", *url, "instances", "set", "api", "--container", "api2"])
        assert moved.returncode == 0, moved.stderr
        assert instance_of(mp.port, "127.0.0.3") == "i-0cccccccccccccccc"
        table = run_command(["ctl", *url, "instances"]).stdout
        assert "container=api2" in table
        bad = run_command(["ctl", *url, "instances", "set", "api", "--container", "a b"])
        assert bad.returncode == 2
        assert "instances.api.match.container[0] is 'a b'" in bad.stderr
