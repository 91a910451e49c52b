"""Per-client gating: only the first N distinct clients see the scenario paths
(:data:`~imdsmock.instance.notices.GATED_PATHS`).

AWS's Go mock (``--mock-ip-count``, default 2 there) lets one mock serve a Kubernetes
cluster where only some nodes are "interrupted": the first N client IPs to ask for a spot,
rebalance, events or Auto Scaling path see it, later ones get 404. The Go mock keys
clients by splitting the remote address at the first ``:``, so every IPv6 client collapses
into one key; here addresses are normalised with :mod:`ipaddress` (IPv4-mapped IPv6 is
the IPv4 client, ``fe80::1%eth0`` keeps its zone), and the set can be reset.
"""

from __future__ import annotations

import ipaddress
import threading

from imdsmock.core.imds import Gate
from imdsmock.errors import quote

__all__ = ["ClientGate", "client_key"]


def client_key(client: str) -> str:
    """A canonical key for a client address (IPv6 compressed, IPv4-mapped unwrapped)."""
    address, sep, zone = client.strip("[]").partition("%")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return client
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip) + (sep + zone if sep else "")


class ClientGate(Gate):
    """Admit the first ``limit`` distinct clients; ``-1`` admits all, ``0`` nobody."""

    __slots__ = ("_admitted", "_limit", "_lock")

    def __init__(self, limit: int = -1) -> None:
        if limit < -1:
            raise ValueError(f"client limit is {quote(limit)}; expected -1 (unlimited) or >= 0")
        self._limit = limit
        self._admitted: set[str] = set()
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        """The number of clients admitted (-1: unlimited)."""
        return self._limit

    def allows(self, client: str) -> bool:
        """Whether ``client`` may see gated paths (admitting it if there is room)."""
        limit = self._limit
        if limit < 0:
            return True
        key = client_key(client)
        with self._lock:
            if key in self._admitted:
                return True
            if len(self._admitted) < limit:
                self._admitted.add(key)
                return True
            return False

    def admitted(self) -> tuple[str, ...]:
        """The clients admitted so far, sorted."""
        with self._lock:
            return tuple(sorted(self._admitted))

    def reset(self, limit: int | None = None) -> None:
        """Forget every admitted client (and optionally change the limit)."""
        if limit is not None and limit < -1:
            raise ValueError(f"client limit is {quote(limit)}; expected -1 (unlimited) or >= 0")
        with self._lock:
            self._admitted.clear()
            if limit is not None:
                self._limit = limit
