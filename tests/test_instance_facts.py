"""One self-consistent instance at run time: a fact changed through the control API is
validated as the configuration validates it and shows everywhere it is served."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from imdsmock.cli import main as cli_main
from imdsmock.control.ctl import main as ctl_main
from mockprocess import mock_process, run_command
from support import Running, control_config, make_config, serve

JSON = {"Content-Type": "application/json"}


@dataclass
class Mock:
    """A running mock and ``imdsmock ctl`` pointed at its control API."""

    running: Running
    url: str
    capsys: pytest.CaptureFixture[str]

    def ctl(self, *args: str) -> tuple[int, str, str]:
        """``imdsmock ctl --url URL ARGS``: exit status, stdout, stderr."""
        status = ctl_main(["--url", self.url, *args])
        out, err = self.capsys.readouterr()
        return status, out, err

    def text(self, path: str) -> str:
        """What IMDS serves at ``path`` (relative to /latest/), asserting a 200."""
        status, body = self.running.get("/latest/" + path)
        assert status == 200, (path, status)
        return body.decode()

    def document(self) -> dict[str, object]:
        """The identity document, after checking its signature with the certificate."""
        document = self.running.get("/latest/dynamic/instance-identity/document")[1]
        signature = self.running.get("/latest/dynamic/instance-identity/signature")[1]
        cert = x509.load_pem_x509_certificate(self.running.app.signer.certificate_pem().encode())
        key = cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(base64.b64decode(signature), document, padding.PKCS1v15(), hashes.SHA256())
        data: dict[str, object] = json.loads(document)
        return data


@pytest.fixture
def mock(capsys: pytest.CaptureFixture[str]) -> Iterator[Mock]:
    """The default instance with its control API, and ctl pointed at it."""
    with serve(control_config()) as r:
        yield Mock(r, r.app.control_url() or "", capsys)


BAD_FACTS = [
    ("instance-id", "meta-data/instance-id", "i-bad", ["--instance-id", "i-bad"]),
    ("region", "meta-data/placement/region", "eu-wst-1", ["--region", "eu-wst-1"]),
    ("zone", "meta-data/placement/availability-zone", "eu-west-1q", ["--availability-zone", "eu-west-1q"]),
    ("zone-of-region", "meta-data/placement/availability-zone", "eu-west-1a", ["--region", "us-east-1", "--availability-zone", "eu-west-1a"]),
    ("local-ipv4", "meta-data/local-ipv4", "10.0.0.300", ["--set", "instance.local-ipv4=10.0.0.300"]),
    ("mac", "meta-data/mac", "0E:49:61:0F:C3:11", ["--set", "instance.mac=0E:49:61:0F:C3:11"]),
    ("launch-index", "meta-data/ami-launch-index", "first", ["--set", "instance.ami-launch-index=first"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "value", "flags"), [b[1:] for b in BAD_FACTS], ids=[b[0] for b in BAD_FACTS]
)
def test_a_bad_fact_is_refused_with_the_configurations_line(
    mock: Mock, path: str, value: str, flags: list[str]
) -> None:
    """`ctl metadata set` of a fact path refuses a value the configuration refuses, with the
    same line, and changes nothing."""
    if path == "meta-data/placement/availability-zone" and "--region" in flags:
        assert mock.ctl("instance", "set", "region=us-east-1")[0] == 0
    before = mock.text(path)
    status, _, err = mock.ctl("metadata", "set", path, value)
    assert status == 2
    assert cli_main(["config", *flags]) == 2
    refused = mock.capsys.readouterr().err
    assert err.removeprefix("imdsmock ctl: error: ") == refused.removeprefix("imdsmock: error: ")
    assert mock.text(path) == before


def test_an_instance_id_set_at_run_time_is_in_the_signed_document(mock: Mock) -> None:
    """A new instance-id is served and in the identity document, whose signature verifies."""
    assert mock.ctl("metadata", "set", "meta-data/instance-id", "i-0123456789abcdef1")[0] == 0
    assert mock.text("meta-data/instance-id") == "i-0123456789abcdef1"
    assert mock.document()["instanceId"] == "i-0123456789abcdef1"


def test_a_region_set_at_run_time_moves_zone_host_names_and_document(mock: Mock) -> None:
    """Setting placement/region moves the derived zone, zone ID, host names, domain and the
    signed document with it."""
    assert mock.ctl("metadata", "set", "meta-data/placement/region", "eu-west-1")[0] == 0
    assert mock.text("meta-data/placement/region") == "eu-west-1"
    assert mock.text("meta-data/placement/availability-zone") == "eu-west-1a"
    assert mock.text("meta-data/placement/availability-zone-id") == "euw1-az1"
    assert mock.text("meta-data/hostname") == "ip-172-16-34-43.eu-west-1.compute.internal"
    assert mock.text("meta-data/public-hostname") == (
        "ec2-192-0-2-54.eu-west-1.compute.amazonaws.com"
    )
    document = mock.document()
    assert (document["region"], document["availabilityZone"]) == ("eu-west-1", "eu-west-1a")


def test_a_private_address_set_at_run_time_moves_host_name_interface_and_document(
    mock: Mock,
) -> None:
    """Setting local-ipv4 changes the host name, the primary interface and the document."""
    assert mock.ctl("metadata", "set", "meta-data/local-ipv4", "10.1.2.3")[0] == 0
    assert mock.text("meta-data/local-hostname") == "ip-10-1-2-3.ec2.internal"
    mac = mock.text("meta-data/mac")
    assert mock.text(f"meta-data/network/interfaces/macs/{mac}/local-ipv4s") == "10.1.2.3"
    assert mock.document()["privateIp"] == "10.1.2.3"


def test_an_account_set_through_the_instance_route_shows_in_arns_and_credentials(
    mock: Mock,
) -> None:
    """`ctl instance set account-id=...` changes the profile ARN, the extended credentials,
    the identity credentials' info, the interface's owner and the document."""
    status, out, err = mock.ctl("instance", "set", "account-id=123456789012", "iam-role=web")
    assert status == 0, err
    assert "account-id: 123456789012  (changed)" in out.splitlines()
    info = json.loads(mock.text("meta-data/iam/info"))
    assert info["InstanceProfileArn"] == "arn:aws:iam::123456789012:instance-profile/web"
    assert mock.text("meta-data/iam/security-credentials") == "web"
    extended = json.loads(mock.text("meta-data/iam/security-credentials-extended/web"))
    assert extended["AccountId"] == "123456789012"
    assert json.loads(mock.text("meta-data/identity-credentials/ec2/info"))["AccountId"] == (
        "123456789012"
    )
    mac = mock.text("meta-data/mac")
    assert mock.text(f"meta-data/network/interfaces/macs/{mac}/owner-id") == "123456789012"
    assert mock.document()["accountId"] == "123456789012"


DERIVED = [
    ("document", "dynamic/instance-identity/document", "the instance's facts and signed (instance.identity-document adds fields)"),
    ("signature", "dynamic/instance-identity/signature", "the instance's facts and signed (instance.identity-document adds fields)"),
    ("iam-info", "meta-data/iam/info", "instance.iam-role, instance.instance-profile-id and instance.account-id"),
    ("domain", "meta-data/services/domain", "instance.region"),
    ("interface", "meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/vpc-id", "the instance's addresses and instance.interfaces"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "follows"), [d[1:] for d in DERIVED], ids=[d[0] for d in DERIVED])
def test_a_path_built_from_several_facts_points_at_the_instance_route(
    mock: Mock, path: str, follows: str
) -> None:
    """An edit of a path built from several facts is refused in one line naming what it
    follows and the route that changes them; nothing changes."""
    before = mock.text(path)
    status, _, err = mock.ctl("metadata", "set", path, "x")
    assert status == 2
    assert err == (
        f"imdsmock ctl: error: {path} is built from {follows}; change the instance instead "
        "(PATCH /v1/instance, imdsmock ctl instance set KEY=VALUE)\n"
    )
    assert mock.text(path) == before


def test_deleting_a_fact_an_instance_may_lack_removes_it_everywhere(mock: Mock) -> None:
    """Deleting public-ipv4 leaves an instance without a public address (no public host
    name, no public address on the interface); deleting instance-id is refused."""
    mac = mock.text("meta-data/mac")
    assert mock.ctl("metadata", "delete", "meta-data/public-ipv4")[0] == 0
    for path in ("public-ipv4", "public-hostname", f"network/interfaces/macs/{mac}/public-ipv4s"):
        assert mock.running.get(f"/latest/meta-data/{path}")[0] == 404, path
    status, _, err = mock.ctl("metadata", "delete", "meta-data/instance-id")
    assert status == 2
    assert err == (
        "imdsmock ctl: error: meta-data/instance-id shows instance.instance-id, which every "
        "instance has; set another value\n"
    )


def test_plain_paths_stay_free(mock: Mock) -> None:
    """Paths that are no fact of the instance take any value and are listed as edits."""
    assert mock.ctl("metadata", "set", "meta-data/custom/anything", "not checked")[0] == 0
    assert mock.ctl("metadata", "set", "meta-data/tags/instance/Owner", "alice")[0] == 0
    assert mock.text("meta-data/custom/anything") == "not checked"
    out = mock.ctl("--json", "metadata", "list")[1]
    assert json.loads(out)["metadata"] == {
        "meta-data/custom/anything": "not checked",
        "meta-data/tags/instance/Owner": "alice",
    }


def test_resets_go_back_to_the_configured_instance(mock: Mock) -> None:
    """`instance reset` undoes run-time instance changes and keeps plain edits; `metadata
    reset` undoes both."""
    assert mock.ctl("instance", "set", "instance-type=t3.nano")[0] == 0
    assert mock.ctl("metadata", "set", "meta-data/custom/flag", "on")[0] == 0
    assert mock.ctl("instance", "reset")[0] == 0
    assert mock.text("meta-data/instance-type") == "m4.xlarge"
    assert mock.text("meta-data/custom/flag") == "on"
    assert mock.ctl("metadata", "set", "meta-data/instance-type", "t3.nano")[0] == 0
    assert mock.document()["instanceType"] == "t3.nano"
    assert mock.ctl("metadata", "reset")[0] == 0
    assert mock.document()["instanceType"] == "m4.xlarge"
    assert mock.running.get("/latest/meta-data/custom/flag")[0] == 404


def test_instance_show_marks_derived_and_changed_keys(mock: Mock) -> None:
    """`ctl instance show` prints each key as served: derived values marked, run-time
    changes marked, nulls that serve nothing as '-'."""
    assert mock.ctl("instance", "set", "availability-zone=us-east-1c")[0] == 0
    status, out, _ = mock.ctl("instance", "show")
    assert status == 0
    lines = out.splitlines()
    assert "region: us-east-1  (derived)" in lines
    assert "availability-zone: us-east-1c  (changed)" in lines
    assert "availability-zone-id: use1-az3  (derived)" in lines
    assert "hostname: ip-172-16-34-43.ec2.internal  (derived)" in lines
    assert "instance-id: i-1234567890abcdef0" in lines
    assert "user-data: -" in lines


def _patch(url: str, data: object) -> tuple[int, Any]:
    """PATCH a JSON body; the status and the JSON answer."""
    request = urllib.request.Request(
        url, data=json.dumps(data).encode(), method="PATCH", headers=JSON
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_instance_route_answers_json_and_refuses_in_one_line(mock: Mock) -> None:
    """PATCH /v1/instance answers the instance as served (derived and changed keys named);
    a bad key is a 400 naming the key, with the close match, and changes nothing."""
    status, body = _patch(
        mock.url + "/v1/instance", {"region": "ap-southeast-2", "tags.Team": "data"}
    )
    assert status == 200
    assert body["instance"]["availability-zone"] == "ap-southeast-2a"
    assert body["derived"] == [
        "availability-zone",
        "availability-zone-id",
        "hostname",
        "public-hostname",
    ]
    assert body["changed"] == ["region", "tags"]
    status, body = _patch(mock.url + "/v1/instance", {"regoin": "eu-west-1"})
    assert status == 400
    assert body["field"] == "instance.regoin"
    assert body["error"].endswith("did you mean 'region'?")
    assert mock.text("meta-data/placement/region") == "ap-southeast-2"
    assert mock.text("meta-data/tags/instance/Team") == "data"


def test_mockimds_set_instance_changes_every_place() -> None:
    """MockIMDS.set_instance is the Python skin of the same change; reset() undoes it."""
    with serve(make_config()) as r:
        r.imds.set_instance(instance_type="t4g.nano", region="eu-north-1")
        assert r.imds.get_metadata("meta-data/instance-type") == "t4g.nano"
        assert r.imds.get_metadata("meta-data/placement/availability-zone") == "eu-north-1a"
        document = json.loads(r.imds.get_metadata("dynamic/instance-identity/document") or "")
        assert (document["instanceType"], document["region"]) == ("t4g.nano", "eu-north-1")
        r.imds.reset()
        assert r.imds.get_metadata("meta-data/instance-type") == "m4.xlarge"


def test_an_unknown_region_allowed_by_the_configuration_is_served() -> None:
    """With instance.allow-unknown-regions a region missing from the list is served, and
    its zone derived from it."""
    cfg = make_config(instance={"region": "xx-test-1", "allow-unknown-regions": True})
    with serve(cfg) as r:
        assert r.get("/latest/meta-data/placement/region") == (200, b"xx-test-1")
        assert r.get("/latest/meta-data/placement/availability-zone") == (200, b"xx-test-1a")


def test_ctl_through_the_real_entry_point_refuses_a_bad_fact() -> None:
    """`imdsmock ctl metadata set meta-data/instance-id i-bad` on a served mock is one line,
    exit 2, the configuration's own."""
    with mock_process() as mp:
        env = {"IMDSMOCK_CONTROL_URL": f"http://127.0.0.1:{mp.control_port}"}
        proc = run_command(["ctl", "metadata", "set", "meta-data/instance-id", "i-bad"], env)
        assert proc.returncode == 2
        assert proc.stderr.splitlines() == [
            "imdsmock ctl: error: instance.instance-id is 'i-bad'; expected i- followed by 8 "
            "or 17 hex digits"
        ]
        assert mp.get("/latest/meta-data/instance-id") == (200, b"i-1234567890abcdef0")


def test_a_reload_serves_the_files_instance_and_a_reset_keeps_it(mock: Mock) -> None:
    """A configuration reload ends run-time instance changes: the new configuration's
    instance is served, and a later reset goes back to it, not to the one before."""
    assert mock.ctl("instance", "set", "instance-type=t3.nano")[0] == 0
    reloaded = control_config(**{"control-port": 0}).replace(
        instance=make_config(instance={"instance-type": "c5.large"}).instance
    )
    mock.running.app.reconfigure(reloaded)
    assert mock.text("meta-data/instance-type") == "c5.large"
    assert mock.ctl("instance", "reset")[0] == 0
    assert mock.text("meta-data/instance-type") == "c5.large"
    assert mock.document()["instanceType"] == "c5.large"
