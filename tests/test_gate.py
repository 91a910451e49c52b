"""Per-client gating (--mock-ip-count): the first N distinct clients see scenario paths."""

from __future__ import annotations

import threading

import pytest

from imdsmock.core.gate import ClientGate, client_key
from support import make_config, serve, status_from

SPOT = "/latest/meta-data/spot/instance-action"


@pytest.mark.parametrize(
    ("client", "key"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("2001:db8:0:0::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("not-an-ip", "not-an-ip"),
    ],
)
def test_client_keys_are_canonical_addresses(client: str, key: str) -> None:
    """Clients are keyed by canonical address: IPv6 compressed, IPv4-mapped unwrapped."""
    assert client_key(client) == key


def test_ipv6_clients_are_distinct() -> None:
    """Two IPv6 clients are two clients (the Go mock collapses them into one)."""
    gate = ClientGate(1)
    assert gate.allows("2001:db8::1")
    assert not gate.allows("2001:db8::2")
    assert gate.allows("2001:db8:0::1")


@pytest.mark.parametrize(("limit", "admitted"), [(-1, 5), (0, 0), (2, 2)])
def test_limit_admits_the_first_n(limit: int, admitted: int) -> None:
    """-1 admits everyone, 0 nobody, N the first N distinct clients (repeat visits stay in)."""
    gate = ClientGate(limit)
    clients = [f"10.0.0.{i}" for i in range(5)]
    assert sum(gate.allows(c) for c in clients) == admitted
    assert sum(gate.allows(c) for c in clients) == admitted


def test_reset_forgets_clients_and_may_change_the_limit() -> None:
    """reset() empties the admitted set (and optionally sets a new limit)."""
    gate = ClientGate(1)
    assert gate.allows("10.0.0.1")
    assert not gate.allows("10.0.0.2")
    gate.reset()
    assert gate.allows("10.0.0.2")
    gate.reset(2)
    assert gate.limit == 2
    assert gate.allows("10.0.0.1")
    assert gate.allows("10.0.0.3")
    assert gate.admitted() == ("10.0.0.1", "10.0.0.3")
    with pytest.raises(ValueError, match="expected -1"):
        ClientGate(-2)
    with pytest.raises(ValueError, match="expected -1"):
        gate.reset(-5)


def test_gate_is_thread_safe() -> None:
    """Concurrent first visits never admit more than the limit."""
    gate = ClientGate(10)
    results: list[bool] = []
    lock = threading.Lock()

    def visit(i: int) -> None:
        ok = gate.allows(f"10.0.{i // 256}.{i % 256}")
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=visit, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 10


def test_second_client_over_ipv4_and_ipv6_gets_404_until_reset() -> None:
    """With mock-ip-count 1, a second client (IPv4 or IPv6) gets 404 until the gate resets."""
    cfg = make_config(
        server={"listen": ["[::1]:0"], "mock-ip-count": 1},
        scenarios=[{"type": "spot-interruption"}],
    )
    with serve(cfg) as r:
        v6_port = next(a[1] for a in r.app.server.addresses() if ":" in a[0])
        assert status_from("127.0.0.1", r.port, SPOT) == 200
        assert status_from("127.0.0.1", r.port, SPOT) == 200
        assert status_from("::1", v6_port, SPOT) == 404
        assert status_from("127.0.0.1", r.port, SPOT, source="127.0.0.2") == 404
        assert r.get("/latest/meta-data/instance-id")[0] == 200  # ungated paths still answer
        r.app.gate.reset()
        assert status_from("::1", v6_port, SPOT) == 200
        assert status_from("127.0.0.1", r.port, SPOT) == 404
