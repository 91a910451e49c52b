"""Hop limit as EC2 has it, behind a real routed hop.

The app and the mock sit on two networks joined by a router namespace that forwards
between them, as a host forwards between ``docker0`` and ``eth0``. The mock sends the
token response with IP TTL = hop limit; the router decrements it, so with 1 the response
dies on the way (as EC2's does across a container's bridge) and with 2 it arrives.
"""

from __future__ import annotations

import json
import sys

import pytest
from netns_topology import BOTO3_PROBE, TOKEN_PROBE, Topology


def routed_pair(topo: Topology) -> tuple[str, str]:
    """App 10.201.1.2 -- router -- mock 10.201.2.2, one forwarding hop; returns (mock, app)."""
    app, router, mock = topo.ns("app"), topo.ns("rt"), topo.ns("mock")
    topo.link(app, "10.201.1.2/24", router, "10.201.1.1/24")
    topo.link(router, "10.201.2.1/24", mock, "10.201.2.2/24")
    topo.sh(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    topo.sh(app, "ip", "route", "add", "default", "via", "10.201.1.1")
    topo.sh(mock, "ip", "route", "add", "default", "via", "10.201.2.1")
    return mock, app


CASES = [
    # hop limit, http-tokens, token PUT outcome, boto3 credential method
    pytest.param(1, "optional", "timeout", "iam-role", id="hop1-optional-falls-back-to-v1"),
    pytest.param(1, "required", "timeout", None, id="hop1-required-gets-nothing"),
    pytest.param(2, "required", "token", "iam-role", id="hop2-required-works"),
]


@pytest.mark.parametrize(("hop_limit", "tokens", "token", "method"), CASES)
def test_token_response_ttl_is_the_hop_limit_across_one_routed_hop(
    topo: Topology, hop_limit: int, tokens: str, token: str, method: str | None
) -> None:
    """One hop away, hop limit 1 loses the token (v1 fallback or nothing); 2 delivers it."""
    mock, app = routed_pair(topo)
    topo.mock(mock, "10.201.2.2", 1338, "--hop-limit", str(hop_limit), "--http-tokens", tokens)
    probe = f"{TOKEN_PROBE}\n{BOTO3_PROBE}"
    done = topo.route(
        app, "container", "--mock", "10.201.2.2:1338", "--", sys.executable, "-c", probe
    )
    token_line, creds_line = done.stdout.strip().splitlines()[-2:]
    assert token_line == token
    creds = json.loads(creds_line)
    assert (None if creds is None else creds["method"]) == method


def test_hop_limit_one_still_works_without_a_routed_hop(topo: Topology) -> None:
    """On one link (no forwarding), TTL 1 is enough: the token arrives with hop limit 1."""
    app, mock = topo.ns("app"), topo.ns("mock")
    topo.link(app, "10.202.0.2/24", mock, "10.202.0.3/24")
    topo.mock(mock, "10.202.0.3", 1338, "--hop-limit", "1", "--http-tokens", "required")
    done = topo.route(
        app, "container", "--mock", "10.202.0.3:1338", "--", sys.executable, "-c", TOKEN_PROBE
    )
    assert done.stdout.strip().splitlines()[-1] == "token"


KEEP_ALIVE_PROBE = """
import socket
s = socket.create_connection(("10.201.2.2", 1338), timeout=3)
s.sendall(b"GET /latest/meta-data/instance-id HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
assert s.recv(4096).startswith(b"HTTP/1.1 200")
s.sendall(b"PUT /latest/api/token HTTP/1.1\\r\\nHost: x\\r\\n"
          b"X-aws-ec2-metadata-token-ttl-seconds: 60\\r\\n\\r\\n")
try:
    print("token" if s.recv(4096) else "closed")
except TimeoutError:
    print("timeout")
"""


def test_token_answer_on_a_kept_alive_connection_is_not_retransmitted_past_the_limit(
    topo: Topology,
) -> None:
    """With keep-alive, hop limit 1 one routed hop away: the token answer never arrives, not
    even as a TCP retransmission seconds later (the connection keeps the hop limit)."""
    mock, app = routed_pair(topo)
    topo.mock(mock, "10.201.2.2", 1338, "--hop-limit", "1", "--keep-alive")
    assert topo.py(app, "-c", KEEP_ALIVE_PROBE).stdout.strip() == "timeout"
