"""The parts of the kubernetes way on their own: the pod index (duplicate addresses,
host-network and completed pods), pod objects as the API spells them, the API client
against servers that answer badly, and the watcher's handling of odd events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from imdsmock.config.build import from_mapping
from imdsmock.config.schema import FleetConfig
from imdsmock.core.pods import Pod, PodIndex, PodRules, pod_from
from imdsmock.errors import ConfigError
from imdsmock.serve.kubeapi import ApiError, Gone, endpoint, get_json, lines
from imdsmock.serve.kubernetes import KubernetesResolver
from imdsmock.serve.podwatch import PodWatcher


def pod(uid: str, *ips: str, **fields: Any) -> Pod:
    values: dict[str, Any] = {
        "uid": uid,
        "namespace": "ns",
        "name": uid,
        "ips": ips,
        "labels": {},
        "instance": None,
        "phase": "Running",
        "host_network": False,
        "node": "n1",
        "created": "2026-12-01T00:00:00Z",
        "deleting": False,
        "version": "1",
    }
    values.update(fields)
    return Pod(**values)


def test_the_index_answers_only_live_pods_the_newest_first() -> None:
    """Only Pending and Running pods with an IP off the host network claim their
    addresses; of two live claims the newest not being deleted wins; every address of a
    dual-stack pod is its; a pod that changes address lets the old one go."""
    index = PodIndex()
    index.apply("ADDED", pod("a", "10.0.0.1", "fd00::1"))
    assert index.get("10.0.0.1") == index.get("fd00::1") == index.pod("a")
    index.apply("ADDED", pod("host", "10.0.0.2", host_network=True))
    index.apply("ADDED", pod("done", "10.0.0.3", phase="Succeeded"))
    index.apply("ADDED", pod("new", "10.0.0.1", created="2026-12-02T00:00:00Z"))
    assert index.get("10.0.0.2") is None
    assert index.get("10.0.0.3") is None
    assert index.get("10.0.0.1") == index.pod("new")
    index.apply("MODIFIED", pod("new", "10.0.0.1", created="2026-12-02T00:00:00Z", deleting=True))
    assert index.get("10.0.0.1") == index.pod("a")
    index.apply("MODIFIED", pod("a", "10.0.0.9"))
    assert index.get("10.0.0.1") == index.pod("new")
    assert index.get("10.0.0.9") == index.pod("a")
    index.apply("DELETED", pod("new", "10.0.0.1"))
    assert index.get("10.0.0.1") is None
    moved = index.pod("a")
    assert moved is not None
    fresh = [pod("b", "10.0.0.9", created="2026-12-03T00:00:00Z"), moved]
    assert sorted((kind, p.uid) for kind, p in index.changes(fresh)) == [
        ("DELETED", "done"),
        ("DELETED", "host"),
        ("MODIFIED", "b"),
    ]
    for kind, changed in index.changes(fresh):
        index.apply(kind, changed)
    assert index.get("10.0.0.9") == index.pod("b")
    assert {p.uid for p in index.pods()} == {"a", "b"}
    for kind, changed in index.changes([]):
        index.apply(kind, changed)
    assert len(index) == 0
    assert index.get("10.0.0.9") is None


def test_pod_objects_are_read_as_the_api_spells_them() -> None:
    """The fields the fleet needs, canonical addresses (podIPs, podIP alone), defaults
    for what a new pod lacks; objects without uid, namespace or name are no pods."""
    read = pod_from(
        {
            "metadata": {
                "uid": "u",
                "namespace": "shop",
                "name": "web-1",
                "labels": {"app": "web", "n": 1},
                "annotations": {"imdsmock.io/instance": " web "},
                "creationTimestamp": "2026-12-01T00:00:00Z",
                "deletionTimestamp": "2026-12-01T00:01:00Z",
                "resourceVersion": "7",
            },
            "spec": {"nodeName": "n1", "hostNetwork": False},
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.1",
                "podIPs": [{"ip": "10.0.0.1"}, {"ip": "FD00:0:0::1"}, {}, "junk"],
            },
        }
    )
    assert read is not None
    assert read.ips == ("10.0.0.1", "fd00::1")
    assert read.labels == {"app": "web", "n": "1"}
    assert (read.instance, read.deleting, read.key, read.live) == ("web", True, "shop/web-1", True)
    fresh = pod_from({"metadata": {"uid": "u", "namespace": "a", "name": "b"}, "status": None})
    assert fresh is not None
    assert (fresh.ips, fresh.phase, fresh.live, fresh.node) == ((), "Pending", False, "")
    only = pod_from(
        {
            "metadata": {"uid": "u", "namespace": "a", "name": "b"},
            "status": {"podIP": "::ffff:10.0.0.5"},
        }
    )
    assert only is not None
    assert only.ips == ("10.0.0.5",)
    assert pod_from([]) is None
    assert pod_from({"metadata": {"uid": "u", "name": "b"}}) is None


def test_the_endpoint_comes_from_the_keys_or_the_pod_environment() -> None:
    """The URL's host, port and path prefix (a proxy's); in a pod, the service's address
    (IPv6 bracketed, 443 by default) over HTTPS."""
    api = endpoint(FleetConfig(kubernetes_api="http://127.0.0.1:8001/k8s/"), {})
    assert (api.host, api.port, api.prefix, api.tls) == ("127.0.0.1", 8001, "/k8s", None)
    assert endpoint(FleetConfig(kubernetes_api="http://proxy"), {}).port == 80
    inside = endpoint(FleetConfig(), {"KUBERNETES_SERVICE_HOST": "fd00::1"})
    assert (inside.url, inside.host, inside.port) == ("https://[fd00::1]:443", "fd00::1", 443)
    assert inside.tls is not None  # the system's CAs: no service account file here
    with pytest.raises(ConfigError, match="left empty only in a pod"):
        endpoint(FleetConfig(), {})
    with pytest.raises(ConfigError, match="NODE_NAME is '-x'"):
        PodWatcher(FleetConfig(kubernetes_api="http://k"), {"NODE_NAME": "-x"})
    watcher = PodWatcher(FleetConfig(kubernetes_api="http://k"), {"NODE_NAME": "n9"})
    assert watcher.node == "n9"
    assert watcher.scope == "the pods of node n9"
    assert PodWatcher(FleetConfig(kubernetes_api="http://k"), {}).target() == "/api/v1/pods"


async def _serving(
    answer: bytes, job: Callable[[str], Awaitable[Any]], *, hold: bool = False
) -> Any:
    """Run ``job(url)`` against a server that answers every request with ``answer``
    (then closes, unless ``hold``: then it keeps the connection open until the job ends)."""
    done = asyncio.Event()
    handlers: list[asyncio.Task[None]] = []

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            if hold:
                await done.wait()
        finally:
            writer.close()

    server = await asyncio.start_server(reply, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await job(f"http://127.0.0.1:{port}")
    finally:
        done.set()
        server.close()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


def _api(url: str) -> Any:
    return endpoint(FleetConfig(kubernetes_api=url, kubernetes_token_file="/nonexistent"), {})


async def _get(url: str) -> Any:
    return await get_json(_api(url), "/api/v1/pods")


async def _lines(url: str, idle: float = 5.0) -> list[bytes]:
    return [line async for line in lines(_api(url), "/api/v1/pods?watch=1", idle)]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnope!", "with no JSON document"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{}", "closed the connection mid-answer"),
        (b"", "closed the connection before answering"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "answered something not HTTP"),
        (
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden",
            "answered 403 to GET /api/v1/pods: 'forbidden'",
        ),
        (
            b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\n[]",
            "answered 500 to GET /api/v1/pods",
        ),
    ],
    ids=["not-json", "short", "nothing", "not-http", "forbidden", "no-message"],
)
def test_a_bad_answer_is_one_api_error(answer: bytes, error: str) -> None:
    with pytest.raises(ApiError, match=error.replace("(", r"\(").replace("[", r"\[")):
        asyncio.run(_serving(answer, _get))


def test_an_answer_ending_with_the_connection_and_a_large_one_are_read() -> None:
    """A body without length ends where the connection does; a large list is decoded
    (in a worker thread)."""
    small = b"HTTP/1.1 200 OK\r\n\r\n" + b'{"items": []}'
    assert asyncio.run(_serving(small, _get)) == {"items": []}
    body = json.dumps({"items": ["x" * 100] * 4000}).encode()
    large = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    assert len(asyncio.run(_serving(large, _get))["items"]) == 4000


def test_a_stream_is_read_line_by_line_to_its_end() -> None:
    """Lines as they come, blank ones skipped, a last line without newline kept; a 410
    answer is Gone; a stream silent for longer than allowed is an error."""
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"".join(
        b"%x\r\n%s\r\n" % (len(part), part) for part in (b'{"a":1}\n\n{"b"', b":2}\n{", b"}", b"")
    )
    assert asyncio.run(_serving(chunked, _lines)) == [b'{"a":1}', b'{"b":2}', b"{}"]
    gone = b"HTTP/1.1 410 Gone\r\nContent-Length: 2\r\n\r\n{}"
    with pytest.raises(Gone):
        asyncio.run(_serving(gone, _lines))
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    with pytest.raises(ApiError, match=r"nothing received for 0\.2 s"):
        asyncio.run(_serving(head, lambda url: _lines(url, 0.2), hold=True))


def test_odd_watch_events_are_errors_or_ignored() -> None:
    """A line that is not JSON and an ERROR event are errors (the watch starts again, a
    410 one lists again); an event of an unknown kind or without a pod is ignored; a pod
    of another node or namespace in the stream is dropped, never answered for."""
    seen: list[tuple[Pod | None, Pod | None]] = []
    watcher = PodWatcher(
        FleetConfig(kubernetes_api="http://k", kubernetes_node="n1", kubernetes_namespace="ns"),
        {},
        changed=lambda old, new: seen.append((old, new)),
    )
    with pytest.raises(ApiError, match="not JSON"):
        watcher.event(b"{oops")
    with pytest.raises(Gone):
        watcher.event(
            json.dumps({"type": "ERROR", "object": {"code": 410, "message": "old"}}).encode()
        )
    with pytest.raises(ApiError, match="the watch ended with 500: 'boom'") as failed:
        watcher.event(
            json.dumps({"type": "ERROR", "object": {"code": 500, "message": "boom"}}).encode()
        )
    assert failed.value.status == 500
    watcher.event(b'{"type": "WHAT", "object": {}}')
    watcher.event(b'{"type": "ADDED", "object": {"metadata": {}}}')
    watcher.event(b'{"type": "BOOKMARK", "object": {"metadata": {}}}')
    assert seen == []
    assert watcher.version == ""

    def obj(node: str, namespace: str = "ns") -> bytes:
        meta = {"uid": "u", "namespace": namespace, "name": "p", "resourceVersion": "9"}
        body = {"metadata": meta, "spec": {"nodeName": node}, "status": {"podIP": "10.0.0.1"}}
        return json.dumps({"type": "ADDED", "object": body}).encode()

    watcher.event(obj("n1"))
    assert watcher.index.get("10.0.0.1") is not None
    assert watcher.version == "9"
    watcher.event(obj("n2"))
    assert watcher.index.get("10.0.0.1") is None
    watcher.event(obj("n1", "other"))
    assert watcher.index.get("10.0.0.1") is None
    assert [new is None for _, new in seen] == [False, True, True]


def test_a_list_that_is_not_a_list_is_an_error() -> None:
    watcher = PodWatcher(FleetConfig(kubernetes_api="http://k"), {})

    async def job(url: str) -> None:
        watcher.api = _api(url)
        await watcher.list_pods()

    answer = b'HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{"items": "x"}'
    with pytest.raises(ApiError, match="something other than a list of pods"):
        asyncio.run(_serving(answer, job))


def test_pod_rules_are_tried_in_the_files_order_whichever_key_files_them() -> None:
    """The first instance in order with a rule the pod matches wins, whether its rule is
    filed under a label, a namespace or neither; every label a rule gives must match."""

    def rules(*pods: dict[str, Any]) -> PodRules:
        members = [{"name": f"m{i}", "match": {"pod": [p]}} for i, p in enumerate(pods)]
        cfg = from_mapping({"fleet": {"recognize": ["kubernetes"]}, "instances": members})
        return PodRules(cfg.instances)

    by_name = {"name": "web-*"}
    by_namespace = {"namespace": "shop"}
    by_labels = {"labels": {"app": "web", "tier": "front"}}
    web = ("shop", "web-1", {"app": "web", "tier": "front"})
    assert rules(by_name, by_namespace, by_labels).match(*web) == ("m0", 0)
    assert rules(by_labels, by_name, by_namespace).match(*web) == ("m0", 0)
    assert rules(by_namespace, by_labels).match(*web) == ("m0", 0)
    assert rules(by_labels, by_namespace).match("shop", "db-0", {"app": "web"}) == ("m1", 0)
    assert rules(by_labels).match("shop", "x", {"tier": "front"}) is None
    assert rules(by_namespace, by_name).match("test", "web-2", {}) == ("m1", 0)
    assert not rules()


def test_the_pods_known_are_answered_for_a_while_after_the_api_is_lost() -> None:
    """Once the API cannot be followed, the pods known are answered for `trusted_for`
    seconds, then no client is (a pod deleted meanwhile may have handed its address on),
    until the watch is back."""
    from kubestub import KubeStub

    async def scenario() -> None:
        with KubeStub() as stub:
            stub.add(stub.pod("web-1", "127.0.0.2"))
            fleet = FleetConfig(kubernetes_api=stub.url, kubernetes_node="node-1")
            resolver = KubernetesResolver(fleet, {}, trusted_for=0.5)
            running = asyncio.ensure_future(resolver.run())
            try:
                await asyncio.wait_for(resolver.watcher.synced.wait(), 10)
                workload = resolver.lookup("127.0.0.2")
                assert workload is not None
                assert workload.key == "default/web-1"
                for _ in range(100):  # the watch is open (not about to open)
                    if stub.watching():
                        break
                    await asyncio.sleep(0.05)
                stub.stop()  # the API is gone: the watch is cut, reconnecting fails
                for _ in range(100):
                    if resolver.watcher.failing_since is not None:
                        break
                    await asyncio.sleep(0.05)
                assert resolver.lookup("127.0.0.2") == workload  # within the window
                await asyncio.sleep(0.6)
                assert resolver.lookup("127.0.0.2") is None
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)

    asyncio.run(scenario())
