"""The fleet's rules: instance names and the ``match`` entries that recognise a client.

Every entry is parsed here, once at load (a bad one is a
:class:`~imdsmock.errors.ConfigError` naming the key, the value and what is allowed), and
again by the recogniser (:mod:`imdsmock.core.recognize`) when it builds its tables, with the
same functions: what loads is what is served.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

from imdsmock.config.addresses import parse_listen
from imdsmock.config.schema import Config, FleetConfig, MemberConfig, PodRule
from imdsmock.errors import ConfigError

__all__ = [
    "DEFAULT_NAME",
    "NAMESPACE_RULE",
    "NAME_RULE",
    "NODE_RULE",
    "RESOLVER_RULES",
    "Network",
    "Port",
    "check_fleet",
    "check_kubernetes",
    "check_name",
    "check_node",
    "check_pod",
    "container",
    "host_name",
    "listener",
    "member_listeners",
    "pod_pattern",
    "source",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_NAME = "default"
"""The name of the top-level instance (reserved: no member may take it)."""

NAME_RULE = "1-63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
# A DNS name: labels of letters, digits, - and _ (as compose service names are spelt).
_HOST = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_][a-z0-9_-]{0,62})*\.?")


# Kubernetes names (its API's own rules): a namespace is a DNS label, a node a DNS
# subdomain; a label key is [DNS subdomain "/"] name, a name or value 1-63 alphanumerics
# and - _ . inside (a value may be empty).
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_POD_PATTERN = re.compile(r"[a-z0-9.*-]{1,253}")
NAMESPACE_RULE = "a namespace: 1-63 of a-z, 0-9, '-', starting and ending with a letter or digit"
NODE_RULE = "a node name: a DNS name of a-z, 0-9, '-', '.' (at most 253)"
POD_KEYS = ("namespace", "name", "labels")
# A container name as Docker allows it (a compose service name is spelt so too).
_CONTAINER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")


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


def pod_pattern(spec: str) -> re.Pattern[str]:
    """A ``match.pod`` name as a regular expression: ``*`` any run of characters."""
    return re.compile(".*".join(re.escape(part) for part in spec.split("*")))


def check_pod(rule: PodRule, key: str) -> None:
    """Raise :class:`ConfigError` for a ``match.pod`` entry Kubernetes could not match."""
    if rule.namespace is None and rule.name is None and not rule.labels:
        raise ConfigError(key, {}, "at least one of: " + ", ".join(POD_KEYS))
    if rule.namespace is not None and not _DNS_LABEL.fullmatch(rule.namespace):
        raise ConfigError(f"{key}.namespace", rule.namespace, NAMESPACE_RULE)
    if rule.name is not None and not _POD_PATTERN.fullmatch(rule.name):
        allowed = "a pod name, '*' for any run of characters (a-z, 0-9, '-', '.')"
        raise ConfigError(f"{key}.name", rule.name, allowed)
    for name, value in rule.labels.items():
        prefix, slash, short = name.rpartition("/")
        if not _LABEL_NAME.fullmatch(short) or (
            slash and not (len(prefix) <= 253 and _SUBDOMAIN.fullmatch(prefix))
        ):
            raise ConfigError(
                f"{key}.labels",
                name,
                "label keys such as app or example.com/tier (a name of at most 63 of A-Z, "
                "a-z, 0-9, '-', '_', '.', starting and ending with a letter or digit, "
                "after an optional DNS name and '/')",
            )
        if value and not _LABEL_NAME.fullmatch(value):
            raise ConfigError(
                f"{key}.labels.{name}",
                value,
                "a label value: at most 63 of A-Z, a-z, 0-9, '-', '_', '.', starting and "
                "ending with a letter or digit (or empty)",
            )


def check_node(name: str) -> bool:
    """Whether ``name`` is a Kubernetes node name (a DNS subdomain)."""
    return len(name) <= 253 and _SUBDOMAIN.fullmatch(name) is not None


def check_kubernetes(fleet: FleetConfig) -> None:
    """Raise :class:`ConfigError` for a ``fleet.kubernetes-*`` key that cannot be used."""
    api = fleet.kubernetes_api
    if api:
        from urllib.parse import urlsplit

        allowed = "an http:// or https:// URL of the Kubernetes API (https://10.96.0.1:443)"
        try:
            parts = urlsplit(api.strip())
            port = parts.port
        except ValueError:
            raise ConfigError("fleet.kubernetes-api", api, allowed) from None
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.query
            or parts.fragment
            or parts.username is not None
            or port == 0
            or not api.strip().isprintable()
            or " " in api.strip()
        ):
            raise ConfigError("fleet.kubernetes-api", api, allowed)
    node = fleet.kubernetes_node
    if node and not check_node(node):
        raise ConfigError("fleet.kubernetes-node", node, NODE_RULE + " (empty: $NODE_NAME)")
    namespace = fleet.kubernetes_namespace
    if namespace and not _DNS_LABEL.fullmatch(namespace):
        raise ConfigError(
            "fleet.kubernetes-namespace", namespace, NAMESPACE_RULE + " (empty: every namespace)"
        )


def container(spec: str, key: str) -> str:
    """A ``match.container`` entry: a container name or a compose service name."""
    text = spec.strip().lstrip("/")
    if not _CONTAINER.fullmatch(text):
        raise ConfigError(
            key, spec, "a container or compose service name (letters, digits, '_', '.', '-')"
        )
    return text


RESOLVER_RULES: dict[str, tuple[str, Callable[[str, str], str]]] = {
    "docker": ("container", container),
}
"""Each resolver way -> the ``match`` field holding its members' rules and the function
parsing one (``(spec, key) -> rule``). A client the resolver finds answers to names
(:class:`~imdsmock.core.recognize.Workload`); they are looked up among these rules."""


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
    check_kubernetes(cfg.fleet)
    if "kubernetes" not in recognize:
        for m in cfg.instances:
            if m.match.pod:
                raise ConfigError(
                    f"instances.{m.name}.match.pod",
                    [_pod_shown(rule) for rule in m.match.pod],
                    "no pod rules, or fleet.recognize naming kubernetes (it names: "
                    + (", ".join(recognize) or "nothing")
                    + ")",
                )
    for m in cfg.instances:
        for resolver_way, (field, _parse) in RESOLVER_RULES.items():
            rules = getattr(m.match, field)
            if rules and resolver_way not in recognize:
                raise ConfigError(
                    f"instances.{m.name}.match.{field}",
                    list(rules),
                    f"no {field} rules, or fleet.recognize naming {resolver_way} (it names: "
                    + (", ".join(recognize) or "nothing")
                    + ")",
                )


def _rules(members: tuple[MemberConfig, ...]) -> Iterator[tuple[str, object, object]]:
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
        for i, rule in enumerate(m.match.pod):
            key = f"{prefix}.pod[{i}]"
            check_pod(rule, key)
            claim = (rule.namespace, rule.name, frozenset(rule.labels.items()))
            yield key, ("pod", claim), _pod_shown(rule)
        for field, parse in RESOLVER_RULES.values():
            for i, spec in enumerate(getattr(m.match, field)):
                key = f"{prefix}.{field}[{i}]"
                yield key, (field, parse(spec, key)), spec


def _pod_shown(rule: PodRule) -> dict[str, object]:
    """A pod rule as the configuration spells it (the keys it gives)."""
    shown: dict[str, object] = {}
    if rule.namespace is not None:
        shown["namespace"] = rule.namespace
    if rule.name is not None:
        shown["name"] = rule.name
    if rule.labels:
        shown["labels"] = dict(rule.labels)
    return shown
