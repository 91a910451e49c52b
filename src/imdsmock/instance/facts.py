"""The instance's facts as a user addresses them: by served path, or as derived values.

A fact of the instance (its ID, type, region, addresses ...) shows at one path or more and
usually in other documents too: the identity document and its signatures, host names,
``iam/info``'s ARN. :data:`FACT_PATHS` names the ``instance.*`` key each path shows as is,
so a run-time edit of that path can change the key (and with it every place that shows
it); :data:`DERIVED_PATHS` names the paths built from several facts, which only change with
them. :func:`derived_values` gives the values served for keys left null.
"""

from __future__ import annotations

from collections.abc import Mapping

from imdsmock.config.schema import InstanceConfig
from imdsmock.instance.model import facts

__all__ = ["DERIVED_PATHS", "FACT_PATHS", "derived_from", "derived_values"]

# Served path (relative to the version root) -> the instance key it shows, as is.
FACT_PATHS: Mapping[str, str] = {
    "meta-data/ami-id": "ami-id",
    "meta-data/ami-launch-index": "ami-launch-index",
    "meta-data/ami-manifest-path": "ami-manifest-path",
    "meta-data/hostname": "hostname",
    "meta-data/local-hostname": "hostname",
    "meta-data/public-hostname": "public-hostname",
    "meta-data/instance-action": "instance-action",
    "meta-data/instance-id": "instance-id",
    "meta-data/instance-life-cycle": "instance-life-cycle",
    "meta-data/instance-type": "instance-type",
    "meta-data/ipv6": "ipv6",
    "meta-data/kernel-id": "kernel-id",
    "meta-data/ramdisk-id": "ramdisk-id",
    "meta-data/product-codes": "product-codes",
    "meta-data/local-ipv4": "local-ipv4",
    "meta-data/public-ipv4": "public-ipv4",
    "meta-data/mac": "mac",
    "meta-data/reservation-id": "reservation-id",
    "meta-data/security-groups": "security-groups",
    "meta-data/placement/availability-zone": "availability-zone",
    "meta-data/placement/availability-zone-id": "availability-zone-id",
    "meta-data/placement/region": "region",
    "meta-data/placement/group-name": "placement-group-name",
    "meta-data/placement/host-id": "placement-host-id",
    "meta-data/placement/partition-number": "placement-partition-number",
    "dynamic/fws/instance-monitoring": "monitoring",
}

# Paths (and everything under them) built from several facts -> the keys they follow.
DERIVED_PATHS: Mapping[str, str] = {
    "dynamic/instance-identity": "the instance's facts and signed (instance.identity-document "
    "adds fields)",
    "meta-data/services": "instance.region",
    "meta-data/iam": "instance.iam-role, instance.instance-profile-id and instance.account-id",
    "meta-data/identity-credentials": "instance.account-id",
    "meta-data/network": "the instance's addresses and instance.interfaces",
}


def derived_from(path: str) -> str | None:
    """What a path built from several facts follows (in words); None for any other path."""
    for prefix, keys in DERIVED_PATHS.items():
        if path == prefix or path.startswith(prefix + "/"):
            return keys
    return None


def derived_values(inst: InstanceConfig) -> dict[str, str]:
    """The value served for each instance key left null that is derived from the others.

    Keys are as in the ``instance`` section (``availability-zone``); a key with a value of
    its own, or one left null that serves nothing (no public address), is left out.
    """
    f = facts(inst, 0.0)
    served = {
        "region": f.region,
        "availability-zone": f.availability_zone,
        "availability-zone-id": f.availability_zone_id,
        "hostname": f.hostname,
        "public-hostname": f.public_hostname,
    }
    return {
        key: value
        for key, value in served.items()
        if value is not None and getattr(inst, key.replace("-", "_")) is None
    }
