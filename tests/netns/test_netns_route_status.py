"""``route status`` says whether 169.254.169.254 answers as the mock, asking the mock itself;
``route up`` warns when nothing listens where ``--mock`` points."""

from __future__ import annotations

from netns_topology import Topology

INSTANCE_ID = "i-1234567890abcdef0"
CONTROL = "http://127.0.0.1:1339"


def _answer_line(topo: Topology, ns: str, *args: str) -> str:
    """The line ``route status`` prints about 169.254.169.254."""
    out = topo.route(ns, "status", *args).stdout
    (line,) = [line for line in out.splitlines() if line.startswith("169.254.169.254: ")]
    return line


def test_status_says_the_address_answers_as_this_mock_once_routed(topo: Topology) -> None:
    """Before ``up`` the address does not answer as the mock; after it, the probe's request
    reaches the mock's request log and status says so with the instance ID."""
    ws = topo.ns("ws")
    topo.mock(ws, "127.0.0.1", 1338)
    assert _answer_line(topo, ws).startswith("169.254.169.254: does not answer as this mock (")
    topo.route(ws, "up")
    assert _answer_line(topo, ws) == (
        f"169.254.169.254: answers as this mock (instance {INSTANCE_ID}, {CONTROL})"
    )
    topo.route(ws, "down")


def test_status_tells_another_server_at_the_address_from_this_mock(topo: Topology) -> None:
    """A second mock holding 169.254.169.254 (another instance) answers there, but status
    says it is not the mock whose control API it asks, naming both instance IDs."""
    ws = topo.ns("ws")
    topo.mock(ws, "127.0.0.1", 1338)
    topo.route(ws, "up", "--alias-only")
    other = "i-0bbbbbbbbbbbbbbbb"
    topo.mock(ws, "169.254.169.254", 80, "--instance-id", other, "--control-port", "2339")
    assert _answer_line(topo, ws) == (
        f"169.254.169.254: answers, but not as this mock: it serves {other} and the request "
        f"never reached the mock at {CONTROL} (which serves {INSTANCE_ID})"
    )
    line = _answer_line(topo, ws, "--control-url", "http://127.0.0.1:2339")
    assert (
        line == f"169.254.169.254: answers as this mock (instance {other}, http://127.0.0.1:2339)"
    )
    topo.route(ws, "down")


def test_status_without_a_control_api_says_it_cannot_tell(topo: Topology) -> None:
    """With no control API at the URL, status shows what the address serves and that it
    cannot tell whether that is the mock."""
    ws = topo.ns("ws")
    topo.mock(ws, "127.0.0.1", 1338, "--set", "server.control=false")
    topo.route(ws, "up")
    assert _answer_line(topo, ws) == (
        f"169.254.169.254: serves {INSTANCE_ID}; whether as this mock is unknown: cannot ask "
        f"the control API at {CONTROL} (connection refused; see --control-url, "
        "IMDSMOCK_CONTROL_TOKEN)"
    )
    topo.route(ws, "down")


def test_up_warns_when_nothing_listens_where_mock_points(topo: Topology) -> None:
    """``up`` with nothing listening at --mock still routes, with one warning line; with the
    mock listening there is none, and --alias-only (the mock binds afterwards) never warns."""
    ws = topo.ns("ws")
    done = topo.route(ws, "up", "--mock", "127.0.0.1:1400")
    assert done.stderr == (
        "imdsmock route: warning: nothing listens on 127.0.0.1:1400 now; start the mock there "
        "(imdsmock listens on 127.0.0.1:1338) or give --mock ADDR:PORT\n"
    )
    topo.route(ws, "down")
    assert topo.route(ws, "up", "--alias-only").stderr == ""
    topo.route(ws, "down")
    topo.mock(ws, "127.0.0.1", 1400)
    assert topo.route(ws, "up", "--mock", "127.0.0.1:1400").stderr == ""
    topo.route(ws, "down")


def test_status_says_when_the_mock_is_reached_but_refuses(topo: Topology) -> None:
    """With IMDS disabled on the mock the probe still reaches it: status says so, with the
    answer it got; with the control token in IMDSMOCK_CONTROL_TOKEN it asks, without it it
    says why it cannot."""
    ws = topo.ns("ws")
    topo.mock(ws, "127.0.0.1", 1338, "--control-token", "s3cret")
    topo.route(ws, "up")
    topo.sh(
        ws, "curl", "-s", "-X", "PATCH", "-H", "Authorization: Bearer s3cret",
        "-H", "Content-Type: application/json", "-d", '{"http-endpoint": "disabled"}',
        f"{CONTROL}/v1/options",
    )  # fmt: skip
    env = {**topo.env, "IMDSMOCK_CONTROL_TOKEN": "s3cret"}
    out = topo.route(ws, "status", env=env).stdout
    assert f"169.254.169.254: reaches this mock ({CONTROL}), but it answers 403 to GET " in out
    line = _answer_line(topo, ws)
    assert line.startswith("169.254.169.254: it answers 403 to GET /latest/meta-data/instance-id;")
    assert "cannot ask the control API at http://127.0.0.1:1339 (missing or wrong bearer" in line
    topo.route(ws, "down")
