"""The kubernetes way, end to end: the real mock follows the pods of a stub Kubernetes API
server (tests/kubestub.py: list, watch streams, 410 Gone, cut connections) and real
clients from loopback addresses (the pods' IPs) get their pod's instance.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imdsmock.api import MockIMDS
from imdsmock.serve.podwatch import TRUSTED_FOR
from kubestub import KubeStub, self_signed
from mockprocess import mock_process, run_command
from test_fleet_serve import ask

ID = "/latest/meta-data/instance-id"
ROLE = "/latest/meta-data/iam/security-credentials/"
DEFAULT_ID = "i-0d0d0d0d0d0d0d0d0"
WEB_ID = "i-0aaaaaaaaaaaaaaa1"
WORKER_ID = "i-0bbbbbbbbbbbbbbb2"

MEMBERS = [
    {
        "name": "web",
        "match": {"pod": [{"namespace": "shop", "labels": {"app": "web"}}]},
        "instance": {"instance-id": WEB_ID, "iam-role": "web-role"},
    },
    {
        "name": "worker",
        "match": {"pod": [{"name": "worker-*"}]},
        "instance": {"instance-id": WORKER_ID, "iam-role": "worker-role"},
    },
]


def mock(stub: KubeStub, **fleet: Any) -> MockIMDS:
    """The real mock with the fleet above, following ``stub``'s pods of node-1."""
    return MockIMDS(
        {
            "instance": {"instance-id": DEFAULT_ID, "iam-role": "default-role"},
            "fleet": {
                "recognize": ["source", "kubernetes"],
                "kubernetes-api": stub.url,
                "kubernetes-node": "node-1",
                **fleet,
            },
            "instances": MEMBERS,
        }
    )


def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Ask ``check`` until it answers something true (or fail after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, "not reached in time"
            return value
        time.sleep(0.02)


def served(imds: MockIMDS, source: str) -> str:
    """The instance-id a client at ``source`` is served, asked on one connection (IMDSv1:
    a token asked before a pod changes would be another instance's)."""
    answer = imds.get(ID, source=source, token=False)
    return answer.text if answer.status == 200 else str(answer.status)


def becomes(imds: MockIMDS, source: str, instance_id: str) -> None:
    until(lambda: served(imds, source) == instance_id)


@pytest.fixture
def stub() -> Iterator[KubeStub]:
    with KubeStub() as stub:
        yield stub


def test_listed_pods_are_their_instances_skipping_host_network_and_completed(
    stub: KubeStub,
) -> None:
    """The pods of the node listed at start are recognised by pod IP: by `match.pod`
    (namespace and labels; a name pattern) or their annotation; a host-network pod, a
    completed or failed pod, a pod of another node and a pod of another namespace the
    rule does not take are not."""
    stub.add(stub.pod("web-1", "127.0.0.11", namespace="shop", labels={"app": "web"}))
    stub.add(stub.pod("worker-7", "127.0.0.12", namespace="jobs"))
    stub.add(stub.pod("batch", "127.0.0.13", annotations={"imdsmock.io/instance": "worker"}))
    stub.add(
        stub.pod("agent", "127.0.0.14", namespace="shop", labels={"app": "web"}, host_network=True)
    )
    stub.add(
        stub.pod("done", "127.0.0.15", namespace="shop", labels={"app": "web"}, phase="Succeeded")
    )
    stub.add(
        stub.pod("crashed", "127.0.0.16", namespace="shop", labels={"app": "web"}, phase="Failed")
    )
    stub.add(
        stub.pod("web-2", "127.0.0.17", namespace="shop", labels={"app": "web"}, node="node-2")
    )
    stub.add(stub.pod("web-3", "127.0.0.18", namespace="test", labels={"app": "web"}))
    stub.add(stub.pod("misnamed", "127.0.0.19", annotations={"imdsmock.io/instance": "nope"}))
    with mock(stub) as imds:
        until(stub.watching)
        assert served(imds, "127.0.0.11") == WEB_ID
        assert served(imds, "127.0.0.12") == WORKER_ID
        assert served(imds, "127.0.0.13") == WORKER_ID
        for other in ("127.0.0.14", "127.0.0.15", "127.0.0.16", "127.0.0.17", "127.0.0.18"):
            assert served(imds, other) == DEFAULT_ID, other
        assert served(imds, "127.0.0.19") == DEFAULT_ID  # names no instance: rules decide
        assert imds.instance("web").get(ROLE, source="127.0.0.11").text == "web-role"
        web = imds.controller.instance_clients("web")
        assert [(c["client"], c["why"]) for c in web] == [
            ("127.0.0.11", "pod shop/web-1 (match.pod[0])")
        ]
        whys = {c["client"]: c["why"] for c in imds.controller.instance_clients("worker")}
        assert whys == {
            "127.0.0.12": "pod jobs/worker-7 (match.pod[0])",
            "127.0.0.13": "kubernetes default/batch names it",
        }
        logged = {(r["instance"], r["why"]) for r in imds.requests(client="127.0.0.11")}
        assert logged == {("web", "pod shop/web-1 (match.pod[0])")}
        logged = {(r["instance"], r["why"]) for r in imds.requests(client="127.0.0.14")}
        assert logged == {("default", "no rule matched")}
    first = stub.lists()[0]
    assert first.path == "/api/v1/pods"
    assert first.query["fieldSelector"] == "spec.nodeName=node-1"
    watch = stub.watches()[0]
    assert watch.query["fieldSelector"] == "spec.nodeName=node-1"
    assert watch.query["allowWatchBookmarks"] == "true"
    assert int(watch.query["resourceVersion"]) >= 109


def test_watch_events_add_change_and_drop_pods_as_they_land(stub: KubeStub) -> None:
    """A client no pod has is the default instance's until the watch says a pod has its
    address (ADDED, or MODIFIED when the pod gets its IP); a label change moves it, a
    completed pod and a deleted pod drop it at once."""
    with mock(stub) as imds:
        until(stub.watching)
        assert served(imds, "127.0.0.21") == DEFAULT_ID
        pending = stub.add(stub.pod("web-9", None, namespace="shop", labels={"app": "web"}))
        assert served(imds, "127.0.0.21") == DEFAULT_ID  # scheduled, no IP yet
        pod = stub.modify(pending, ip="127.0.0.21")
        becomes(imds, "127.0.0.21", WEB_ID)
        pod = stub.modify(pod, annotations={"imdsmock.io/instance": "worker"})
        becomes(imds, "127.0.0.21", WORKER_ID)
        pod = stub.modify(pod, annotations={}, labels={"app": "api"})
        becomes(imds, "127.0.0.21", DEFAULT_ID)
        pod = stub.modify(pod, labels={"app": "web"})
        becomes(imds, "127.0.0.21", WEB_ID)
        stub.modify(pod, phase="Succeeded")
        becomes(imds, "127.0.0.21", DEFAULT_ID)
        again = stub.add(stub.pod("web-10", "127.0.0.21", namespace="shop", labels={"app": "web"}))
        becomes(imds, "127.0.0.21", WEB_ID)
        stub.delete(again)
        becomes(imds, "127.0.0.21", DEFAULT_ID)
    assert len(stub.lists()) == 1  # all from one watch


def test_a_client_is_refused_until_the_watch_names_its_pod(stub: KubeStub) -> None:
    """With `fleet.unknown: reject`, a pod the mock has not seen yet gets 404 (its token
    too), and its instance once the watch brings it."""
    with mock(stub, unknown="reject") as imds:
        until(stub.watching)
        assert imds.get(ID, source="127.0.0.22", token=False).status == 404
        stub.add(stub.pod("worker-1", "127.0.0.22"))
        becomes(imds, "127.0.0.22", WORKER_ID)


def test_duplicate_ips_go_to_the_newest_live_pod_and_a_deleted_one_lets_go(
    stub: KubeStub,
) -> None:
    """Two live pods claiming one address (the old one's status not updated yet): the
    newest wins, a pod being deleted loses to one that is not; deleting one hands the
    address to the other at once; a completed pod never claims it."""
    old = stub.add(stub.pod("web-old", "127.0.0.31", namespace="shop", labels={"app": "web"}))
    with mock(stub) as imds:
        until(stub.watching)
        assert served(imds, "127.0.0.31") == WEB_ID
        new = stub.add(stub.pod("worker-new", "127.0.0.31"))
        becomes(imds, "127.0.0.31", WORKER_ID)
        stub.delete(new)
        becomes(imds, "127.0.0.31", WEB_ID)  # the old one still claims it
        new = stub.add(stub.pod("worker-newer", "127.0.0.31"))
        becomes(imds, "127.0.0.31", WORKER_ID)
        stub.modify(new, deleting=True)  # terminating: the other, not terminating, wins
        becomes(imds, "127.0.0.31", WEB_ID)
        stub.modify(old, phase="Failed")
        becomes(imds, "127.0.0.31", WORKER_ID)  # terminating but still the only live one
        stub.delete(new)
        becomes(imds, "127.0.0.31", DEFAULT_ID)


@pytest.mark.parametrize("gone_as", ["event", "status"])
def test_a_watch_too_old_to_resume_lists_again(stub: KubeStub, gone_as: str) -> None:
    """A watch cut while the server compacted its history is 410 Gone when resumed (an
    ERROR event, or a 410 answer): the mock lists again and knows exactly the pods of
    the new list (one added meanwhile, one deleted meanwhile)."""
    stub.gone_as = gone_as
    stay = stub.add(stub.pod("web-1", "127.0.0.41", namespace="shop", labels={"app": "web"}))
    gone = stub.add(stub.pod("worker-1", "127.0.0.42"))
    with mock(stub) as imds:
        until(stub.watching)
        assert served(imds, "127.0.0.42") == WORKER_ID
        stub.compact()
        stub.drop_watches()  # cut: the next watch resumes from a compacted version
        stub.delete(gone)
        stub.add(stub.pod("worker-2", "127.0.0.43"))
        stub.compact()
        becomes(imds, "127.0.0.43", WORKER_ID)
        assert served(imds, "127.0.0.42") == DEFAULT_ID
        assert served(imds, "127.0.0.41") == WEB_ID
        stub.modify(stay, labels={})
        becomes(imds, "127.0.0.41", DEFAULT_ID)  # and the new watch follows
    assert len(stub.lists()) == 2


def test_a_cut_or_ended_watch_resumes_from_the_last_version_without_listing(
    stub: KubeStub, caplog: pytest.LogCaptureFixture
) -> None:
    """A watch the server ends (its timeout) or a connection cut mid-stream is resumed
    from the last version seen (a bookmark's included), replaying what happened
    meanwhile; the pods are not listed again and nothing is logged as a failure."""
    with mock(stub) as imds:
        until(stub.watching)
        stub.add(stub.pod("worker-1", "127.0.0.51"))
        becomes(imds, "127.0.0.51", WORKER_ID)
        marked = stub.bookmark()
        until(lambda: len(stub.watches()) == 1)
        stub.end_watches()
        until(lambda: len(stub.watches()) == 2 and stub.watching())
        assert stub.watches()[1].query["resourceVersion"] == marked
        stub.drop_watches()
        worker = stub.add(stub.pod("worker-2", "127.0.0.52"))
        becomes(imds, "127.0.0.52", WORKER_ID)
        stub.delete(worker)
        becomes(imds, "127.0.0.52", DEFAULT_ID)
    assert len(stub.lists()) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_in_a_pod_the_api_is_found_and_trusted_as_the_service_account_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `fleet.kubernetes-api` empty, the mock asks https://$KUBERNETES_SERVICE_HOST:
    $KUBERNETES_SERVICE_PORT for the pods of $NODE_NAME, checks the server against the CA
    file and sends the token file's token, read again when it changes (kubelet rotates
    it): each new connection to the API carries the token of the moment."""
    context, ca_file = self_signed(tmp_path)
    token = tmp_path / "token"
    token.write_text("first-token\n")
    with KubeStub(token="first-token", tls=context) as stub:
        stub.add(stub.pod("worker-1", "127.0.0.61", node="node-7"))
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(stub.port))
        monkeypatch.setenv("NODE_NAME", "node-7")
        fleet = {"kubernetes-ca-file": str(ca_file), "kubernetes-token-file": str(token)}
        with mock(stub, **{"kubernetes-api": "", "kubernetes-node": "", **fleet}) as imds:
            until(stub.watching)
            assert served(imds, "127.0.0.61") == WORKER_ID
            token.write_text("second-token")
            stub.token = "second-token"
            stub.drop_watches()
            stub.add(stub.pod("worker-2", "127.0.0.62", node="node-7"))
            becomes(imds, "127.0.0.62", WORKER_ID)
    assert stub.requests[0].query["fieldSelector"] == "spec.nodeName=node-7"
    assert stub.requests[0].authorization == "Bearer first-token"
    assert stub.requests[-1].authorization == "Bearer second-token"


def test_one_namespace_is_asked_under_its_own_path(stub: KubeStub) -> None:
    """`fleet.kubernetes-namespace` asks /api/v1/namespaces/NS/pods (a Role there is
    enough); pods of other namespaces are never answered for."""
    stub.add(stub.pod("worker-1", "127.0.0.63", namespace="jobs"))
    stub.add(stub.pod("worker-2", "127.0.0.64", namespace="other"))
    with mock(stub, **{"kubernetes-namespace": "jobs"}) as imds:
        until(stub.watching)
        assert served(imds, "127.0.0.63") == WORKER_ID
        assert served(imds, "127.0.0.64") == DEFAULT_ID
    assert {r.path for r in stub.requests} == {"/api/v1/namespaces/jobs/pods"}


def test_an_api_failure_is_logged_once_and_its_end_once(
    stub: KubeStub, caplog: pytest.LogCaptureFixture
) -> None:
    """Lists that fail (a 500 answer) are retried with a growing pause and logged once,
    with the API's message; the watch back is logged once; clients are recognised as soon
    as it is."""
    stub.fail_lists = 2
    stub.add(stub.pod("worker-1", "127.0.0.65"))
    with caplog.at_level(logging.INFO, logger="imdsmock"), mock(stub) as imds:
        becomes(imds, "127.0.0.65", WORKER_ID)
    lines = [r.getMessage() for r in caplog.records if r.name == "imdsmock"]
    failed = [line for line in lines if "cannot follow" in line]
    assert len(failed) == 1, lines
    assert "node node-1" in failed[0]
    assert "answered 500" in failed[0]
    assert "etcdserver: request timed out" in failed[0]
    assert len([line for line in lines if "again" in line]) == 1, lines
    assert len(stub.lists()) == 3


def test_a_refused_token_is_logged_with_the_status(
    stub: KubeStub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server refusing the token (401): one warning naming the status; no token file
    means no Authorization header."""
    stub.token = "needed"
    missing = tmp_path / "no-token"
    with mock(stub, **{"kubernetes-token-file": str(missing)}) as imds:
        until(lambda: len(stub.requests) >= 2)
        assert served(imds, "127.0.0.66") == DEFAULT_ID
    assert stub.requests[0].authorization is None
    failed = [r.getMessage() for r in caplog.records if "cannot follow" in r.getMessage()]
    assert len(failed) == 1
    assert "answered 401" in failed[0]


def test_an_unreachable_api_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listening where the API should be: one warning, the mock serves on."""
    with KubeStub() as stub:
        port = stub.port
    config = {
        "fleet": {
            "recognize": ["kubernetes"],
            "kubernetes-api": f"http://127.0.0.1:{port}",
            "kubernetes-node": "node-1",
        }
    }
    with MockIMDS(config) as imds:
        until(lambda: any("cannot follow" in r.getMessage() for r in caplog.records))
        assert imds.get(ID, source="127.0.0.67", token=False).status == 200
        watcher = imds.app.resolvers["kubernetes"].watcher  # type: ignore[attr-defined]
        since = watcher.failing_since
        assert since is not None
        assert watcher.trusted(since + TRUSTED_FOR)
        assert not watcher.trusted(since + TRUSTED_FOR + 1)
    failed = [r.getMessage() for r in caplog.records if "cannot follow" in r.getMessage()]
    assert len(failed) == 1
    assert f"cannot connect to http://127.0.0.1:{port}" in failed[0]
    assert f"known are answered for {TRUSTED_FOR:g} s more, then none" in failed[0]


@pytest.mark.parametrize(
    ("fleet", "env", "message"),
    [
        (
            {},
            {},
            "fleet.kubernetes-api is ''; expected the Kubernetes API's URL (https://HOST:PORT); "
            "it may be left empty only in a pod, where KUBERNETES_SERVICE_HOST is set",
        ),
        (
            {"kubernetes-api": "https://127.0.0.1:6443", "kubernetes-ca-file": "/nonexistent"},
            {},
            "fleet.kubernetes-ca-file is '/nonexistent'; expected a readable PEM file of CA "
            "certificates (No such file or directory)",
        ),
        (
            {"kubernetes-api": "http://127.0.0.1:6443"},
            {"NODE_NAME": "Node_1"},
            "NODE_NAME is 'Node_1'; expected a node name",
        ),
        (
            {},
            {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "http"},
            "KUBERNETES_SERVICE_PORT is 'https://10.96.0.1:http'; expected a port from 1 to 65535",
        ),
    ],
    ids=["nowhere", "ca-file", "node-name", "service-port"],
)
def test_imdsmock_config_refuses_an_api_it_cannot_use_with_one_line(
    tmp_path: Path, fleet: dict[str, str], env: dict[str, str], message: str
) -> None:
    """Where the API is and how to trust it is checked by `imdsmock config` (and serving):
    one line, exit 2."""
    path = tmp_path / "k.yaml"
    keys = "".join(f"  {k}: {v}\n" for k, v in fleet.items())
    path.write_text(f"fleet:\n  recognize: [kubernetes]\n{keys}")
    done = run_command(["config", "-c", str(path)], env)
    assert done.returncode == 2, done.stdout
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"imdsmock: error: {message}"), done.stderr


def test_a_node_with_more_pods_than_a_page_is_listed_page_by_page(stub: KubeStub) -> None:
    """Pods are listed 500 at a time (`limit`, `continue`); every page counts."""
    for n in range(520):
        stub.add(stub.pod(f"worker-{n}", f"127.0.{1 + n // 250}.{1 + n % 250}"))
    with mock(stub) as imds:
        until(stub.watching)
        assert served(imds, "127.0.1.1") == WORKER_ID
        assert served(imds, "127.0.3.20") == WORKER_ID
    pages = stub.lists()
    assert [p.query.get("limit") for p in pages] == ["500", "500"]
    assert "continue" not in pages[0].query
    assert pages[1].query["continue"]


def test_a_pod_no_instance_matches_gets_the_templates_instance_and_keeps_it(
    stub: KubeStub,
) -> None:
    """With `template.ways: [kubernetes]`, a pod no annotation or rule names gets an
    instance of its own, made as the pod becomes live (its first request is answered by
    it), derived from its namespace and name: a pod deleted and started again under the
    same name (a StatefulSet's) is the same instance at another address; pods named by a
    rule keep their instance."""
    stub.add(stub.pod("web-1", "127.0.0.71", namespace="shop", labels={"app": "web"}))
    with MockIMDS(
        {
            "instance": {"instance-id": DEFAULT_ID, "iam-role": "default-role"},
            "fleet": {
                "recognize": ["kubernetes"],
                "kubernetes-api": stub.url,
                "kubernetes-node": "node-1",
            },
            "template": {"ways": ["kubernetes"], "instance": {"iam-role": "pod-role"}},
            "instances": MEMBERS,
        }
    ) as imds:
        until(stub.watching)
        db = stub.add(stub.pod("db-0", "127.0.0.72", namespace="data"))
        fleet = imds.app.fleet
        assert fleet is not None
        made = until(lambda: [n for n in fleet.roster.members if n == "data.db-0"])
        first = served(imds, "127.0.0.72")
        assert first.startswith("i-0")
        assert first not in (DEFAULT_ID, WEB_ID, WORKER_ID)
        assert imds.get(ROLE, source="127.0.0.72").text == "pod-role"
        assert served(imds, "127.0.0.71") == WEB_ID
        stub.delete(db)
        becomes(imds, "127.0.0.72", DEFAULT_ID)
        stub.add(stub.pod("db-0", "127.0.0.73", namespace="data"))
        becomes(imds, "127.0.0.73", first)
        whys = {c["client"]: c["why"] for c in imds.controller.instance_clients(made[0])}
        assert whys == {
            "127.0.0.72": "kubernetes template data/db-0",
            "127.0.0.73": "kubernetes template data/db-0",
        }


def test_where_pods_are_found_is_read_at_start(stub: KubeStub) -> None:
    """A reload changing a `fleet.kubernetes-*` key says it applies after a restart; the
    watch goes on as it was."""
    with mock(stub) as imds:
        until(stub.watching)
        config = imds.app.config
        fleet = dataclasses.replace(config.fleet, kubernetes_node="node-2")
        deferred = imds.app.reconfigure(config.replace(fleet=fleet))
        assert "fleet.kubernetes-node" in deferred.settings
        stub.add(stub.pod("worker-1", "127.0.0.81"))
        becomes(imds, "127.0.0.81", WORKER_ID)


def test_imdsmock_serves_pods_and_ctl_adds_an_instance_by_pod(
    stub: KubeStub, tmp_path: Path
) -> None:
    """The real command follows the stub's pods; `ctl instances add NAME --pod
    'NAMESPACE/NAME[LABEL=V]'` adds an instance its pods get from their next connection,
    and `ctl instances` shows the rule as it was given."""
    stub.add(stub.pod("api-1", "127.0.0.91", namespace="shop", labels={"app": "api"}))
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "fleet:\n"
        "  recognize: [kubernetes]\n"
        f"  kubernetes-api: {stub.url}\n"
        "  kubernetes-node: node-1\n"
    )
    with mock_process(["-c", str(path), "--set", "server.control=true"]) as mp:
        url = ["--url", f"http://127.0.0.1:{mp.control_port}"]
        keys = ["--set", "instance.iam-role=api-role"]
        pod = ["--pod", "shop/*[app=api]", "--pod", "*/api-*"]
        added = run_command(["ctl", *url, "instances", "add", "api", *pod, *keys])
        assert added.returncode == 0, added.stderr
        listed = run_command(["ctl", *url, "instances"])
        assert "pod=shop/*[app=api],*/api-*" in listed.stdout, listed.stdout
        until(lambda: ask(mp.port, ROLE, "127.0.0.91") == (200, b"api-role"))
        bad = run_command(["ctl", *url, "instances", "add", "x", "--pod", "shop"])
        assert bad.returncode == 2
        assert "pod rule 'shop' is not NAMESPACE/NAME[LABEL=VALUE,...]" in bad.stderr
        refused = run_command(["ctl", *url, "instances", "add", "x", "--pod", "Shop/*"])
        assert refused.returncode != 0
        assert "instances.x.match.pod[0].namespace is 'Shop'" in refused.stderr


def test_a_pod_past_the_templates_limit_is_logged_once_and_left_to_the_next_way(
    stub: KubeStub, caplog: pytest.LogCaptureFixture
) -> None:
    """`template.limit` instances made: the next pod gets none, with one warning naming
    the pod and the reason, and is recognised by the next way."""
    config = {
        "fleet": {
            "recognize": ["kubernetes"],
            "kubernetes-api": stub.url,
            "kubernetes-node": "node-1",
        },
        "template": {"ways": ["kubernetes"], "limit": 1},
    }
    with MockIMDS(config) as imds:
        until(stub.watching)
        stub.add(stub.pod("a-0", "127.0.0.95", namespace="data"))
        until(lambda: served(imds, "127.0.0.95") != default_id(imds))
        stub.add(stub.pod("b-0", "127.0.0.96", namespace="data"))
        until(lambda: any("data/b-0" in r.getMessage() for r in caplog.records))
        assert served(imds, "127.0.0.96") == default_id(imds)
    warned = [r.getMessage() for r in caplog.records if "no template instance" in r.getMessage()]
    assert warned == [
        "kubernetes: no template instance for pod data/b-0 (the template's limit of 1 "
        "instances is reached); it is recognised by the next way"
    ]


def default_id(imds: MockIMDS) -> str:
    """The default instance's instance ID (generated when the configuration sets none)."""
    return imds.app.config.instance.instance_id


def test_a_pod_a_rule_stops_matching_gets_the_templates_instance(stub: KubeStub) -> None:
    """A pod an instance's rule took has no template instance; once its labels no longer
    match, it gets one (offered again on the change)."""
    config = {
        "fleet": {
            "recognize": ["kubernetes"],
            "kubernetes-api": stub.url,
            "kubernetes-node": "node-1",
        },
        "template": {"ways": ["kubernetes"]},
        "instances": MEMBERS,
    }
    pod = stub.add(stub.pod("web-1", "127.0.0.97", namespace="shop", labels={"app": "web"}))
    with MockIMDS(config) as imds:
        until(stub.watching)
        assert served(imds, "127.0.0.97") == WEB_ID
        fleet = imds.app.fleet
        assert fleet is not None
        assert list(fleet.roster.members) == ["web", "worker"]
        stub.modify(pod, labels={"app": "old-web"})
        until(lambda: served(imds, "127.0.0.97") not in (WEB_ID, default_id(imds)))
        assert len(fleet.roster.members) == 3


def test_a_list_answered_gone_is_retried_after_a_pause(
    stub: KubeStub, caplog: pytest.LogCaptureFixture
) -> None:
    """A list answered 410 (not a watch from an old version) is a failure: logged once and
    retried after a pause, not listed again in a loop."""
    stub.gone_lists = 2
    stub.add(stub.pod("worker-1", "127.0.0.98"))
    started = time.monotonic()
    with mock(stub) as imds:
        becomes(imds, "127.0.0.98", WORKER_ID)
    assert time.monotonic() - started >= 0.8 * (0.5 + 1.0)  # two pauses, with jitter
    assert len(stub.lists()) == 3
    failed = [r.getMessage() for r in caplog.records if "cannot follow" in r.getMessage()]
    assert len(failed) == 1
    assert "answered 410" in failed[0]


def test_a_pods_first_request_waits_for_its_template_instance(stub: KubeStub) -> None:
    """A pod's first connection while its template instance is being made waits for it
    (at most a second): the very first request, asked as soon as the mock knows the pod,
    is answered by the pod's own instance, never the default one."""
    config = {
        "fleet": {
            "recognize": ["kubernetes"],
            "kubernetes-api": stub.url,
            "kubernetes-node": "node-1",
        },
        "template": {"ways": ["kubernetes"]},
    }
    with MockIMDS(config) as imds:
        until(stub.watching)
        index = imds.app.resolvers["kubernetes"].watcher.index  # type: ignore[attr-defined]
        for n in range(5):
            address = f"127.0.0.{120 + n}"
            stub.add(stub.pod(f"job-{n}", address, namespace="batch"))
            until(lambda address=address: index.get(address) is not None, timeout=10)
            assert served(imds, address) != default_id(imds), address
        assert imds.controller.instance_clients("default") == []
