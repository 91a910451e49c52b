"""The capture's parts, in process: listings read, what is left out, a walk's retries and
refusals against stub servers (real sockets), and the values a configuration cannot take
turned into paths with the reason said.

The whole command, against imdsmock itself and a stub of AWS's Go mock, is
tests/test_capture.py.
"""

from __future__ import annotations

import pytest
import yaml

from capture_servers import AEMM_LEAVES, OCTET, TEXT, StubIMDS, raw_server, serve_stub
from imdsmock.capture.client import CaptureFailed, Target, parse_url
from imdsmock.capture.render import render
from imdsmock.capture.reproduce import Reproduction
from imdsmock.capture.run import Capture, capture, report
from imdsmock.capture.walk import Entry, left_out, parse_listing
from imdsmock.config.build import from_mapping

LISTINGS = [
    ("meta-data", b"ami-id\r\nnetwork/\n\n", [Entry("ami-id", False), Entry("network", True)], []),
    (
        "meta-data/public-keys",
        b"0=my key\n1=other",
        [Entry("0", True, "my key"), Entry("1", True, "other")],
        [],
    ),
    (
        "",
        b"dynamic\nmeta-data\nuser-data\n",
        [Entry("dynamic", True), Entry("meta-data", True), Entry("user-data", False)],
        [],
    ),
    ("meta-data/iam", b"x\nx/", [Entry("x", True)], ["names x twice"]),
    ("meta-data/iam", b"x/\nx", [Entry("x", True)], ["names x twice"]),
    ("meta-data", b"..\na b\n", [], ["names '..', no path", "names 'a b', no path"]),
    ("meta-data", b"\xff\xfe", [], ["the listing of meta-data/ is not UTF-8 text"]),
]


@pytest.mark.parametrize(
    ("directory", "body", "entries", "notes"),
    LISTINGS,
    ids=["crlf-blank", "indexed", "root", "leaf-then-dir", "dir-then-leaf", "no-path", "bytes"],
)
def test_listings_are_read_as_cloud_init_reads_them(
    directory: str, body: bytes, entries: list[Entry], notes: list[str]
) -> None:
    """`/` ends a directory, `N=name` is the directory N of key `name`, the version root's
    meta-data and dynamic are directories; what names no path is said, not walked."""
    found, said = parse_listing(directory, body)
    assert found == entries
    assert len(said) == len(notes)
    for line, note in zip(said, notes, strict=True):
        assert note in line


@pytest.mark.parametrize(
    ("path", "user_data", "why"),
    [
        ("meta-data/iam/security-credentials/r", False, "role credentials"),
        ("meta-data/iam/security-credentials-extended/r", False, "role credentials"),
        ("meta-data/identity-credentials", False, "instance identity credentials"),
        ("meta-data/identity-credentials/ec2/info", False, "instance identity credentials"),
        ("dynamic/instance-identity/rsa2048", False, "identity signatures"),
        ("dynamic/instance-identity/dsa2048", False, "identity signatures"),
        ("user-data", False, "user data: --user-data keeps it"),
        ("meta-data/spot/instance-action", True, "scenario notices"),
        ("user-data", True, None),
        ("dynamic/instance-identity/document", False, None),
        ("meta-data/iam/security-credentials", False, None),
        ("meta-data/iam/info", False, None),
    ],
)
def test_what_the_mock_makes_itself_is_left_out(
    path: str, user_data: bool, why: str | None
) -> None:
    """Credentials, signatures, scenario notices and unasked user data are never fetched;
    the role listing, the document and everything else are."""
    reason = left_out(path, user_data=user_data)
    assert (reason is None) == (why is None)
    assert why is None or why in str(reason)


def run(stub: StubIMDS, **options: object) -> tuple[Capture, list[str], list[str]]:
    """Capture ``stub`` in process; the result, its report and the warnings."""
    warnings: list[str] = []
    with serve_stub(stub) as url:
        result = capture(url, warn=warnings.append, **options)  # type: ignore[arg-type]
    return result, report(result), warnings


def plain(**leaves: bytes) -> StubIMDS:
    """A stub serving the Go mock's tree with some leaves changed (None: removed)."""
    tree = dict(AEMM_LEAVES)
    for name, body in leaves.items():
        path = name.replace("__", "/").replace("_", "-")
        tree[path] = (body, OCTET if path == "user-data" else TEXT)
    return StubIMDS(leaves=tree)


def test_an_expired_token_is_renewed_once() -> None:
    """A GET answered 401 with a token takes a new token and is asked again."""
    refused: set[str] = set()

    def expire_once(stub: StubIMDS, method: str, path: str) -> tuple[int, bytes, str] | None:
        if path == "/latest/meta-data/ami-id" and path not in refused:
            refused.add(path)
            return 401, b"", TEXT
        return None

    stub = StubIMDS(answer=expire_once)
    result, _, _ = run(stub)
    puts = [p for m, p, _ in stub.requests if m == "PUT"]
    assert len(puts) == 2
    assert result.captured.leaves["meta-data/ami-id"].body == b"ami-0a887e401f7654935"


def test_a_throttled_request_is_asked_again_after_a_pause() -> None:
    """429 and 503 are asked again (three times at most); a 500 is said and left out."""
    count = {"n": 0}

    def throttle(stub: StubIMDS, method: str, path: str) -> tuple[int, bytes, str] | None:
        if path == "/latest/meta-data/ami-id":
            count["n"] += 1
            return (429, b"", TEXT) if count["n"] < 3 else None
        if path == "/latest/meta-data/kernel-id":
            return 503, b"", TEXT
        if path == "/latest/meta-data/placement/":
            return 500, b"", TEXT
        return None

    result, lines, _ = run(StubIMDS(answer=throttle))
    assert count["n"] == 3
    assert "meta-data/ami-id" in result.captured.leaves
    assert "the copy differs: meta-data/kernel-id answered 503: left out" in lines
    assert "the copy differs: meta-data/placement/ answered 500: left out" in lines


def test_a_token_refused_again_leaves_the_path_out() -> None:
    """A 401 that a new token does not cure: the path is said and left out."""

    def always(stub: StubIMDS, method: str, path: str) -> tuple[int, bytes, str] | None:
        if path == "/latest/meta-data/ami-id":
            return 401, b"", TEXT
        return None

    _, lines, _ = run(StubIMDS(answer=always))
    assert "the copy differs: meta-data/ami-id answered 401: left out" in lines


def test_a_renewal_refused_leaves_the_path_out() -> None:
    """A 401, then a token request refused: the path is left out, the walk goes on."""
    puts = {"n": 0}

    def refuse(stub: StubIMDS, method: str, path: str) -> tuple[int, bytes, str] | None:
        if method == "PUT":
            puts["n"] += 1
            return (500, b"", TEXT) if puts["n"] > 1 else None
        if path == "/latest/meta-data/ami-id":
            return 401, b"", TEXT
        return None

    _, lines, _ = run(StubIMDS(answer=refuse))
    assert "the copy differs: meta-data/ami-id answered 401: left out" in lines


def test_a_token_answer_without_a_token_ends_the_capture() -> None:
    """A 200 to the token PUT with an empty body is no IMDSv2 and no refusal: one line."""

    def empty(stub: StubIMDS, method: str, path: str) -> tuple[int, bytes, str] | None:
        return (200, b"", TEXT) if method == "PUT" else None

    with pytest.raises(
        CaptureFailed, match=r"answered PUT /latest/api/token with 200 but no token"
    ):
        run(StubIMDS(answer=empty))


def test_a_listed_leaf_that_answers_404_is_said() -> None:
    """A leaf its directory lists but that answers 404 is left out and said."""

    def missing(stub: StubIMDS, method: str, path: str) -> tuple[int, bytes, str] | None:
        return (404, b"", TEXT) if path == "/latest/meta-data/ami-id" else None

    result, lines, _ = run(StubIMDS(answer=missing))
    assert result.captured.absent == ("meta-data/ami-id",)
    assert "listed but answered 404: meta-data/ami-id" in lines


def test_a_connection_closed_without_an_answer_ends_the_capture() -> None:
    """A server that closes the connection mid-walk: one line, the request named."""

    def close(stub: StubIMDS, method: str, path: str) -> tuple[int, bytes, str] | None:
        if path == "/latest/meta-data/ami-id":
            raise ConnectionAbortedError  # the handler dies: the connection closes unanswered
        return None

    with pytest.raises(CaptureFailed) as failed:
        run(StubIMDS(answer=close))
    assert str(failed.value).endswith(
        "stopped answering: GET /latest/meta-data/ami-id: the connection was closed without "
        "an answer"
    )


def test_an_answer_that_is_not_http_ends_the_capture() -> None:
    """A server answering with something that is not HTTP: one line."""
    with raw_server(b"SSH-2.0-OpenSSH_9.6\r\n") as url, pytest.raises(CaptureFailed) as failed:
        capture(url)
    assert str(failed.value) == (
        f"cannot reach {url}: PUT /latest/api/token was answered with something that is not "
        "HTTP (BadStatusLine)"
    )


def test_an_answer_trickling_past_the_timeout_ends_the_capture() -> None:
    """A body sent a byte at a time for longer than --timeout: the request is given up."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
    with raw_server(head, trickle=True) as url, pytest.raises(CaptureFailed) as failed:
        capture(url, timeout=0.5)
    assert str(failed.value) == (
        f"cannot reach {url}: PUT /latest/api/token was not answered within 0.5 s (in a "
        "container, a hop limit of 1 drops the token's answer: run it on the host)"
    )


def test_urls_are_read_as_host_and_port() -> None:
    """IPv6 hosts keep their brackets in messages, the port is 80 unless given."""
    assert parse_url("http://[fd00:ec2::254]") == Target(
        "fd00:ec2::254", 80, "http://[fd00:ec2::254]"
    )
    assert parse_url("HTTP://IMDS:8080/") == Target("imds", 8080, "http://imds:8080")


@pytest.mark.parametrize(
    ("token", "status", "said"),
    [
        (405, 401, "answered GET /latest/ with 401 (it wants a token) but refused to give one"),
        (200, 500, "answered GET /latest/ with 500; expected 200 and a listing"),
    ],
)
def test_a_root_listing_refused_ends_the_capture(token: int, status: int, said: str) -> None:
    """The version root must answer 200: anything else is the end, in one line."""

    def root(stub: StubIMDS, method: str, path: str) -> tuple[int, bytes, str] | None:
        return (status, b"", TEXT) if path == "/latest/" else None

    with pytest.raises(CaptureFailed, match=said.replace("(", r"\(").replace(")", r"\)")):
        run(StubIMDS(token_status=token, answer=root))


def test_a_server_asking_for_tokens_is_captured_as_requiring_them() -> None:
    """A GET without a token answered 401: the copy gets http-tokens: required."""

    def required(stub: StubIMDS, method: str, path: str) -> tuple[int, bytes, str] | None:
        headers = stub.requests[-1][2]
        if method == "GET" and "X-aws-ec2-metadata-token" not in headers:
            return 401, b"", TEXT
        return None

    result, _, _ = run(StubIMDS(answer=required))
    assert result.reproduction.options == {"http-tokens": "required"}


def test_values_the_mock_does_not_take_are_served_as_paths() -> None:
    """An instance ID, MAC, tag key, key name or user data the configuration refuses is
    dropped from the keys with the reason, and served through paths as captured."""
    stub = plain(
        meta_data__instance_id=b"i-not-hex",
        meta_data__instance_life_cycle=b"reserved",
        meta_data__ami_launch_index=b"first",
        user_data=b"x" * 16385,
    )
    stub.leaves["meta-data/tags/instance/_index"] = (b"reserved-name", TEXT)
    stub.leaves["meta-data/public-keys/0/openssh-key"] = (b"ssh-ed25519 AAAA k\xc3\xa9y", TEXT)
    stub.listings["meta-data/public-keys"] = "0=clé".encode()
    result, lines, _ = run(stub, user_data=True)
    r = result.reproduction
    assert "instance-id" not in r.instance
    assert r.paths["meta-data/instance-id"] == "i-not-hex"
    assert r.paths["meta-data/instance-life-cycle"] == "reserved"
    assert r.paths["meta-data/ami-launch-index"] == "first"
    assert r.paths["meta-data/tags/instance/_index"] == "reserved-name"
    assert r.paths["meta-data/public-keys/0/openssh-key"] == "ssh-ed25519 AAAA kéy"
    assert r.instance["public-keys"] == {}
    assert r.instance["user-data-base64"] is None
    assert "user-data" not in r.instance
    for said in (
        "instance.instance-id is 'i-not-hex'; expected i- followed by 8 or 17 hex digits",
        "instance.tags._index is '_index'; expected a tag key",
        "instance.public-keys.clé is 'clé'; expected a key pair name",
        "instance.user-data is '16385 bytes'; expected at most 16384 bytes",
    ):
        assert any(said in line for line in lines), said
    assert "listing of meta-data/public-keys/: the copy lacks 0=clé; adds 0/" in "\n".join(lines)


def test_interfaces_the_mock_does_not_take_are_served_as_paths() -> None:
    """An interface with an address that is none: the interface is dropped from the keys,
    its leaves served through paths; its MAC's directory is the same tree."""
    eni = "meta-data/network/interfaces/macs/0e:00:00:00:00:02/"
    stub = plain()
    for name, body in {
        "device-number": b"one",
        "local-ipv4s": b"10.0.0.300",
        "mac": b"0e:00:00:00:00:02",
    }.items():
        stub.leaves[eni + name] = (body, TEXT)
    result, _, _ = run(stub)
    r = result.reproduction
    assert "interfaces" not in r.instance
    assert r.paths[eni + "local-ipv4s"] == "10.0.0.300"
    config = from_mapping(yaml.safe_load(result.text))
    assert config.instance.interfaces == ()


def test_unknown_regions_spelt_as_regions_are_taken() -> None:
    """A region the known list lacks but spelt as one: allow-unknown-regions is set."""
    stub = plain(
        meta_data__placement__region=b"xx-mars-1",
        meta_data__placement__availability_zone=b"xx-mars-1b",
        meta_data__placement__availability_zone_id=b"xxm1-az2",
    )
    result, _, _ = run(stub)
    r = result.reproduction
    assert r.instance["allow-unknown-regions"] is True
    assert r.instance["availability-zone"] == "xx-mars-1b"


def test_what_paths_cannot_hold_is_said() -> None:
    """A leaf of bytes that are not UTF-8 cannot be a path value: said (the copy serves its
    own where the mock has that leaf); a path longer than the path rule takes is left out."""
    long = "meta-data/" + "/".join(["d" * 250] * 5)
    stub = plain(meta_data__ami_id=b"\xff\xfe", meta_data__custom=b"\xff")
    stub.leaves[long] = (b"deep", TEXT)
    result, lines, _ = run(stub)
    assert (
        "the copy differs: meta-data/ami-id is not UTF-8 text, which paths cannot hold: "
        "the copy serves its own" in lines
    )
    assert (
        "the copy differs: meta-data/custom is not UTF-8 text, which paths cannot hold: "
        "left out" in lines
    )
    assert long not in result.reproduction.paths
    assert any(line.endswith(": left out") and "paths.meta-data/ddd" in line for line in lines)


@pytest.mark.parametrize(
    ("document", "said"),
    [
        (None, "dynamic/instance-identity/document was not served: the copy serves one"),
        (b"[1, 2]", "dynamic/instance-identity/document is not a JSON object"),
        (b"{not json", "dynamic/instance-identity/document is not a JSON object"),
    ],
)
def test_a_missing_or_broken_document_is_said(document: bytes | None, said: str) -> None:
    """No identity document, or one that is no JSON object: the copy serves its own."""
    stub = plain(meta_data__iam__info=b"{not json")
    if document is None:
        del stub.leaves["dynamic/instance-identity/document"]
    else:
        stub.leaves["dynamic/instance-identity/document"] = (document, TEXT)
    result, lines, _ = run(stub)
    assert f"the copy differs: {said}" in " ".join(lines)
    assert result.reproduction.paths["meta-data/iam/info"] == "{not json"


def test_a_tree_without_network_iam_or_keys_is_captured_as_such() -> None:
    """No interfaces, no role, keys out of order: the keys say none, the copy has none."""
    tree = {
        p: v
        for p, v in AEMM_LEAVES.items()
        if not p.startswith(("meta-data/network/", "meta-data/iam/", "meta-data/public-keys/"))
    }
    tree["meta-data/public-keys/1/openssh-key"] = (b"ssh-rsa AAAA one", TEXT)
    stub = StubIMDS(leaves=tree, listings={"meta-data/public-keys": b"1=one"})
    result, _, _ = run(stub)
    r = result.reproduction
    assert r.instance["iam-role"] is None
    assert r.instance["public-keys"] == {}
    assert r.paths["meta-data/public-keys/1/openssh-key"] == "ssh-rsa AAAA one"
    assert r.paths["meta-data/network"] is None


@pytest.mark.parametrize(
    "text",
    [
        "a \nb",
        "x\r\ny\n",
        "\tindent\nz",
        "  lead\nq\n\n\n",
        "end\n  ",
        "k: v\n- item\n",
        "nul\x00x\ny",
    ],
    ids=["trailing-space", "crlf", "tab", "leading-space", "ends-in-spaces", "yaml-like", "nul"],
)
def test_multi_line_text_reads_back_exactly(text: str) -> None:
    """User data and path values of several lines are literal blocks where YAML can carry
    them exactly, quoted where it cannot: either way they load back as captured."""
    r = Reproduction({"user-data": text}, {}, {"meta-data/x": text}, ())
    written = render(r, url="http://imds", imdsv2=True)
    loaded = yaml.safe_load(written)
    assert loaded["instance"]["user-data"] == text
    assert loaded["paths"]["meta-data/x"] == text
