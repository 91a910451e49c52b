"""A captured tree -> the ``instance`` keys it shows, as a configuration file spells them.

Each fact is read where meta-data shows it (:data:`~imdsmock.instance.facts.FACT_PATHS`),
else from the identity document; the primary interface (the one whose MAC is
``meta-data/mac``) gives the instance's network keys, the others become
``instance.interfaces`` entries. A fact the tree does not show at all is written as the
key's "none" (``kernel-id: null``, ``tags: {}``) where the key has one, so the copy does
not show the mock's default instead. Nothing here decides what is worth writing: the keys
are checked and pared down by :mod:`imdsmock.capture.reproduce`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from imdsmock.capture.walk import Captured
from imdsmock.config.regions import known_zones
from imdsmock.config.rules import REGION_PATTERN, ZONE_PATTERN
from imdsmock.instance.facts import FACT_PATHS

__all__ = ["DOCUMENT", "document", "instance_keys"]

DOCUMENT = "dynamic/instance-identity/document"
_MACS = "meta-data/network/interfaces/macs/"

# Keys whose served value is a number, or lines of a list.
_INTEGERS = frozenset({"ami-launch-index", "placement-partition-number"})
_LISTS = frozenset({"product-codes", "security-groups"})
# Keys that are null (the path absent) when the tree does not show them.
_NULLABLE = frozenset(
    {
        "kernel-id",
        "ramdisk-id",
        "public-ipv4",
        "ipv6",
        "placement-group-name",
        "placement-host-id",
        "placement-partition-number",
    }
)
# Keys the identity document shows, for facts meta-data does not.
_FROM_DOCUMENT = {
    "instanceId": "instance-id",
    "instanceType": "instance-type",
    "imageId": "ami-id",
    "privateIp": "local-ipv4",
    "region": "region",
    "availabilityZone": "availability-zone",
    "accountId": "account-id",
    "architecture": "architecture",
    "pendingTime": "pending-time",
}
# An interface's leaves that are its own keys (text, or lines of a list).
_ENI_TEXT = ("interface-id", "subnet-id", "subnet-ipv4-cidr-block", "vpc-id")
_ENI_LISTS = (
    "local-ipv4s",
    "public-ipv4s",
    "ipv6s",
    "subnet-ipv6-cidr-blocks",
    "vpc-ipv6-cidr-blocks",
    "security-groups",
    "security-group-ids",
)


def _text(c: Captured, path: str) -> str | None:
    leaf = c.leaves.get(path)
    if leaf is None:
        return None
    try:
        return leaf.body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line]


def document(c: Captured) -> dict[str, Any] | None:
    """The identity document as a mapping, or None when there is none (or it is no object)."""
    text = _text(c, DOCUMENT)
    if text is None:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def instance_keys(c: Captured, *, user_data: bool) -> dict[str, Any]:
    """The ``instance`` section the captured tree shows (file-shaped, dashed keys)."""
    keys: dict[str, Any] = {}
    for path, key in FACT_PATHS.items():
        text = _text(c, path)
        if key == "hostname" and (key in keys or text is None):
            continue  # meta-data/hostname first, else local-hostname
        if text is None:
            if key in _NULLABLE:
                keys[key] = None
            elif key in _LISTS:
                keys[key] = []
        elif key in _INTEGERS:
            if text.isdigit() and len(text) < 10:
                keys[key] = int(text)
        elif key in _LISTS:
            keys[key] = _lines(text)
        else:
            keys[key] = text
    doc = document(c) or {}
    for field, key in _FROM_DOCUMENT.items():
        value = doc.get(field)
        if key not in keys and isinstance(value, str):
            keys[key] = value
    _unknown_regions(keys)
    _network(c, keys)
    _iam(c, keys)
    keys["tags"] = {
        path.rpartition("/")[2]: text
        for path in c.leaves
        if path.startswith("meta-data/tags/instance/")
        and path.count("/") == 3
        and (text := _text(c, path)) is not None
    }
    keys["public-keys"] = _public_keys(c)
    keys["block-device-mapping"] = {
        path.rpartition("/")[2]: text
        for path in c.leaves
        if path.startswith("meta-data/block-device-mapping/")
        and path.count("/") == 2
        and (text := _text(c, path)) is not None
    }
    _user_data(c, keys, user_data)
    return keys


def _unknown_regions(keys: dict[str, Any]) -> None:
    """Take a region or zone missing from the known list when it is spelt as one."""
    region, zone = keys.get("region"), keys.get("availability-zone")
    known = known_zones()
    zones = {z for names in known.values() for z in names}
    if (isinstance(region, str) and region not in known and REGION_PATTERN.fullmatch(region)) or (
        isinstance(zone, str) and zone not in zones and ZONE_PATTERN.fullmatch(zone)
    ):
        keys["allow-unknown-regions"] = True


def _interfaces(c: Captured) -> dict[str, dict[str, str]]:
    """MAC -> the text of each leaf under it (``ipv4-associations/1.2.3.4`` included)."""
    found: dict[str, dict[str, str]] = {}
    for path in c.leaves:
        if path.startswith(_MACS):
            mac, _, sub = path[len(_MACS) :].partition("/")
            text = _text(c, path)
            if sub and text is not None:
                found.setdefault(mac, {})[sub] = text
    return found


def _device_number(leaves: Mapping[str, str]) -> int:
    text = leaves.get("device-number", "")
    return int(text) if text.isdigit() and len(text) < 10 else 1_000_000


def _network(c: Captured, keys: dict[str, Any]) -> None:
    enis = _interfaces(c)
    if not enis:
        return
    primary = keys.get("mac")
    if primary not in enis:
        primary = min(enis, key=lambda mac: _device_number(enis[mac]))
        keys.setdefault("mac", primary)
    own = enis[primary]
    for name in ("interface-id", "subnet-id", "subnet-ipv4-cidr-block", "vpc-id"):
        if name in own:
            keys[name] = own[name]
    for name in ("subnet-ipv6-cidr-blocks", "vpc-ipv6-cidr-blocks", "security-group-ids"):
        keys[name] = _lines(own.get(name, ""))
    blocks = own.get("vpc-ipv4-cidr-blocks", own.get("vpc-ipv4-cidr-block", ""))
    keys["vpc-ipv4-cidr-blocks"] = _lines(blocks)
    if "security-groups" not in keys or not keys["security-groups"]:
        keys["security-groups"] = _lines(own.get("security-groups", ""))
    if "account-id" not in keys and "owner-id" in own:
        keys["account-id"] = own["owner-id"]
    others = sorted((mac for mac in enis if mac != primary), key=lambda m: _device_number(enis[m]))
    keys["interfaces"] = [_interface(mac, enis[mac]) for mac in others]


def _interface(mac: str, leaves: Mapping[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"mac": mac}
    number = _device_number(leaves)
    if number < 1_000_000:
        entry["device-number"] = number
    for name in _ENI_TEXT:
        if name in leaves:
            entry[name] = leaves[name]
    for name in _ENI_LISTS:
        entry[name] = _lines(leaves.get(name, ""))
    blocks = leaves.get("vpc-ipv4-cidr-blocks", leaves.get("vpc-ipv4-cidr-block", ""))
    entry["vpc-ipv4-cidr-blocks"] = _lines(blocks)
    card = leaves.get("network-card-index", "")
    if card.isdigit() and len(card) < 10:
        entry["network-card-index"] = int(card)
    return entry


def _iam(c: Captured, keys: dict[str, Any]) -> None:
    listing = c.listings.get("meta-data/iam/security-credentials")
    roles = _lines(listing.decode("utf-8", "replace")) if listing is not None else []
    keys["iam-role"] = roles[0].strip() if roles else None
    info = _text(c, "meta-data/iam/info")
    try:
        parsed = json.loads(info) if info is not None else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("InstanceProfileId"), str):
        keys["instance-profile-id"] = parsed["InstanceProfileId"]


def _public_keys(c: Captured) -> dict[str, str]:
    """Key name -> key, when the listing names them ``N=name`` with N = 0, 1, ... in order
    and each has its ``openssh-key``; else none (the keys' paths are then copied as paths)."""
    prefix = "meta-data/public-keys/"
    named = [(d[len(prefix) :], name) for d, name in c.labels.items() if d.startswith(prefix)]
    keys: dict[str, str] = {}
    for expected, (index, name) in enumerate(named):
        key = _text(c, f"{prefix}{index}/openssh-key")
        if index != str(expected) or key is None or name in keys:
            return {}
        keys[name] = key
    return keys


def _user_data(c: Captured, keys: dict[str, Any], wanted: bool) -> None:
    leaf = c.leaves.get("user-data") if wanted else None
    if leaf is None:
        keys["user-data-base64"] = None
        return
    try:
        keys["user-data"] = leaf.body.decode("utf-8")
    except UnicodeDecodeError:
        keys["user-data-base64"] = base64.b64encode(leaf.body).decode("ascii")
