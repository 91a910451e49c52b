"""The connection budget every listener of an app shares, and fitting it under the process's
open-file limit.

One :class:`Limits` serves the IMDS, control, ECS and EKS listeners together: each
accepted connection takes a slot of ``max_connections`` until it closes, whichever listener
took it, so no listener's clients can take the descriptors another one needs. When every
slot is taken, a new connection takes the slot of the connection that has waited longest
for a request, if that one has waited at least :data:`EVICT_AFTER` seconds (an idle
connection, or one sending its request too slowly); that connection is dropped. Otherwise
the new one is refused: answered 429 and closed (at most :data:`SHED_MAX` refused ones at
a time wait for their client to read it; beyond that they are dropped at once).

Every connection also has a deadline (``idle_timeout``): it must send a whole request in
that time (and with keep-alive, the next one in that time after an answer).

:func:`fit_open_files` raises the soft ``RLIMIT_NOFILE`` toward the hard one so the
budget fits beside the descriptors the process needs for itself; when it cannot, it lowers
the budget, so a connection beyond it is refused with 429 rather than reset by an accept
that fails for want of a descriptor.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Protocol

__all__ = [
    "EVICT_AFTER",
    "IDLE_TIMEOUT",
    "MAX_CONNECTIONS",
    "MAX_HEADER_BYTES",
    "SHED_MAX",
    "Connection",
    "Limits",
    "fit_open_files",
]

MAX_HEADER_BYTES = 16 * 1024
IDLE_TIMEOUT = 10.0
MAX_CONNECTIONS = 1024
# A connection that has waited this long for its request may lose its slot to a new one.
EVICT_AFTER = 1.0
# Connections looked at, oldest first, to find one to drop (a bounded amount of work).
_EVICT_SCAN = 32
# Refused connections that may wait (answered 429, reading and dropping what the client
# sends so the answer is not destroyed by a reset) at one time.
SHED_MAX = 16
# Descriptors kept for the process itself beyond the connections (standard streams, the
# event loop, listening sockets, files read on a reload, real-credential requests, refused
# connections waiting): at most this many, at most a quarter of the limit.
_RESERVE = 64


class Connection(Protocol):
    """What the budget needs of a connection (each listener's asyncio protocol)."""

    def waiting_since(self) -> float:
        """Loop time since which it has waited for its next request."""
        ...

    def evict(self) -> None:
        """Drop the connection to free its slot."""
        ...


class Limits:
    """The connection budget of an app's listeners and the per-connection limits.

    ``idle_timeout`` is a deadline, not a per-byte timer: a connection must finish its
    request within it (slow headers included), and a kept-alive one must send the next
    request within it. Only touched on the event loop thread (connection_made /
    connection_lost), so it needs no lock.
    """

    __slots__ = ("_open", "idle_timeout", "max_connections", "max_header_bytes", "shedding")

    def __init__(
        self,
        *,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.max_header_bytes = max_header_bytes
        # The connections holding a slot, oldest first (a dict keeps insertion order).
        self._open: dict[Connection, None] = {}
        self.shedding = 0  # refused connections still open

    @property
    def open(self) -> int:
        """Connections open now: those holding a slot and those being refused."""
        return len(self._open) + self.shedding

    def admit(self, conn: Connection) -> bool:
        """Give ``conn`` a slot (dropping a long-waiting connection if none is free); False
        when none can be had."""
        slots = self._open
        if len(slots) >= self.max_connections and not self._evict():
            return False
        slots[conn] = None
        return True

    def release(self, conn: Connection) -> None:
        """Free the slot of a closed connection (if it had one)."""
        self._open.pop(conn, None)

    def refuse(self) -> bool:
        """Whether a connection without a slot may be answered 429 (it then counts in
        :attr:`shedding` until it closes); False: drop it at once."""
        if self.shedding >= SHED_MAX:
            return False
        self.shedding += 1
        return True

    def _evict(self) -> bool:
        slots = self._open
        now = asyncio.get_running_loop().time()
        for conn in list(itertools.islice(slots, _EVICT_SCAN)):
            del slots[conn]
            if now - conn.waiting_since() >= EVICT_AFTER:
                conn.evict()
                return True
            slots[conn] = None  # busy: to the back, so the next search looks at others
        return False


def fit_open_files(wanted: int) -> tuple[int, str | None]:
    """The connection budget to use for ``wanted`` connections, and a warning when it had to
    be lowered.

    Raises the soft ``RLIMIT_NOFILE`` toward the hard limit until ``wanted`` connections and
    the process's own descriptors fit; if the hard limit is too low, the budget is what
    fits under it.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on a POSIX system: nothing to fit
        return wanted, None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    needed = wanted + _RESERVE
    if soft != unlimited and soft < needed:
        raised = needed if hard == unlimited else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):  # e.g. above the system's own cap: keep the soft limit
            pass
    if soft == unlimited:
        return wanted, None
    fitted = min(wanted, max(1, soft - min(_RESERVE, soft // 4)))
    if fitted == wanted:
        return wanted, None
    return fitted, (
        f"server.max-connections lowered from {wanted} to {fitted} to fit the open-file "
        f"limit ({soft}, hard limit {'unlimited' if hard == unlimited else hard}); "
        "raise it (ulimit -n) to serve more connections at once"
    )
