"""Snapshots are plain values; the state compiles one when it is installed.

Nothing on the request path compiles a table: every timeline segment's table is built by
the swap, and credential documents (which change every rotation epoch, forever) come from
a small per-epoch table rendered ahead of the epoch.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from imdsmock.core.credentials import rotate_now
from imdsmock.core.imds import Memo, Request, handle
from imdsmock.core.scenarios import started, with_scenarios
from imdsmock.core.state import State
from imdsmock.core.table import compile_table
from imdsmock.core.tokens import TokenIssuer
from imdsmock.instance.model import credential_leaves
from support import EPOCH, base_snapshot, calls_to

ROLE = "/latest/meta-data/iam/security-credentials/baskinc-role"
SPOT = "/latest/meta-data/spot/instance-action"


def get(state: State, path: str, now: float) -> tuple[int, bytes]:
    response = handle(state.compiled, Request("GET", path), now, TokenIssuer())
    return response.status, response.body


def test_an_installed_snapshot_answers_at_any_time_without_compiling() -> None:
    """Once a snapshot is installed, requests in every timeline segment and in later
    rotation epochs are answered without compiling a table."""
    spot = started({"type": "spot-interruption", "at": "+30s"}, EPOCH)
    with calls_to(compile_table) as built:
        state = State(with_scenarios(base_snapshot(), (spot,)))
    assert len(built) == 2  # the segments before and after the notice
    with calls_to(compile_table) as compiled:
        answers = [
            get(state, path, now)[0]
            for now in (EPOCH, EPOCH + 30, EPOCH + 7200, EPOCH + 10**6, EPOCH)
            for path in ("/latest/meta-data/instance-id", SPOT, ROLE)
        ]
    assert compiled == []
    assert answers[:3] == [200, 404, 200]
    assert answers[3:6] == [200, 200, 200]
    assert answers[-3:] == [200, 404, 200]


def test_the_next_epochs_credentials_are_rendered_before_its_first_request() -> None:
    """When an epoch is first served, the next one's documents are rendered through the
    deferral hook (the server's event loop), so its first request renders nothing."""
    state = State(base_snapshot())
    queued: list[Callable[[], object]] = []
    state.documents.defer = queued.append
    first = json.loads(get(state, ROLE, EPOCH)[1])
    assert len(queued) == 1
    queued.pop()()  # the loop runs the deferred step between requests
    with calls_to(credential_leaves) as rendered:
        second = json.loads(get(state, ROLE, EPOCH + 3600)[1])
    assert rendered == []
    assert second["AccessKeyId"] != first["AccessKeyId"]
    assert second["LastUpdated"] == "2026-01-01T01:00:00Z"
    assert len(queued) == 1  # and the epoch after it is on its way


def test_credential_documents_are_kept_across_swaps_that_keep_the_credentials() -> None:
    """A metadata edit installs a new snapshot but not new credentials: the rendered
    documents are reused; a rotation renders new ones."""
    state = State(base_snapshot())
    before = get(state, ROLE, EPOCH)
    state.swap(lambda s: s.evolve(edits={"meta-data/ami-id": "ami-0edited"}))
    with calls_to(credential_leaves) as rendered:
        assert get(state, ROLE, EPOCH) == before
    assert rendered == []
    state.swap(lambda s: rotate_now(s, EPOCH))
    with calls_to(credential_leaves) as rendered:
        after = json.loads(get(state, ROLE, EPOCH)[1])
    assert rendered == ["credential_leaves"]
    assert after["AccessKeyId"] != json.loads(before[1])["AccessKeyId"]


def test_a_credential_path_the_user_sets_is_served_as_set() -> None:
    """A role-document path given a value by paths: (or an edit) is served as that value
    in every epoch, not as the epoch's document."""
    state = State(base_snapshot())
    state.swap(lambda s: s.evolve(edits={ROLE.removeprefix("/latest/"): "pinned"}))
    assert get(state, ROLE, EPOCH) == (200, b"pinned")
    assert get(state, ROLE, EPOCH + 7200) == (200, b"pinned")


def test_changes_at_the_same_time_compile_one_table() -> None:
    """Scenarios that all start at one time (as ec2-metadata-mock's do) add one table, not
    one per change: the segments between them are never in force."""
    now = [
        {"type": "spot-interruption", "id": "s"},
        {"type": "rebalance-recommendation", "id": "r"},
        {"type": "asg-lifecycle", "id": "a", "state": "InService"},
    ]
    with calls_to(compile_table) as built:
        state = State(with_scenarios(base_snapshot(), tuple(started(s, EPOCH) for s in now)))
    assert len(built) == 2  # before the changes, and after all of them
    assert get(state, SPOT, EPOCH)[0] == 200
    assert get(state, "/latest/meta-data/autoscaling/target-lifecycle-state", EPOCH) == (
        200,
        b"InService",
    )
    assert get(state, SPOT, EPOCH - 1)[0] == 404


def test_a_remembered_answer_holds_within_its_segment_and_token() -> None:
    """An answer remembered in a Memo is taken again only from the table it came from
    (the next timeline segment answers its own listing), while the token lives and until
    tokens are revoked."""
    spot = started({"type": "spot-interruption", "at": "+30s"}, EPOCH)
    state = State(with_scenarios(base_snapshot(), (spot,)))
    issuer = TokenIssuer()
    memo = Memo()
    listing = Request("GET", "/latest/meta-data/")

    def body(request: Request, now: float) -> bytes:
        return handle(state.compiled, request, now, issuer, memo=memo).body

    before = body(listing, EPOCH)
    assert memo.known is not None
    assert body(listing, EPOCH + 1) == before
    assert b"spot/" not in before
    assert b"spot/" in body(listing, EPOCH + 30)
    token = issuer.issue(10, EPOCH)
    memo = Memo()
    authed = Request("GET", "/latest/meta-data/instance-id", token=token)
    first = handle(state.compiled, authed, EPOCH, issuer, memo=memo)
    again = handle(state.compiled, authed, EPOCH + 4, issuer, memo=memo)
    assert (first.status, again.status) == (200, 200)
    assert b"Ttl-Seconds: 10\r\n" in first.head
    assert b"Ttl-Seconds: 6\r\n" in again.head
    assert handle(state.compiled, authed, EPOCH + 10, issuer, memo=memo).status == 401
    token = issuer.issue(10, EPOCH)
    memo = Memo()
    authed = Request("GET", "/latest/meta-data/instance-id", token=token)
    assert handle(state.compiled, authed, EPOCH, issuer, memo=memo).status == 200
    issuer.revoke_all()  # the same table, the token no longer valid
    assert handle(state.compiled, authed, EPOCH, issuer, memo=memo).status == 401
