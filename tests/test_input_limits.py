"""Inputs that once escaped the one-line error: every bad value is one line and exit 2 at
start-up, "invalid, keeping the previous config" on a reload, a JSON 400 from the control API
and a 400 from IMDS; never a traceback, whatever the shape or size of the value.

Each test runs the real commands (``imdsmock``, ``ec2-metadata-mock``) or a real server and
talks to it over TCP.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from imdsmock.config.inputs import MAX_DEPTH, MAX_PATH
from imdsmock.core.clock import LATEST, ManualClock
from imdsmock.errors import QUOTE_LIMIT
from mockprocess import (
    EC2_METADATA_MOCK,
    IMDSMOCK,
    Command,
    MockProcess,
    mock_process,
    run_command,
)
from support import Running, control_config, serve

DEEP = 5000  # deeper than any parser recurses
LONG = "9" * 5000  # more digits than Python converts
LONGISH = "7" * 4000  # fewer: it converts, and is far out of every range
ID_PATH = "/latest/meta-data/instance-id"
# An error line quotes at most QUOTE_LIMIT characters of a value; the rest is the key
# (quoted as short) and what is allowed.
LINE_LIMIT = 4 * QUOTE_LIMIT + 200


def one_line(stderr: str, prog: str) -> str:
    """The single error line of a refused start (warnings before it aside)."""
    lines = [line for line in stderr.splitlines() if line.startswith(f"{prog}: error: ")]
    assert len(lines) == 1, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    assert len(lines[0]) < LINE_LIMIT, lines[0]
    return lines[0]


# -- start-up --------------------------------------------------------------------------------

# (id, file suffix, file text): every shape of nesting and number a parser can be handed,
# refused while the file is read, so by both commands whatever keys it uses.
BAD_FILES = [
    ("json-deep-lists", ".json", '{"scenarios": ' + "[" * DEEP + "]" * DEEP + "}"),
    ("json-deep-objects", ".json", '{"paths": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}"),
    (
        "json-nested-past-the-limit",
        ".json",
        '{"x": ' + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "}",
    ),
    ("yaml-deep-flow", ".yaml", "instance:\n  tags: " + "[" * DEEP + "]" * DEEP + "\n"),
    ("yaml-deep-mappings", ".yml", "server: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n"),
    (
        "yaml-deep-blocks",
        ".yaml",
        "".join(f"{'  ' * i}k{i}:\n" for i in range(300)) + "  " * 300 + "v: 1\n",
    ),
    ("yaml-self-alias", ".yaml", "scenarios: &x [*x]\n"),
    ("toml-deep-arrays", ".toml", "x = " + "[" * DEEP + "]" * DEEP + "\n"),
    ("toml-deep-tables", ".toml", "x = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n"),
    ("yaml-huge-int", ".yaml", f"server:\n  port: {LONG}\n"),
    ("yaml-huge-negative-int", ".yaml", f"options:\n  hop-limit: -{LONG}\n"),
    ("yaml-huge-int-key", ".yaml", f"instance:\n  tags:\n    {LONG}: x\n"),
    ("json-huge-int", ".json", '{"server": {"max-connections": ' + LONG + "}}"),
    ("toml-huge-int", ".toml", f"[server]\nidle-timeout = {LONG}\n"),
    ("json-lone-surrogate", ".json", '{"instance": {"region": "eu-west-1\\udcff"}}'),
]
# Values that parse, refused when the keys are read: each command's own keys.
BAD_VALUES = {
    "imdsmock": [
        ("yaml-long-int-port", ".yaml", f"server:\n  port: {LONGISH}\n"),
        ("json-long-int-as-text", ".json", '{"instance": {"instance-type": ' + LONGISH + "}}"),
        ("toml-long-int-option", ".toml", f"[options]\nhttp-tokens = {LONGISH}\n"),
        ("yaml-megabyte-value", ".yaml", "instance:\n  region: " + "x" * 1_000_000 + "\n"),
        ("yaml-megabyte-key", ".yaml", "instance:\n  tags:\n    " + "k" * 1_000_000 + ": v\n"),
    ],
    "aemm": [
        ("yaml-long-delay", ".yaml", f"mock-delay-sec: {LONGISH}\n"),
        ("json-long-ip-count", ".json", '{"mock-ip-count": -' + LONGISH + "}"),
    ],
}
FILE_CASES = [
    pytest.param(command, suffix, text, id=f"{name}-{case}")
    for name, command in (("imdsmock", IMDSMOCK), ("aemm", EC2_METADATA_MOCK))
    for case, suffix, text in BAD_FILES + BAD_VALUES[name]
]


@pytest.mark.parametrize(("command", "suffix", "text"), FILE_CASES)
def test_a_bad_config_file_is_one_line_and_exit_2(
    tmp_path: Path, command: Command, suffix: str, text: str
) -> None:
    """A config file nested thousands of levels deep, holding integers of thousands of
    digits, text that is not UTF-8 or a megabyte value ends the start with one short line
    and exit status 2, for both commands."""
    file = tmp_path / f"config{suffix}"
    file.write_text(text)
    args = ["-c", str(file), "-p", "0"] if command.aemm else ["config", "-c", str(file)]
    done = run_command(args, command=command)
    prog = "ec2-metadata-mock" if command.aemm else "imdsmock"
    assert done.returncode == 2, done.stderr[-2000:]
    one_line(done.stderr, prog)


# (id, variables): values the environment can hold that no setting takes.
BAD_VARIABLES = [
    ("hop-limit-huge", {"IMDSMOCK_HOP_LIMIT": LONG}),
    ("connections-long", {"IMDSMOCK_SERVER_MAX_CONNECTIONS": LONGISH}),
    ("negative-huge", {"IMDSMOCK_SERVER_IDLE_TIMEOUT": "-" + LONG}),
    ("log-level-empty", {"IMDSMOCK_LOG_LEVEL": ""}),
    ("log-level-verbose", {"IMDSMOCK_LOG_LEVEL": "verbose"}),
    ("log-level-number", {"IMDSMOCK_LOG_LEVEL": "10"}),
    ("user-data-not-utf8", {"IMDSMOCK_USER_DATA": "abc\udcff"}),
    ("region-not-utf8", {"IMDSMOCK_REGION": "\udce9u-west-1"}),
    ("tags-not-utf8", {"IMDSMOCK_INSTANCE_TAGS": "\udcff"}),
    ("listen-huge-port", {"IMDSMOCK_LISTEN": "127.0.0.1:" + LONG}),
    ("long-key-file", {"IMDSMOCK_SIGNING_KEY_FILE": "x" * 100_000}),
]


@pytest.mark.parametrize("command", [IMDSMOCK, EC2_METADATA_MOCK], ids=["imdsmock", "aemm"])
@pytest.mark.parametrize("env", [c[1] for c in BAD_VARIABLES], ids=[c[0] for c in BAD_VARIABLES])
def test_a_bad_variable_is_one_line_and_exit_2(command: Command, env: dict[str, str]) -> None:
    """An IMDSMOCK_* variable holding a huge number, a log level that is not one, or bytes
    that are not UTF-8 ends the start with one short line and exit status 2."""
    args = ["-p", "0"] if command.aemm else ["--port", "0", "--control-port", "0"]
    done = run_command(args, env, command=command)
    prog = "ec2-metadata-mock" if command.aemm else "imdsmock"
    assert done.returncode == 2, done.stderr[-2000:]
    line = one_line(done.stderr, prog)
    if "LOG_LEVEL" in next(iter(env)):
        assert "IMDSMOCK_LOG_LEVEL" in line
        assert "DEBUG, INFO, WARNING" in line


@pytest.mark.parametrize(
    ("variable", "closest"),
    [
        ("IMDSMOCK_HTTP_TOKEN", "IMDSMOCK_HTTP_TOKENS"),
        ("IMDSMOCK_REGOIN", "IMDSMOCK_REGION"),
        ("IMDSMOCK_SERVER_PORTS", "IMDSMOCK_SERVER_PORT"),
        ("IMDSMOCK_INSTANCE_TYPES", "IMDSMOCK_INSTANCE_TYPE"),
    ],
)
def test_a_misspelt_variable_is_named_with_the_closest_one(variable: str, closest: str) -> None:
    """An IMDSMOCK_* variable that names no setting is not silently ignored: one warning
    names it and the closest variable that does; the command goes on."""
    done = run_command(["config"], {variable: "required"})
    assert done.returncode == 0, done.stderr
    (warning,) = [line for line in done.stderr.splitlines() if variable in line]
    assert warning.endswith(f"ignored; did you mean {closest!r}?"), warning


def test_a_misspelt_variable_is_named_by_ec2_metadata_mock_too() -> None:
    """ec2-metadata-mock reads IMDSMOCK_* variables as imdsmock does, and warns the same way."""
    with mock_process(env={"IMDSMOCK_HTTP_TOKEN": "required"}, command=EC2_METADATA_MOCK) as mp:
        assert mp.get(ID_PATH)[0] == 200
    assert "IMDSMOCK_HTTP_TOKEN is not a variable" in mp.stderr()
    assert "IMDSMOCK_HTTP_TOKENS" in mp.stderr()


def test_variables_other_parts_read_are_not_warned_about() -> None:
    """Variables of imdsmock's other commands (ctl, route, the container recipes) and of the
    configuration file itself are not settings, and are not warned about."""
    env = {"IMDSMOCK_CONTROL_URL": "http://127.0.0.1:1", "IMDSMOCK_ROUTE_TO": "imds:1338"}
    done = run_command(["config"], env)
    assert done.returncode == 0
    assert "not a variable" not in done.stderr


# -- one rule for each pattern and path, matched whole ---------------------------------------

# (id, config file text): a value that matches a rule's pattern but for its last character,
# or names a path outside the tree.
PATTERN_CASES = [
    ("region-newline", 'instance:\n  region: "eu-west-1\\n"\n'),
    ("zone-newline", 'instance:\n  availability-zone: "eu-west-1a\\n"\n'),
    ("instance-id-newline", 'instance:\n  instance-id: "i-0123456789abcdef0\\n"\n'),
    ("account-newline", 'instance:\n  account-id: "123456789012\\n"\n'),
    ("mac-newline", 'instance:\n  mac: "0e:49:61:0f:c3:11\\n"\n'),
    ("tag-key-newline", 'instance:\n  tags:\n    "Name\\n": x\n'),
    ("role-newline", 'instance:\n  iam-role: "role\\n"\n'),
    ("role-not-ascii", "instance:\n  iam-role: rôle\n"),
    ("ipv6-zone-newline", 'instance:\n  ipv6: "fe80::1%eth0\\n"\n'),
    ("public-key-name-newline", 'instance:\n  public-keys:\n    "a\\nb": ssh-rsa AAAA\n'),
    ("public-key-name-empty", 'instance:\n  public-keys:\n    "": ssh-rsa AAAA\n'),
    ("block-device-dotdot", 'instance:\n  block-device-mapping:\n    "../x": sda\n'),
    ("block-device-slash", 'instance:\n  block-device-mapping:\n    "a/b": sda\n'),
    ("block-device-newline", 'instance:\n  block-device-mapping:\n    "root\\n": sda\n'),
    (
        "interface-public-ip-path",
        "instance:\n  interfaces:\n    - mac: 0e:49:61:0f:c3:12\n      public-ipv4s: [../x]\n",
    ),
    ("paths-dotdot", 'paths:\n  "meta-data/../x": v\n'),
    ("paths-dot", 'paths:\n  "meta-data/./x": v\n'),
    ("paths-newline", 'paths:\n  "meta-data/x\\n": v\n'),
    ("paths-tab", 'paths:\n  "meta-data/a\\tb": v\n'),
    ("paths-outside", 'paths:\n  "etc/passwd": v\n'),
    ("paths-too-long", f'paths:\n  ? "meta-data/{"x" * MAX_PATH}"\n  : v\n'),
    ("paths-leading-space", 'paths:\n  " meta-data/x": v\n'),
]


@pytest.mark.parametrize("text", [c[1] for c in PATTERN_CASES], ids=[c[0] for c in PATTERN_CASES])
def test_patterns_match_whole_values(tmp_path: Path, text: str) -> None:
    """A value is checked whole: a trailing newline, a path segment like .. or a name that
    would break a listing is refused with the key named, one line and exit 2."""
    file = tmp_path / "config.yaml"
    file.write_text(text)
    done = run_command(["config", "-c", str(file)])
    assert done.returncode == 2, done.stdout
    section = text.split(":", 1)[0]
    assert section in one_line(done.stderr, "imdsmock")


@pytest.mark.parametrize(
    "path",
    [
        "meta-data/../x",
        "meta-data/./x",
        "meta-data/x\n",
        "etc/passwd",
        "meta-data/" + "x" * MAX_PATH,
    ],
    ids=["dotdot", "dot", "newline", "outside", "too-long"],
)
def test_the_control_api_refuses_the_paths_the_configuration_refuses(path: str) -> None:
    """The control API's metadata edits follow the configuration's one path rule: the same
    paths are refused, with the same words."""
    with serve(control_config()) as r:
        status, body = _control(r, "PATCH", "/v1/metadata", json.dumps({path: "v"}).encode())
    assert status == 400
    assert "a path under meta-data/, dynamic/ or user-data" in json.loads(body)["error"]


# -- what serving refuses, `imdsmock config` refuses ------------------------------------------

SERVING_REFUSES = [
    ("control-token-file-missing", ["--control-token-file", "/nonexistent/token"]),
    ("control-open-without-token", ["--control-host", "0.0.0.0"]),
    (
        "signing-key-missing",
        [
            "--set",
            "signing.key-file=/nonexistent/k.pem",
            "--set",
            "signing.cert-file=/nonexistent/c.pem",
        ],
    ),
    ("signing-key-alone", ["--set", "signing.key-file=/nonexistent/k.pem"]),
    ("container-token-file-missing", ["--set", "credentials.container-token-file=/nonexistent/t"]),
]


@pytest.mark.parametrize(
    "args", [c[1] for c in SERVING_REFUSES], ids=[c[0] for c in SERVING_REFUSES]
)
def test_config_command_refuses_what_serving_refuses(args: list[str]) -> None:
    """`imdsmock config` exits 2 with the same line as serving for a configuration serving
    would refuse (files it names, a control API open without a token), not only for one
    whose values are wrong."""
    checked = run_command(["config", *args])
    served = run_command([*args, "--port", "0", "--control-port", "0"])
    assert checked.returncode == served.returncode == 2, (checked.stderr, served.stderr)
    assert one_line(checked.stderr, "imdsmock") == one_line(served.stderr, "imdsmock")


@pytest.mark.parametrize(
    "scenario",
    [
        {"not-before": "2030-01-02T00:00:00Z", "not-after": "2030-01-01T00:00:00Z"},
        {"not-before": "+2h", "not-after": "+1h"},
        {"at": "+3h", "not-after": "+1h"},
        {"not-after": "2020-01-01T00:00:00Z"},  # before the start: not-before defaults to it
        {"not-before": 1900000000, "not-after": 1800000000},
    ],
    ids=["absolute", "relative", "after-at", "before-the-start", "epoch-seconds"],
)
def test_a_maintenance_window_ending_before_it_starts_is_refused(
    tmp_path: Path, scenario: dict[str, object]
) -> None:
    """A maintenance event whose not-after is before its not-before is refused by
    `imdsmock config`, by serving (one line, exit 2) and by the control API (400)."""
    event = {"type": "maintenance-event", **scenario}
    file = tmp_path / "config.json"
    file.write_text(json.dumps({"scenarios": [event]}))
    checked = run_command(["config", "-c", str(file)])
    served = run_command(["-c", str(file), "--port", "0", "--control-port", "0"])
    assert checked.returncode == served.returncode == 2
    assert "not-after" in one_line(checked.stderr, "imdsmock")
    assert "not-after" in one_line(served.stderr, "imdsmock")
    with serve(control_config()) as r:
        status, body = _control(r, "POST", "/v1/scenarios", json.dumps(event).encode())
        assert status == 400, body
        assert "not-after" in json.loads(body)["error"]
        fine = {"type": "maintenance-event", "not-before": "+1h", "not-after": "+2h"}
        assert _control(r, "POST", "/v1/scenarios", json.dumps(fine).encode())[0] == 201


# -- reloads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("trigger", ["watch", "sighup"])
def test_each_bad_file_is_kept_out_and_the_next_good_one_is_read(
    tmp_path: Path, trigger: str
) -> None:
    """Under -w or SIGHUP, a file nested thousands of levels deep, holding huge integers or
    a bad value logs "invalid, keeping the previous config" each time, and the next good
    version is served at once: the watcher neither dies nor backs off."""
    file = tmp_path / "config.yaml"
    file.write_text("instance: {instance-id: i-00000000000000000}\n")
    args = ["-c", str(file)] + (["-w"] if trigger == "watch" else [])
    bad = [text for _, suffix, text in BAD_FILES if suffix in (".yaml", ".yml")]
    with mock_process(args) as mp:
        for n, text in enumerate(bad, start=1):
            _replace(file, text)
            if trigger == "sighup":
                mp.proc.send_signal(signal.SIGHUP)
            mp.wait_for_stderr("invalid, keeping the previous config", count=n, timeout=20)
            assert mp.get(ID_PATH) == (200, b"i-00000000000000000")
        _replace(file, "instance: {instance-id: i-11111111111111111}\n")
        if trigger == "sighup":
            mp.proc.send_signal(signal.SIGHUP)
        mp.wait_for_get(ID_PATH, b"i-11111111111111111", timeout=3)
    stderr = mp.stderr()
    assert "Traceback" not in stderr
    assert "background job" not in stderr  # no failed job, no restart backoff
    invalid = [line for line in stderr.splitlines() if "invalid, keeping" in line]
    assert len(invalid) == len(bad)
    assert all(len(line) < LINE_LIMIT + 200 for line in invalid)


def _replace(file: Path, text: str) -> None:
    """Write ``text`` to ``file`` at once (rename over it), as a careful editor does."""
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, file)


# -- signals while starting ------------------------------------------------------------------


def _hangups_while_starting(sent: list[float]) -> Callable[[MockProcess], None]:
    """A ``starting`` hook: from the moment the command has imported its first configuration
    module (python -X importtime reports each import on stderr) until it serves, SIGHUP it
    every few milliseconds.

    That moment, not a fixed delay: on a loaded machine the interpreter alone can take
    longer than any delay chosen, and before the command's own code runs nothing can
    ignore the signal.
    """

    def start(mp: MockProcess) -> None:
        def hammer() -> None:
            spawned = time.monotonic()
            while mp.proc.poll() is None and "serving" not in mp.stderr():
                if "imdsmock.config" in mp.stderr():
                    mp.proc.send_signal(signal.SIGHUP)
                    sent.append(time.monotonic() - spawned)
                time.sleep(0.003)

        threading.Thread(target=hammer, daemon=True).start()

    return start


@pytest.mark.parametrize("command", [IMDSMOCK, EC2_METADATA_MOCK], ids=["imdsmock", "aemm"])
def test_sighup_while_the_command_starts_does_not_end_it(command: Command) -> None:
    """SIGHUP sent while the command is still starting (importing its modules, reading its
    configuration, binding) is ignored; once serving it is handled as usual."""
    timed = Command((command.argv[0], "-X", "importtime", *command.argv[1:]), aemm=command.aemm)
    sent: list[float] = []
    with mock_process(command=timed, starting=_hangups_while_starting(sent)) as mp:
        assert mp.get(ID_PATH)[0] == 200
        mp.proc.send_signal(signal.SIGHUP)
        mp.wait_for_stderr("SIGHUP ignored: no config file to reload")
        assert mp.proc.poll() is None
    assert sent, "the command served before any SIGHUP was sent"
    assert "Traceback" not in mp.stderr()


# -- IMDS and the control API ----------------------------------------------------------------


def _control(r: Running, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection(r.app.control_url().removeprefix("http://"), timeout=10)  # type: ignore[union-attr]
    try:
        conn.request(method, path, body=body or None, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "ttl",
    [LONG, "1" + "0" * 4300, "9" * 4301, "0" * 5000 + "1" * 6, "21601", "100000"],
    ids=[
        "5000-digits",
        "4301-digits",
        "just-over-the-limit",
        "zeros-then-too-many",
        "max+1",
        "six-digits",
    ],
)
def test_a_token_ttl_of_any_length_out_of_range_is_400(ttl: str) -> None:
    """PUT /latest/api/token with a TTL out of 1..21600, however many digits it has, is 400
    as real IMDS answers, not a 500 and a traceback; the listener keeps serving."""
    with mock_process() as mp:
        status, _ = mp.request(
            "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": ttl}
        )
        assert status == 400
        padded = "0" * 5000 + "60"
        assert (
            mp.request(
                "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": padded}
            )[0]
            == 200
        )
        assert mp.get(ID_PATH)[0] == 200
    assert "Traceback" not in mp.stderr()


def _nested(kind: str, depth: int) -> str:
    if kind == "lists":
        return "[" * depth + "]" * depth
    return '{"a": ' * depth + "1" + "}" * depth


# (method, path, body with {} where the deep value goes): every control route taking a body.
ROUTE_BODIES = [
    ("PATCH", "/v1/options", '{"hop-limit": {}}'),
    ("PATCH", "/v1/metadata", '{"meta-data/x": {}}'),
    ("PUT", "/v1/metadata/meta-data/x", '{"value": {}}'),
    ("POST", "/v1/scenarios", '{"type": "spot-interruption", "at": {}}'),
    ("POST", "/v1/faults", '{"kind": "status", "path": {}}'),
    ("POST", "/v1/clock/advance", '{"seconds": {}}'),
    ("POST", "/v1/credentials/fail", '{"count": {}}'),
    ("POST", "/v1/credentials/expire", '{"on": {}}'),
]


@pytest.mark.parametrize("depth", [DEEP, MAX_DEPTH + 1, 900])
@pytest.mark.parametrize("kind", ["lists", "objects"])
def test_deeply_nested_json_to_any_control_route_is_400(kind: str, depth: int) -> None:
    """A JSON body nested deeper than the control API takes, on every route that reads a
    body, is a JSON 400 that changed nothing; the server logs no traceback."""
    with mock_process(["--clock", "manual"]) as mp:
        before = mp.control("GET", "/v1/state")
        for method, path, template in ROUTE_BODIES:
            body = template.replace("{}", _nested(kind, depth)).encode()
            status, answer = mp.control(method, path, body)
            assert status == 400, (path, answer[:300])
            error = json.loads(answer)
            assert "nested" in error["error"] or "levels of nesting" in error["error"], error
            assert len(error["error"]) < LINE_LIMIT
        assert mp.control("GET", "/v1/state") == before
    assert "Traceback" not in mp.stderr()


# (method, path, body): huge numbers and megabyte strings where each route takes a value.
HUGE_VALUES = [
    ("POST", "/v1/clock/advance", f'{{"seconds": {LONGISH}}}'),
    ("POST", "/v1/clock/advance", f'{{"seconds": {LONG}}}'),
    ("POST", "/v1/credentials/fail", f'{{"count": {LONGISH}}}'),
    ("PATCH", "/v1/options", f'{{"hop-limit": {LONGISH}}}'),
    ("PATCH", "/v1/options", f'{{"http-tokens": {LONGISH}}}'),
    ("POST", "/v1/faults", f'{{"kind": "status", "count": -{LONGISH}}}'),
    ("POST", "/v1/scenarios", f'{{"type": "spot-interruption", "at": {LONGISH}}}'),
    ("POST", "/v1/scenarios", f'{{"type": "spot-interruption", "notice-seconds": "{LONGISH}s"}}'),
    ("PATCH", "/v1/metadata", '{"meta-data/x": "\\udcff"}'),
    ("PATCH", "/v1/options", json.dumps({"x" * 500_000: 1})),
    ("POST", "/v1/scenarios", json.dumps({"type": "x" * 500_000})),
]


def test_huge_values_to_the_control_api_are_400_in_one_short_line() -> None:
    """Integers of thousands of digits, text that is not UTF-8 and half-megabyte strings in
    control bodies are a JSON 400 whose error quotes a short part of the value."""
    with mock_process(["--clock", "manual"]) as mp:
        for method, path, body in HUGE_VALUES:
            status, answer = mp.control(method, path, body.encode())
            assert status == 400, (path, body[:80], answer[:300])
            error = json.loads(answer)["error"]
            assert "\n" not in error, error[:300]
            assert len(error) < LINE_LIMIT, error[:300]
        assert mp.control("GET", "/v1/state")[0] == 200
    assert "Traceback" not in mp.stderr()


def test_metadata_edits_per_request_are_capped_and_the_error_says_so() -> None:
    """PATCH /v1/metadata with more edits than one request may make is refused before any
    work, naming the cap; that many edits in smaller requests are all applied."""
    from imdsmock.control.operations import MAX_EDITS

    with serve(control_config()) as r:
        edits = {f"meta-data/tags/instance/k{i}": "v" for i in range(MAX_EDITS + 1)}
        status, body = _control(r, "PATCH", "/v1/metadata", json.dumps(edits).encode())
        assert status == 400
        assert f"at most {MAX_EDITS} edits per request" in json.loads(body)["error"]
        assert r.get("/latest/meta-data/tags/instance/k0")[0] == 404
        half = dict(list(edits.items())[: MAX_EDITS // 2 + 1])
        rest = dict(list(edits.items())[MAX_EDITS // 2 + 1 :])
        for part in (half, rest):
            assert _control(r, "PATCH", "/v1/metadata", json.dumps(part).encode())[0] == 200
        assert r.get(f"/latest/meta-data/tags/instance/k{MAX_EDITS}") == (200, b"v")


def test_an_edit_of_a_directory_replaces_the_edits_below_it() -> None:
    """Edits apply in order: a later edit of a directory replaces every earlier edit below
    it (in the same request or an earlier one), and later edits below it apply again."""
    with serve(control_config()) as r:
        first = {"meta-data/a/b/c": "1", "meta-data/a/d": "2", "meta-data/ab": "3"}
        assert _control(r, "PATCH", "/v1/metadata", json.dumps(first).encode())[0] == 200
        second = {"meta-data/a/e": "4", "meta-data/a": None, "meta-data/a/f": "5"}
        status, body = _control(r, "PATCH", "/v1/metadata", json.dumps(second).encode())
        assert status == 200
        assert json.loads(body)["metadata"] == {
            "meta-data/ab": "3",
            "meta-data/a": None,
            "meta-data/a/f": "5",
        }
        assert r.get("/latest/meta-data/a/f") == (200, b"5")
        assert r.get("/latest/meta-data/a/d")[0] == 404
        assert r.get("/latest/meta-data/ab") == (200, b"3")


def test_the_manual_clock_stops_at_the_end_of_year_9999() -> None:
    """Advancing a manual clock past 9999-12-31T23:59:59Z is a 400 that leaves the clock
    where it was; up to that second it moves, and the clock and state stay readable."""
    start = LATEST - 1000
    with serve(control_config(clock="manual"), ManualClock(start)) as r:
        over = _control(r, "POST", "/v1/clock/advance", b'{"seconds": 1001}')
        assert over[0] == 400, over
        assert "9999-12-31T23:59:59Z" in json.loads(over[1])["error"]
        assert json.loads(_control(r, "GET", "/v1/clock")[1])["now"] == start
        assert _control(r, "POST", "/v1/clock/advance", b'{"seconds": 1000}')[0] == 200
        clock = json.loads(_control(r, "GET", "/v1/clock")[1])
        assert clock["now-iso"] == "9999-12-31T23:59:59Z"
        assert _control(r, "POST", "/v1/clock/advance", b'{"seconds": 0.5}')[0] == 400
        assert _control(r, "GET", "/v1/state")[0] == 200
        assert r.get(ID_PATH)[0] == 200


def test_an_error_quotes_at_most_a_hundred_characters_of_a_value(tmp_path: Path) -> None:
    """However long the bad value, the error line shows about a hundred characters of it,
    then its length: from a file, a variable, a flag and the control API alike."""
    file = tmp_path / "config.yaml"
    file.write_text("instance:\n  instance-type: [" + ", ".join(["x" * 50] * 2000) + "]\n")
    from_file = run_command(["config", "-c", str(file)])
    from_flag = run_command(["config", "--region", "r" * 50_000])
    from_env = run_command(["config"], {"IMDSMOCK_ACCOUNT_ID": "1" * 50_000})
    for done in (from_file, from_flag, from_env):
        assert done.returncode == 2
        line = one_line(done.stderr, "imdsmock")
        assert len(line) < 300, line
    assert "(50000 characters)" in from_flag.stderr
    with serve(control_config()) as r:
        status, body = _control(
            r, "POST", "/v1/faults", json.dumps({"kind": "z" * 50_000}).encode()
        )
    assert status == 400
    assert len(json.loads(body)["error"]) < 300


def test_the_error_helper_is_bounded_for_any_value() -> None:
    """quote() renders any value, huge or nested or cyclic, in at most about a hundred
    characters, on one line, in bounded time."""
    from imdsmock.errors import quote

    cyclic: list[object] = []
    cyclic.append(cyclic)
    shared: list[object] = [1]
    for _ in range(200):  # 2**200 leaves if walked naively
        shared = [shared, shared]
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    values = (10**5000, -(10**5000), "x\n" * 10**6, b"\xff" * 10**6, cyclic, shared, deep)
    for value in (*values, {"k": deep}):
        text = quote(value)
        assert len(text) <= QUOTE_LIMIT + 30, text
        assert "\n" not in text
    assert quote(10**5000) == "<an integer of about 5001 digits>"
    assert quote("short") == "'short'"
