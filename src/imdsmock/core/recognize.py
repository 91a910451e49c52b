"""Which instance of the fleet a client is: by listener, Host name, source address, or a
resolver's lookup, in the configured order; the first that matches wins.

Pure and immutable: a :class:`Recognizer` is built from the members' ``match`` rules
(parsed by :mod:`imdsmock.config.fleet`, the loader's own functions) and answers from
tables. The listener and the source address are dictionary lookups: exact addresses in a
dict, networks tried longest prefix first only for an address no exact entry names, their
answer kept in a bounded per-address cache. The Host name is looked at only when some
member has host rules; the server asks once per connection otherwise
(:meth:`Recognizer.connection`).

Lookups that need another system (a container engine, a cluster API) are
:class:`Resolver` objects, named in ``fleet.recognize`` like the built-in ways: they answer
from what they already know and never block; a client they do not know yet is recognised
by the next way in the order (or not at all) until their answer lands. A resolver only
says who a client is (a :class:`Workload`: the names it answers to, the instance it names
itself); which member that is, is decided here, from the members' rules for that way
(``match.container`` for ``docker``: :data:`~imdsmock.config.fleet.RESOLVER_RULES`), by
dictionary lookups. A workload no rule matches may have an instance made for it from the
fleet's template (:attr:`Recognizer.spawned`, kept by the fleet).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from imdsmock.config.fleet import (
    RESOLVER_RULES,
    Network,
    Port,
    host_name,
    listener,
    source,
)
from imdsmock.config.schema import RECOGNIZE, MemberConfig
from imdsmock.core.gate import client_key
from imdsmock.core.pods import PodRules

__all__ = [
    "PER_REQUEST",
    "TEMPLATE",
    "Pending",
    "Recognized",
    "Recognizer",
    "Resolver",
    "Workload",
    "host_key",
]

# Addresses whose network lookup is remembered (then the cache starts again).
CACHE_MAX = 4096


class Recognized(NamedTuple):
    """A client recognised as one instance, and why (``source 10.1.0.0/24``)."""

    name: str
    why: str


class Workload(NamedTuple):
    """Who a client is, as a resolver found it: a container, a pod.

    ``names`` are what the members' rules of the way are compared with, most specific
    first (a container's name, then its compose service); ``instance`` the member it
    names itself (the ``imdsmock.instance`` label), if any; ``key`` its stable identity
    (the same across restarts: a container's name, a pod's ``namespace/name``), from
    which a template instance is derived; ``id`` what the resolver's cache is keyed by
    (the container ID, the pod UID).
    """

    way: str
    id: str
    key: str
    names: tuple[str, ...] = ()
    instance: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    """Its labels, sorted (a pod's: ``match.pod`` rules compare them)."""


class Pending(Protocol):
    """A lookup under way (an :class:`asyncio.Future`): calls back when it ends."""

    def add_done_callback(self, fn: Callable[[Any], object], /) -> None:
        """Call ``fn`` when the lookup ends (at once if it has)."""


class Resolver(Protocol):
    """A way of recognising clients that asks another system (Docker, Kubernetes).

    :meth:`lookup` answers at once from what the resolver knows; for a client it does not
    know yet it returns None and starts finding out (off the event loop, see
    :mod:`imdsmock.serve.resolve`), so that a later connection of that client is
    recognised.
    """

    def lookup(self, client: str) -> Workload | None:
        """Who ``client`` (a canonical address) is known to be, or None."""

    def pending(self, client: str) -> Pending | None:
        """The lookup of ``client`` under way, or None."""


TEMPLATE = "template"
"""The resolver asked last, after every way of the order: a client nothing recognised that
the template covers by its address (``template.ways`` naming ``source``)."""


class _PerRequest:
    """The answer of :meth:`Recognizer.connection` when each request's Host decides."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PER_REQUEST"


PER_REQUEST = _PerRequest()
"""The connection's requests are recognised one by one (by their Host name)."""


def host_key(host: str | None) -> str | None:
    """A Host header as host rules compare it: lower case, no port, no trailing dot."""
    if not host:
        return None
    host = host.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    name, _, port = host.rpartition(":")
    if name and port.isdigit():
        host = name
    return host.rstrip(".")


class Recognizer:
    """The members' ``match`` rules as lookup tables, tried in ``order``.

    ``order`` names the ways: ``listener``, ``host``, ``source`` and those of
    ``resolvers`` (a name in ``order`` with no resolver is skipped).
    """

    __slots__ = (
        "_cache",
        "_exact",
        "_hosts",
        "_listeners",
        "_matched",
        "_names",
        "_networks",
        "_order",
        "_pods",
        "_ports",
        "_resolvers",
        "_template",
        "has_host",
        "spawned",
        "uses_local",
    )

    def __init__(
        self,
        members: Iterable[MemberConfig] = (),
        order: Sequence[str] = RECOGNIZE,
        resolvers: Mapping[str, Resolver] | None = None,
        spawned: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        self._exact: dict[str, Recognized] = {}
        self._networks: list[tuple[Network, Recognized]] = []
        self._listeners: dict[tuple[str, int], Recognized] = {}
        self._ports: dict[int, Recognized] = {}
        self._hosts: dict[str, Recognized] = {}
        # Per resolver way: rule -> member; and the member names a workload may name itself.
        self._names: dict[str, dict[str, Recognized]] = {way: {} for way in RESOLVER_RULES}
        self._names[""] = {}
        self.spawned: Mapping[tuple[str, str], str] = dict(spawned or {})
        """(way, workload key) -> the member made for it from the template."""
        members = tuple(members)
        for member in members:
            self._add(member)
        self._pods = PodRules(members)
        # Each workload's answer (a pod's rules are tried in order, not looked up).
        self._matched: dict[Workload, Recognized | None] = {}
        # Longest prefix first: the most specific network wins (equal ones: list order).
        self._networks.sort(key=lambda item: -item[0].prefixlen)
        self._resolvers = dict(resolvers or {})
        self._template = self._resolvers.get(TEMPLATE)
        self._order = tuple(
            way
            for way in order
            if (way == "source" and (self._exact or self._networks))
            or (way == "listener" and (self._listeners or self._ports))
            or (way == "host" and self._hosts)
            or way in self._resolvers
        )
        self.has_host = "host" in self._order
        """Whether some member has host rules (requests are then recognised one by one)."""
        self.uses_local = "listener" in self._order
        """Whether the local address a client connected to matters."""
        self._cache: dict[str, Recognized | None] = {}

    def _add(self, member: MemberConfig) -> None:
        name, match = member.name, member.match
        where = f"instances.{name}.match"
        for i, spec in enumerate(match.source):
            network = source(spec, f"{where}.source[{i}]")
            found = Recognized(name, f"source {spec.strip()}")
            if network.num_addresses == 1:
                self._exact.setdefault(str(network.network_address), found)
            else:
                self._networks.append((network, found))
        for i, spec in enumerate(match.listener):
            rule = listener(spec, f"{where}.listener[{i}]")
            found = Recognized(name, f"listener {spec.strip()}")
            if isinstance(rule, Port) or ipaddress.ip_address(rule[0]).is_unspecified:
                self._ports.setdefault(rule[-1], found)
            else:
                self._listeners.setdefault(rule, found)
        for i, spec in enumerate(match.host):
            asked = host_name(spec, f"{where}.host[{i}]")
            self._hosts.setdefault(asked, Recognized(name, f"host {asked}"))
        for way, (field, parse) in RESOLVER_RULES.items():
            for i, spec in enumerate(getattr(match, field)):
                named = parse(spec, f"{where}.{field}[{i}]")
                self._names[way].setdefault(named, Recognized(name, f"{field} {named}"))
        self._names[""][name] = Recognized(name, "")

    # -- the lookups --------------------------------------------------------------------

    def recognize(
        self, client: str, local: tuple[str, int] | None = None, host: str | None = None
    ) -> Recognized | None:
        """The instance a request is for: ``client`` its source address, ``local`` the
        address and port it connected to, ``host`` its Host header; None when no way
        recognises it."""
        key = client_key(client)
        for way in self._order:
            found = self._way(way, key, local, host)
            if found is not None:
                return found
        return self._last(key)

    def _last(self, key: str) -> Recognized | None:
        """What the template's address resolver says of a client no way recognised."""
        if self._template is None:
            return None
        workload = self._template.lookup(key)
        return None if workload is None else self.match(workload)

    def instance_for(
        self, client: str, local: tuple[str, int] | None = None, host: str | None = None
    ) -> str | None:
        """The name of the instance a request is for (as :meth:`recognize`), or None."""
        found = self.recognize(client, local, host)
        return None if found is None else found.name

    def connection(
        self, client: str, local: tuple[str, int] | None = None
    ) -> Recognized | _PerRequest | None:
        """The instance of every request of a connection, or :data:`PER_REQUEST` when a
        request's Host name may decide (host rules, and no way before ``host`` matched)."""
        key = client_key(client)
        for way in self._order:
            if way == "host":
                return PER_REQUEST
            found = self._way(way, key, local, None)
            if found is not None:
                return found
        return self._last(key)

    def _way(
        self, way: str, key: str, local: tuple[str, int] | None, host: str | None
    ) -> Recognized | None:
        if way == "source":
            found = self._exact.get(key)
            return found if found is not None else self._network(key)
        if way == "listener":
            if local is None:
                return None
            address = client_key(str(local[0]))
            found = self._listeners.get((address, local[1]))
            return found if found is not None else self._ports.get(local[1])
        if way == "host":
            name = host_key(host)
            return None if name is None else self._hosts.get(name)
        workload = self._resolvers[way].lookup(key)
        return None if workload is None else self.match(workload)

    def match(self, workload: Workload) -> Recognized | None:
        """The member ``workload`` is: the one it names itself, else the first of its names
        a member's rule holds (a pod: the first member with a ``match.pod`` rule it
        matches), else the one the template made for it; None: none."""
        if workload.instance is not None:
            named = self._names[""].get(workload.instance)
            if named is not None:
                return Recognized(named.name, f"{workload.way} {workload.key} names it")
        rules = self._names.get(workload.way)
        if rules:
            for name in workload.names:
                found = rules.get(name)
                if found is not None:
                    return found
        if workload.way == "kubernetes" and self._pods:
            found = self._pod(workload)
            if found is not None:
                return found
        made = self.spawned.get((workload.way, workload.key))
        if made is not None:
            return Recognized(made, f"{workload.way} template {workload.key}")
        return None

    def _pod(self, workload: Workload) -> Recognized | None:
        """The member whose ``match.pod`` rule the pod ``workload`` matches first."""
        matched = self._matched
        if workload in matched:
            return matched[workload]
        namespace, _, name = workload.key.partition("/")
        hit = self._pods.match(namespace, name, dict(workload.labels))
        found = None
        if hit is not None:
            found = Recognized(hit[0], f"pod {workload.key} (match.pod[{hit[1]}])")
        if len(matched) >= CACHE_MAX:
            matched.clear()
        matched[workload] = found
        return found

    def _network(self, key: str) -> Recognized | None:
        if not self._networks:
            return None
        cache = self._cache
        if key in cache:
            return cache[key]
        found = None
        try:
            address = ipaddress.ip_address(key.partition("%")[0])
        except ValueError:
            address = None
        if address is not None:
            for network, recognized in self._networks:
                if address.version == network.version and address in network:
                    found = recognized
                    break
        if len(cache) >= CACHE_MAX:
            cache.clear()
        cache[key] = found
        return found
