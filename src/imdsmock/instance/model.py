"""One realistic, self-consistent instance: configuration -> a tree of IMDS leaves.

The tree is a flat mapping from a path relative to a version root (``meta-data/ami-id``,
``dynamic/instance-identity/document``, ``user-data``) to a :class:`Leaf`. Listings are
not stored: :mod:`imdsmock.core.table` derives them from the leaves, so a path added by a user
shows up in its parent listing by construction.

Every category is derived from the same facts, so the identity document's region, zone,
private IP, account, AMI and instance type always agree with meta-data (AWS's Go mock's
defaults contradict each other).
"""

from __future__ import annotations

import calendar
import dataclasses
import hashlib
import ipaddress
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from imdsmock.config.inputs import normal_path
from imdsmock.config.schema import Config, InstanceConfig, InterfaceConfig
from imdsmock.instance.credentials import CredentialSet, failure_document
from imdsmock.instance.imdsjson import dumps, imds_time
from imdsmock.signing.signer import Signer

__all__ = [
    "INSTANCE_CREDENTIALS",
    "OCTET",
    "TEXT",
    "Facts",
    "Leaf",
    "Tree",
    "apply_paths",
    "base_tree",
    "credential_leaves",
    "facts",
    "identity_document",
    "listing_overrides",
    "role_document_paths",
]

TEXT = "text/plain"
OCTET = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Leaf:
    """A served value: its exact bytes and content type."""

    body: bytes
    content_type: str = TEXT

    @classmethod
    def text(cls, value: str) -> Leaf:
        """A text/plain leaf."""
        return cls(value.encode())


Tree = dict[str, Leaf]


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """The derived facts every category shares."""

    region: str
    availability_zone: str
    availability_zone_id: str
    partition: str
    domain: str
    hostname: str
    public_hostname: str | None
    launched: float


def facts(inst: InstanceConfig, started: float) -> Facts:
    """Derive region, zone, partition and host names from the configured facts."""
    if inst.region is not None:
        region = inst.region
    elif inst.availability_zone is not None:
        region = inst.availability_zone[:-1]
    else:
        region = "us-east-1"
    zone = inst.availability_zone or region + "a"
    partition, domain = _partition(region)
    return Facts(
        region=region,
        availability_zone=zone,
        availability_zone_id=inst.availability_zone_id or _zone_id(zone),
        partition=partition,
        domain=domain,
        hostname=inst.hostname or _private_dns(inst.local_ipv4, region),
        public_hostname=(
            inst.public_hostname
            if inst.public_hostname is not None
            else (_public_dns(inst.public_ipv4, region, domain) if inst.public_ipv4 else None)
        ),
        launched=_parse_time(inst.pending_time) if inst.pending_time else started,
    )


def _partition(region: str) -> tuple[str, str]:
    if region.startswith("cn-"):
        return "aws-cn", "amazonaws.com.cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov", "amazonaws.com"
    return "aws", "amazonaws.com"


_DIRECTIONS = {
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
    "central": "c",
    "northeast": "ne",
    "northwest": "nw",
    "southeast": "se",
    "southwest": "sw",
}


def _zone_id(zone: str) -> str:
    # The Go mock's default pairs us-east-1a with use1-az4; keep that, number the rest.
    if zone == "us-east-1a":
        return "use1-az4"
    region, letter = zone[:-1], zone[-1]
    parts = region.split("-")
    short = parts[0] + "".join(_DIRECTIONS.get(p, p[:1]) for p in parts[1:-1]) + parts[-1]
    return f"{short}-az{ord(letter) - ord('a') + 1}"


def _private_dns(ip: str, region: str) -> str:
    dashed = ip.replace(".", "-")
    if region == "us-east-1":
        return f"ip-{dashed}.ec2.internal"
    return f"ip-{dashed}.{region}.compute.internal"


def _public_dns(ip: str, region: str, domain: str) -> str:
    dashed = ip.replace(".", "-")
    if region == "us-east-1":
        return f"ec2-{dashed}.compute-1.{domain}"
    return f"ec2-{dashed}.{region}.compute.{domain}"


def _parse_time(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


def identity_document(inst: InstanceConfig, f: Facts) -> dict[str, object]:
    """The instance identity document, fields in the order EC2 prints them.

    ``instance.identity-document`` fields replace derived ones in place; new ones follow.
    """
    return {
        "accountId": inst.account_id,
        "architecture": inst.architecture,
        "availabilityZone": f.availability_zone,
        "billingProducts": None,
        "devpayProductCodes": None,
        "marketplaceProductCodes": list(inst.product_codes) or None,
        "imageId": inst.ami_id,
        "instanceId": inst.instance_id,
        "instanceType": inst.instance_type,
        "kernelId": inst.kernel_id,
        "pendingTime": imds_time(f.launched),
        "privateIp": inst.local_ipv4,
        "ramdiskId": inst.ramdisk_id,
        "region": f.region,
        "version": "2017-09-30",
    } | dict(inst.identity_document)


def base_tree(cfg: Config, signer: Signer | None, started: float) -> Tree:
    """Every leaf that does not change with time, for the configured instance.

    Without a ``signer`` the signed leaves (``signature``, ``pkcs7``, ``rsa2048``) are left
    out: ``imdsmock capture`` compares a captured tree with the rest.
    """
    inst = cfg.instance
    f = facts(inst, started)
    t: Tree = {}

    def put(path: str, value: str | None) -> None:
        if value is not None:
            t[path] = Leaf.text(value)

    md = "meta-data/"
    put(md + "ami-id", inst.ami_id)
    put(md + "ami-launch-index", str(inst.ami_launch_index))
    put(md + "ami-manifest-path", inst.ami_manifest_path)
    for name, device in inst.block_device_mapping.items():
        put(f"{md}block-device-mapping/{name}", device)
    put(md + "events/maintenance/scheduled", "[ ]")
    put(md + "events/maintenance/history", "[ ]")
    put(md + "hostname", f.hostname)
    put(md + "local-hostname", f.hostname)
    put(md + "public-hostname", f.public_hostname)
    put(md + "instance-action", inst.instance_action)
    put(md + "instance-id", inst.instance_id)
    put(md + "instance-life-cycle", inst.instance_life_cycle)
    put(md + "instance-type", inst.instance_type)
    put(md + "ipv6", inst.ipv6)
    put(md + "kernel-id", inst.kernel_id)
    put(md + "ramdisk-id", inst.ramdisk_id)
    if inst.product_codes:
        put(md + "product-codes", "\n".join(inst.product_codes))
    put(md + "local-ipv4", inst.local_ipv4)
    put(md + "public-ipv4", inst.public_ipv4)
    put(md + "mac", inst.mac)
    put(md + "metrics/vhostmd", '<?xml version="1.0" encoding="UTF-8"?>')
    put(md + "reservation-id", inst.reservation_id)
    put(md + "security-groups", "\n".join(inst.security_groups))
    put(md + "services/domain", f.domain)
    put(md + "services/partition", f.partition)
    put(md + "placement/availability-zone", f.availability_zone)
    put(md + "placement/availability-zone-id", f.availability_zone_id)
    put(md + "placement/region", f.region)
    put(md + "placement/group-name", inst.placement_group_name)
    put(md + "placement/host-id", inst.placement_host_id)
    if inst.placement_partition_number is not None:
        put(md + "placement/partition-number", str(inst.placement_partition_number))
    for index, key in enumerate(inst.public_keys.values()):
        put(f"{md}public-keys/{index}/openssh-key", key)
    if cfg.options.instance_metadata_tags == "enabled":
        for name, value in inst.tags.items():
            put(f"{md}tags/instance/{name}", value)
    for eni in interfaces(inst, f):
        for sub, item in _interface_leaves(eni, inst, f):
            put(f"{md}network/interfaces/macs/{eni.mac}/{sub}", item)
    if inst.iam_role is not None:
        arn = f"arn:{f.partition}:iam::{inst.account_id}:instance-profile/{inst.iam_role}"
        put(
            md + "iam/info",
            _info(f, InstanceProfileArn=arn, InstanceProfileId=inst.instance_profile_id),
        )
    put(md + "identity-credentials/ec2/info", _info(f, AccountId=inst.account_id))
    document = dumps(identity_document(inst, f)).encode()
    t["dynamic/instance-identity/document"] = Leaf(document)
    if signer is not None:
        put("dynamic/instance-identity/signature", signer.signature(document))
        pkcs7 = signer.pkcs7(document)
        put("dynamic/instance-identity/pkcs7", pkcs7)
        put("dynamic/instance-identity/rsa2048", pkcs7)
    put("dynamic/fws/instance-monitoring", inst.monitoring)
    data = inst.user_data_bytes()
    if data is not None:
        t["user-data"] = Leaf(data, OCTET)
    return t


def _info(f: Facts, **fields: str) -> str:
    """An ``iam/info`` or ``identity-credentials/ec2/info`` body: success, launch time, fields."""
    return dumps({"Code": "Success", "LastUpdated": imds_time(f.launched), **fields})


def listing_overrides(cfg: Config) -> dict[str, str]:
    """Listings that are not the children's names: ``public-keys/`` lists ``0=name``."""
    keys = cfg.instance.public_keys
    if not keys:
        return {}
    return {"meta-data/public-keys": "\n".join(f"{i}={n}" for i, n in enumerate(keys))}


def interfaces(inst: InstanceConfig, f: Facts) -> Iterator[InterfaceConfig]:
    """The primary interface (from the instance's own fields), then the extra ones."""
    yield InterfaceConfig(
        mac=inst.mac,
        device_number=0,
        interface_id=inst.interface_id,
        local_ipv4s=(inst.local_ipv4,),
        public_ipv4s=(inst.public_ipv4,) if inst.public_ipv4 else (),
        ipv6s=(inst.ipv6,) if inst.ipv6 else (),
        subnet_id=inst.subnet_id,
        subnet_ipv4_cidr_block=inst.subnet_ipv4_cidr_block,
        subnet_ipv6_cidr_blocks=inst.subnet_ipv6_cidr_blocks,
        vpc_id=inst.vpc_id,
        vpc_ipv4_cidr_blocks=inst.vpc_ipv4_cidr_blocks,
        vpc_ipv6_cidr_blocks=inst.vpc_ipv6_cidr_blocks,
        security_groups=inst.security_groups,
        security_group_ids=inst.security_group_ids,
    )
    for number, eni in enumerate(inst.interfaces, start=1):
        yield eni if eni.device_number is not None else _with_number(eni, number)


def _with_number(eni: InterfaceConfig, number: int) -> InterfaceConfig:
    return dataclasses.replace(eni, device_number=number)


def _interface_leaves(
    eni: InterfaceConfig, inst: InstanceConfig, f: Facts
) -> Iterator[tuple[str, str | None]]:
    local = eni.local_ipv4s or (_next_ip(inst.local_ipv4, eni.device_number or 1),)
    yield "device-number", str(eni.device_number)
    yield "interface-id", eni.interface_id or "eni-" + _hex_from(eni.mac, 17)
    for public, private in zip(eni.public_ipv4s, local, strict=False):
        yield f"ipv4-associations/{public}", private
    if eni.ipv6s:
        yield "ipv6s", "\n".join(eni.ipv6s)
    yield "local-hostname", _private_dns(local[0], f.region)
    yield "local-ipv4s", "\n".join(local)
    yield "mac", eni.mac
    yield "network-card-index", str(eni.network_card_index)
    yield "owner-id", inst.account_id
    if eni.public_ipv4s:
        yield "public-hostname", _public_dns(eni.public_ipv4s[0], f.region, f.domain)
        yield "public-ipv4s", "\n".join(eni.public_ipv4s)
    yield "security-group-ids", "\n".join(eni.security_group_ids or inst.security_group_ids)
    yield "security-groups", "\n".join(eni.security_groups or inst.security_groups)
    yield "subnet-id", eni.subnet_id or inst.subnet_id
    yield "subnet-ipv4-cidr-block", (eni.subnet_ipv4_cidr_block or inst.subnet_ipv4_cidr_block)
    v6_subnets = eni.subnet_ipv6_cidr_blocks or inst.subnet_ipv6_cidr_blocks
    if v6_subnets:
        yield "subnet-ipv6-cidr-blocks", "\n".join(v6_subnets)
    yield "vpc-id", eni.vpc_id or inst.vpc_id
    v4_blocks = eni.vpc_ipv4_cidr_blocks or inst.vpc_ipv4_cidr_blocks
    yield "vpc-ipv4-cidr-block", v4_blocks[0] if v4_blocks else None
    yield "vpc-ipv4-cidr-blocks", "\n".join(v4_blocks) if v4_blocks else None
    v6_blocks = eni.vpc_ipv6_cidr_blocks or inst.vpc_ipv6_cidr_blocks
    if v6_blocks:
        yield "vpc-ipv6-cidr-blocks", "\n".join(v6_blocks)


def _next_ip(ip: str, offset: int) -> str:
    return str(ipaddress.ip_address(ip) + 10 * offset)


def _hex_from(text: str, size: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


INSTANCE_CREDENTIALS = "meta-data/identity-credentials/ec2/security-credentials/ec2-instance"


def role_document_paths(cfg: Config) -> tuple[str, ...]:
    """Where the role's credential documents are served: none without a role."""
    role = cfg.instance.iam_role
    if role is None:
        return ()
    if not cfg.credentials.extended:
        return (f"meta-data/iam/security-credentials/{role}",)
    return (
        f"meta-data/iam/security-credentials/{role}",
        f"meta-data/iam/security-credentials-extended/{role}",
    )


def credential_leaves(cfg: Config, creds: CredentialSet, instance_creds: CredentialSet) -> Tree:
    """Role and instance-identity credential documents for one rotation epoch.

    The paths are :func:`role_document_paths` and :data:`INSTANCE_CREDENTIALS`.
    """
    t: Tree = {}
    doc = _credential_document(creds)
    for path in role_document_paths(cfg):
        t[path] = Leaf.text(dumps(doc))
        doc = {**doc, "AccountId": cfg.instance.account_id}  # the extended document
    t[INSTANCE_CREDENTIALS] = Leaf.text(dumps(_credential_document(instance_creds)))
    return t


def _credential_document(creds: CredentialSet) -> dict[str, object]:
    if creds.code != "Success":
        return failure_document(creds)
    return {
        "Code": "Success",
        "LastUpdated": imds_time(creds.last_updated),
        "Type": "AWS-HMAC",
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "Token": creds.token,
        "Expiration": imds_time(creds.expiration),
    }


def apply_paths(tree: Tree, paths: Mapping[str, str | None]) -> None:
    """Apply user path overrides: a value adds or replaces a leaf, ``None`` removes it.

    Removing a directory removes everything under it.
    """
    # Every directory that may hold leaves (a superset: removals do not shrink it), so
    # that only paths naming a directory scan the tree; 10,000 paths stay linear.
    dirs = _directories(tree)
    for path, value in paths.items():
        clean = normal_path(path)
        if clean in dirs:  # a value replaces the directory, None removes it: both drop it
            for existing in [p for p in tree if p.startswith(clean + "/")]:
                del tree[existing]
        if value is None:
            tree.pop(clean, None)
        else:
            kind = "application/octet-stream" if clean == "user-data" else "text/plain"
            tree[clean] = Leaf(value.encode(), kind)
            dirs.update(_directories((clean,)))


def _directories(paths: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for path in paths:
        cut = path.rfind("/")
        while cut > 0 and path[:cut] not in out:
            out.add(path[:cut])
            cut = path.rfind("/", 0, cut)
    return out
