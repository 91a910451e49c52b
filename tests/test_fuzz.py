"""Property-based fuzzing: any input gets a right answer or a one-line error, never a crash.

Four targets, each with a short CI budget and a long one under ``-m slow``:

* raw request bytes sent to the real server over TCP: every answer is a well-formed
  non-5xx response (or, for an incomplete request, a clean close), never silence;
* :func:`imdsmock.imds.handle` in-process (fast, many examples): a response from the
  known status set for any method, path, token, TTL, time and options;
* configuration loading (mappings, files in every format, environment variables): a
  :class:`~imdsmock.config.Config` that builds a serving App, or a ``ConfigError``;
* control API bodies sent to the real control listener over TCP: a JSON answer, never a
  5xx, and a one-line error for a refused body.

Both the configuration and the control API fuzzers are also fed hostile shapes: nesting
from just under the limit to far deeper than any parser recurses, in every form a format
has (lists, objects or tables, flow and block YAML, TOML inline tables), and integers from
a few to thousands of digits (past Python's conversion limit too), where values go.

Inputs that once failed are kept in ``tests/fuzz_corpus/`` and replayed by the
``test_corpus_*`` tests (add a line there for every crash the fuzzers find).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import string
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imdsmock.app import App
from imdsmock.config.build import from_mapping
from imdsmock.config.inputs import MAX_DEPTH
from imdsmock.config.load import load
from imdsmock.config.schema import Config
from imdsmock.core.imds import Request, handle
from imdsmock.errors import ImdsMockError
from support import EPOCH, Running, control_config, make_config, offline_app, serve

CORPUS = Path(__file__).parent / "fuzz_corpus"
# Statuses the IMDS listener may answer without a fault asking for another.
IMDS_STATUSES = {200, 400, 401, 403, 404, 405, 431}
# CI budget (about 20 s for the whole module) and the on-demand budget (-m slow).
CI = settings(
    max_examples=int(os.environ.get("IMDSMOCK_FUZZ_EXAMPLES", "0")) or 300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
LONG = settings(CI, max_examples=20 * CI.max_examples)
# The long budgets run only when asked for (pytest -m slow).
on_demand = pytest.mark.skipif(
    "'slow' not in config.getoption('markexpr')", reason="long fuzz: run with -m slow"
)


# -- strategies ---------------------------------------------------------------------------

SEGMENTS = [
    "latest",
    "1.0",
    "2021-03-23",
    "meta-data",
    "dynamic",
    "user-data",
    "api",
    "token",
    "instance-id",
    "iam",
    "security-credentials",
    "security-credentials-extended",
    "baskinc-role",
    "info",
    "instance-identity",
    "document",
    "signature",
    "pkcs7",
    "rsa2048",
    "spot",
    "instance-action",
    "events",
    "maintenance",
    "tags",
    "instance",
    "Name",
    "network",
    "interfaces",
    "macs",
    "0e:49:61:0f:c3:11",
    "public-keys",
    "0",
    "0=test",
    "openssh-key",
    "placement",
    "autoscaling",
    "",
    ".",
    "..",
    "%2e%2e",
    "%00",
    "%",
    "%zz",
    "é",
    "\x00",
    "~",
    "*",
]
HEADER_NAMES = [
    "X-aws-ec2-metadata-token",
    "X-aws-ec2-metadata-token-ttl-seconds",
    "X-Forwarded-For",
    "Host",
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "User-Agent",
    "Expect",
    "Upgrade",
    "Accept",
]
METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"]

segment = st.sampled_from(SEGMENTS) | st.text(max_size=6)
path = st.builds(
    lambda parts, slash, query: "/" + "/".join(parts) + slash + query,
    st.lists(segment, max_size=7),
    st.sampled_from(["", "/", "//"]),
    st.sampled_from(["", "?", "?a=b", "#x", "?%00"]),
)
method = st.sampled_from(METHODS) | st.text(string.ascii_letters, min_size=0, max_size=8)
ttl = st.sampled_from(
    ["1", "60", "21600", "21601", "0", "-1", "", " 60 ", "1e3", "\uff16\uff10"]
) | st.text(max_size=8)
header_value = ttl | st.text(max_size=40) | st.sampled_from(["chunked", "close", "100-continue"])
header = st.tuples(st.sampled_from(HEADER_NAMES) | st.text(max_size=10), header_value)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@st.composite
def http_requests(draw: st.DrawFn) -> bytes:
    """Mostly-valid HTTP/1.x requests with hostile parts, sometimes raw mutated bytes."""
    eol = draw(st.sampled_from(["\r\n", "\r\n", "\r\n", "\n", "\r"]))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x"]))
    lines = [f"{draw(method)} {draw(path)} {version}"]
    lines += [f"{k}: {v}" for k, v in draw(st.lists(header, max_size=6))]
    data = _encode(eol.join(lines) + eol + eol) + draw(st.binary(max_size=40))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        cut = draw(st.integers(0, 4))
        data = data[:at] + draw(st.binary(max_size=8)) + data[at + cut :]
    return data


raw_bytes = http_requests() | st.binary(max_size=200)


# -- the real server over TCP -------------------------------------------------------------


class _ErrorLog(logging.Handler):
    """Collects ERROR records (asyncio's "Fatal error", a handler exception) while fuzzing."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[tuple[Running, _ErrorLog]]:
    """One server for the whole module, with a two-second idle deadline; errors logged."""
    errors = _ErrorLog()
    logging.getLogger().addHandler(errors)
    try:
        with serve(make_config(server={"idle-timeout": 2})) as r:
            yield r, errors
    finally:
        logging.getLogger().removeHandler(errors)


def send_raw(r: Running, data: bytes) -> bytes:
    """Send ``data``, half-close, and read until the server closes (5 s at most)."""
    with socket.create_connection((r.host, r.port), timeout=5) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed before taking all the bytes
            pass
        out = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return out
            if not chunk:
                return out
            out += chunk


def check_wire_answer(r: Running, errors: _ErrorLog, data: bytes) -> None:
    """The fuzz property for one request sent over TCP."""
    try:
        answer = send_raw(r, data)
    except TimeoutError:
        pytest.fail(f"the server hung on {data!r}")
    if answer:
        assert answer.startswith(b"HTTP/1.1 "), (data, answer[:100])
        status = int(answer[9:12])
        assert status in IMDS_STATUSES, (data, answer[:200])
        head, sep, _ = answer.partition(b"\r\n\r\n")
        assert sep, (data, answer[:200])
        assert b"Content-Length: " in head
        assert b"Traceback" not in answer
    assert not errors.records, [rec.getMessage() for rec in errors.records]


def _fuzz_wire(budget: settings) -> Any:
    @settings(budget, max_examples=4 * budget.max_examples)
    @given(data=raw_bytes)
    def run(fuzz_server: tuple[Running, _ErrorLog], data: bytes) -> None:
        check_wire_answer(*fuzz_server, data)

    return run


test_fuzz_raw_requests_never_crash_the_server = _fuzz_wire(CI)
test_fuzz_raw_requests_never_crash_the_server.__doc__ = (
    "Any bytes sent to the IMDS listener get a well-formed non-5xx answer or a clean close."
)
test_fuzz_raw_requests_long = on_demand(pytest.mark.slow(_fuzz_wire(LONG)))
test_fuzz_raw_requests_long.__doc__ = "The raw-request fuzzer with twenty times the budget."


def test_server_still_serves_after_fuzzing(fuzz_server: tuple[Running, _ErrorLog]) -> None:
    """After the fuzzers the server answers normally and logged no error."""
    r, errors = fuzz_server
    assert r.get("/latest/meta-data/instance-id") == (200, b"i-1234567890abcdef0")
    assert not errors.records


# -- the pure handler in-process ----------------------------------------------------------

_APPS: dict[str, App] = {}
OPTION_SETS = {
    "default": {},
    "required": {"options": {"http-tokens": "required"}},
    "disabled": {"options": {"http-endpoint": "disabled"}},
    "no-tags": {"options": {"instance-metadata-tags": "disabled"}},
    "no-role": {"instance": {"iam-role": None, "user-data-base64": None}},
    "spot": {"scenarios": [{"type": "spot-interruption", "at": "+60s"}]},
}


def app_for(name: str) -> App:
    """A (cached) App with one of the option sets, on a manual clock at EPOCH."""
    if name not in _APPS:
        cfg = make_config(**OPTION_SETS[name])
        _APPS[name] = offline_app(cfg)
    return _APPS[name]


@st.composite
def handler_inputs(draw: st.DrawFn) -> tuple[App, Request, float]:
    """An App, a request to it (sometimes with a valid token) and a time."""
    app = app_for(draw(st.sampled_from(sorted(OPTION_SETS))))
    now = draw(
        st.sampled_from([EPOCH, EPOCH + 61, EPOCH + 181, EPOCH + 86400 * 400])
        | st.floats(EPOCH - 1e6, EPOCH + 1e8)
    )
    tokens = [app.state.tokens.issue(t, EPOCH) for t in (1, 600, 21600)]
    token = draw(st.none() | st.sampled_from(tokens) | st.text(max_size=60))
    request = Request(
        draw(method),
        draw(path),
        draw(st.sampled_from(["127.0.0.1", "10.0.0.5", "::1", ""])),
        token,
        draw(st.none() | ttl),
        draw(st.booleans()),
        draw(st.none() | st.text(max_size=20)),
    )
    return app, request, now


def check_handler(app: App, request: Request, now: float) -> None:
    """The fuzz property for one in-process request."""
    response = handle(app.state.compiled, request, now, app.state.tokens, app.gate)
    assert response.status in IMDS_STATUSES, request
    assert response.head.startswith(b"HTTP/1.1 %d " % response.status)
    assert b"Content-Length: " in response.head + response.tail_close


def _fuzz_handler(budget: settings) -> Any:
    @settings(budget, max_examples=5 * budget.max_examples)
    @given(case=handler_inputs())
    def run(case: tuple[App, Request, float]) -> None:
        check_handler(*case)

    return run


test_fuzz_handler_answers_every_request = _fuzz_handler(CI)
test_fuzz_handler_answers_every_request.__doc__ = (
    "imds.handle answers any method, path, token, TTL and time with a known status."
)
test_fuzz_handler_long = on_demand(pytest.mark.slow(_fuzz_handler(LONG)))
test_fuzz_handler_long.__doc__ = "The handler fuzzer with twenty times the budget."


# -- configuration loading ----------------------------------------------------------------

KEYS: Mapping[str, list[str]] = {
    "server": [
        "host",
        "port",
        "listen",
        "keep-alive",
        "control",
        "clock",
        "mock-ip-count",
        "max-connections",
        "idle-timeout",
        "max-header-bytes",
        "control-host",
        "ecs-listen",
    ],
    "options": ["http-tokens", "http-endpoint", "hop-limit", "instance-metadata-tags"],
    "instance": [
        "instance-id",
        "instance-type",
        "region",
        "availability-zone",
        "account-id",
        "mac",
        "local-ipv4",
        "ipv6",
        "tags",
        "public-keys",
        "interfaces",
        "iam-role",
        "user-data",
        "user-data-base64",
        "block-device-mapping",
        "placement-partition-number",
        "product-codes",
        "pending-time",
        "architecture",
    ],
    "credentials": ["lifetime", "rotate-every", "extended", "seed", "source", "role-arn"],
    "signing": ["key-file", "cert-file"],
    "paths": ["meta-data/x", "dynamic/y", "user-data", "nope", "meta-data//z"],
    "scenarios": [],
}
# Integers from a few digits to past Python's 4,300-digit conversion limit.
DIGITS = [19, 41, 300, 4299, 4300, 4301, 5000]
huge_int = st.builds(
    lambda sign, digits, first: sign * (first * 10 ** (digits - 1)),
    st.sampled_from([1, -1]),
    st.sampled_from(DIGITS),
    st.integers(1, 9),
)
# Nesting around the limit, and far past what the parsers recurse.
DEPTHS = [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 100, 600, 1100, 5000]


def _nest(depth: int, kind: str, leaf: Any) -> Any:
    """``leaf`` inside ``depth`` lists, objects or both in turn (built without recursion)."""
    node = leaf
    for level in range(depth):
        as_list = kind == "lists" or (kind == "mixed" and level % 2)
        node = [node] if as_list else {"a": node}
    return node


deep_value = st.builds(
    _nest,
    st.sampled_from(DEPTHS),
    st.sampled_from(["lists", "objects", "mixed"]),
    st.sampled_from([1, "x", None, [], {}]) | huge_int,
)
scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | huge_int
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.sampled_from(["enabled", "required", "us-east-1", "us-east-1a", "+30s", "1", "x,y"])
)
value = st.recursive(
    scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
scenario = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["spot-interruption", "rebalance-recommendation", "maintenance-event", "asg-lifecycle"]
        )
        | st.text(max_size=5)
    },
    optional={
        "at": st.sampled_from(["now", "+0s", "+30s", "+1d", "-5s", "2026-01-01T00:00:00Z"]) | value,
        "action": st.sampled_from(["stop", "hibernate", "terminate", "reboot"]) | value,
        "notice-seconds": st.integers(-10, 10**6) | value,
        "code": value,
        "state": value,
        "id": value,
    },
)


@st.composite
def config_mappings(draw: st.DrawFn) -> dict[str, Any]:
    """File-shaped mappings: known sections and keys with hostile values (and a few typos)."""
    out: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from(sorted(KEYS)), max_size=4, unique=True)):
        if section == "scenarios":
            out[section] = draw(st.lists(scenario, max_size=2) | value)
            continue
        keys = st.sampled_from(KEYS[section]) | st.text(max_size=6)
        out[section] = draw(st.dictionaries(keys, value, max_size=4) | value)
    if draw(st.booleans()):
        out[draw(st.text(max_size=6))] = draw(value)
    if draw(st.integers(0, 4)) == 0:  # a deep value where a key's value goes
        section = draw(st.sampled_from(sorted(KEYS)))
        key = draw(st.sampled_from(KEYS[section] or ["x"]))
        target = out.get(section)
        if not isinstance(target, dict):
            target = out[section] = {}
        target[key] = draw(deep_value)
    return out


def check_config(load_it: Any) -> None:
    """The fuzz property: a Config that serves, or one ImdsMockError; nothing else."""
    message = ""
    try:
        cfg = load_it()
        # Scenarios are validated when the App builds them.
        app = offline_app(cfg)
    except ImdsMockError as exc:
        message = str(exc)
    if message:
        assert "\n" not in message, message
        return
    assert isinstance(cfg, Config)
    for target in ("/", "/latest/meta-data/", "/latest/dynamic/instance-identity/document"):
        check_handler(app, Request("GET", target), EPOCH + 1)


def _fuzz_config(budget: settings) -> Any:
    @budget
    @given(raw=config_mappings())
    def run(raw: dict[str, Any]) -> None:
        check_config(lambda: from_mapping(raw))

    return run


test_fuzz_config_mappings = _fuzz_config(CI)
test_fuzz_config_mappings.__doc__ = (
    "Any file-shaped mapping gives a Config that serves or a one-line ConfigError."
)
test_fuzz_config_mappings_long = on_demand(pytest.mark.slow(_fuzz_config(LONG)))
test_fuzz_config_mappings_long.__doc__ = "The mapping fuzzer with twenty times the budget."


def _file_texts(draw: st.DrawFn) -> tuple[str, str]:
    raw = draw(config_mappings())
    fmt = draw(st.sampled_from([".yaml", ".json", ".toml", ".yml", ""]))
    if draw(st.booleans()):
        try:
            text = json.dumps(raw, allow_nan=True)  # JSON is YAML too
        except (TypeError, ValueError, RecursionError):  # unprintable ints, deep values
            text = "{}"
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.text(max_size=10)) + text[cut:]
    else:
        text = draw(
            st.text(max_size=120)
            | st.sampled_from(
                [
                    "server: {port: [1, 2]}",
                    "!!python/object:os.system ls",
                    "a: &x [*x]",
                    "server:\n  port: !!binary aGVsbG8=",
                    "instance: {tags: !!set {a, b}}",
                    "instance: {pending-time: 2026-01-01}",
                    "[server]\nport = 1.5",
                    '{"server": {"port": 1e400}}',
                    "\ufeffserver: {}",
                ]
            )
        )
    return fmt, text


file_texts = st.composite(_file_texts)()


def _number_text(sign: str, digits: int, first: int) -> str:
    return f"{sign}{first}" + "0" * (digits - 1)  # written out: str() refuses 4,301 digits


number_text = st.builds(
    _number_text, st.sampled_from(["", "-"]), st.sampled_from(DIGITS), st.integers(1, 9)
)


@st.composite
def hostile_files(draw: st.DrawFn) -> tuple[str, str]:
    """A config file holding, where some key's value goes, nesting of a chosen depth and
    form, or an integer of a chosen length, in each format's own syntax."""
    section = draw(st.sampled_from(sorted(KEYS)))
    key = draw(st.sampled_from(KEYS[section] or ["x"]))
    depth = draw(st.sampled_from(DEPTHS))
    leaf = draw(number_text | st.sampled_from(["1", '"x"']))
    fmt = draw(st.sampled_from([".json", ".yaml", ".toml"]))
    form = draw(st.sampled_from(["lists", "objects", "number"]))
    if form == "number":
        fragment = leaf
    elif fmt == ".toml" and form == "objects":
        fragment = "{a = " * depth + leaf + "}" * depth
    elif form == "objects":
        fragment = '{"a": ' * depth + leaf + "}" * depth
    else:
        fragment = "[" * depth + leaf + "]" * depth
    if fmt == ".toml":
        return fmt, f'[{section}]\n"{key}" = {fragment}\n'
    if fmt == ".yaml" and form == "objects" and draw(st.booleans()):
        # Block mappings: one indented line per level (kept shallow: the text grows fast).
        levels = min(depth, 300)
        lines = [f"{section}:", f"  {key}:"]
        lines += [f"{'  ' * (i + 2)}a{i}:" for i in range(levels)] + ["  " * (levels + 2) + leaf]
        return fmt, "\n".join(lines) + "\n"
    return fmt, json.dumps({section: {key: None}}).replace("null", fragment)


def _fuzz_hostile_files(budget: settings) -> Any:
    @budget
    @given(case=hostile_files())
    def run(tmp_path_factory: pytest.TempPathFactory, case: tuple[str, str]) -> None:
        fmt, text = case
        path = tmp_path_factory.mktemp("cfg") / f"imdsmock{fmt}"
        path.write_text(text)
        check_config(lambda: load(file=path, env={}))

    return run


test_fuzz_config_files_nested_and_huge = _fuzz_hostile_files(CI)
test_fuzz_config_files_nested_and_huge.__doc__ = (
    "A config file nested to any depth in any form, or holding an integer of any length, "
    "gives a Config or a one-line ConfigError."
)
test_fuzz_config_files_nested_and_huge_long = on_demand(pytest.mark.slow(_fuzz_hostile_files(LONG)))
test_fuzz_config_files_nested_and_huge_long.__doc__ = "The hostile-file fuzzer, twenty times."


def _fuzz_files(budget: settings) -> Any:
    @budget
    @given(case=file_texts)
    def run(tmp_path_factory: pytest.TempPathFactory, case: tuple[str, str]) -> None:
        fmt, text = case
        path = tmp_path_factory.mktemp("cfg") / f"imdsmock{fmt}"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        check_config(lambda: load(file=path, env={}))

    return run


test_fuzz_config_files = _fuzz_files(CI)
test_fuzz_config_files.__doc__ = (
    "Any config file text, in every format, gives a Config or a one-line ConfigError."
)
test_fuzz_config_files_long = on_demand(pytest.mark.slow(_fuzz_files(LONG)))
test_fuzz_config_files_long.__doc__ = "The config-file fuzzer with twenty times the budget."


@CI
@given(
    env=st.dictionaries(
        st.sampled_from(
            [
                "IMDSMOCK_PORT",
                "IMDSMOCK_HTTP_TOKENS",
                "IMDSMOCK_HOP_LIMIT",
                "IMDSMOCK_LISTEN",
                "IMDSMOCK_KEEP_ALIVE",
                "IMDSMOCK_REGION",
                "IMDSMOCK_INSTANCE_TAGS",
                "IMDSMOCK_SERVER_IDLE_TIMEOUT",
                "IMDSMOCK_USER_DATA_BASE64",
                "IMDSMOCK_CREDENTIALS_LIFETIME",
                "IMDSMOCK_SCENARIOS",
                "IMDSMOCK_PATHS",
            ]
        ),
        st.text(max_size=30) | number_text,
        max_size=4,
    )
)
def test_fuzz_environment_variables(env: dict[str, str]) -> None:
    """Any IMDSMOCK_* environment values, integers of any length too, give a Config or a
    one-line ConfigError."""
    check_config(lambda: load(env=env))


# -- control API bodies over TCP ------------------------------------------------------------

# Every route that reads a body, with the fields it knows.
BODY_ROUTES: list[tuple[str, str, list[str]]] = [
    ("PATCH", "/v1/options", ["hop-limit", "http-tokens", "HttpPutResponseHopLimit", "x"]),
    ("PATCH", "/v1/metadata", ["meta-data/x", "meta-data/tags/instance/K", "dynamic/y", "x"]),
    ("PUT", "/v1/metadata/meta-data/fuzz", ["value"]),
    ("PATCH", "/v1/instance", ["region", "instance-type", "tags", "x"]),
    ("POST", "/v1/scenarios", ["type", "at", "notice-seconds", "not-after", "id"]),
    ("POST", "/v1/faults", ["kind", "path", "count", "probability", "status", "latency-ms"]),
    ("POST", "/v1/clock/advance", ["seconds"]),
    ("POST", "/v1/credentials/fail", ["count"]),
    ("POST", "/v1/credentials/expire", ["on"]),
]
CONTROL_STATUSES = {200, 201, 400, 404, 405}


@st.composite
def control_bodies(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """A route that reads a body, and a JSON body: a known field (or not) holding a value
    of any shape, deep nesting and integers of any length included; sometimes bare."""
    method, target, fields = draw(st.sampled_from(BODY_ROUTES))
    field = draw(st.sampled_from(fields) | st.text(max_size=6))
    depth = draw(st.sampled_from(DEPTHS))
    leaf = draw(number_text | st.sampled_from(["1", '"x"', "null", "true"]))
    form = draw(st.sampled_from(["lists", "objects", "number", "value"]))
    if form == "lists":
        fragment = "[" * depth + leaf + "]" * depth
    elif form == "objects":
        fragment = '{"a": ' * depth + leaf + "}" * depth
    elif form == "number":
        fragment = leaf
    else:
        try:
            fragment = json.dumps(draw(value))
        except ValueError:  # an integer str() refuses
            fragment = leaf
    body = json.dumps({field: None}).replace("null", fragment)
    if draw(st.integers(0, 5)) == 0:
        body = fragment  # not an object at all
    return method, target, body.encode()


@pytest.fixture(scope="module")
def control_server() -> Iterator[tuple[Running, _ErrorLog]]:
    """One server with its control API for the module, on a manual clock; errors logged."""
    errors = _ErrorLog()
    logging.getLogger().addHandler(errors)
    try:
        with serve(control_config(clock="manual")) as r:
            yield r, errors
    finally:
        logging.getLogger().removeHandler(errors)


def check_control_answer(
    r: Running, errors: _ErrorLog, method: str, target: str, body: bytes
) -> None:
    """The fuzz property for one control request: a JSON answer from the known set, a
    refusal in one line, nothing logged as an error, and IMDS still answering."""
    import http.client

    url = r.app.control_url()
    assert url is not None
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    try:
        conn.request(method, target, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        status, answer = response.status, response.read()
    finally:
        conn.close()
    assert status in CONTROL_STATUSES, (target, body[:200], answer[:300])
    data = json.loads(answer)
    if status >= 400:
        assert "\n" not in data["error"], data["error"][:300]
        assert len(data["error"]) < 2000, data["error"][:300]
    assert not errors.records, [rec.getMessage() for rec in errors.records]


def _fuzz_control(budget: settings) -> Any:
    @budget
    @given(case=control_bodies())
    def run(control_server: tuple[Running, _ErrorLog], case: tuple[str, str, bytes]) -> None:
        check_control_answer(*control_server, *case)

    return run


test_fuzz_control_bodies = _fuzz_control(CI)
test_fuzz_control_bodies.__doc__ = (
    "Any JSON body, nested to any depth or holding integers of any length, to any control "
    "route that reads one gets a JSON answer (a one-line 400 when refused), never a 5xx."
)
test_fuzz_control_bodies_long = on_demand(pytest.mark.slow(_fuzz_control(LONG)))
test_fuzz_control_bodies_long.__doc__ = "The control-body fuzzer with twenty times the budget."


def test_control_server_still_serves_after_fuzzing(
    control_server: tuple[Running, _ErrorLog],
) -> None:
    """After the control fuzzer the mock answers IMDS and its control API, and logged no error."""
    r, errors = control_server
    assert r.get("/latest/meta-data/ami-id")[0] == 200
    check_control_answer(r, errors, "PATCH", "/v1/options", b'{"hop-limit": 2}')


# -- the corpus: inputs that once failed, replayed every run ------------------------------


def _corpus(name: str) -> list[dict[str, Any]]:
    lines = (CORPUS / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip() and not line.startswith("#")]


def _bytes(case: Mapping[str, Any]) -> bytes:
    return base64.b64decode(case["base64"]) if "base64" in case else case["text"].encode()


@pytest.mark.parametrize("case", _corpus("http-requests.jsonl"), ids=lambda c: str(c["id"]))
def test_corpus_requests(fuzz_server: tuple[Running, _ErrorLog], case: dict[str, Any]) -> None:
    """Every request in the corpus gets a well-formed non-5xx answer or a clean close."""
    check_wire_answer(*fuzz_server, _bytes(case))


@pytest.mark.parametrize("case", _corpus("control-bodies.jsonl"), ids=lambda c: str(c["id"]))
def test_corpus_control_bodies(
    control_server: tuple[Running, _ErrorLog], case: dict[str, Any]
) -> None:
    """Every control request in the corpus gets a JSON answer, never a 5xx."""
    check_control_answer(*control_server, case["method"], case["target"], _bytes(case))


@pytest.mark.parametrize("case", _corpus("configs.jsonl"), ids=lambda c: str(c["id"]))
def test_corpus_configs(tmp_path: Path, case: dict[str, Any]) -> None:
    """Every configuration in the corpus gives a Config that serves or a one-line error."""
    if "mapping" in case:
        check_config(lambda: from_mapping(case["mapping"]))
    else:
        path = tmp_path / f"imdsmock{case['format']}"
        path.write_text(case["text"], encoding="utf-8")
        check_config(lambda: load(file=path, env={}))
