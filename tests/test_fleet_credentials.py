"""Per instance in a fleet: credentials (per role and per instance, reproducible from the
seed), their rotation, expiry and forced failures; and the request log, the IMDSv1 report
and the access log naming the instance, through `imdsmock ctl --instance` and the server's
own stderr. Real clients from loopback source addresses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mockprocess import mock_process, run_command
from support import make_config, serve
from test_fleet_config import FLEET_YAML
from test_fleet_serve import ID, ROLES, ask

# web and api share a role; the default instance has its own.
SHARED: dict[str, Any] = {
    "instance": {"iam-role": "default-role"},
    "instances": [
        {"name": "web", "match": {"source": ["127.0.0.2"]}, "instance": {"iam-role": "shared"}},
        {"name": "api", "match": {"source": ["127.0.0.3"]}, "instance": {"iam-role": "shared"}},
    ],
}
ROLE_OF = {"127.0.0.1": "default-role", "127.0.0.2": "shared", "127.0.0.3": "shared"}


def credentials(port: int) -> dict[str, dict[str, Any]]:
    """The role credentials each client of ROLE_OF is served."""
    out = {}
    for source, role in ROLE_OF.items():
        status, body = ask(port, ROLES + role, source)
        assert status == 200, (source, body)
        out[source] = json.loads(body)
    return out


def keys(port: int) -> dict[str, str]:
    return {source: c["AccessKeyId"] for source, c in credentials(port).items()}


def test_instances_sharing_a_role_get_keys_of_their_own() -> None:
    """Two instances with the same role name are served different keys, and the same keys
    again by a mock started with the same seed (each instance's keys derive from the seed
    and its name)."""
    with serve(make_config(**SHARED)) as first:
        seen = keys(first.port)
    assert len(set(seen.values())) == 3, seen
    with serve(make_config(**SHARED)) as second:
        assert keys(second.port) == seen
    other = make_config(**SHARED, credentials={"seed": "another-seed"})
    with serve(other) as third:
        assert set(keys(third.port).values()).isdisjoint(seen.values())


def test_credentials_rotate_on_schedule_in_every_instance() -> None:
    """When the rotation period passes, every instance is served a new set (LastUpdated
    moved), each still its own."""
    with serve(make_config(**SHARED, credentials={"rotate-every": 600})) as running:
        before = credentials(running.port)
        running.clock.advance(600)
        after = credentials(running.port)
    assert len({c["AccessKeyId"] for c in after.values()}) == 3
    for source in ROLE_OF:
        assert after[source]["AccessKeyId"] != before[source]["AccessKeyId"], source
        assert after[source]["LastUpdated"] > before[source]["LastUpdated"], source


def test_rotation_expiry_and_failures_act_on_one_instance() -> None:
    """Rotating, expiring or failing one instance's credentials leaves the others'
    unchanged: web rotated and expired, api failing its next fetch, the default as it was."""
    with serve(make_config(**SHARED)) as running:
        before = credentials(running.port)
        running.clock.advance(5)
        web, api = running.imds.instance("web"), running.imds.instance("api")
        web.rotate_credentials()
        web.expire_credentials()
        api.fail_credentials(1)
        status, failed = ask(running.port, ROLES + "shared", "127.0.0.3")
        assert (status, json.loads(failed)["Code"]) == (200, "AssumeRoleUnauthorizedAccess")
        after = credentials(running.port)
    assert after["127.0.0.2"]["AccessKeyId"] != before["127.0.0.2"]["AccessKeyId"]
    assert after["127.0.0.2"]["Expiration"] < after["127.0.0.3"]["Expiration"]
    for source in ("127.0.0.1", "127.0.0.3"):
        assert after[source] == before[source], source


def test_the_log_and_the_report_carry_the_instance_through_ctl(tmp_path: Path) -> None:
    """`ctl --instance web requests` and `report imdsv1` show web's clients only; every access
    line of --log-requests ends with the instance that answered."""
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET_YAML)
    with mock_process(["-c", str(path), "--log-requests"]) as mp:
        assert ask(mp.port, ID, "127.0.0.2")[0] == 200
        assert ask(mp.port, ID, "127.0.0.1")[0] == 200
        ctl = ["ctl", "--url", f"http://127.0.0.1:{mp.control_port}", "--json"]
        logged = run_command([*ctl, "--instance", "web", "requests"])
        assert logged.returncode == 0, logged.stderr
        rows = json.loads(logged.stdout)["requests"]
        assert [(r["client"], r["instance"]) for r in rows] == [("127.0.0.2", "web")]
        report = run_command([*ctl, "--instance", "web", "report", "imdsv1"])
        assert report.returncode == 0, report.stderr
        groups = json.loads(report.stdout)["clients"]
        assert [(g["client"], g["instance"]) for g in groups] == [("127.0.0.2", "web")]
        mp.wait_for_stderr(f" {ID} 200 ", count=2)
        lines = [line for line in mp.stderr().splitlines() if f" {ID} 200 " in line]
    assert [(line.split()[1], line.split()[-1]) for line in lines] == [
        ("127.0.0.2", "web"),
        ("127.0.0.1", "default"),
    ]
