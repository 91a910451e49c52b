"""``imdsmock capture``: a running IMDS walked over real sockets, written as a configuration
that a second mock serves as the same tree.

Every capture here runs the real command (a subprocess) against a real server: imdsmock
itself, or a stub answering as AWS's Go mock does (another system's server). "The same
tree" is compared by crawling both servers with a token: every listing and leaf, status,
body and content type, byte for byte, except what the mock makes itself:

* role and instance-identity credential documents: fresh keys per mock, and times
  (LastUpdated, Expiration) that follow the clock;
* the identity signatures ``pkcs7`` and ``rsa2048``: PKCS#7 signs the signing time too
  (``signature`` is the same, as both mocks sign the same document with the cached key, but
  a capture never copies it);
* tokens, which are never part of the tree.

Everything else that follows the clock is pinned by the capture: the launch time (the
identity document's ``pendingTime``, ``iam/info``'s ``LastUpdated``) becomes
``instance.pending-time``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from capture_servers import (
    AEMM_LEAVES,
    GATED_IN_AEMM,
    JSON,
    TEXT,
    StubIMDS,
    Tree,
    crawl,
    serve_stub,
    silent_server,
)
from mockprocess import free_port, mock_process, run_command

CUSTOM = """\
instance:
  instance-id: i-0abc1234def567890
  instance-type: c7g.large
  region: eu-west-1
  availability-zone: eu-west-1b
  architecture: arm64
  account-id: "111122223333"
  local-ipv4: 10.1.2.3
  public-ipv4: null
  ipv6: null
  kernel-id: null
  mac: 0a:11:22:33:44:55
  iam-role: web-role
  tags: {Name: web-1, Team: core, "aws:autoscaling:groupName": web}
  public-keys:
    alice: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice@example
    bob: ssh-rsa AAAAB3NzaC1yc2EAAAADAQABbob bob@example
  block-device-mapping: {ami: /dev/xvda, root: /dev/xvda, ebs1: /dev/sdf}
  placement-group-name: null
  user-data: |
    #!/bin/sh
    echo "hello from $(hostname)"
  interfaces:
    - mac: 0a:11:22:33:44:66
      local-ipv4s: [10.1.3.4, 10.1.3.5]
      public-ipv4s: [198.51.100.7]
      subnet-id: subnet-0123456789abcdef0
    - mac: 0a:11:22:33:44:77
      device-number: 5
      interface-id: eni-0aaaabbbbccccdddd
      network-card-index: 1
options:
  http-tokens: required
credentials:
  extended: false
paths:
  meta-data/custom/thing: hello
  meta-data/metrics: null
  meta-data/services/domain: example.internal
  dynamic/fws/extra: "two\\nlines"
"""

# Paths the mock makes itself (see the module docstring): not compared.
MADE = ("/security-credentials/", "/security-credentials-extended/", "/pkcs7", "/rsa2048")


def compared(tree: Tree) -> Tree:
    return {p: a for p, a in tree.items() if not any(m in p for m in MADE)}


def capture(*args: str) -> tuple[int, str, str]:
    done = run_command(["capture", *args])
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("capture") / "custom.yaml"
    path.write_text(CUSTOM)
    return path


def test_a_capture_of_imdsmock_serves_the_same_tree_byte_for_byte(
    custom: Path, tmp_path: Path
) -> None:
    """Captured with --user-data and served by a second mock, a custom instance (tags, keys,
    interfaces, extra and removed paths, user data, IMDSv2 required) is the same tree:
    every listing and leaf, status, body and content type."""
    out = tmp_path / "copy.yaml"
    with mock_process(["-c", str(custom)]) as a:
        code, stdout, stderr = capture(f"http://127.0.0.1:{a.port}", "--user-data", "-o", str(out))
        assert code == 0, stderr
        assert stdout == ""
        original = crawl(a.port)
    with mock_process(["-c", str(out)]) as b:
        copy = crawl(b.port)
        assert b.get("/latest/meta-data/instance-id")[0] == 401  # http-tokens: required
    assert compared(copy) == compared(original)
    assert "/latest/meta-data/custom/thing" in copy
    assert copy["/latest/user-data"][2] == "application/octet-stream"
    # Credentials are made for the same role; only the extended path stays absent.
    role = "/latest/meta-data/iam/security-credentials/web-role"
    assert copy[role][0] == 200
    assert "/latest/meta-data/iam/security-credentials-extended/" not in copy
    text = out.read_text()
    assert "AccessKeyId" not in text
    assert "SecretAccessKey" not in text
    assert "imdsmock: captured " in stderr
    assert "with IMDSv2" in stderr
    assert "the copy differs" not in stderr


def test_the_capture_is_small_keys_for_facts_paths_for_the_rest(custom: Path) -> None:
    """The configuration names each fact once, as a key, and holds as paths only what the
    keys do not give; keys equal to the defaults are left out."""
    with mock_process(["-c", str(custom)]) as a:
        code, text, stderr = capture(f"http://127.0.0.1:{a.port}", "--user-data")
    assert code == 0, stderr
    config = yaml.safe_load(text)
    instance = config["instance"]
    assert instance["instance-id"] == "i-0abc1234def567890"
    assert instance["availability-zone"] == "eu-west-1b"
    assert "region" not in instance  # the zone's
    assert "availability-zone-id" not in instance  # derived from the zone
    assert "instance-type" in instance
    assert "ami-id" not in instance
    assert instance["tags"] == {"Name": "web-1", "Team": "core", "aws:autoscaling:groupName": "web"}
    assert list(instance["public-keys"]) == ["alice", "bob"]
    assert instance["iam-role"] == "web-role"
    assert instance["user-data"] == '#!/bin/sh\necho "hello from $(hostname)"\n'
    assert instance["interfaces"][0] == {
        "mac": "0a:11:22:33:44:66",
        "local-ipv4s": ["10.1.3.4", "10.1.3.5"],
        "public-ipv4s": ["198.51.100.7"],
        "subnet-id": "subnet-0123456789abcdef0",
    }
    assert config["options"] == {"http-tokens": "required"}
    assert config["paths"] == {
        "dynamic/fws/extra": "two\nlines",
        "meta-data/custom/thing": "hello",
        "meta-data/iam/security-credentials-extended": None,
        "meta-data/metrics": None,
        "meta-data/services/domain": "example.internal",
    }
    assert "user-data: |" in text  # a literal block, as written


def test_without_user_data_the_copy_has_none(custom: Path, tmp_path: Path) -> None:
    """User data is kept only with --user-data: without it the copy serves none (404), and
    the capture says it was left out."""
    out = tmp_path / "copy.yaml"
    with mock_process(["-c", str(custom)]) as a:
        code, _, stderr = capture(f"http://127.0.0.1:{a.port}", "-o", str(out))
        original = crawl(a.port)
    assert code == 0, stderr
    assert "left out (user data: --user-data keeps it): user-data" in stderr
    assert "hello from" not in out.read_text()
    with mock_process(["-c", str(out)]) as b:
        copy = crawl(b.port)
    assert "/latest/user-data" not in copy
    assert copy.pop("/latest/")[1] == b"dynamic\nmeta-data"
    assert original.pop("/latest/")[1] == b"dynamic\nmeta-data\nuser-data"
    original.pop("/latest/user-data")
    assert compared(copy) == compared(original)


def test_binary_user_data_is_kept_as_base64(tmp_path: Path) -> None:
    """User data that is not UTF-8 text is written as user-data-base64, and served back
    byte for byte."""
    out = tmp_path / "copy.yaml"
    with mock_process(["--user-data-base64", "AAEC/4CBgg=="]) as a:
        code, _, stderr = capture(f"http://127.0.0.1:{a.port}", "--user-data", "-o", str(out))
    assert code == 0, stderr
    assert yaml.safe_load(out.read_text())["instance"]["user-data-base64"] == "AAEC/4CBgg=="
    with mock_process(["-c", str(out)]) as b:
        assert b.get("/latest/user-data") == (200, b"\x00\x01\x02\xff\x80\x81\x82")


def test_as_instance_writes_a_fleet_entry_served_as_captured(custom: Path, tmp_path: Path) -> None:
    """--as-instance NAME writes one entry of `instances:`, every key given: pasted into a
    fleet whose top-level instance differs, its client sees the captured tree."""
    with mock_process(["-c", str(custom)]) as a:
        code, entry, stderr = capture(
            f"http://127.0.0.1:{a.port}", "--user-data", "--as-instance", "copy"
        )
        original = crawl(a.port)
    assert code == 0, stderr
    assert entry.splitlines()[3] == "- name: copy"
    fleet = tmp_path / "fleet.yaml"
    pasted = entry.replace("  match: {}", "  match: {source: [127.0.0.2]}")
    fleet.write_text(
        "instance:\n  instance-id: i-0d0d0d0d0d0d0d0d0\n  iam-role: default-role\n"
        "  tags: {Name: other}\n  region: ap-south-1\ninstances:\n" + pasted
    )
    with mock_process(["-c", str(fleet)]) as b:
        copy = crawl(b.port, source="127.0.0.2")
        default = crawl(b.port)
    assert compared(copy) == compared(original)
    assert default["/latest/meta-data/instance-id"][1] == b"i-0d0d0d0d0d0d0d0d0"


def test_a_capture_of_the_go_mock_reproduces_its_leaves(tmp_path: Path) -> None:
    """A server answering as AWS's Go mock does: every leaf it serves (but credentials,
    signatures and scenario notices) is the copy's, byte for byte; the identity document has
    the same fields and values (the mock writes and signs its own); what differs is said."""
    stub = StubIMDS()
    out = tmp_path / "copy.yaml"
    with serve_stub(stub) as url:
        code, _, stderr = capture(url, "--user-data", "-o", str(out))
    assert code == 0, stderr
    assert all("X-aws-ec2-metadata-token" in h for m, _, h in stub.requests[2:] if m == "GET")
    config = yaml.safe_load(out.read_text())
    assert config["instance"]["identity-document"] == {
        "accountId": "0123456789",
        "imageId": "ami-0b69ea66ff7391e80",
        "availabilityZone": "us-east-1f",
        "ramdiskId": None,
        "kernelId": None,
        "privateIp": "10.0.7.10",
    }
    assert config["paths"]["meta-data/public-keys/0/openssh-key"].endswith("my-public-key")
    with mock_process(["-c", str(out)]) as b:
        copy = crawl(b.port)
    for path, (body, kind) in AEMM_LEAVES.items():
        url_path = "/latest/" + path
        if path in GATED_IN_AEMM or any(m in url_path for m in (*MADE, "/signature")):
            continue
        status, served, served_kind = copy[url_path]
        assert status == 200, path
        if path.endswith("/document"):  # every field as served; the copy's has one more
            theirs = json.loads(body)
            assert {k: v for k, v in json.loads(served).items() if k in theirs} == theirs
        else:
            assert served == body, path
        assert served_kind == (kind if kind != JSON else TEXT), path
    # The listings the Go mock writes otherwise, as IMDS writes them, and each said.
    assert copy["/latest/meta-data/public-keys/"][1] == b"0/"
    assert copy["/latest/meta-data/iam/"][1] == b"info\nsecurity-credentials/"
    for said in (
        "the copy differs: listing of the version root: the copy lists the same entries",
        "the copy differs: the listing of meta-data/iam/ names security-credentials twice",
        "the copy differs: listing of meta-data/: the copy adds identity-credentials/\n",
        "the copy differs: content type: the copy serves text/plain where",
        "left out (scenario notices: start the scenario on the copy",
        "instance.account-id is '0123456789'; expected 12 digits",
        "dynamic/instance-identity/document: the copy's also has marketplaceProductCodes",
    ):
        assert said in stderr, said


def test_a_server_refusing_the_token_is_walked_with_imdsv1(tmp_path: Path) -> None:
    """A server that refuses the token PUT with 403, 404 or 405 is walked with IMDSv1, and
    stderr says so; any other refusal ends the capture (exit 1)."""
    for status in (403, 404, 405):
        stub = StubIMDS(token_status=status)
        with serve_stub(stub) as url:
            code, text, stderr = capture(url)
        assert code == 0, stderr
        assert f"refused the IMDSv2 token (PUT /latest/api/token answered {status})" in stderr
        assert "walking it with IMDSv1" in stderr
        assert text.startswith(f"# imdsmock capture of {url} (IMDSv1).")
        assert not any("X-aws-ec2-metadata-token" in h for _, _, h in stub.requests)
    with serve_stub(StubIMDS(token_status=500)) as url:
        code, text, stderr = capture(url)
    assert (code, text) == (1, "")
    assert stderr == (
        f"imdsmock: error: {url} answered PUT /latest/api/token with 500; expected 200 with "
        "a token, or 403, 404 or 405 from a server without IMDSv2\n"
    )


def test_imds_turned_off_is_one_line() -> None:
    """A mock with its endpoint disabled (403 to everything): exit 1, one line."""
    with mock_process(["--http-endpoint", "disabled"]) as a:
        code, text, stderr = capture(f"http://127.0.0.1:{a.port}")
    assert (code, text) == (1, "")
    assert stderr.endswith("answered GET /latest/ with 403: its metadata endpoint is turned off\n")
    assert stderr.count("\n") == 2  # the IMDSv1 warning, then the error


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--max-paths", "10"], "has more than 10 paths (at "),
        (["--max-depth", "3"], "has paths deeper than 3 levels ("),
        (["--max-bytes", "2000"], "sent more than 2000 bytes in all (at GET "),
    ],
    ids=["paths", "depth", "bytes"],
)
def test_bounds_end_the_capture_with_one_line(args: list[str], said: str) -> None:
    """Past a bound the capture stops: exit 1, nothing on stdout, one line naming the
    option that raises the bound."""
    with mock_process() as a:
        code, text, stderr = capture(f"http://127.0.0.1:{a.port}", *args)
    assert (code, text) == (1, "")
    assert stderr.startswith(f"imdsmock: error: http://127.0.0.1:{a.port} ")
    assert said in stderr
    assert f"{args[0]} raises the limit" in stderr
    assert stderr.count("\n") == 1


def test_a_server_that_never_answers_times_out() -> None:
    """A server that takes the connection and never answers: exit 1 after --timeout."""
    with silent_server() as url:
        started = time.monotonic()
        code, text, stderr = capture(url, "--timeout", "0.3")
    assert time.monotonic() - started < 10
    assert (code, text) == (1, "")
    assert stderr == (
        f"imdsmock: error: cannot reach {url}: PUT /latest/api/token was not answered "
        "within 0.3 s (in a container, a hop limit of 1 drops the token's answer: run it on "
        "the host)\n"
    )


def test_an_unreachable_url_is_one_line() -> None:
    """Nothing listening: exit 1, one line."""
    url = f"http://127.0.0.1:{free_port()}"
    code, text, stderr = capture(url)
    assert (code, text, stderr) == (
        1,
        "",
        f"imdsmock: error: cannot reach {url}: connection refused\n",
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["ftp://169.254.169.254"], "URL 'ftp://169.254.169.254' is not an http:// URL of an IMDS"),
        (["http://"], "URL 'http://' is not an http:// URL"),
        (["http://host:99999"], "URL 'http://host:99999' is not a URL; expected an http:// URL"),
        (["http://[fd00::1"], "is not a URL; expected"),
        (["http://host/latest/"], "has more than a host and port"),
        (["http://user@host"], "has more than a host and port"),
        (["http://host/?q=1"], "has more than a host and port"),
        (["--max-paths", "0"], "argument --max-paths: '0' is not a number from 2 to 1e+06"),
        (["--timeout", "soon"], "argument --timeout: 'soon' is not a number from 0.01 to 600"),
        (["--as-instance", "Web Server"], "--as-instance is 'Web Server'; expected a name of"),
        (["--as-instance", "default"], "a name other than 'default'"),
        (["-o", "/nonexistent/dir/x.yaml"], "-o '/nonexistent/dir/x.yaml' cannot be written"),
        (["http://a", "http://b"], "unrecognized arguments: http://b"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], said: str) -> None:
    """A bad URL or option: exit 2, one line, no request made (nothing listens at these)."""
    if args[0] == "-o":
        with mock_process() as a:
            code, text, stderr = capture(f"http://127.0.0.1:{a.port}", *args)
    else:
        code, text, stderr = capture(*args)
    assert (code, text) == (2, ""), stderr
    assert said in stderr
    assert stderr.startswith("imdsmock")
    assert stderr.count("\n") == 1


def test_help_and_completion_know_capture() -> None:
    """`imdsmock --help` names the subcommand, its own help lists its options, and the
    completion scripts complete it and its options."""
    assert "capture" in run_command(["--help"]).stdout
    usage = run_command(["capture", "--help"]).stdout
    for option in (
        "--user-data",
        "--as-instance",
        "-o",
        "--timeout",
        "--max-paths",
        "--max-bytes",
        "--max-depth",
        "default http://169.254.169.254",
    ):
        assert option in usage
    for shell in ("bash", "zsh"):
        script = run_command(["completion", shell]).stdout
        assert "capture" in script.split("_subcommands()")[1].split("}")[0]
        assert "'capture') echo '-h --help -o --output --user-data --as-instance" in script
