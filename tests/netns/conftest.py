"""Fixtures for the routing tests: a :class:`Topology` per test, skipped when impossible.

Tests skip (saying why) when not root or when ``ip netns`` is unavailable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_topology import Topology, why_not_netns


@pytest.fixture(scope="session")
def netns_available() -> None:
    """Skip with the reason when namespaces cannot be made here."""
    why = why_not_netns()
    if why is not None:
        pytest.skip(why)


@pytest.fixture
def topo(netns_available: None, tmp_path: Path) -> Iterator[Topology]:
    """A :class:`Topology` for this test, always torn down."""
    made = Topology(tmp_path)
    try:
        yield made
    finally:
        made.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this folder ``netns``."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.netns)
