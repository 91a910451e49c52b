"""The fleet's rules: instance names and the ``match`` entries that recognise a client.

Every entry is parsed here, once at load (a bad one is a
:class:`~imdsmock.errors.ConfigError` naming the key, the value and what is allowed), and
again by the recogniser (:mod:`imdsmock.core.recognize`) when it builds its tables, with the
same functions: what loads is what is served.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import NamedTuple

from imdsmock.config.addresses import parse_listen
from imdsmock.config.schema import Config, MemberConfig
from imdsmock.errors import ConfigError

__all__ = [
    "DEFAULT_NAME",
    "NAME_RULE",
    "Network",
    "Port",
    "check_fleet",
    "check_name",
    "host_name",
    "listener",
    "member_listeners",
    "source",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_NAME = "default"
"""The name of the top-level instance (reserved: no member may take it)."""

NAME_RULE = "1-63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
# A DNS name: labels of letters, digits, - and _ (as compose service names are spelt).
_HOST = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_][a-z0-9_-]{0,62})*\.?")


class Port(NamedTuple):
    """A listener rule naming only a port: any local address of the mock on that port."""

    port: int


def check_name(name: object, key: str) -> str:
    """A member's name, checked: :data:`NAME_RULE`, and not the default instance's."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(key, name, f"a name of {NAME_RULE}")
    if name == DEFAULT_NAME:
        raise ConfigError(key, name, f"a name other than {DEFAULT_NAME!r} (the top-level instance)")
    return name


def source(spec: str, key: str) -> Network:
    """A ``match.source`` entry: an address (a network of one) or a network, IPv4 or IPv6.

    An IPv4-mapped IPv6 address means the IPv4 one (a dual-stack listener sees IPv4
    clients so). A network with host bits set is refused: ``10.1.0.7/24`` is ambiguous.
    """
    text = spec.strip()
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        network = None
    if network is None or "%" in text:
        try:
            loose = ipaddress.ip_network(text, strict=False) if "%" not in text else None
        except ValueError:
            loose = None
        if loose is not None:
            raise ConfigError(key, spec, f"a network without host bits set ({loose})")
        raise ConfigError(
            key, spec, "an IPv4 or IPv6 address or network (10.1.0.7, 10.1.0.0/24, fd00::/64)"
        )
    if isinstance(network, ipaddress.IPv6Network):
        mapped = network.network_address.ipv4_mapped
        if mapped is not None and network.prefixlen >= 96:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def listener(spec: str, key: str) -> tuple[str, int] | Port:
    """A ``match.listener`` entry: ``HOST:PORT`` or ``[V6]:PORT`` (that address and port),
    or a port alone (any address of the mock on that port)."""
    text = spec.strip()
    if re.fullmatch(r"[0-9]{1,5}", text):
        port = int(text)
        if not 1 <= port <= 65535:
            raise ConfigError(key, spec, "a port from 1 to 65535, or HOST:PORT")
        return Port(port)
    try:
        item = parse_listen(text, key)
    except ConfigError:
        raise ConfigError(key, spec, "HOST:PORT, [IPV6]:PORT or a port") from None
    host = item.host.strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(key, spec, "an IP address and a port (HOST:PORT)") from None
    if item.port == 0:
        raise ConfigError(key, spec, "a port from 1 to 65535")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (str(address), item.port)


def host_name(spec: str, key: str) -> str:
    """A ``match.host`` entry: a DNS name, lower-cased, without a trailing dot or a port."""
    text = spec.strip().lower()
    if len(text) > 253 or not _HOST.fullmatch(text):
        raise ConfigError(key, spec, "a host name such as web.imds.internal (no port)")
    return text.rstrip(".")


def member_listeners(cfg: Config) -> list[tuple[str, int] | Port]:
    """Every ``match.listener`` entry of the configuration's members, parsed, in order."""
    return [
        listener(spec, f"instances.{m.name}.match.listener[{i}]")
        for m in cfg.instances
        for i, spec in enumerate(m.match.listener)
    ]


def check_fleet(cfg: Config) -> None:
    """Raise :class:`ConfigError` for the first fleet rule the configuration breaks.

    Names are unique; every match entry parses; no two members claim the same address,
    network, listener or host name (the first would always win: the second is a mistake);
    ``fleet.recognize`` names each way once.
    """
    seen: dict[str, str] = {}
    for index, member in enumerate(cfg.instances):
        name = check_name(member.name, f"instances[{index}].name")
        if name in seen:
            raise ConfigError(f"instances[{index}].name", name, "a name no other instance has")
        seen[name] = name
    claimed: dict[object, tuple[str, str]] = {}
    for key, rule, value in _rules(cfg.instances):
        owner = key.split(".")[1]
        earlier = claimed.get(rule)
        if earlier is not None and earlier[0] != owner:
            raise ConfigError(
                key, value, f"an entry no other instance has ({earlier[1]} has it already)"
            )
        claimed.setdefault(rule, (owner, key))
    recognize = cfg.fleet.recognize
    for index, way in enumerate(recognize):
        if way in recognize[:index]:
            raise ConfigError(f"fleet.recognize[{index}]", way, "each way named once")


def _rules(members: tuple[MemberConfig, ...]) -> Iterator[tuple[str, object, str]]:
    """Each match entry of each member: its key, its parsed form (what two members must not
    share) and its value as given."""
    for m in members:
        prefix = f"instances.{m.name}.match"
        for i, spec in enumerate(m.match.source):
            key = f"{prefix}.source[{i}]"
            yield key, ("source", source(spec, key)), spec
        for i, spec in enumerate(m.match.listener):
            key = f"{prefix}.listener[{i}]"
            yield key, ("listener", listener(spec, key)), spec
        for i, spec in enumerate(m.match.host):
            key = f"{prefix}.host[{i}]"
            yield key, ("host", host_name(spec, key)), spec
