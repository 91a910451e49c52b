"""IMDSv1/IMDSv2 protocol rules, checked over TCP against the real server."""

from __future__ import annotations

import pytest

from imdsmock.core.clock import ManualClock
from support import Running, make_config, serve

TTL = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN = "X-aws-ec2-metadata-token"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({TTL: "1"}, 200),
        ({TTL: "21600"}, 200),
        ({}, 400),
        ({TTL: "0"}, 400),
        ({TTL: "21601"}, 400),
        ({TTL: "abc"}, 400),
        ({TTL: "-5"}, 400),
        ({TTL: ""}, 400),
        ({TTL: "\u00b2"}, 400),
        ({TTL: "60", "X-Forwarded-For": "10.0.0.1"}, 403),
    ],
    ids=[
        "min",
        "max",
        "missing",
        "zero",
        "too-big",
        "text",
        "negative",
        "empty",
        "superscript-digit",
        "xff",
    ],
)
def test_token_put_validates_ttl_and_forwarding(
    running: Running, headers: dict[str, str], status: int
) -> None:
    """PUT /latest/api/token needs a TTL of 1..21600 (else 400) and refuses proxies (403)."""
    got, _, body = running.request("PUT", "/latest/api/token", headers)
    assert got == status
    if status == 200:
        assert len(body) == 56
        assert body.startswith(b"AQAAA")


def test_token_response_echoes_ttl(running: Running) -> None:
    """The token answer echoes the TTL in X-aws-ec2-metadata-token-ttl-seconds."""
    status, headers, _ = running.request("PUT", "/latest/api/token", {TTL: "300"})
    assert status == 200
    assert headers["x-aws-ec2-metadata-token-ttl-seconds"] == "300"


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "HEAD"])
def test_token_path_other_methods_are_405(running: Running, method: str) -> None:
    """Any method but PUT on the token path answers 405 with Allow: OPTIONS, PUT."""
    status, headers, _ = running.request(method, "/latest/api/token", {TTL: "60"})
    assert status == 405
    assert headers["allow"] == "OPTIONS, PUT"


def test_dated_token_path_is_forbidden(running: Running) -> None:
    """A PUT to a version-specific token path (/2021-03-23/api/token) answers 403."""
    status, _, _ = running.request("PUT", "/2021-03-23/api/token", {TTL: "60"})
    assert status == 403


def test_token_authenticates_and_reports_remaining_ttl(running: Running) -> None:
    """A valid token gets 200, and the answer carries the token's remaining TTL."""
    token = running.token(600)
    status, headers, body = running.request("GET", "/latest/meta-data/instance-id", {TOKEN: token})
    assert (status, body) == (200, b"i-1234567890abcdef0")
    assert headers["x-aws-ec2-metadata-token-ttl-seconds"] == "600"


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_invalid_token_is_401_in_both_modes(mode: str) -> None:
    """An invalid token is refused with 401 whether tokens are optional or required."""
    with serve(make_config(options={"http-tokens": mode})) as r:
        status, body = r.get("/latest/meta-data/instance-id", token="AQAAAnot-a-real-token")
        assert status == 401
        assert b"<title>401 - Unauthorized</title>" in body


def test_expired_token_is_401() -> None:
    """A token is accepted until its TTL has passed, then answers 401."""
    clock = ManualClock(1767225600.0)
    with serve(clock=clock) as r:
        token = r.token(ttl=2)
        assert r.get("/latest/meta-data/instance-id", token)[0] == 200
        clock.advance(2)
        assert r.get("/latest/meta-data/instance-id", token)[0] == 401


def test_required_mode_refuses_requests_without_token() -> None:
    """With http-tokens required, a request without a token answers 401; with one, 200."""
    with serve(make_config(options={"http-tokens": "required"})) as r:
        assert r.get("/latest/meta-data/instance-id")[0] == 401
        assert r.get("/")[0] == 401
        assert r.get("/latest/meta-data/instance-id", r.token())[0] == 200


def test_optional_mode_serves_imdsv1(running: Running) -> None:
    """With http-tokens optional, a request without a token is served (IMDSv1)."""
    assert running.get("/latest/meta-data/instance-id") == (200, b"i-1234567890abcdef0")


def test_disabled_endpoint_is_403_everywhere() -> None:
    """With http-endpoint disabled every request, token PUT included, answers 403."""
    with serve(make_config(options={"http-endpoint": "disabled"})) as r:
        assert r.get("/latest/meta-data/instance-id")[0] == 403
        status, _, _ = r.request("PUT", "/latest/api/token", {TTL: "60"})
        assert status == 403


def test_data_paths_refuse_other_methods(running: Running) -> None:
    """Data paths answer GET and HEAD only; other methods get 405."""
    status, headers, _ = running.request("POST", "/latest/meta-data/instance-id", body=b"x")
    assert status == 405
    assert "GET" in headers["allow"]


def test_head_has_headers_and_no_body(running: Running) -> None:
    """HEAD answers with the GET's status and Content-Length but no body."""
    status, headers, body = running.request("HEAD", "/latest/meta-data/instance-id")
    assert status == 200
    assert headers["content-length"] == "19"
    assert body == b""


@pytest.mark.parametrize(
    "path",
    [
        "/latest/meta-data/placement/availability-zone/",
        "//latest//meta-data///placement/availability-zone",
        "/latest/meta-data/placement/availability-zone?x=1",
        "/2021-03-23/meta-data/placement/availability-zone",
        "/2009-04-04/meta-data/placement/availability-zone/",
    ],
    ids=["leaf-trailing-slash", "repeated-slashes", "query", "dated", "dated-slash"],
)
def test_path_forms_resolve_like_imds(running: Running, path: str) -> None:
    """Leaves answer with a trailing slash, repeated slashes collapse, dated versions work."""
    assert running.get(path) == (200, b"us-east-1a")


@pytest.mark.parametrize(
    "path",
    [
        "/latest/meta-data/nope",
        "/2030-01-01/meta-data/instance-id",
        "/latest/meta-data/../user-data",
        "/latest/meta-data/%2e%2e/user-data",
        "/latest/meta-data/instance-id/extra",
        "/etc/passwd",
    ],
)
def test_unknown_paths_are_404(running: Running, path: str) -> None:
    """Unknown paths, unknown versions and traversal attempts answer 404."""
    assert running.get(path)[0] == 404


def test_directories_answer_with_and_without_slash(running: Running) -> None:
    """A directory lists its children with or without the trailing slash."""
    a = running.get("/latest/meta-data/placement")
    b = running.get("/latest/meta-data/placement/")
    assert a == b
    assert a[1].split(b"\n") == [
        b"availability-zone",
        b"availability-zone-id",
        b"group-name",
        b"host-id",
        b"partition-number",
        b"region",
    ]


def test_user_data_is_octet_stream_and_404_when_absent(running: Running) -> None:
    """User data is served as application/octet-stream, and is 404 when there is none."""
    status, headers, body = running.request("GET", "/latest/user-data")
    assert (status, body) == (200, b"1234,john,reboot,true\n")
    assert headers["content-type"] == "application/octet-stream"
    with serve(make_config(instance={"user-data-base64": None})) as r:
        assert r.get("/latest/user-data")[0] == 404
        assert r.get("/latest/")[1] == b"dynamic\nmeta-data"


def test_tags_only_when_instance_metadata_tags_enabled() -> None:
    """tags/instance is served only while instance-metadata-tags is enabled."""
    with serve(make_config(options={"instance-metadata-tags": "disabled"})) as r:
        assert r.get("/latest/meta-data/tags/instance")[0] == 404
        assert b"tags/" not in r.get("/latest/meta-data/")[1]
    with serve(make_config(instance={"tags": {"Owner": "alice", "Name": "x"}})) as r:
        assert r.get("/latest/meta-data/tags/instance") == (200, b"Name\nOwner")
        assert r.get("/latest/meta-data/tags/instance/Owner") == (200, b"alice")


def test_public_keys_listing_uses_index_equals_name(running: Running) -> None:
    """public-keys/ lists "0=name" and the key is at public-keys/0/openssh-key."""
    assert running.get("/latest/meta-data/public-keys/") == (200, b"0=test")
    assert running.get("/latest/meta-data/public-keys/0/") == (200, b"openssh-key")
    status, body = running.get("/latest/meta-data/public-keys/0/openssh-key")
    assert status == 200
    assert body.startswith(b"ssh-rsa ")


def test_versions_listed_and_served(running: Running) -> None:
    """ "/" lists 1.0, every dated version and latest; cloud-init's versions answer."""
    status, body = running.get("/")
    versions = body.decode().split("\n")
    assert status == 200
    assert versions[0] == "1.0"
    assert versions[-1] == "latest"
    for v in ("2009-04-04", "2016-09-02", "2018-09-24", "2021-03-23"):
        assert v in versions
        assert running.get(f"/{v}/meta-data/instance-id") == (200, b"i-1234567890abcdef0")


def test_extra_paths_interfaces_and_keys_are_served() -> None:
    """Users can add any path, more interfaces and more keys; listings follow."""
    cfg = make_config(
        instance={
            "interfaces": [{"mac": "0e:00:00:00:00:02", "local-ipv4s": ["172.16.40.5"]}],
            "public-keys": {"alice": "ssh-ed25519 AAAA alice", "bob": "ssh-ed25519 AAAB bob"},
        },
        paths={"meta-data/custom/thing": "value", "meta-data/kernel-id": None},
    )
    with serve(cfg) as r:
        macs = r.get("/latest/meta-data/network/interfaces/macs/")[1].split(b"\n")
        assert macs == [b"0e:00:00:00:00:02/", b"0e:49:61:0f:c3:11/"]
        base = "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:02/"
        assert r.get(base + "local-ipv4s") == (200, b"172.16.40.5")
        assert r.get(base + "device-number") == (200, b"1")
        assert r.get("/latest/meta-data/public-keys") == (200, b"0=alice\n1=bob")
        assert r.get("/latest/meta-data/public-keys/1/openssh-key")[1] == b"ssh-ed25519 AAAB bob"
        assert r.get("/latest/meta-data/custom/thing") == (200, b"value")
        assert r.get("/latest/meta-data/kernel-id")[0] == 404
        assert b"kernel-id" not in r.get("/latest/meta-data")[1]


def test_token_cache_is_bounded() -> None:
    """Verifying many distinct tokens keeps the token cache bounded (memory does not grow)."""
    from imdsmock.core.tokens import _CACHE_LIMIT, TokenIssuer

    issuer = TokenIssuer()
    for i in range(_CACHE_LIMIT * 3):
        token = issuer.issue(60 if i % 2 else 1, 1000.0)
        assert issuer.remaining(token, 1000.5) is not None
    assert len(issuer._cache) <= _CACHE_LIMIT


def test_tokens_issued_at_the_same_instant_are_all_distinct_and_ec2_shaped() -> None:
    """Many tokens with the same TTL and expiry never repeat; each looks like EC2's."""
    from imdsmock.core.tokens import TokenIssuer

    issuer = TokenIssuer()
    tokens = [issuer.issue(21600, 1000.0) for _ in range(50_000)]
    assert len(set(tokens)) == len(tokens)
    assert all(len(t) == 56 and t.startswith("AQAAA") for t in tokens)
    other = TokenIssuer()
    assert other.remaining(tokens[0], 1000.0) is None  # another secret: not ours


def test_token_macs_are_the_standard_librarys_hmac_sha256() -> None:
    """A token ends in HMAC-SHA256 (as hmac computes it) of its body, under secret and generation."""
    import base64
    import hashlib
    import hmac

    from imdsmock.core.tokens import TokenIssuer

    secret = bytes(range(32))
    issuer = TokenIssuer(secret)
    for generation in (0, 1):
        raw = base64.b64decode(issuer.issue(60, 1000.0))
        key = secret + generation.to_bytes(4, "big")
        assert raw[24:] == hmac.digest(key, raw[:24], hashlib.sha256)[:18]
        issuer.revoke_all()


def test_keep_alive_is_opt_in() -> None:
    """By default every answer says Connection: close; keep-alive serves several requests."""
    import http.client

    with serve() as r:
        _, headers, _ = r.request("GET", "/latest/meta-data/instance-id")
        assert headers["connection"] == "close"
    with serve(make_config(server={"keep-alive": True})) as r:
        conn = http.client.HTTPConnection(r.host, r.port, timeout=5)
        for _ in range(3):
            conn.request("GET", "/latest/meta-data/instance-id")
            resp = conn.getresponse()
            assert resp.read() == b"i-1234567890abcdef0"
            assert resp.getheader("connection") is None
        conn.close()


# The server remembers what answering a request took (imdsmock.core.imds.Known), kept with
# the parse of its exact bytes: Running.get sends the same bytes on each new connection,
# so these answers after the first are the remembered ones, and must follow every change.


def test_a_repeated_request_follows_edits_and_options() -> None:
    """The same request, byte for byte, answers what is served now: after an edit, after
    http-tokens required (401 without token), and after http-endpoint disabled (403)."""
    with serve() as r:
        path = "/latest/meta-data/instance-id"
        assert r.get(path) == (200, b"i-1234567890abcdef0")
        assert r.get(path) == (200, b"i-1234567890abcdef0")
        r.imds.set_metadata("meta-data/instance-id", "i-0aaaaaaaaaaaaaaaa")
        assert r.get(path) == (200, b"i-0aaaaaaaaaaaaaaaa")
        r.imds.require_tokens()
        assert r.get(path)[0] == 401
        token = r.token()
        assert r.get(path, token) == (200, b"i-0aaaaaaaaaaaaaaaa")
        r.imds.set_options(http_endpoint="disabled")
        assert r.get(path, token)[0] == 403


def test_a_repeated_token_request_counts_down_and_expires() -> None:
    """The same token request again: the TTL header counts down with the clock, and the
    token is refused once its TTL has passed (remembered answers included)."""
    clock = ManualClock(1767225600.0)
    with serve(clock=clock) as r:
        token = r.token(ttl=10)
        path = "/latest/meta-data/instance-id"
        ttl = "x-aws-ec2-metadata-token-ttl-seconds"
        for step, left in ((0, "10"), (0, "10"), (3, "7"), (5.5, "1"), (1, "0")):
            clock.advance(step)
            status, headers, _ = r.request("GET", path, {TOKEN: token})
            assert (status, headers[ttl]) == (200, left)
        clock.advance(0.5)
        assert r.get(path, token)[0] == 401
        assert r.get(path, token)[0] == 401


def test_a_repeated_token_request_is_refused_after_reset() -> None:
    """A reset revokes every token: the same token request, answered before, is 401."""
    with serve() as r:
        token = r.token()
        path = "/latest/meta-data/instance-id"
        assert r.get(path, token)[0] == 200
        assert r.get(path, token)[0] == 200
        r.imds.reset()
        assert r.get(path, token)[0] == 401
        assert r.get(path, r.token())[0] == 200


def test_a_repeated_head_answers_without_body() -> None:
    """The same HEAD again is answered as HEAD (the remembered answer is per method)."""
    with serve() as r:
        path = "/latest/meta-data/instance-id"
        assert r.get(path)[1] == b"i-1234567890abcdef0"
        for _ in range(2):
            status, headers, body = r.request("HEAD", path)
            assert (status, body) == (200, b"")
            assert headers["content-length"] == "19"
