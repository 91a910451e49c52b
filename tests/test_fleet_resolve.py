"""Resolvers (imdsmock.serve.resolve): answers from a cache, lookups off the request path,
failures logged once per client, answers dropped when what they name is gone.

The resolver here is a table in the test standing in for another system; the Docker one
is tested against the real engine in tests/docker/test_fleet_docker.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from imdsmock.app import build_resolvers
from imdsmock.config.build import from_mapping
from imdsmock.config.schema import MatchConfig, MemberConfig
from imdsmock.core.recognize import Recognizer, Workload
from imdsmock.serve import resolve
from imdsmock.serve.addresstemplate import AddressTemplate
from imdsmock.serve.resolve import CachedResolver, ResolveError

WEB = Workload("docker", "c1", "proj-web-1", ("proj-web-1", "web"))


class Table(CachedResolver):
    """Answers from ``table``; ``fail`` makes lookups fail; ``gate`` holds them."""

    way = "docker"

    def __init__(self, clock: list[float]) -> None:
        super().__init__(clock=lambda: clock[0])
        self.table: dict[str, Workload] = {}
        self.fail = False
        self.asked: list[str] = []
        self.gate: asyncio.Event | None = None
        self.found_in: list[str] = []

    async def find(self, client: str) -> Workload | None:
        self.asked.append(client)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ResolveError("engine unreachable")
        return self.table.get(client)

    async def watch(self) -> None:
        self.watch_started()
        await asyncio.Event().wait()


async def _settle(resolver: CachedResolver) -> None:
    for _ in range(50):
        await asyncio.sleep(0.01)
        if not resolver._pending:
            return


def test_an_unknown_client_is_answered_at_once_and_known_on_its_next_connection() -> None:
    async def scenario() -> None:
        clock = [0.0]
        resolver = Table(clock)
        resolver.table["10.0.0.5"] = WEB
        resolver.found = lambda w: resolver.found_in.append(threading.current_thread().name)
        job = asyncio.ensure_future(resolver.run())
        await asyncio.sleep(0)
        assert resolver.lookup("10.0.0.5") is None  # not waited for
        await _settle(resolver)
        assert resolver.lookup("10.0.0.5") == WEB
        assert resolver.lookup("10.0.0.6") is None
        await _settle(resolver)
        assert resolver.lookup("10.0.0.6") is None  # nobody: remembered for a while
        assert resolver.asked == ["10.0.0.5", "10.0.0.6"]
        clock[0] += resolve.RETRY_AFTER + 1
        assert resolver.lookup("10.0.0.5") == WEB  # trusted while watching
        assert resolver.lookup("10.0.0.6") is None  # asked again
        await _settle(resolver)
        assert resolver.asked == ["10.0.0.5", "10.0.0.6", "10.0.0.6"]
        # The fleet's hook ran once, in a worker thread, not on the loop's.
        assert len(resolver.found_in) == 1
        assert resolver.found_in[0] != threading.current_thread().name
        job.cancel()
        await resolver.close()

    asyncio.run(scenario())


def test_a_failed_lookup_is_logged_once_per_client(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        clock = [0.0]
        resolver = Table(clock)
        resolver.fail = True
        job = asyncio.ensure_future(resolver.run())
        await asyncio.sleep(0)
        for _ in range(3):
            for client in ("10.0.0.5", "10.0.0.6"):
                for _request in range(5):
                    assert resolver.lookup(client) is None
            await _settle(resolver)
            clock[0] += resolve.RETRY_AFTER + 1
        assert resolver.asked.count("10.0.0.5") == 3  # retried, once per pause
        job.cancel()

    with caplog.at_level(logging.WARNING, logger="imdsmock"):
        asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0] == (
        "docker lookup of client 10.0.0.5 failed (engine unreachable); it is recognised by "
        "the next way until a lookup succeeds (logged once per client)"
    )
    assert "client 10.0.0.6" in lines[1]


def test_an_answer_is_dropped_when_what_it_names_is_gone() -> None:
    """A stopped container's address is unknown at once, and a lookup that was under way
    when it stopped does not bring it back (its address may be someone else's by then)."""

    async def scenario() -> None:
        resolver = Table([0.0])
        resolver.table["10.0.0.5"] = WEB
        job = asyncio.ensure_future(resolver.run())
        await asyncio.sleep(0)
        resolver.lookup("10.0.0.5")
        await _settle(resolver)
        assert resolver.lookup("10.0.0.5") == WEB
        resolver.forget("c1")
        assert resolver.lookup("10.0.0.5") is None
        resolver.gate = asyncio.Event()
        await asyncio.sleep(0.01)
        assert resolver._pending == {"10.0.0.5"}
        resolver.forget("c1")  # it stops while the engine is asked
        resolver.gate.set()
        await _settle(resolver)
        assert resolver.lookup("10.0.0.5") is None
        job.cancel()
        await resolver.close()

    asyncio.run(scenario())


def test_answers_are_trusted_briefly_while_the_watch_is_down(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a watch, an answer holds RETRY_AFTER seconds; the watch failing is logged
    when it starts failing and when it is back, not on every retry."""
    monkeypatch.setattr(resolve, "WATCH_RETRY_FIRST", 0.01)
    failures = [3]

    class Flaky(Table):
        async def watch(self) -> None:
            if failures[0]:
                failures[0] -= 1
                raise OSError("no such socket")
            self.watch_started()
            await asyncio.Event().wait()

    async def scenario() -> None:
        clock = [0.0]
        resolver = Flaky(clock)
        resolver.table["10.0.0.5"] = WEB
        job = asyncio.ensure_future(resolver.run())
        await asyncio.sleep(0)
        assert not resolver.watching
        resolver.lookup("10.0.0.5")
        await _settle(resolver)
        assert resolver.lookup("10.0.0.5") == WEB
        clock[0] += resolve.RETRY_AFTER + 1
        assert resolver.lookup("10.0.0.5") is None  # stale without a watch
        for _ in range(100):
            await asyncio.sleep(0.01)
            if resolver.watching:
                break
        assert resolver.watching
        job.cancel()
        await resolver.close()

    with caplog.at_level(logging.WARNING, logger="imdsmock"):
        asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "docker: cannot follow changes (no such socket); answers are trusted for 2 s only "
        "until it can, retrying",
        "docker: following changes again",
    ]


def test_the_recogniser_matches_what_a_resolver_found() -> None:
    """The label naming an instance wins, then the first of the workload's names a rule
    holds (its container name before its service), then the template's instance."""
    members = [
        MemberConfig(name="svc", match=MatchConfig(container=("web",))),
        MemberConfig(name="one", match=MatchConfig(container=("proj-web-1",))),
        MemberConfig(name="labelled"),
    ]
    recognizer = Recognizer(members, ("docker",), spawned={("docker", "proj-api-1"): "t1"})
    assert recognizer.match(WEB) == ("one", "container proj-web-1")
    assert recognizer.match(WEB._replace(names=("proj-web-2", "web"))) == ("svc", "container web")
    labelled = WEB._replace(instance="labelled")
    assert recognizer.match(labelled) == ("labelled", "docker proj-web-1 names it")
    # A label naming no instance is not a match by itself.
    assert recognizer.match(WEB._replace(instance="nope")) == ("one", "container proj-web-1")
    api = Workload("docker", "c2", "proj-api-1", ("proj-api-1", "api"))
    assert recognizer.match(api) == ("t1", "docker template proj-api-1")
    assert recognizer.match(api._replace(key="proj-api-2", names=())) is None


def test_resolvers_are_built_for_the_ways_named() -> None:
    assert build_resolvers(from_mapping({})) == {}
    assert build_resolvers(from_mapping({"fleet": {"recognize": ["source"]}})) == {}
    made = build_resolvers(from_mapping({"fleet": {"recognize": ["docker"],
                                                   "docker-socket": "/run/d.sock"}}))  # fmt: skip
    assert list(made) == ["docker"]
    assert made["docker"].socket_path == "/run/d.sock"  # type: ignore[attr-defined]


def test_bounds_and_lookups_asked_from_other_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """At most PENDING_MAX lookups run at once (a client past it is looked up on a later
    connection); the memory starts again past KNOWN_MAX; a lookup asked from a worker
    thread (the control API's) starts on the serving loop."""
    monkeypatch.setattr(resolve, "PENDING_MAX", 1)
    monkeypatch.setattr(resolve, "KNOWN_MAX", 2)

    async def scenario() -> None:
        resolver = Table([0.0])
        resolver.gate = asyncio.Event()
        job = asyncio.ensure_future(resolver.run())
        await asyncio.sleep(0)
        assert resolver.lookup("10.0.0.1") is None
        assert resolver.lookup("10.0.0.2") is None  # past the bound: not asked now
        assert resolver.pending("10.0.0.1") is not None
        assert resolver.pending("10.0.0.2") is None
        resolver.gate.set()
        await _settle(resolver)
        assert await asyncio.to_thread(resolver.lookup, "10.0.0.2") is None
        await _settle(resolver)
        assert resolver.asked == ["10.0.0.1", "10.0.0.2"]
        resolver.lookup("10.0.0.3")
        await _settle(resolver)
        assert len(resolver._known) <= 2  # started again
        job.cancel()
        await resolver.close()

    asyncio.run(scenario())


def test_the_address_template_covers_its_networks_only() -> None:
    networks: list[tuple[str, ...]] = [("10.0.0.0/24", "fd00::/64")]
    template = AddressTemplate(lambda: networks[0])

    async def scenario() -> None:
        assert await template.find("10.0.0.9") == Workload(
            "source", "10.0.0.9", "10.0.0.9", ("10.0.0.9",)
        )
        assert await template.find("fd00::9") is not None
        assert await template.find("10.0.1.9") is None
        assert await template.find("not an address") is None
        networks[0] = ()  # a reload: any client
        assert await template.find("10.0.1.9") is not None

    asyncio.run(scenario())
