"""Fault injection: rules that make some requests fail the way a real IMDS can.

A :class:`Fault` is frozen data: which requests (a path glob, optionally a client address
or network), how often (the next ``count`` matches and/or with a ``probability``), and what
happens (``kind``):

* ``status`` -- answer 429 (how real IMDS throttles), 500 or 503;
* ``latency`` -- answer normally, ``latency-ms`` later;
* ``reset`` -- drop the connection without an answer (TCP RST);
* ``hang`` -- never answer; the client times out (like a dropped hop-limited packet).

The rule set lives in a :class:`FaultBook`: a tuple swapped whole on every change, so the
server's check is one truth test of an empty tuple when no fault is set.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import itertools
import random
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from imdsmock.errors import ConfigError

__all__ = ["KINDS", "STATUSES", "Fault", "FaultBook", "parse_fault"]

Kind = Literal["status", "latency", "reset", "hang"]
KINDS: tuple[Kind, ...] = ("status", "latency", "reset", "hang")
STATUSES = (429, 500, 503)
MAX_LATENCY_MS = 600_000
# Paths remembered as matching no rule: at most this many, each at most this long (any
# client can send any path; a longer one is matched afresh each time). ~1.5 MB when full.
_QUIET_LIMIT = 4096
_QUIET_PATH_MAX = 256
_KEYS = ("kind", "path", "client", "count", "probability", "status", "latency-ms")


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One fault rule (see the module docstring)."""

    id: str
    kind: Kind
    path: str = "*"
    client: str | None = None
    # Apply to the next `count` matching requests, then disappear; None: no limit.
    count: int | None = None
    probability: float = 1.0
    status: int = 503
    latency_ms: int = 0
    _path_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_path_re", re.compile(fnmatch.translate(self.path)))
        net = None if self.client is None else ipaddress.ip_network(self.client, strict=False)
        object.__setattr__(self, "_network", net)

    def path_matches(self, path: str) -> bool:
        """Whether this rule's path glob covers ``path`` (whatever the client)."""
        return self._path_re.match(path) is not None

    def covers_client(self, client: str) -> bool:
        """Whether this rule's network (if any) holds ``client``."""
        if self._network is None:
            return True
        try:
            return ipaddress.ip_address(client) in self._network
        except ValueError:
            return False

    def describe(self, left: int | None = None) -> dict[str, Any]:
        """The rule as JSON-ready data (``count`` shows what is left)."""
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "path": self.path,
            "client": self.client,
            "count": self.count if left is None else left,
            "probability": self.probability,
        }
        if self.kind == "status":
            out["status"] = self.status
        if self.kind == "latency":
            out["latency-ms"] = self.latency_ms
        return out


def parse_fault(data: Mapping[str, Any], fault_id: str) -> Fault:
    """Validate a fault as given to the control API (dashed keys) into a :class:`Fault`."""
    if not isinstance(data, Mapping):
        raise ConfigError("fault", data, "a JSON object")
    for key in data:
        if key not in _KEYS:
            raise ConfigError(f"fault.{key}", data[key], "a known key (" + ", ".join(_KEYS) + ")")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ConfigError("fault.kind", kind, "one of: " + ", ".join(KINDS))
    path = data.get("path", "*")
    if not isinstance(path, str) or not path or len(path) > 1024 or not path.isprintable():
        raise ConfigError("fault.path", path, "a path glob such as /latest/meta-data/*")
    client = data.get("client")
    if client is not None:
        try:
            if not isinstance(client, str):
                raise ValueError(client)
            ipaddress.ip_network(client, strict=False)
        except ValueError:
            raise ConfigError(
                "fault.client", client, "an IP address or network, e.g. 10.0.0.5 or 10.0.0.0/8"
            ) from None
    count = data.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ConfigError("fault.count", count, "a positive integer (or null: every match)")
    probability = data.get("probability", 1.0)
    if (
        isinstance(probability, bool)
        or not isinstance(probability, int | float)
        or not 0.0 < probability <= 1.0
    ):
        raise ConfigError("fault.probability", probability, "a number in (0, 1]")
    status = data.get("status", 503)
    if kind == "status" and status not in STATUSES:
        raise ConfigError("fault.status", status, "one of: 429, 500, 503")
    latency = data.get("latency-ms", 0)
    if kind == "latency" and (
        isinstance(latency, bool)
        or not isinstance(latency, int)
        or not 0 < latency <= MAX_LATENCY_MS
    ):
        raise ConfigError("fault.latency-ms", latency, f"an integer from 1 to {MAX_LATENCY_MS}")
    return Fault(
        id=fault_id,
        kind=kind,
        path=path,
        client=client,
        count=count,
        probability=float(probability),
        status=int(status) if kind == "status" else 503,
        latency_ms=int(latency) if kind == "latency" else 0,
    )


class FaultBook:
    """The fault rules in force, with the counts still left; thread-safe.

    ``rules`` is a tuple replaced whole on every change: the server tests it for
    emptiness before doing anything else.
    """

    __slots__ = ("_held", "_ids", "_left", "_lock", "_quiet", "_random", "rules")

    def __init__(self, seed: int | None = None) -> None:
        self.rules: tuple[Fault, ...] = ()
        # Request paths no rule's glob matches, with the rules they were checked against:
        # a rule that matches no requested path then costs one set lookup, not a regex.
        self._quiet: tuple[tuple[Fault, ...], set[str]] = ((), set())
        # Connections a hang or latency fault keeps open, closed by release_all().
        self._held: set[Any] = set()
        self._left: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._random = random.Random(seed)

    def add(self, data: Mapping[str, Any]) -> Fault:
        """Validate and add one rule (raises ConfigError, changing nothing, when bad)."""
        with self._lock:
            fault = parse_fault(data, f"f-{next(self._ids)}")
            if fault.count is not None:
                self._left[fault.id] = fault.count
            self.rules = (*self.rules, fault)
            return fault

    def remove(self, fault_id: str) -> bool:
        """Remove one rule; whether it existed."""
        with self._lock:
            kept = tuple(f for f in self.rules if f.id != fault_id)
            found = len(kept) != len(self.rules)
            self.rules = kept
            self._left.pop(fault_id, None)
            return found

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self.rules = ()
            self._left.clear()

    def describe(self) -> list[dict[str, Any]]:
        """The rules as JSON-ready data."""
        with self._lock:
            return [f.describe(self._left.get(f.id)) for f in self.rules]

    def hold(self, transport: Any) -> None:
        """Remember a connection a fault keeps open (closed at shutdown)."""
        with self._lock:
            self._held = {t for t in self._held if not t.is_closing()}
            self._held.add(transport)

    def release_all(self) -> None:
        """Drop every connection still held open by a fault (the server is stopping)."""
        with self._lock:
            held, self._held = self._held, set()
        for transport in held:
            if not transport.is_closing():
                transport.abort()

    def take(self, path: str, client: str) -> Fault | None:
        """The fault that applies to this request, if any (spending one of its count)."""
        rules, quiet = self._quiet
        if rules is not self.rules:  # the rules changed: what was quiet may not be
            rules, quiet = self._quiet = (self.rules, set())
        if path in quiet:
            return None
        covered = False  # some rule's path glob matches (whatever the client)
        for fault in rules:
            if not fault.path_matches(path):
                continue
            covered = True
            if not fault.covers_client(client):
                continue
            with self._lock:
                if fault.probability < 1.0 and self._random.random() >= fault.probability:
                    continue
                if fault.count is None:
                    return fault
                left = self._left.get(fault.id, 0)
                if left <= 0:
                    continue
                if left == 1:
                    del self._left[fault.id]
                    self.rules = tuple(f for f in self.rules if f.id != fault.id)
                else:
                    self._left[fault.id] = left - 1
                return fault
        if not covered and len(quiet) < _QUIET_LIMIT and len(path) <= _QUIET_PATH_MAX:
            quiet.add(path)
        return None
