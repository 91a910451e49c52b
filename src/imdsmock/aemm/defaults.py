"""AWS's Go mock's built-in defaults: its key set, default paths and default values.

amazon-ec2-metadata-mock (v1.13.0) ships these in
``pkg/config/defaults/aemm-metadata-default-values.json``; they are the interface its users
write config files against. :mod:`imdsmock.aemm.config` uses them to
tell an override from a restated default, and ``-s`` saves them merged with the user's values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imdsmock.config.defaults import AEMM_PUBLIC_KEY

__all__ = [
    "DEFAULTS",
    "DOCUMENT",
    "DOCUMENT_KEYS",
    "DYNAMIC",
    "EVENT_ID",
    "META",
    "SCENARIO_PATHS",
    "USER_DATA",
]

_MAC = "0e:49:61:0f:c3:11"
_M = f"meta-data/network/interfaces/macs/{_MAC}/"
_ROLE = "baskinc-role"
_EIA = "eia-bfa21c7904f64a82a21b9f4540169ce1"

# AEMM metadata key -> (default path under /latest/, default value, our config key or None).
# None means "served through a paths override"; the values are AEMM's defaults.
META: Mapping[str, tuple[str, Any, str | None]] = {
    "ami-id": ("meta-data/ami-id", "ami-0a887e401f7654935", "instance.ami-id"),
    "ami-launch-index": ("meta-data/ami-launch-index", "0", "instance.ami-launch-index"),
    "ami-manifest-path": ("meta-data/ami-manifest-path", "(unknown)", "instance.ami-manifest-path"),
    "block-device-mapping-ami": ("meta-data/block-device-mapping/ami", "/dev/xvda", "bdm.ami"),
    "block-device-mapping-ebs": ("meta-data/block-device-mapping/ebs0", "sdb", "bdm.ebs0"),
    "block-device-mapping-ephemeral": (
        "meta-data/block-device-mapping/ephemeral0",
        "sdb",
        "bdm.ephemeral0",
    ),
    "block-device-mapping-root": ("meta-data/block-device-mapping/root", "/dev/xvda", "bdm.root"),
    "block-device-mapping-swap": ("meta-data/block-device-mapping/swap", "sdcs", "bdm.swap"),
    "elastic-inference-associations": ("meta-data/elastic-inference/associations", _EIA, None),
    "elastic-inference-accelerator": (
        f"meta-data/elastic-inference/associations/{_EIA}",
        {
            "version_2018_04_12": {
                "elastic-inference-accelerator-id": _EIA,
                "elastic-inference-accelerator-type": "eia1.medium",
            }
        },
        None,
    ),
    "hostname": ("meta-data/hostname", "ip-172-16-34-43.ec2.internal", "instance.hostname"),
    "iam-info": (
        "meta-data/iam/info",
        {
            "Code": "Success",
            "LastUpdated": "2020-04-02T18:50:40Z",
            "InstanceProfileArn": f"arn:aws:iam::896453262835:instance-profile/{_ROLE}",
            "InstanceProfileId": "AIPA5BOGHHXZELSK34VU4",
        },
        None,
    ),
    "iam-security-credentials-role": (
        "meta-data/iam/security-credentials",
        _ROLE,
        "instance.iam-role",
    ),
    "iam-security-credentials": (
        f"meta-data/iam/security-credentials/{_ROLE}",
        {
            "Code": "Success",
            "LastUpdated": "2020-04-02T18:50:40Z",
            "Type": "AWS-HMAC",
            "AccessKeyId": "12345678901",
            "SecretAccessKey": "v/12345678901",
            "Token": "TEST92test48TEST+y6RpoTEST92test48TEST/8oWVAiBqTEsT5Ky7ty2tEStxC1T==",
            "Expiration": "2020-04-02T00:49:51Z",
        },
        None,
    ),
    "instance-action": ("meta-data/instance-action", "none", "instance.instance-action"),
    "instance-id": ("meta-data/instance-id", "i-1234567890abcdef0", "instance.instance-id"),
    "instance-life-cycle": (
        "meta-data/instance-life-cycle",
        "on-demand",
        "instance.instance-life-cycle",
    ),
    "instance-type": ("meta-data/instance-type", "m4.xlarge", "instance.instance-type"),
    "kernel-id": ("meta-data/kernel-id", "aki-5c21674b", "instance.kernel-id"),
    "local-hostname": ("meta-data/local-hostname", "ip-172-16-34-43.ec2.internal", None),
    "local-ipv4": ("meta-data/local-ipv4", "172.16.34.43", "instance.local-ipv4"),
    "mac": ("meta-data/mac", _MAC, "instance.mac"),
    "mac-device-number": (_M + "device-number", "0", None),
    "mac-ipv4-associations": (_M + "ipv4-associations/192.0.2.54", "192.0.2.54", None),
    "mac-ipv6-associations": (_M + "ipv6s", "2001:db8:8:4::2", "instance.ipv6"),
    "mac-local-hostname": (_M + "local-hostname", "ip-172-16-34-43.ec2.internal", None),
    "mac-local-ipv4s": (_M + "local-ipv4s", "172.16.34.43", None),
    "mac-mac": (_M + "mac", _MAC, None),
    "mac-network-interface-id": (
        _M + "interface-id",
        "eni-0f95d3625f5c521cc",
        "instance.interface-id",
    ),
    "mac-network-interface-card-index": (_M + "network-card-index", "0", None),
    "mac-owner-id": (_M + "owner-id", "515336597381", "instance.account-id"),
    "mac-public-hostname": (_M + "public-hostname", "ec2-192-0-2-54.compute-1.amazonaws.com", None),
    "mac-public-ipv4s": (_M + "public-ipv4s", "192.0.2.54", None),
    "mac-security-group-ids": (
        _M + "security-group-ids",
        "sg-0b07f8f6cb485d4df",
        "instance.security-group-ids",
    ),
    "mac-security-groups": (_M + "security-groups", "ura-launch-wizard-harry-1", None),
    "mac-subnet-id": (_M + "subnet-id", "subnet-0ac62554", "instance.subnet-id"),
    "mac-subnet-ipv4-cidr-block": (
        _M + "subnet-ipv4-cidr-block",
        "192.0.2.0/24",
        "instance.subnet-ipv4-cidr-block",
    ),
    "mac-subnet-ipv6-cidr-blocks": (
        _M + "subnet-ipv6-cidr-blocks",
        "2001:db8::/32",
        "instance.subnet-ipv6-cidr-blocks",
    ),
    "mac-vpc-id": (_M + "vpc-id", "vpc-d295a6a7", "instance.vpc-id"),
    "mac-vpc-ipv4-cidr-block": (_M + "vpc-ipv4-cidr-block", "192.0.2.0/24", None),
    "mac-vpc-ipv4-cidr-blocks": (
        _M + "vpc-ipv4-cidr-blocks",
        "192.0.2.0/24",
        "instance.vpc-ipv4-cidr-blocks",
    ),
    "mac-vpc-ipv6-cidr-blocks": (
        _M + "vpc-ipv6-cidr-blocks",
        "2001:db8::/32",
        "instance.vpc-ipv6-cidr-blocks",
    ),
    "placement-availability-zone": (
        "meta-data/placement/availability-zone",
        "us-east-1a",
        "instance.availability-zone",
    ),
    "placement-availability-zone-id": (
        "meta-data/placement/availability-zone-id",
        "use1-az4",
        "instance.availability-zone-id",
    ),
    "placement-group-name": (
        "meta-data/placement/group-name",
        "a-placement-group",
        "instance.placement-group-name",
    ),
    "placement-host-id": (
        "meta-data/placement/host-id",
        "h-0da999999f9999fb9",
        "instance.placement-host-id",
    ),
    "placement-partition-number": (
        "meta-data/placement/partition-number",
        "1",
        "instance.placement-partition-number",
    ),
    "placement-region": ("meta-data/placement/region", "us-east-1", "instance.region"),
    "product-codes": (
        "meta-data/product-codes",
        "3iplms73etrdhxdepv72l6ywj",
        "instance.product-codes",
    ),
    "public-hostname": (
        "meta-data/public-hostname",
        "ec2-192-0-2-54.compute-1.amazonaws.com",
        "instance.public-hostname",
    ),
    "public-ipv4": ("meta-data/public-ipv4", "192.0.2.54", "instance.public-ipv4"),
    "public-key": ("meta-data/public-keys/0/openssh-key", AEMM_PUBLIC_KEY, "public-key"),
    "ramdisk-id": ("meta-data/ramdisk-id", "ari-01bb5768", "instance.ramdisk-id"),
    "reservation-id": (
        "meta-data/reservation-id",
        "r-046cb3eca3e201d2f",
        "instance.reservation-id",
    ),
    "security-groups": (
        "meta-data/security-groups",
        "ura-launch-wizard-harry-1",
        "instance.security-groups",
    ),
    "services-domain": ("meta-data/services/domain", "amazonaws.com", None),
    "services-partition": ("meta-data/services/partition", "aws", None),
    "tags-instance-name": ("meta-data/tags/instance/Name", "test-instance", "tag.Name"),
    "tags-instance-test": ("meta-data/tags/instance/Test", "test-tag", "tag.Test"),
}
# Path-only keys: where the scenario paths live. They cannot move here (see docs).
SCENARIO_PATHS: Mapping[str, str] = {
    "events": "meta-data/events/maintenance/scheduled",
    "spot": "meta-data/spot/instance-action",
    "spot-termination-time": "meta-data/spot/termination-time",
    "rebalance-rec-time": "meta-data/events/recommendations/rebalance",
    "target-lifecycle-state": "meta-data/autoscaling/target-lifecycle-state",
}
EVENT_ID = "instance-event-1234567890abcdef0"
# AEMM's default identity document (its account, zone, IP and AMI disagree with its own
# meta-data; here the document is derived from the instance facts instead).
DOCUMENT: Mapping[str, Any] = {
    "accountId": "0123456789",
    "imageId": "ami-0b69ea66ff7391e80",
    "availabilityZone": "us-east-1f",
    "ramdiskId": None,
    "kernelId": None,
    "devpayProductCodes": None,
    "marketplaceProductCodes": None,
    "version": "2017-09-30",
    "privateIp": "10.0.7.10",
    "billingProducts": None,
    "instanceId": "i-1234567890abcdef0",
    "pendingTime": "2019-10-31T07:02:24Z",
    "architecture": "x86_64",
    "instanceType": "m4.xlarge",
    "region": "us-east-1",
}
# Identity-document field -> our instance key (the document is built from the facts).
DOCUMENT_KEYS: Mapping[str, str] = {
    "accountId": "account-id",
    "imageId": "ami-id",
    "availabilityZone": "availability-zone",
    "privateIp": "local-ipv4",
    "instanceId": "instance-id",
    "instanceType": "instance-type",
    "region": "region",
    "kernelId": "kernel-id",
    "ramdiskId": "ramdisk-id",
    "architecture": "architecture",
    "pendingTime": "pending-time",
}
DYNAMIC: Mapping[str, tuple[str, Any]] = {
    "instance-identity-document": ("dynamic/instance-identity/document", DOCUMENT),
    "instance-identity-pkcs": ("dynamic/instance-identity/pkcs7", None),
    "instance-identity-signature": ("dynamic/instance-identity/signature", None),
    "fws-instance-monitoring": ("dynamic/fws/instance-monitoring", "disabled"),
}
USER_DATA = "MTIzNCxqb2huLHJlYm9vdCx0cnVlCg=="


def _defaults() -> dict[str, Any]:
    meta_paths = {k: "/latest/" + p for k, (p, _v, _c) in META.items()}
    meta_paths.update({k: "/latest/" + p for k, p in SCENARIO_PATHS.items()})
    meta_values = {k: v for k, (_p, v, _c) in META.items()}
    meta_values["event-id"] = EVENT_ID
    return {
        "metadata": {"paths": meta_paths, "values": meta_values},
        "dynamic": {
            "paths": {k: "/latest/" + p for k, (p, _v) in DYNAMIC.items()},
            "values": {k: v for k, (_p, v) in DYNAMIC.items() if v is not None},
        },
        "userdata": {
            "paths": {"userdata": "/latest/user-data"},
            "values": {"userdata": USER_DATA},
        },
        "spot": {"action": "terminate", "time": "", "rebalance-rec-time": ""},
        "events": {
            "code": "system-reboot",
            "state": "active",
            "not-after": "",
            "not-before": "",
            "not-before-deadline": "",
        },
        "server": {"hostname": "0.0.0.0", "port": "1338"},
        "imdsv2": False,
        "mock-delay-sec": 0,
        "mock-trigger-time": "",
        "mock-ip-count": 2,
        "rebalance-delay-sec": 0,
        "rebalance-trigger-time": "",
        "asg-termination-delay-sec": 0,
        "asg-termination-trigger-time": "",
        "save-config-to-file": False,
        "watch-config-file": False,
        "config-file": "",
    }


DEFAULTS: Mapping[str, Any] = _defaults()
