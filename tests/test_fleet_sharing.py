"""A fleet's instances share what they answer alike (the state of 1,000 instances stays
small, see docs/performance.md), and big tables are found by identity: table keys and
request paths are interned, and the table's and the token cache's dicts store their keys'
hashes. A remembered parse keeps the Request it made, for its client and instance only."""

from __future__ import annotations

import http.client
import sys
from typing import Any

from imdsmock.app import App
from imdsmock.core.state import State
from imdsmock.core.table import Pool, compile_table
from imdsmock.core.tokens import TokenIssuer
from imdsmock.instance.model import Leaf
from imdsmock.serve.memo import path_of
from support import EPOCH, base_snapshot, make_config, serve

AMI = "/latest/meta-data/ami-id"
ID = "/latest/meta-data/instance-id"


def members(count: int) -> list[dict[str, Any]]:
    return [
        {
            "name": f"m{i}",
            "match": {"source": [f"127.0.1.{i + 1}"]},
            "instance": {"instance-id": f"i-{i:017x}", "iam-role": f"role-{i}"},
        }
        for i in range(count)
    ]


def tables(app: App) -> list[Any]:
    assert app.fleet is not None
    return [state.compiled.table(EPOCH) for state in app.fleet.roster.states.values()]


def test_members_share_the_answers_they_have_alike_and_keep_their_own() -> None:
    app = App(make_config(instances=members(3)))
    a, b, c = tables(app)
    # The same bytes: one rendered answer for every member.
    assert a.fast[AMI] is b.fast[AMI] is c.fast[AMI]
    assert a.fast[AMI].get.body == b.fast[AMI].get.body
    # Their own instance IDs, each rendered for its member.
    bodies = [t.fast[ID].get.body for t in (a, b, c)]
    assert bodies == [b"i-00000000000000000", b"i-00000000000000001", b"i-00000000000000002"]
    # The leaves of their trees too, and the path strings.
    assert app.fleet is not None
    bases = [s.snapshot.base for s in app.fleet.roster.states.values()]
    assert bases[0]["meta-data/ami-id"] is bases[1]["meta-data/ami-id"]
    assert bases[0]["meta-data/instance-id"] is not bases[1]["meta-data/instance-id"]
    key_a = next(k for k in a.fast if k == AMI)
    key_b = next(k for k in b.fast if k == AMI)
    assert key_a is key_b


def test_a_member_changed_at_run_time_still_shares() -> None:
    app = App(make_config(instances=members(2)))
    assert app.fleet is not None
    changed = app.fleet.member("m1")
    app.fleet.change(changed)
    a, b = tables(app)
    assert a.fast[AMI] is b.fast[AMI]
    assert b.fast[ID].get.body == b"i-00000000000000001"


def test_the_pool_renders_each_answer_once_and_starts_again_past_its_budget() -> None:
    pool = Pool()
    tree = {"meta-data/x": Leaf(b"same"), "meta-data/y": Leaf(b"same")}
    one = compile_table(tree, pool=pool)
    two = compile_table({"meta-data/x": Leaf(b"same")}, pool=pool)
    assert one.entries["meta-data/x"] is one.entries["meta-data/y"] is two.entries["meta-data/x"]
    # Flags and content type are part of what makes an answer the same.
    html = compile_table({"meta-data/x": Leaf(b"same", "text/html")}, pool=pool)
    assert html.entries["meta-data/x"] is not one.entries["meta-data/x"]
    shared = pool.tree({"a": Leaf(b"v")})["a"]
    assert pool.tree({"b": Leaf(b"v")})["b"] is shared

    small = Pool(budget=3000)
    first = small.entry(b"x", "text/plain", None, 0)
    assert small.entry(b"x", "text/plain", None, 0) is first
    small.entry(b"y" * 2000, "text/plain", None, 0)  # over the budget: starts again
    assert small.held < 3000 + 2000 * 4
    again = small.entry(b"x", "text/plain", None, 0)
    assert again is not first
    assert again == first


def test_table_keys_and_request_paths_are_the_same_objects() -> None:
    table = State(base_snapshot()).compiled.table(EPOCH)
    path = path_of(AMI.encode())
    key = next(k for k in table.fast if k == AMI)
    assert path is key  # found by identity, without reading the key
    assert all(sys.intern(k) is k for k in table.fast)
    assert all(sys.intern(k) is k for k in table.entries)


def test_a_token_verifies_as_any_equal_string() -> None:
    issuer = TokenIssuer()
    token = issuer.issue(60, EPOCH)
    copy = "".join(list(token))  # an equal string that is another object
    assert copy is not token
    assert issuer.remaining(copy, EPOCH + 1) == 59
    issuer.revoke_all()
    assert issuer.remaining(token, EPOCH + 1) is None


def test_a_full_token_cache_keeps_the_newest_half_of_the_live_tokens() -> None:
    from imdsmock.core.tokens import _CACHE_LIMIT

    issuer = TokenIssuer()
    old = [issuer.issue(1, EPOCH) for _ in range(10)]  # expired by the time it fills
    live = [issuer.issue(3600, EPOCH) for _ in range(_CACHE_LIMIT - 10)]
    newest = issuer.issue(3600, EPOCH + 2)  # the cache is pruned first
    cache = issuer._cache
    assert len(cache) == _CACHE_LIMIT // 2 + 1
    assert not any(t in cache for t in old)
    assert live[-1] in cache
    assert live[0] not in cache
    assert newest in cache
    # Every token still verifies: the pruned ones by their MAC.
    assert issuer.remaining(live[0], EPOCH + 3) is not None


def _same_bytes_from(port: int, sources: list[str]) -> list[int]:
    """The same request, byte for byte, from each source on a connection of its own."""
    statuses = []
    for source in sources:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
        try:
            conn.request("GET", ID, headers={"Host": "169.254.169.254"})
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        finally:
            conn.close()
    return statuses


def test_a_remembered_request_is_logged_as_each_client_and_instance_sent_it() -> None:
    # The parse memo keeps the Request it last made for a parse: another client's or
    # another instance's answer of the same bytes makes its own.
    fleet = {
        "instances": [
            {"name": "web", "match": {"source": ["127.0.0.2"]}},
            {
                "name": "worker",
                "match": {"source": ["127.0.0.3"]},
                "options": {"http-tokens": "required"},
            },
        ]
    }
    with serve(make_config(**fleet)) as running:
        sources = ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.1", "127.0.0.2"]
        assert _same_bytes_from(running.port, sources) == [200, 200, 401, 200, 200]
        logged = running.app.requests.entries(path=ID)
        assert [(e.client, e.instance, e.status) for e in logged] == [
            ("127.0.0.2", "web", 200),
            ("127.0.0.2", "web", 200),
            ("127.0.0.3", "worker", 401),
            ("127.0.0.1", "default", 200),
            ("127.0.0.2", "web", 200),
        ]
    with serve() as running:  # one instance: each client its own
        assert _same_bytes_from(running.port, ["127.0.0.1", "127.0.0.4", "127.0.0.1"]) == [
            200,
            200,
            200,
        ]
        logged = running.app.requests.entries(path=ID)
        assert [(e.client, e.instance) for e in logged] == [
            ("127.0.0.1", None),
            ("127.0.0.4", None),
            ("127.0.0.1", None),
        ]
