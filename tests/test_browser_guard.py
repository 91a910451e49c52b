"""Web pages cannot drive or read the mock: the control API refuses other sites' requests
(``Origin``), bodies that are not JSON, and ``Host`` names a rebinding page could hold; the
IMDS listener checks ``Host`` only while it serves real credentials (see
``tests/test_credentials_real.py``). Requests are forged with http.client and curl over real
sockets to the real server.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from imdsmock.core.clock import ManualClock
from mockprocess import run_command
from support import Running, control_config, make_config, serve

Headers = Sequence[tuple[str, str]]

# What each mutating route is sent: a body it would accept as JSON.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/metadata"): {"meta-data/tags/instance/B": "2"},
    ("PUT", "/v1/metadata/{path}"): {"value": "changed"},
    ("POST", "/v1/scenarios"): {"type": "spot-interruption", "action": "terminate"},
    ("PATCH", "/v1/options"): {"http-tokens": "required"},
    ("POST", "/v1/faults"): {"kind": "hang"},
    ("POST", "/v1/credentials/expire"): {"on": True},
    ("POST", "/v1/credentials/fail"): {"count": 3},
    ("POST", "/v1/clock/advance"): {"seconds": 60},
}


@dataclass
class Control:
    """A running mock's control listener, spoken to with forged headers."""

    mock: Running
    host: str
    port: int

    def send(
        self, method: str, target: str, headers: Headers = (), body: bytes = b""
    ) -> tuple[int, Any]:
        """One request with exactly ``headers`` (Host included, or not sent at all); the
        status and the JSON answer."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            if body or method not in ("GET", "HEAD", "DELETE"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        assert resp.getheader("Content-Type", "").startswith("application/json"), raw
        return resp.status, json.loads(raw)

    @property
    def authority(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def state(self) -> Any:
        status, state = self.send("GET", "/v1/state", [("Host", self.authority)])
        assert status == 200
        return state


def _control(r: Running) -> Control:
    parts = urlsplit(r.app.control_url() or "")
    return Control(r, parts.hostname or "", parts.port or 0)


@pytest.fixture
def control() -> Iterator[Control]:
    """A mock on a manual clock with its control listener on 127.0.0.1, port 0."""
    with serve(control_config(), clock=ManualClock()) as r:
        yield _control(r)


def _mutations(control: Control) -> list[tuple[str, str, bytes]]:
    """Every mutating route of the served OpenAPI document, with a body it would accept and
    its parameters naming things that exist (a fault, a scenario, a metadata edit)."""
    json_type = [("Host", control.authority), ("Content-Type", "application/json")]
    status, fault = control.send("POST", "/v1/faults", json_type, b'{"kind": "hang", "count": 1}')
    assert status == 201
    scenario = {"type": "rebalance-recommendation", "at": "+1h", "id": "s1"}
    assert control.send("POST", "/v1/scenarios", json_type, json.dumps(scenario).encode())[0] == 201
    edit = b'{"value": "1"}'
    assert control.send("PUT", "/v1/metadata/meta-data/tags/instance/A", json_type, edit)[0] == 200
    params = {"{id}": "", "{path}": "meta-data/tags/instance/A"}
    _, document = control.send("GET", "/openapi.json", [("Host", control.authority)])
    out = []
    for template, operations in document["paths"].items():
        for method in operations:
            if method in ("get", "head"):
                continue
            path = template
            for name, value in params.items():
                param = value or (fault["id"] if "faults" in template else "s1")
                path = path.replace(name, param)
            body = BODIES.get((method.upper(), template), {})
            out.append((method.upper(), path, json.dumps(body).encode()))
    assert len(out) >= 15, out  # the document lists every route
    return out


def test_cross_site_requests_to_every_mutating_route_are_refused_and_change_nothing(
    control: Control,
) -> None:
    """A page on another site (or a sandboxed one, Origin null) gets 403 naming Origin from
    every mutating route, whatever the content type, and nothing changes."""
    mutations = _mutations(control)
    before = control.state()
    own = control.authority
    for origin in ("https://evil.example", "null", f"http://{own}.evil.example"):
        for kind in ("text/plain", "application/json"):
            for method, path, body in mutations:
                headers = [("Host", own), ("Origin", origin), ("Content-Type", kind)]
                status, answer = control.send(method, path, headers, body)
                assert (status, answer["field"]) == (403, "Origin"), (origin, method, path, answer)
                assert answer["allowed"] == [f"http://{own}"]
    assert control.state() == before


def test_bodies_that_are_not_json_are_refused_with_415_and_change_nothing(
    control: Control,
) -> None:
    """A body sent as text/plain, a form, or with no Content-Type is 415 on every mutating
    route (those types need no preflight in a browser); application/json with a charset
    passes."""
    mutations = _mutations(control)
    before = control.state()
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None):
        for method, path, body in mutations:
            headers = [("Host", control.authority)]
            if kind is not None:
                headers.append(("Content-Type", kind))
            status, answer = control.send(method, path, headers, body)
            assert (status, answer["field"]) == (415, "Content-Type"), (kind, method, path)
            assert answer["allowed"] == ["application/json"]
    assert control.state() == before
    headers = [("Host", control.authority), ("Content-Type", "Application/JSON; charset=utf-8")]
    assert control.send("POST", "/v1/faults", headers, b'{"kind": "hang"}')[0] == 201


def test_the_issue_curl_cross_site_post_is_refused(control: Control) -> None:
    """curl's text/plain POST with a foreign Origin (a page's form or fetch) is 403, and IMDS
    keeps answering."""
    result = subprocess.run(
        [
            "curl", "-sS", "--max-time", "5", "-X", "POST",
            "-H", "Origin: https://evil.example", "-H", "Content-Type: text/plain",
            "--data", '{"kind":"hang"}', "-w", "\n%{http_code}",
            f"http://localhost:{control.port}/v1/faults",
        ],
        capture_output=True, text=True, check=True, timeout=10,
    )  # fmt: skip
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "403"
    assert body.count("\n") == 1  # one line of JSON
    assert json.loads(body)["field"] == "Origin"
    assert control.mock.get("/latest/meta-data/instance-id")[0] == 200


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "LocalHost", "localhost."],
    ids=["ipv4", "localhost", "case", "trailing-dot"],
)
def test_same_origin_requests_pass_and_other_ports_do_not(control: Control, host: str) -> None:
    """A page served by the control listener itself (the dashboard) may change things: its
    Origin is http:// plus its Host, with the JSON content type; another port or scheme is
    another origin."""
    authority = f"{host}:{control.port}"
    json_type = ("Content-Type", "application/json")
    same = [("Host", authority), ("Origin", f"http://{authority}"), json_type]
    assert control.send("POST", "/v1/faults", same, b'{"kind": "hang"}')[0] == 201
    assert control.send("GET", "/v1/faults", same[:2])[0] == 200
    for origin in (f"http://{host}:{control.port + 1}", f"https://{authority}", f"http://{host}"):
        other = [("Host", authority), ("Origin", origin), json_type]
        assert control.send("POST", "/v1/faults", other, b'{"kind": "hang"}')[0] == 403


@pytest.mark.usefixtures("loopback6")
def test_same_origin_requests_pass_on_an_ipv6_listener() -> None:
    """On [::1] the page's origin is http://[::1]:PORT; another port is another origin."""
    with serve(control_config(**{"control-host": "::1"}), clock=ManualClock()) as r:
        control = _control(r)
        own = control.authority
        json_type = ("Content-Type", "application/json")
        same = [("Host", own), ("Origin", f"http://{own}"), json_type]
        assert control.send("POST", "/v1/faults", same, b'{"kind": "hang"}')[0] == 201
        other = [("Host", own), ("Origin", "http://[::1]:1"), json_type]
        assert control.send("POST", "/v1/faults", other, b'{"kind": "hang"}')[0] == 403


REFUSED_HOSTS = [
    "evil.example",
    "evil.example:{port}",
    "127.0.0.1.nip.io:{port}",
    "localhost.evil.example:{port}",
    "169.254.169.254.evil.example",
    "[::1].evil.example:{port}",
    "imds:{port}",  # a compose service name, not allowed by default
    "localhost:abc",
    "[evil.example]:{port}",
    "2130706433:{port}",  # 127.0.0.1 as one number: not how a browser writes an address
    "",
]
ANSWERED_HOSTS = [
    "127.0.0.1:{port}",
    "10.1.2.3",
    "169.254.169.254:80",
    "[::1]:{port}",
    "[::ffff:127.0.0.1]",
    "[fd00:ec2::254]:80",
    "localhost:{port}",
    "localhost:",
    None,  # no Host at all (HTTP/1.0; no browser omits it)
]


def test_control_api_answers_only_ip_addresses_localhost_and_allowed_names(
    control: Control,
) -> None:
    """A Host that is not an IP address (IPv6 in brackets), localhost or an allowed name,
    with or without a port, is 403 naming Host and the setting, on reads too."""
    for host in REFUSED_HOSTS:
        headers = [("Host", host.format(port=control.port))]
        status, answer = control.send("GET", "/v1/state", headers)
        assert (status, answer["field"]) == (403, "Host"), host
        assert "server.allowed-hosts" in answer["error"]
    for answered in ANSWERED_HOSTS:
        headers = [] if answered is None else [("Host", answered.format(port=control.port))]
        assert control.send("GET", "/v1/clock", headers)[0] == 200, answered


def test_refused_host_names_are_logged_once_each(
    control: Control, caplog: pytest.LogCaptureFixture
) -> None:
    """Each refused name is logged once, in one line naming the setting to change."""
    with caplog.at_level(logging.WARNING, logger="imdsmock.control"):
        for _ in range(3):
            for host in ("a.evil.example", "b.evil.example:1", "B.evil.example:2"):
                assert control.send("GET", "/v1/clock", [("Host", host)])[0] == 403
    lines = [r.getMessage() for r in caplog.records if r.name == "imdsmock.control"]
    assert len(lines) == 2, lines
    assert all("\n" not in line and "server.allowed-hosts" in line for line in lines)
    assert "'a.evil.example'" in lines[0]
    assert "'b.evil.example'" in lines[1]


@pytest.mark.parametrize(
    ("allowed", "answered", "refused"),
    [
        (["imds"], ["imds", "IMDS:1339", "imds."], ["imds.evil.example", "xyz"]),
        ([".mock.internal"], ["mock.internal", "a.mock.internal:1"], ["evilmock.internal"]),
        (["*"], ["evil.example", "anything:1"], ["bad:port"]),
    ],
    ids=["name", "domain", "any"],
)
def test_allowed_host_names_are_answered(
    allowed: list[str], answered: list[str], refused: list[str]
) -> None:
    """Names in server.allowed-hosts are answered (a leading dot: with subdomains; *: any)."""
    config = control_config(**{"allowed-hosts": allowed})
    with serve(config, clock=ManualClock()) as r:
        control = _control(r)
        for host in answered:
            assert control.send("GET", "/v1/clock", [("Host", host)])[0] == 200, host
        for host in refused:
            assert control.send("GET", "/v1/clock", [("Host", host)])[0] == 403, host


def test_allowed_hosts_change_on_reload() -> None:
    """A reload with another server.allowed-hosts is applied to the running listeners."""
    with serve(control_config(), clock=ManualClock()) as r:
        control = _control(r)
        assert control.send("GET", "/v1/clock", [("Host", "imds")])[0] == 403
        r.app.reconfigure(control_config(**{"allowed-hosts": ["imds"]}))
        assert control.send("GET", "/v1/clock", [("Host", "imds")])[0] == 200


# -- absolute-form targets -------------------------------------------------------------------


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        return b"".join(iter(lambda: s.recv(65536), b""))


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/instance-id",
        "HTTP://169.254.169.254:80/latest/meta-data/instance-id",
        "http://[fd00:ec2::254]/latest/meta-data/instance-id",
        "http://user@127.0.0.1/latest/meta-data/instance-id",
    ],
    ids=["plain", "scheme-case-port", "ipv6", "userinfo"],
)
def test_absolute_form_targets_are_answered_on_imds(running: Running, target: str) -> None:
    """An absolute-form target (RFC 9112, as sent to a proxy) is answered as its path."""
    for _ in range(2):  # the second time from the parse memo
        answer = _raw(running.port, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
        assert answer.endswith(b"\r\n\r\ni-1234567890abcdef0")


def test_absolute_form_targets_are_answered_on_the_control_api(control: Control) -> None:
    """On the control API the target's host stands for Host: a foreign one is refused even
    when the Host header is an IP address."""
    url = f"http://127.0.0.1:{control.port}/v1/clock"
    status, clock = control.send("GET", url, [("Host", "127.0.0.1")])
    assert (status, clock["kind"]) == (200, "manual")
    status, answer = control.send("GET", "http://evil.example/v1/clock", [("Host", "127.0.0.1")])
    assert (status, answer["field"]) == (403, "Host")
    # A target with no path is "/": the dashboard page.
    page = _raw(
        control.port, f"GET http://127.0.0.1:{control.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert page.startswith(b"HTTP/1.1 200 OK\r\nContent-Type: text/html"), page[:80]


def test_absolute_form_targets_are_answered_on_the_container_listeners() -> None:
    """The ECS and EKS listeners answer an absolute-form target as its path."""
    config = make_config(
        server={"ecs-listen": ["127.0.0.1:0"], "eks-listen": ["127.0.0.1:0"]},
        credentials={"container-token": "pod-token"},
    )
    with serve(config) as r:
        assert r.app.containers is not None
        (ecs,), (eks,) = r.app.containers.urls("ecs"), r.app.containers.urls("eks")
        rel = r.app.config.credentials.ecs_relative_uri
        for base, path, auth in ((ecs, rel, b""), (eks, "/v1/credentials", b"pod-token")):
            port = urlsplit(base).port or 0
            extra = b"Authorization: " + auth + b"\r\n" if auth else b""
            request = f"GET http://169.254.170.2{path} HTTP/1.1\r\nHost: x\r\n".encode()
            answer = _raw(port, request + extra + b"\r\n")
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
            assert b'"AccessKeyId"' in answer


# -- smaller HTTP rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent", ["{t} ", " {t}\t", "\t{t}  "], ids=["trailing-space", "both", "tabs"]
)
def test_token_header_whitespace_is_ignored(sent: str) -> None:
    """A token (and a TTL) with whitespace around it is the token: a field value excludes
    the whitespace around it."""
    with serve(make_config(options={"http-tokens": "required"})) as r:
        status, _, token = r.request(
            "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": " 60 "}
        )
        assert status == 200
        header = {"X-aws-ec2-metadata-token": sent.format(t=token.decode())}
        for _ in range(2):  # the second time from the parse memo
            status, _, body = r.request("GET", "/latest/meta-data/instance-id", header)
            assert (status, body) == (200, b"i-1234567890abcdef0")


def test_control_body_over_the_limit_is_refused_before_it_is_sent(control: Control) -> None:
    """A Content-Length over 1 MiB is answered 413 at once, not after the body or the
    30 s deadline."""
    started = time.monotonic()
    with socket.create_connection((control.host, control.port), timeout=10) as s:
        s.sendall(
            b"PATCH /v1/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1048577\r\n\r\n"
        )
        answer = b"".join(iter(lambda: s.recv(65536), b""))
    assert time.monotonic() - started < 5
    assert answer.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert answer.endswith(
        b'{"error": "body too large (at most 1 MiB)", "field": null, "allowed": []}\n'
    )


@pytest.mark.parametrize(
    ("target", "head", "field"),
    [
        (b"/v1/metadata", b"Host: evil.example", b"Host"),
        (b"/v1/metadata", b"Host: 127.0.0.1\r\nOrigin: http://evil.example", b"Origin"),
        # The target's authority is the one checked (RFC 9112), before the body too.
        (b"http://evil.example/v1/metadata", b"Host: 127.0.0.1", b"Host"),
    ],
    ids=["host", "origin", "absolute-form"],
)
def test_foreign_host_or_origin_is_refused_before_the_body_is_read(
    control: Control, target: bytes, head: bytes, field: bytes
) -> None:
    """A request the Host or Origin rules refuse gets its 403 when its head arrives: the
    control listener does not wait for (or read) the body another site's page sends."""
    started = time.monotonic()
    with socket.create_connection((control.host, control.port), timeout=10) as s:
        s.sendall(
            b"PATCH " + target + b" HTTP/1.1\r\n" + head + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
        )
        answer = b"".join(iter(lambda: s.recv(65536), b""))
    assert time.monotonic() - started < 5  # not the 30 s the body would be waited for
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer
    assert b'"field": "' + field + b'"' in answer
    assert control.state()["metadata"] == {}


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["config", "--control-token", ""], {}),
        (["config", "--control-token", "  "], {}),
        (["config"], {"IMDSMOCK_CONTROL_TOKEN": ""}),
        (["--port", "0", "--control-port", "0"], {"IMDSMOCK_CONTROL_TOKEN": "\t"}),
    ],
    ids=["flag-empty", "flag-spaces", "variable-empty", "serve-variable-tab"],
)
def test_a_blank_control_token_is_refused(args: list[str], env: dict[str, str]) -> None:
    """A blank control token (an unset shell variable, say) is refused in one line with exit
    2 by `imdsmock config` and by serving, rather than leaving the API open."""
    result = run_command(args, env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "server.control-token is" in result.stderr
    assert "not blank" in result.stderr


def test_control_token_whitespace_is_not_part_of_the_token() -> None:
    """A token configured with whitespace around it is the token without it."""
    config = control_config(**{"control-token": " s3cret \n"})
    with serve(config, clock=ManualClock()) as r:
        control = _control(r)
        host = ("Host", control.authority)
        assert control.send("GET", "/v1/clock", [host])[0] == 401
        assert (
            control.send("GET", "/v1/clock", [host, ("Authorization", "Bearer s3cret")])[0] == 200
        )


@pytest.mark.parametrize(
    ("args", "env", "shown"),
    [
        (["--allowed-hosts", "imds", "--allowed-hosts", ".mock.internal"], {}, ["imds", ".mock.internal"]),
        ([], {"IMDSMOCK_ALLOWED_HOSTS": "imds, *"}, ["imds", "*"]),
        ([], {"IMDSMOCK_SERVER_ALLOWED_HOSTS": "::1,mock_1"}, ["::1", "mock_1"]),
        (["--set", "server.allowed-hosts=a.b"], {}, ["a.b"]),
    ],
    ids=["flag", "short-variable", "long-variable", "set"],
)  # fmt: skip
def test_allowed_hosts_come_from_flags_and_variables(
    args: list[str], env: dict[str, str], shown: list[str]
) -> None:
    """server.allowed-hosts is a list set like any key: --allowed-hosts (repeatable),
    IMDSMOCK_ALLOWED_HOSTS / IMDSMOCK_SERVER_ALLOWED_HOSTS (comma-separated), --set."""
    result = run_command(["config", "--format", "json", *args], env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["server"]["allowed-hosts"] == shown


@pytest.mark.parametrize(
    "bad",
    ["imds:1338", "http://imds", "two words", "-imds", "a..b", "*.example", "x" * 300],
    ids=["port", "scheme", "space", "leading-dash", "empty-label", "glob", "long"],
)
def test_bad_allowed_hosts_are_refused_in_one_line(bad: str) -> None:
    """An entry that is not a host name, .domain, * or an IP address is refused naming the
    entry, with exit 2."""
    result = run_command(["config", "--set", f"server.allowed-hosts=ok,{bad}"])
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "server.allowed-hosts[1] is" in result.stderr
