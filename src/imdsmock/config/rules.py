"""The rules that span fields: the configured facts must make a possible instance.

Each rule is data (:data:`RULES`): a name, what it requires, and a function finding the
values that break it. :func:`check` runs them once, after :mod:`imdsmock.config.build` has
typed every value; the first broken rule raises :class:`~imdsmock.errors.ConfigError`
naming the key, the value and what is allowed. A caller may name rules to relax
(``ec2-metadata-mock`` relaxes the ones AWS's Go mock does not apply): a value breaking a
relaxed rule is kept and reported to ``warn`` instead, as long as it can still be served
(a MAC or role name must stay one path segment, for instance).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

from imdsmock.config.addresses import parse_listen
from imdsmock.config.inputs import PATH_RULE, SEGMENT_RULE, imds_path, is_segment
from imdsmock.config.regions import known_zones
from imdsmock.config.schema import Config
from imdsmock.errors import ConfigError, did_you_mean

__all__ = ["REGION_PATTERN", "RULES", "ZONE_PATTERN", "Broken", "Rule", "check"]

# Every pattern is matched whole (fullmatch): "$" would let a trailing newline through.
_TAG_KEY = re.compile(r"[A-Za-z0-9+\-=._:@]+")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")
_ACCOUNT = re.compile(r"[0-9]{12}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")
_ZONE = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+[a-z]")
REGION_PATTERN = _REGION
"""How a region name is spelt (``us-east-1``), known or not."""
ZONE_PATTERN = _ZONE
"""How a zone name is spelt (``us-east-1a``), known or not."""
# EC2 key pair names: up to 255 ASCII characters, no leading or trailing space.
_KEY_NAME = re.compile(r"[!-~]([ -~]{0,253}[!-~])?")
_USER_DATA_LIMIT = 16 * 1024
# A DNS name (labels of letters, digits, - and _, as compose service names are spelt),
# optionally led by "." (it and its subdomains), or "*".
_ALLOWED_HOST = re.compile(
    r"\*|\.?[A-Za-z0-9_][A-Za-z0-9_-]{0,62}(?:\.[A-Za-z0-9_][A-Za-z0-9_-]{0,62})*\.?"
)


@dataclass(frozen=True, slots=True)
class Broken:
    """A value that breaks a rule: its key, the value, what is allowed, and whether it
    could still be served as given (when the rule is relaxed)."""

    key: str
    value: object
    expected: str
    servable: bool = True
    hint: str = ""
    """The end of the message: the close match of a misspelt name."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One check on a whole configuration."""

    name: str
    """Stable name (the key it checks), used to relax it."""
    requires: str
    """What it requires, in words (the documentation's table)."""
    find: Callable[[Config], Iterator[Broken]]
    """The values that break it."""


def check(
    cfg: Config,
    *,
    relaxed: Collection[str] = (),
    warn: Callable[[ConfigError], None] | None = None,
) -> None:
    """Raise :class:`ConfigError` for the first rule ``cfg`` breaks.

    A servable value breaking a rule named in ``relaxed`` is passed to ``warn`` (as the
    error it would have raised) and kept.
    """
    for rule in RULES:
        for broken in rule.find(cfg):
            error = ConfigError(broken.key, broken.value, broken.expected, hint=broken.hint)
            if rule.name not in relaxed or not broken.servable:
                raise error
            if warn is not None:
                warn(error)


def _is_ip(value: str, version: int) -> bool:
    # No IPv6 zone: an instance's addresses have none, and a zone takes any text.
    try:
        return ipaddress.ip_address(value).version == version and "%" not in value
    except ValueError:
        return False


_segment = is_segment  # usable as one segment of an IMDS path (it names a directory there)


def _pattern(name: str, pattern: re.Pattern[str], expected: str) -> Rule:
    """A rule that one optional instance field matches ``pattern``."""
    field = name.removeprefix("instance.").replace("-", "_")

    def find(cfg: Config) -> Iterator[Broken]:
        value = getattr(cfg.instance, field)
        if value is not None and not pattern.fullmatch(value):
            yield Broken(name, value, expected)

    return Rule(name=name, requires=expected, find=find)


_OTHERS = "instance.allow-unknown-regions: true takes any"


def _region(cfg: Config) -> Iterator[Broken]:
    inst = cfg.instance
    region, known = inst.region, known_zones()
    if region is None or region in known:
        return
    if inst.allow_unknown_regions:
        if not _REGION.match(region):
            yield Broken("instance.region", region, "a region name like us-east-1")
    else:
        expected = f"a known region like us-east-1 ({_OTHERS})"
        yield Broken("instance.region", region, expected, hint=did_you_mean(region, known))


def _zone(cfg: Config) -> Iterator[Broken]:
    inst = cfg.instance
    zone = inst.availability_zone
    zones = [name for names in known_zones().values() for name in names]
    if zone is None or zone in zones:
        return
    if inst.allow_unknown_regions:
        if not _ZONE.match(zone):
            yield Broken("instance.availability-zone", zone, "a zone like us-east-1a")
    else:
        expected = f"a known zone like us-east-1a ({_OTHERS})"
        yield Broken("instance.availability-zone", zone, expected, hint=did_you_mean(zone, zones))


def _zone_in_region(cfg: Config) -> Iterator[Broken]:
    inst = cfg.instance
    zone, region = inst.availability_zone, inst.region
    if zone is not None and region is not None and _ZONE.fullmatch(zone) and zone[:-1] != region:
        yield Broken(
            "instance.availability-zone", zone, f"a zone of region {region} (e.g. {region}a)"
        )


def _macs(cfg: Config) -> Iterator[Broken]:
    inst = cfg.instance
    expected = "a lower-case MAC address like 0e:49:61:0f:c3:11"
    for key, mac in [("instance.mac", inst.mac)] + [
        (f"instance.interfaces[{i}].mac", e.mac) for i, e in enumerate(inst.interfaces)
    ]:
        if not _MAC.fullmatch(mac):
            yield Broken(key, mac, expected, _segment(mac))


def _ip(name: str, version: int, *, segment: bool = False) -> Rule:
    field = name.removeprefix("instance.").replace("-", "_")
    expected = f"an IPv{version} address"

    def find(cfg: Config) -> Iterator[Broken]:
        value = getattr(cfg.instance, field)
        if value is not None and not _is_ip(value, version):
            yield Broken(name, value, expected, _segment(value) if segment else True)

    return Rule(name=name, requires=expected, find=find)


def _local_ipv4(cfg: Config) -> Iterator[Broken]:
    inst = cfg.instance
    if not _is_ip(inst.local_ipv4, 4):
        # Interfaces without addresses of their own count on from it.
        derived = any(not eni.local_ipv4s for eni in inst.interfaces)
        yield Broken("instance.local-ipv4", inst.local_ipv4, "an IPv4 address", not derived)


def _interface_addresses(cfg: Config) -> Iterator[Broken]:
    for i, eni in enumerate(cfg.instance.interfaces):
        for field, addresses, version in (
            ("local-ipv4s", eni.local_ipv4s, 4),
            ("public-ipv4s", eni.public_ipv4s, 4),
            ("ipv6s", eni.ipv6s, 6),
        ):
            for j, address in enumerate(addresses):
                if not _is_ip(address, version):
                    key = f"instance.interfaces[{i}].{field}[{j}]"
                    yield Broken(key, address, f"an IPv{version} address", _segment(address))


def _tag_keys(cfg: Config) -> Iterator[Broken]:
    for name in cfg.instance.tags:
        if not _TAG_KEY.fullmatch(name) or name in (".", "..", "_index"):
            yield Broken(
                f"instance.tags.{name}",
                name,
                "a tag key of letters, digits and + - = . , _ : @ (not ., .., _index)",
                False,
            )


def _public_key_names(cfg: Config) -> Iterator[Broken]:
    for name in cfg.instance.public_keys:
        if not _KEY_NAME.fullmatch(name):
            expected = "a key pair name of 1-255 printable ASCII characters, no outer spaces"
            yield Broken(f"instance.public-keys.{name}", name, expected, False)


def _block_devices(cfg: Config) -> Iterator[Broken]:
    for name in cfg.instance.block_device_mapping:
        if not _segment(name):
            yield Broken(f"instance.block-device-mapping.{name}", name, SEGMENT_RULE, False)


def _user_data_base64(cfg: Config) -> Iterator[Broken]:
    inst = cfg.instance
    if inst.user_data_base64 is not None and inst.user_data is None:
        try:
            base64.b64decode(inst.user_data_base64, validate=True)
        except (binascii.Error, ValueError):
            yield Broken("instance.user-data-base64", inst.user_data_base64, "valid base64", False)


def _user_data_size(cfg: Config) -> Iterator[Broken]:
    data = cfg.instance.user_data_bytes()
    if data is not None and len(data) > _USER_DATA_LIMIT:
        yield Broken("instance.user-data", f"{len(data)} bytes", "at most 16384 bytes")


def _iam_role(cfg: Config) -> Iterator[Broken]:
    role = cfg.instance.iam_role
    if role is not None and not re.fullmatch(r"[\w+=,.@-]{1,64}", role, re.ASCII):
        yield Broken("instance.iam-role", role, "an IAM role name (1-64 chars)", _segment(role))


def _pending_time(cfg: Config) -> Iterator[Broken]:
    # Parsed, not only shown: iam/info, credentials and the document count from it.
    when = cfg.instance.pending_time
    if when is None:
        return
    try:
        time.strptime(when, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        yield Broken(
            "instance.pending-time", when, "an IMDS timestamp like 2024-01-02T03:04:05Z", False
        )


def _rotate_every(cfg: Config) -> Iterator[Broken]:
    creds = cfg.credentials
    if creds.rotate_every > creds.lifetime - 300:
        yield Broken(
            "credentials.rotate-every",
            creds.rotate_every,
            f"at most credentials.lifetime - 300 = {creds.lifetime - 300} (EC2 rotates "
            "at least 5 minutes before expiry)",
            False,
        )


def _role_arn(cfg: Config) -> Iterator[Broken]:
    arn = cfg.credentials.role_arn
    if arn is not None and not re.fullmatch(
        r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}", arn, re.ASCII
    ):
        yield Broken(
            "credentials.role-arn",
            arn,
            "a role ARN like arn:aws:iam::123456789012:role/name",
            False,
        )


def _role_session_name(cfg: Config) -> Iterator[Broken]:
    name = cfg.credentials.role_session_name
    if not re.fullmatch(r"[\w+=,.@-]{2,64}", name, re.ASCII):
        expected = "2-64 characters of letters, digits and + = , . @ _ -"
        yield Broken("credentials.role-session-name", name, expected, False)


def _refresh_ahead(cfg: Config) -> Iterator[Broken]:
    creds = cfg.credentials
    if creds.source == "profile" and creds.refresh_ahead >= creds.duration_seconds:
        yield Broken(
            "credentials.refresh-ahead",
            creds.refresh_ahead,
            f"less than credentials.duration-seconds ({creds.duration_seconds})",
            False,
        )


def _ecs_relative_uri(cfg: Config) -> Iterator[Broken]:
    uri = cfg.credentials.ecs_relative_uri
    if not re.fullmatch(r"/[A-Za-z0-9._~/-]*", uri):
        yield Broken("credentials.ecs-relative-uri", uri, "a path like /v2/credentials/ID", False)


def _paths(cfg: Config) -> Iterator[Broken]:
    # The one path rule, also the control API's (imdsmock.config.inputs.imds_path).
    for path in cfg.paths:
        try:
            imds_path(path, f"paths.{path}")
        except ConfigError as exc:
            yield Broken(exc.key, exc.value, exc.allowed, False)


def _listeners(cfg: Config) -> Iterator[Broken]:
    server = cfg.server
    specs = [("server.listen", s) for s in server.listen]
    specs += [("server.ecs-listen", s) for s in server.ecs_listen]
    specs += [("server.eks-listen", s) for s in server.eks_listen]
    for key, spec in specs:
        try:
            parse_listen(spec, key)
        except ConfigError as exc:
            yield Broken(exc.key, exc.value, exc.allowed, False)


def _hosts(cfg: Config) -> Iterator[Broken]:
    for key, host in (
        ("server.host", cfg.server.host),
        ("server.control-host", cfg.server.control_host),
    ):
        if host in ("", "localhost") or re.fullmatch(r"[A-Za-z0-9.-]+", host):
            continue
        if not (_is_ip(host.strip("[]"), 4) or _is_ip(host.strip("[]"), 6)):
            yield Broken(key, host, "an IP address or host name", False)


def _control_token(cfg: Config) -> Iterator[Broken]:
    token = cfg.server.control_token
    if token is not None and not token.strip():
        expected = "a token that is not blank (leave it unset for none)"
        yield Broken("server.control-token", token, expected, False)


def _allowed_hosts(cfg: Config) -> Iterator[Broken]:
    for i, name in enumerate(cfg.server.allowed_hosts):
        ip = _is_ip(name, 4) or _is_ip(name, 6)
        if len(name) > 253 or not (_ALLOWED_HOST.fullmatch(name) or ip):
            expected = (
                "a host name such as imds, .domain for it and its subdomains, or * for any "
                "(no scheme, no port)"
            )
            yield Broken(f"server.allowed-hosts[{i}]", name, expected, False)


# In the order they run: the first broken rule is the one reported.
RULES: tuple[Rule, ...] = (
    _pattern("instance.instance-id", _INSTANCE_ID, "i- followed by 8 or 17 hex digits"),
    _pattern("instance.account-id", _ACCOUNT, "12 digits"),
    Rule(
        name="instance.region",
        requires="a known region (any region name with instance.allow-unknown-regions)",
        find=_region,
    ),
    Rule(
        name="instance.availability-zone",
        requires="a known zone (any zone name with instance.allow-unknown-regions)",
        find=_zone,
    ),
    Rule(
        name="instance.availability-zone:region",
        requires="a zone of instance.region",
        find=_zone_in_region,
    ),
    Rule(
        name="instance.mac",
        requires="a lower-case MAC address (also interfaces[].mac)",
        find=_macs,
    ),
    Rule(name="instance.local-ipv4", requires="an IPv4 address", find=_local_ipv4),
    _ip("instance.public-ipv4", 4, segment=True),
    _ip("instance.ipv6", 6),
    Rule(
        name="instance.interfaces",
        requires="IP addresses in interfaces[].local-ipv4s, public-ipv4s and ipv6s",
        find=_interface_addresses,
    ),
    Rule(name="instance.tags", requires="tag keys EC2 allows", find=_tag_keys),
    Rule(
        name="instance.public-keys",
        requires="key pair names EC2 allows (1-255 printable ASCII characters)",
        find=_public_key_names,
    ),
    Rule(
        name="instance.block-device-mapping",
        requires="names that are one path segment",
        find=_block_devices,
    ),
    Rule(name="instance.user-data-base64", requires="valid base64", find=_user_data_base64),
    Rule(name="instance.user-data", requires="at most 16384 bytes", find=_user_data_size),
    Rule(name="instance.iam-role", requires="an IAM role name (1-64 chars)", find=_iam_role),
    Rule(
        name="instance.pending-time",
        requires="an IMDS timestamp like 2024-01-02T03:04:05Z",
        find=_pending_time,
    ),
    Rule(
        name="credentials.rotate-every",
        requires="at most credentials.lifetime - 300",
        find=_rotate_every,
    ),
    Rule(name="credentials.role-arn", requires="a role ARN", find=_role_arn),
    Rule(
        name="credentials.role-session-name",
        requires="2-64 characters of letters, digits and + = , . @ _ -",
        find=_role_session_name,
    ),
    Rule(
        name="credentials.refresh-ahead",
        requires="less than credentials.duration-seconds",
        find=_refresh_ahead,
    ),
    Rule(
        name="credentials.ecs-relative-uri",
        requires="a path like /v2/credentials/ID",
        find=_ecs_relative_uri,
    ),
    Rule(name="paths", requires=PATH_RULE, find=_paths),
    Rule(
        name="server.listen",
        requires="HOST:PORT or [IPV6]:PORT (also ecs-listen, eks-listen)",
        find=_listeners,
    ),
    Rule(
        name="server.host", requires="an IP address or host name (also control-host)", find=_hosts
    ),
    Rule(name="server.control-token", requires="not blank", find=_control_token),
    Rule(
        name="server.allowed-hosts",
        requires="host names, .domain names or * (no scheme, no port)",
        find=_allowed_hosts,
    ),
)
