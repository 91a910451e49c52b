"""The fleet's template: an instance of its own for each client a resolver recognises and
no instance matches, derived from the client's key.

The key is what stays the same when the client is started again: a container's name or
compose ``PROJECT.SERVICE-NUMBER``, a pod's ``NAMESPACE/NAME``, a client's address (way
``source``: any client nothing else recognised, in ``template.source`` when given). From
it (a SHA-256 of the way and the key) come the instance's name, its instance ID,
reservation ID, MAC and ENI ID, its private IPv4 address in the subnet (``subnet-
ipv4-cidr-block``), its public IPv4 address in the /24 of the top level's (when it has
one), its IPv6 address in the /64 of the top level's (when it has one) and its ``Name``
tag: so a container started again under the same name is the same instance, with the same
identity. Host names are derived from the addresses, as for any instance. Two keys landing
on one address (or name) are told apart by taking the next free one: the later one's
address then depends on the order the clients came in (a subnet much larger than the fleet
makes that rare).

Everything else is the top level's, with the template's ``instance``, ``options`` and
``paths`` keys over it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Collection
from typing import Any

from imdsmock.config.fleet import DEFAULT_NAME, source
from imdsmock.config.schema import Config, MemberConfig
from imdsmock.errors import ConfigError

__all__ = ["DERIVED", "TemplateFullError", "check_template", "derive", "member_name"]

DERIVED = ("instance-id", "reservation-id", "mac", "interface-id", "local-ipv4")
"""Instance keys the template derives for each client (it may not set them)."""
NULLABLE = ("public-ipv4", "ipv6")
"""Instance keys it derives unless it sets them to null (no such address)."""

_NOT_NAME = re.compile(r"[^a-z0-9._-]+")


class TemplateFullError(ConfigError):
    """No address (or name) is left for one more instance of the template."""


def _digest(way: str, key: str, salt: int = 0) -> bytes:
    return hashlib.sha256(f"imdsmock-template\0{way}\0{key}\0{salt}".encode()).digest()


def member_name(way: str, key: str, taken: Collection[str]) -> str:
    """The instance name of a key: the key in lower case, a pod's ``/`` as ``.``
    (``shop/web-0``: ``shop.web-0``); a key holding what a name cannot (turned to ``-``),
    longer than 63 or whose name is taken gets a hash of the key added."""
    spelt = key.lower().replace("/", ".")
    base = _NOT_NAME.sub("-", spelt).strip("-._") or "client"
    if base == spelt and len(base) <= 63 and base not in taken and base != DEFAULT_NAME:
        return base
    tag = _digest(way, key).hex()[:8]
    return f"{base[:54].rstrip('-._') or 'client'}-{tag}"


def derive(
    top: Config,
    way: str,
    key: str,
    *,
    taken_names: Collection[str] = (),
    taken_addresses: Collection[str] = (),
    name: str | None = None,
) -> MemberConfig:
    """The member the template makes for the client of ``way`` known by ``key``.

    ``taken_names`` and ``taken_addresses`` are those of the fleet's other instances
    (skipped); ``name`` keeps a name given before. Raises :class:`TemplateFullError`
    when the subnet has no free address left.
    """
    template = top.template
    given = dict(template.instance)
    digest = _digest(way, key)
    hexed = digest.hex()
    tags = {**top.instance.tags, **given.get("tags", {})}
    if "Name" not in given.get("tags", {}):
        tags["Name"] = key
    derived: dict[str, Any] = {
        "instance-id": "i-0" + hexed[:16],
        "reservation-id": "r-0" + hexed[16:32],
        "interface-id": "eni-0" + hexed[32:48],
        "mac": "0e:" + ":".join(f"{b:02x}" for b in digest[24:29]),
        "hostname": None,
        "public-hostname": None,
        "tags": tags,
    }
    subnet = given.get("subnet-ipv4-cidr-block", top.instance.subnet_ipv4_cidr_block)
    taken = set(taken_addresses)
    derived["local-ipv4"] = _address(
        ipaddress.IPv4Network(subnet, strict=False), way, key, taken, first=4, last=2
    )
    public = given.get("public-ipv4", top.instance.public_ipv4)
    if public is not None and "public-ipv4" not in given:
        network = ipaddress.IPv4Network(f"{public}/24", strict=False)
        derived["public-ipv4"] = _address(network, way, "public " + key, taken, first=1, last=1)
    ipv6 = given.get("ipv6", top.instance.ipv6)
    if ipv6 is not None and "ipv6" not in given:
        network6 = ipaddress.IPv6Network(f"{ipv6}/64", strict=False)
        host = int.from_bytes(digest[8:16]) or 1
        derived["ipv6"] = str(network6.network_address + host)
    return MemberConfig(
        name=name or member_name(way, key, taken_names),
        instance={**given, **derived},
        options=dict(template.options),
        paths=dict(template.paths),
    )


def _address(
    network: ipaddress.IPv4Network, way: str, key: str, taken: set[str], *, first: int, last: int
) -> str:
    """An address of ``network`` for ``key``, skipping ``first`` addresses at its start and
    ``last`` at its end (AWS reserves the first four of a subnet and its last) and those
    ``taken`` (the next one is tried)."""
    size = network.num_addresses - first - last
    if size <= 0:
        raise TemplateFullError(
            "template.instance.subnet-ipv4-cidr-block", str(network), "a subnet of /29 or larger"
        )
    start = int.from_bytes(_digest(way, key)[:8]) % size
    for step in range(size):
        address = str(network.network_address + first + (start + step) % size)
        if address not in taken:
            taken.add(address)
            return address
    raise TemplateFullError(
        "template.instance.subnet-ipv4-cidr-block",
        str(network),
        f"a subnet with a free address for one more instance (all {size} are taken)",
    )


def check_template(cfg: Config) -> None:
    """Raise :class:`ConfigError` for what the template may not be: a derived key set, a
    way ``fleet.recognize`` does not name; an instance it would make is then checked as any
    instance is (by the caller)."""
    template = cfg.template
    for index, way in enumerate(template.ways):
        if way != "source" and way not in cfg.fleet.recognize:
            raise ConfigError(
                f"template.ways[{index}]",
                way,
                "source, or a way fleet.recognize names (it names: "
                + (", ".join(cfg.fleet.recognize) or "nothing")
                + ")",
            )
        if way in template.ways[:index]:
            raise ConfigError(f"template.ways[{index}]", way, "each way named once")
    for index, spec in enumerate(template.source):
        source(spec, f"template.source[{index}]")
    if template.source and "source" not in template.ways:
        raise ConfigError(
            "template.source", list(template.source), "no addresses, or source in template.ways"
        )
    for key, value in template.instance.items():
        if key in DERIVED or (key in NULLABLE and value is not None):
            raise ConfigError(
                f"template.instance.{key}",
                value,
                "no value: each client's is derived from its key"
                + (" (null: none)" if key in NULLABLE else ""),
            )
