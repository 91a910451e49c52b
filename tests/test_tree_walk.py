"""Every listing entry resolves and every leaf is reachable from every version root."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imdsmock.config.defaults import VERSIONS
from imdsmock.core.imds import Request, handle
from imdsmock.core.snapshot import Snapshot
from imdsmock.core.state import Compiled
from imdsmock.core.tokens import TokenIssuer
from support import EPOCH, Running, base_snapshot, make_config, serve


def walk(fetch: Any, root: str) -> set[str]:
    """Crawl listings from ``root`` as cloud-init does; return the leaf paths reached."""
    leaves: set[str] = set()
    todo = [root]
    while todo:
        path = todo.pop()
        status, body = fetch(path)
        assert status == 200, (path, status)
        if not path.endswith("/"):
            leaves.add(path)
            continue
        for line in body.decode().split("\n"):
            entry = line
            if path.count("/") == 2 and line in ("meta-data", "dynamic"):
                entry = line + "/"  # the version root lists its directories without "/"
            if path.endswith("public-keys/") and "=" in line:
                entry = line.split("=", 1)[0] + "/"  # "0=name" names the directory "0/"
            assert entry, f"empty listing entry under {path}"
            todo.append(path + entry)
    return leaves


def in_process(snapshot: Snapshot) -> Any:
    tokens = TokenIssuer()
    compiled = Compiled(snapshot)

    def fetch(path: str) -> tuple[int, bytes]:
        response = handle(compiled, Request("GET", path), EPOCH, tokens)
        return response.status, response.body

    return fetch


def expected_leaves(snapshot: Snapshot, version: str) -> set[str]:
    from imdsmock.core.table import listings

    table = Compiled(snapshot).table(EPOCH)

    dirs = listings(p for p in table.entries if p)
    return {
        f"/{version}/{p}"
        for p in table.entries
        if p and p not in dirs and p.split("/")[0] in ("meta-data", "dynamic", "user-data")
    }


def test_every_leaf_reachable_over_tcp(running: Running) -> None:
    """Walking /latest/ over TCP reaches every leaf of the tree, and every entry answers."""
    reached = walk(running.get, "/latest/")
    snapshot = running.app.state.snapshot
    assert reached == expected_leaves(snapshot, "latest")
    assert "/latest/meta-data/iam/security-credentials/baskinc-role" in reached


def test_every_version_root_walks_the_whole_tree(running: Running) -> None:
    """Each listed version answers the same tree (checked in-process, every version)."""
    snapshot = running.app.state.snapshot
    fetch = in_process(snapshot)
    versions = fetch("/")[1].decode().split("\n")
    assert tuple(versions) == VERSIONS
    for version in versions:
        assert walk(fetch, f"/{version}/") == expected_leaves(snapshot, version)


_names = st.text(alphabet=string.ascii_letters + string.digits + "+-=._:@", min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tags=st.dictionaries(_names.filter(lambda s: s not in (".", "..", "_index")), _names, max_size=4),
    extra=st.dictionaries(
        st.lists(st.text(alphabet=string.ascii_lowercase + "-", min_size=1, max_size=8), min_size=1, max_size=3).map(
            lambda parts: "meta-data/x-" + "/".join(parts)
        ),
        _names,
        max_size=4,
    ),
    interfaces=st.integers(min_value=0, max_value=2),
    user_data=st.one_of(st.none(), st.text(max_size=30)),
)  # fmt: skip
def test_any_configured_tree_is_fully_walkable(
    tags: dict[str, str], extra: dict[str, str], interfaces: int, user_data: str | None
) -> None:
    """For any tags, extra paths, interfaces and user data, listings and leaves agree."""
    cfg = make_config(
        instance={
            "tags": tags,
            "interfaces": [{"mac": f"0e:00:00:00:00:1{i}"} for i in range(interfaces)],
            "user-data": user_data,
            "user-data-base64": None,
        },
        paths=extra,
    )
    snapshot = base_snapshot(cfg)
    fetch = in_process(snapshot)
    assert walk(fetch, "/latest/") == expected_leaves(snapshot, "latest")
    if user_data is None:
        assert fetch("/latest/user-data")[0] == 404


def test_walk_agrees_with_a_real_server_for_dated_versions() -> None:
    """cloud-init's dated versions walk over TCP too."""
    with serve() as r:
        for version in ("2009-04-04", "2021-03-23"):
            assert walk(r.get, f"/{version}/") == expected_leaves(r.app.state.snapshot, version)
