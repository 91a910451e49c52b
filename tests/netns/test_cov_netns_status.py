"""``route status`` and ``route down`` with the nft backend, in a fresh namespace."""

from __future__ import annotations

from netns_topology import Topology


def test_route_status_with_nft_shows_our_table_and_down_twice_is_harmless(
    topo: Topology,
) -> None:
    """With nft, ``status`` reports our table absent, then present with its rules after
    ``up``; a second ``down`` finds nothing to remove."""
    ws = topo.ns("ws")
    before = topo.route(ws, "status", "--backend", "nft").stdout
    assert "backend: nft" in before
    assert "table inet imdsmock: absent" in before
    assert "aliases on lo: none" in before
    topo.route(ws, "up", "--backend", "nft")
    during = topo.route(ws, "status").stdout
    assert "table inet imdsmock: present" in during
    assert "127.0.0.1:1338" in during
    assert "record: " in during
    assert "record: none" not in during
    assert topo.route(ws, "down").stdout.startswith("imdsmock route: removed (")
    assert topo.route(ws, "down", "--backend", "nft").stdout == (
        "imdsmock route: nothing to remove\n"
    )
