"""Fake role credentials: realistic shape, EC2-like rotation and the control operations."""

from __future__ import annotations

import json
import re
import time

import boto3
import pytest

from imdsmock.core.clock import ManualClock
from imdsmock.core.credentials import current_set, rotate_now, serve_expired
from imdsmock.core.imds import Request, handle
from imdsmock.core.snapshot import Snapshot
from imdsmock.core.state import Compiled, State
from imdsmock.core.tokens import TokenIssuer
from imdsmock.errors import ConfigError
from imdsmock.instance.credentials import UNAVAILABLE_CODE
from support import EPOCH, Running, base_snapshot, make_config, serve

ROLE_PATH = "/latest/meta-data/iam/security-credentials/baskinc-role"
EXTENDED_PATH = "/latest/meta-data/iam/security-credentials-extended/baskinc-role"
IMDS_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _snapshot(**sections: object) -> Snapshot:
    return base_snapshot(make_config(**sections))


def _compiled(served: Snapshot | State) -> Compiled:
    return served.compiled if isinstance(served, State) else Compiled(served)


def _doc(served: Snapshot | State, now: float, path: str = ROLE_PATH) -> dict[str, str]:
    response = handle(_compiled(served), Request("GET", path), now, TokenIssuer())
    assert response.status == 200
    parsed: dict[str, str] = json.loads(response.body)
    return parsed


def test_role_document_looks_like_ec2s() -> None:
    """The document has EC2's fields in EC2's order, ASIA keys, 40-char secrets, long tokens."""
    snap = _snapshot()
    response = handle(Compiled(snap), Request("GET", ROLE_PATH), EPOCH + 10, TokenIssuer())
    text = response.body.decode()
    assert text.startswith('{\n  "Code" : "Success",\n  "LastUpdated" : "')
    doc = json.loads(text)
    assert list(doc) == [
        "Code",
        "LastUpdated",
        "Type",
        "AccessKeyId",
        "SecretAccessKey",
        "Token",
        "Expiration",
    ]
    assert doc["Type"] == "AWS-HMAC"
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}", doc["AccessKeyId"])
    assert len(doc["SecretAccessKey"]) == 40
    assert 800 <= len(doc["Token"]) <= 2000
    assert IMDS_TIME.match(doc["LastUpdated"])
    assert IMDS_TIME.match(doc["Expiration"])
    assert doc["LastUpdated"] == "2026-01-01T00:00:00Z"
    assert doc["Expiration"] == "2026-01-01T06:00:00Z"


def test_extended_path_adds_account_id_and_can_be_switched_off() -> None:
    """security-credentials-extended/<role> adds AccountId; extended: false makes it 404."""
    doc = _doc(_snapshot(), EPOCH, EXTENDED_PATH)
    assert doc["AccountId"] == "515336597381"
    assert list(doc)[-1] == "AccountId"
    off = _snapshot(credentials={"extended": False})
    response = handle(Compiled(off), Request("GET", EXTENDED_PATH), EPOCH, TokenIssuer())
    assert response.status == 404


def test_iam_info_names_the_accounts_instance_profile() -> None:
    """iam/info carries the instance profile ARN of the configured account and role."""
    snap = _snapshot(instance={"account-id": "111122223333", "iam-role": "app-role"})
    info = _doc(snap, EPOCH, "/latest/meta-data/iam/info")
    assert info["InstanceProfileArn"] == "arn:aws:iam::111122223333:instance-profile/app-role"
    assert _doc(snap, EPOCH, EXTENDED_PATH.replace("baskinc-role", "app-role"))["AccountId"] == (
        "111122223333"
    )


def test_new_set_is_issued_well_before_expiry() -> None:
    """Each rotation brings new keys and a later LastUpdated while the old set is still valid."""
    snap = _snapshot(credentials={"lifetime": 6 * 3600, "rotate-every": 3600})
    first = _doc(snap, EPOCH + 3599)
    second = _doc(snap, EPOCH + 3600)
    assert first["AccessKeyId"] != second["AccessKeyId"]
    assert second["LastUpdated"] == "2026-01-01T01:00:00Z"
    assert first["Expiration"] == "2026-01-01T06:00:00Z"  # old set still had 5 hours left


def test_rotation_must_leave_five_minutes_before_expiry() -> None:
    """rotate-every may not come closer than 5 minutes to the lifetime (EC2 rotates early)."""
    with pytest.raises(ConfigError, match=r"credentials.rotate-every is 3500"):
        make_config(credentials={"lifetime": 3600, "rotate-every": 3500})


def test_rotate_now_issues_a_new_set_at_now() -> None:
    """rotate_now starts a new set at the given time, different from every earlier one."""
    snap = _snapshot()
    before = _doc(snap, EPOCH + 100)
    rotated = rotate_now(snap, EPOCH + 100)
    after = _doc(rotated, EPOCH + 100)
    assert after["AccessKeyId"] != before["AccessKeyId"]
    assert after["LastUpdated"] == "2026-01-01T00:01:40Z"
    assert after["AccessKeyId"] != _doc(snap, EPOCH)["AccessKeyId"]
    again = _doc(rotate_now(rotated, EPOCH + 100), EPOCH + 100)
    assert again["AccessKeyId"] != after["AccessKeyId"]


def test_serve_expired_puts_expiration_in_the_past() -> None:
    """serve_expired(on) serves documents already expired at every moment; off restores them."""
    snap = serve_expired(_snapshot(), True)
    for now in (EPOCH, EPOCH + 1800, EPOCH + 3599):
        doc = _doc(snap, now)
        expiration = time.mktime(time.strptime(doc["Expiration"], "%Y-%m-%dT%H:%M:%SZ"))
        assert expiration - time.timezone < now
    restored = serve_expired(snap, False)
    assert _doc(restored, EPOCH)["Expiration"] == "2026-01-01T06:00:00Z"


def test_fail_refreshes_fails_exactly_n_fetches() -> None:
    """The next n role-document fetches answer EC2's failure document, then Success again."""
    state = State(_snapshot())
    state.failures.arm(2, "baskinc-role", EPOCH)
    listing = handle(
        state.compiled,
        Request("GET", "/latest/meta-data/iam/security-credentials/"),
        EPOCH,
        TokenIssuer(),
    )
    assert listing.body == b"baskinc-role"  # listings are not fetches
    codes = [_doc(state, EPOCH, path)["Code"] for path in (ROLE_PATH, EXTENDED_PATH + "/")]
    assert codes == [UNAVAILABLE_CODE, UNAVAILABLE_CODE]
    assert _doc(state, EPOCH)["Code"] == "Success"
    state.failures.arm(1, "baskinc-role", EPOCH)
    failed = _doc(state, EPOCH)
    assert list(failed) == ["Code", "Message", "LastUpdated"]
    assert "EC2 cannot assume the role baskinc-role" in failed["Message"]
    state.failures.arm(1, "baskinc-role", EPOCH)
    state.failures.arm(0, "baskinc-role", EPOCH)
    assert _doc(state, EPOCH)["Code"] == "Success"


def test_armed_failures_outlive_a_swap() -> None:
    """Forced failures belong to the state, not to a snapshot: a swap (an edit, a reload,
    a rotation) leaves them armed."""
    state = State(_snapshot())
    state.failures.arm(1, "baskinc-role", EPOCH)
    state.swap(lambda s: rotate_now(s, EPOCH))
    assert _doc(state, EPOCH)["Code"] == UNAVAILABLE_CODE
    assert _doc(state, EPOCH)["Code"] == "Success"


def test_fail_refreshes_rejects_negative_counts() -> None:
    """A negative count is a user error, reported in one line."""
    with pytest.raises(ConfigError, match="count is -1"):
        State(_snapshot()).failures.arm(-1, "baskinc-role", EPOCH)


def test_current_set_follows_the_clock() -> None:
    """current_set gives the set in force at a time, or None without a role."""
    snap = _snapshot()
    one, two = current_set(snap, EPOCH), current_set(snap, EPOCH + 3600)
    assert one is not None
    assert two is not None
    assert one.access_key_id != two.access_key_id
    assert current_set(_snapshot(instance={"iam-role": None}), EPOCH) is None


def test_secrets_are_not_in_reprs() -> None:
    """A credential set's repr shows the key id but never the secret or the token."""
    one = current_set(_snapshot(), EPOCH)
    assert one is not None
    assert one.secret_access_key not in repr(one)
    assert one.token not in repr(one)


def test_rotation_is_visible_over_tcp(running: Running) -> None:
    """Over the wire, advancing the manual clock by the rotation period changes the keys."""
    clock = running.clock
    assert isinstance(clock, ManualClock)
    _, body1 = running.get(ROLE_PATH)
    clock.advance(3600)
    _, body2 = running.get(ROLE_PATH)
    one, two = json.loads(body1), json.loads(body2)
    assert one["AccessKeyId"] != two["AccessKeyId"]
    assert one["LastUpdated"] < two["LastUpdated"]


def test_control_operations_apply_to_a_running_server() -> None:
    """Swapping in a rotate_now snapshot, or arming failures, changes what clients get at once."""
    with serve(clock=ManualClock(EPOCH)) as r:
        _, before = r.get(ROLE_PATH)
        r.app.state.swap(lambda s: rotate_now(s, EPOCH + 5))
        _, after = r.get(ROLE_PATH)
        assert json.loads(before)["AccessKeyId"] != json.loads(after)["AccessKeyId"]
        r.app.state.failures.arm(1, "baskinc-role", EPOCH)
        assert json.loads(r.get(ROLE_PATH)[1])["Code"] == UNAVAILABLE_CODE
        assert json.loads(r.get(ROLE_PATH)[1])["Code"] == "Success"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_boto3_gets_fake_credentials_over_imdsv1_and_v2(
    aws_env: pytest.MonkeyPatch, version: str
) -> None:
    """boto3 reads the role document with a token (v2), or without one when the token PUT
    fails with 503 (botocore then falls back to v1)."""
    with serve(clock=ManualClock(time.time())) as r:
        if version == "v1":
            r.app.faults.add({"kind": "status", "path": "/latest/api/token", "status": 503})
        aws_env.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", r.url + "/")
        creds = boto3.Session().get_credentials()
        assert creds is not None
        assert creds.method == "iam-role"
        served = current_set(r.app.state.snapshot, r.clock.now())
        assert served is not None
        assert creds.get_frozen_credentials().access_key == served.access_key_id
        fetches = [e for e in r.app.requests if e.path == ROLE_PATH]
        assert fetches
        assert all(e.token == (version == "v2") for e in fetches)
