"""Errors of the control listener and API over a real socket: bad HTTP, limits, bad bodies,
unusable start-up settings."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from imdsmock.core.clock import ManualClock
from imdsmock.errors import ConfigError
from mockprocess import run_command
from support import Running, control_config, serve


def _address(r: Running) -> tuple[str, int]:
    """Host and port of the control listener of ``r``."""
    parts = urlsplit(r.app.control_url() or "")
    return parts.hostname or "", parts.port or 0


@pytest.fixture
def control() -> Iterator[tuple[str, int]]:
    """Host and port of a running mock's control listener (manual clock, no token)."""
    with serve(control_config(), clock=ManualClock()) as r:
        yield _address(r)


def _raw(address: tuple[str, int], data: bytes) -> bytes:
    """Send ``data`` on a new connection and read the whole answer (the server closes)."""
    with socket.create_connection(address, timeout=5) as s:
        # The server may answer and close before everything was sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def _status_and_json(answer: bytes) -> tuple[int, dict[str, Any], str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else {}, head.decode("latin-1")


def _request(
    address: tuple[str, int], method: str, target: str, body: bytes = b"", extra: str = ""
) -> tuple[int, dict[str, Any], str]:
    kind = "Content-Type: application/json\r\n" if body else ""
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{kind}Content-Length: {len(body)}\r\n"
    head += f"{extra}\r\n"
    return _status_and_json(_raw(address, head.encode("latin-1") + body))


# -- the listener -----------------------------------------------------------------------------


def test_control_listener_answers_an_upgrade_request_once_as_plain_http(
    control: tuple[str, int],
) -> None:
    """A request asking to upgrade (e.g. to WebSocket) is answered once as HTTP/1.1, then closed."""
    answer = _raw(
        control,
        b"GET /v1/clock HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.count(b"HTTP/1.1 ") == 1
    assert b"Connection: close\r\n" in answer


def test_control_listener_answers_malformed_http_with_400(control: tuple[str, int]) -> None:
    """Bytes that are not HTTP get a JSON 400 'malformed HTTP request', not a dropped socket."""
    status, body, _ = _status_and_json(_raw(control, b"NOT HTTP AT ALL\r\n\r\n"))
    assert status == 400
    assert body["error"] == "malformed HTTP request"


def test_control_body_over_one_mib_gets_413(control: tuple[str, int]) -> None:
    """A request body past 1 MiB is refused with 413 Content Too Large."""
    status, body, head = _request(control, "PATCH", "/v1/metadata", b"x" * (1024 * 1024 + 10))
    assert status == 413
    assert head.startswith("HTTP/1.1 413 Content Too Large")
    assert body["error"] == "body too large (at most 1 MiB)"


@pytest.mark.parametrize(
    ("target", "extra"),
    [("/v1/" + "a" * 20_000, ""), ("/v1/state", "X-Big: " + "b" * 20_000 + "\r\n")],
    ids=["long-url", "long-header"],
)
def test_control_request_head_over_16_kib_gets_431(
    control: tuple[str, int], target: str, extra: str
) -> None:
    """A request line or headers past 16 KiB are refused with 431, as on the IMDS listener."""
    status, body, head = _request(control, "GET", target, extra=extra)
    assert status == 431
    assert head.startswith("HTTP/1.1 431 Request Header Fields Too Large")
    assert body["error"] == "request head too large (at most 16 KiB)"


def test_control_head_request_gets_headers_without_body(control: tuple[str, int]) -> None:
    """HEAD on a control route answers the GET's headers and no body."""
    answer = _raw(control, b"HEAD /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Content-Length: 0" not in head
    assert body == b""


def test_control_401_names_the_bearer_scheme() -> None:
    """A request without the control token gets 401 with a Bearer WWW-Authenticate challenge."""
    with serve(control_config(**{"control-token": "tok"}), clock=ManualClock()) as r:
        address = _address(r)
        status, body, head = _request(address, "GET", "/v1/state")
        assert status == 401
        assert 'WWW-Authenticate: Bearer realm="imdsmock"' in head
        assert body["field"] == "Authorization"
        status, _, _ = _request(address, "GET", "/v1/state", extra="Authorization: Basic tok\r\n")
        assert status == 401
        status, _, _ = _request(address, "GET", "/v1/state", extra="Authorization: Bearer tok\r\n")
        assert status == 200


@pytest.mark.parametrize("host", ["localhost", "[::1]"], ids=["name", "bracketed-v6"])
def test_control_on_a_loopback_name_needs_no_token(host: str) -> None:
    """'localhost' and a bracketed ::1 count as loopback: the control API starts without a token."""
    try:
        r_cm = serve(control_config(**{"control-host": host}), clock=ManualClock())
        r = r_cm.__enter__()
    except OSError as exc:  # pragma: no cover - a host without IPv6 loopback
        pytest.skip(f"cannot bind {host}: {exc}")
    try:
        assert r.app.control_url() is not None
    finally:
        r_cm.__exit__(None, None, None)


def _start_fails(*args: str) -> subprocess.CompletedProcess[str]:
    return run_command(["--port", "0", "--control-port", "0", *args])


@pytest.mark.parametrize(
    ("content", "wanted"),
    [(None, "a readable file holding the token"), ("  \n", "a file that is not empty")],
    ids=["missing", "empty"],
)
def test_unusable_control_token_file_stops_start_up_with_one_line(
    tmp_path: Path, content: str | None, wanted: str
) -> None:
    """A missing or empty --control-token-file exits 2 with one line naming the key and file."""
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    done = _start_fails("--control-token-file", str(token_file))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1
    assert "server.control-token-file" in done.stderr
    assert wanted in done.stderr


def test_control_host_that_is_not_an_address_needs_a_token() -> None:
    """A control host name other than localhost is not trusted as loopback: start-up exits 2."""
    done = _start_fails("--control-host", "example.invalid")
    assert done.returncode == 2
    assert "not a loopback address" in done.stderr


# -- the API's own checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "field", "words"),
    [
        (("PUT", "/v1/metadata/meta-data/ami-id", b""), "body", "a JSON object body is required"),
        (("PATCH", "/v1/metadata", b"{not json"), "body", "the body is not valid JSON"),
        (("PATCH", "/v1/metadata", b"[1, 2]"), "body", "JSON object"),
        (("PUT", "/v1/metadata/meta-data/ami-id", b'{"valeu": "x"}'), "valeu", "one of the keys"),
        (("PUT", "/v1/metadata/meta-data/ami-id", b"{}"), "value", "a string"),
        (("POST", "/v1/clock/advance", b"{}"), "seconds", "a number of seconds"),
        (("GET", "/v1/requests?imdsv1=maybe", b""), "imdsv1", "true, false"),
        (("GET", "/v1/requests?limit=many", b""), "limit", "many"),
        (("GET", "/v1/metadata/%ff", b""), "path", "not valid UTF-8"),
    ],
    ids=[
        "no-body",
        "bad-json",
        "not-an-object",
        "unknown-key",
        "no-value",
        "no-seconds",
        "bad-boolean",
        "bad-integer",
        "bad-utf8",
    ],
)
def test_bad_control_requests_get_a_400_naming_the_field(
    control: tuple[str, int], call: tuple[str, str, bytes], field: str, words: str
) -> None:
    """Each malformed control request is a JSON 400 naming the field and what is wrong."""
    status, answer, _ = _request(control, *call)
    assert status == 400, answer
    assert answer["field"] == field
    assert words in json.dumps(answer)


def test_metadata_get_of_an_unserved_path_is_404(control: tuple[str, int]) -> None:
    """GET /v1/metadata/PATH for a path nothing is served at is a JSON 404."""
    status, body, _ = _request(control, "GET", "/v1/metadata/meta-data/no-such-leaf")
    assert status == 404
    assert body["error"] == "nothing is served at this path"


@pytest.mark.parametrize("target", ["/openapi.json", "/v1/openapi.json", "/v1/certificate"])
def test_read_only_control_documents_refuse_writes_with_405(
    control: tuple[str, int], target: str
) -> None:
    """The OpenAPI document and the certificate answer 405 with Allow: GET to a POST."""
    status, body, head = _request(control, "POST", target, b"{}")
    assert status == 405
    assert "Allow: GET" in head
    assert body["allowed"] == ["GET"]


@pytest.mark.parametrize("target", ["/openapi.json", "/v1/certificate?%ff"])
def test_control_documents_answer_head_and_ignore_the_query(
    control: tuple[str, int], target: str
) -> None:
    """The OpenAPI document and the certificate answer HEAD with their headers and no body,
    whatever the query; an API route answers HEAD with 405."""
    answer = _raw(control, f"HEAD {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]) > 0
    assert body == b""
    status, _, head_text = _request(control, "HEAD", "/v1/state")
    assert status == 405
    assert "Allow: GET" in head_text


@pytest.mark.parametrize(
    ("method", "target", "body", "field"),
    [
        ("POST", "/v1/faults", b'{"kind": "status", "colour": "red"}', "fault.colour"),
        ("POST", "/v1/faults", b'{"kind": "status", "client": 10}', "fault.client"),
        ("POST", "/v1/faults", b'{"kind": "status", "client": "not-an-ip"}', "fault.client"),
        ("POST", "/v1/faults", b'{"kind": "status", "count": 0}', "fault.count"),
        ("POST", "/v1/faults", b'{"kind": "status", "probability": 2}', "fault.probability"),
        ("POST", "/v1/faults", b'{"kind": "latency", "latency-ms": 0}', "fault.latency-ms"),
        ("PATCH", "/v1/metadata", b'{"../etc/passwd": "x"}', "path"),
        ("PATCH", "/v1/metadata", b'{"meta-data/ami-id": 5}', "metadata.meta-data/ami-id"),
        ("PATCH", "/v1/options", b'{"hop-limit": [2]}', "options.hop-limit"),
        ("POST", "/v1/credentials/expire", b'{"on": "yes"}', "on"),
    ],
    ids=[
        "fault-unknown-key",
        "fault-client-not-text",
        "fault-client-not-ip",
        "fault-count-zero",
        "fault-probability-2",
        "fault-latency-zero",
        "metadata-dot-dot",
        "metadata-not-string",
        "option-list",
        "expire-not-bool",
    ],
)
def test_bad_control_changes_are_400s_and_change_nothing(
    control: tuple[str, int], method: str, target: str, body: bytes, field: str
) -> None:
    """Each invalid change is a JSON 400 naming the field; state, faults and edits stay as they were."""
    before = _request(control, "GET", "/v1/state")[1]
    status, answer, _ = _request(control, method, target, body)
    assert status == 400, answer
    assert answer["field"] == field
    after = _request(control, "GET", "/v1/state")[1]
    before["clock"].pop("now", None), after["clock"].pop("now", None)
    assert after == before


def test_metadata_paths_may_start_with_latest(control: tuple[str, int]) -> None:
    """A control path written with the leading 'latest/' edits the same IMDS path."""
    status, _, _ = _request(
        control, "PUT", "/v1/metadata/latest/meta-data/ami-id", b'{"value": "ami-0latest"}'
    )
    assert status == 200
    status, body, _ = _request(control, "GET", "/v1/metadata/meta-data/ami-id")
    assert (status, body["value"]) == (200, "ami-0latest")


def test_fault_for_a_network_skips_clients_outside_it() -> None:
    """A fault scoped to 10.0.0.0/8 leaves a loopback client alone and hits nothing else."""
    with serve(control_config(), clock=ManualClock()) as r:
        address = _address(r)
        fault = b'{"kind": "status", "status": 500, "client": "10.0.0.0/8"}'
        assert _request(address, "POST", "/v1/faults", fault)[0] in (200, 201)
        assert r.get("/latest/meta-data/ami-id")[0] == 200
        v6 = b'{"kind": "status", "status": 500, "client": "::1/128"}'
        assert _request(address, "POST", "/v1/faults", v6)[0] in (200, 201)
        assert r.get("/latest/meta-data/ami-id")[0] == 200


def test_controller_refuses_non_mapping_input_from_python() -> None:
    """From Python, a fault, scenario or metadata edit that is not a mapping is a ConfigError
    naming it (HTTP refuses such bodies earlier, as 'body')."""
    with serve(control_config(), clock=ManualClock()) as r:
        ctl = r.app.controller
        for call, key in (
            (lambda: ctl.add_fault(["status"]), "fault"),  # type: ignore[arg-type]
            (lambda: ctl.start_scenario(["spot"]), "scenario"),  # type: ignore[arg-type]
            (lambda: ctl.edit_metadata(["x"]), "metadata"),  # type: ignore[arg-type]
            (lambda: ctl.set_metadata(5, "x"), "path"),  # type: ignore[arg-type]
        ):
            with pytest.raises(ConfigError) as exc:
                call()
            assert exc.value.key == key
        assert ctl.faults() == []
        assert ctl.scenarios() == []
