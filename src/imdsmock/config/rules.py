"""The rules that span fields: the configured facts must make a possible instance.

:func:`check` runs once, after :mod:`imdsmock.config.build` has typed every value; the
first broken rule raises :class:`~imdsmock.errors.ConfigError` naming the key, the value
and what is allowed.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re

from imdsmock.config.addresses import check_ip, parse_listen
from imdsmock.config.schema import Config, CredentialsConfig
from imdsmock.errors import ConfigError

__all__ = ["check"]

_TAG_KEY = re.compile(r"^[A-Za-z0-9+\-=._:@]+$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
_USER_DATA_LIMIT = 16 * 1024


def check(cfg: Config) -> None:
    """Raise :class:`ConfigError` for the first rule ``cfg`` breaks."""
    inst = cfg.instance
    if not _INSTANCE_ID.match(inst.instance_id):
        raise ConfigError(
            "instance.instance-id", inst.instance_id, "i- followed by 8 or 17 hex digits"
        )
    if not _ACCOUNT.match(inst.account_id):
        raise ConfigError("instance.account-id", inst.account_id, "12 digits")
    if inst.region is not None and not _REGION.match(inst.region):
        raise ConfigError("instance.region", inst.region, "a region name like us-east-1")
    if inst.availability_zone is not None:
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]+[a-z]", inst.availability_zone):
            raise ConfigError(
                "instance.availability-zone", inst.availability_zone, "a zone like us-east-1a"
            )
        if inst.region is not None and inst.availability_zone[:-1] != inst.region:
            raise ConfigError(
                "instance.availability-zone",
                inst.availability_zone,
                f"a zone of region {inst.region} (e.g. {inst.region}a)",
            )
    for key, mac in [("instance.mac", inst.mac)] + [
        (f"instance.interfaces[{i}].mac", e.mac) for i, e in enumerate(inst.interfaces)
    ]:
        if not _MAC.match(mac):
            raise ConfigError(key, mac, "a lower-case MAC address like 0e:49:61:0f:c3:11")
    check_ip("instance.local-ipv4", inst.local_ipv4, 4)
    if inst.public_ipv4 is not None:
        check_ip("instance.public-ipv4", inst.public_ipv4, 4)
    if inst.ipv6 is not None:
        check_ip("instance.ipv6", inst.ipv6, 6)
    for name in inst.tags:
        if not _TAG_KEY.match(name) or name in (".", "..", "_index"):
            raise ConfigError(
                f"instance.tags.{name}",
                name,
                "a tag key of letters, digits and + - = . , _ : @ (not ., .., _index)",
            )
    if inst.user_data_base64 is not None and inst.user_data is None:
        try:
            base64.b64decode(inst.user_data_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(
                "instance.user-data-base64", inst.user_data_base64, "valid base64"
            ) from None
    data = inst.user_data_bytes()
    if data is not None and len(data) > _USER_DATA_LIMIT:
        raise ConfigError("instance.user-data", f"{len(data)} bytes", "at most 16384 bytes")
    if inst.iam_role is not None and not re.fullmatch(r"[\w+=,.@-]{1,64}", inst.iam_role):
        raise ConfigError("instance.iam-role", inst.iam_role, "an IAM role name (1-64 chars)")
    creds = cfg.credentials
    if creds.rotate_every > creds.lifetime - 300:
        raise ConfigError(
            "credentials.rotate-every",
            creds.rotate_every,
            f"at most credentials.lifetime - 300 = {creds.lifetime - 300} (EC2 rotates "
            "at least 5 minutes before expiry)",
        )
    _check_credentials(creds)
    for path in cfg.paths:
        if not re.fullmatch(r"(meta-data|dynamic|user-data)(/[^/\s]+)*", path):
            raise ConfigError(
                f"paths.{path}", path, "a path under meta-data/, dynamic/ or user-data"
            )
    cfg.server.listeners()  # validates every listen entry
    for spec in cfg.server.ecs_listen:
        parse_listen(spec, "server.ecs-listen")
    for spec in cfg.server.eks_listen:
        parse_listen(spec, "server.eks-listen")
    for key, host in (
        ("server.host", cfg.server.host),
        ("server.control-host", cfg.server.control_host),
    ):
        _check_host(key, host)


def _check_credentials(creds: CredentialsConfig) -> None:
    if creds.role_arn is not None and not re.fullmatch(
        r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}", creds.role_arn
    ):
        raise ConfigError(
            "credentials.role-arn",
            creds.role_arn,
            "a role ARN like arn:aws:iam::123456789012:role/name",
        )
    if not re.fullmatch(r"[\w+=,.@-]{2,64}", creds.role_session_name):
        raise ConfigError(
            "credentials.role-session-name",
            creds.role_session_name,
            "2-64 characters of letters, digits and + = , . @ _ -",
        )
    if creds.source == "profile" and creds.refresh_ahead >= creds.duration_seconds:
        raise ConfigError(
            "credentials.refresh-ahead",
            creds.refresh_ahead,
            f"less than credentials.duration-seconds ({creds.duration_seconds})",
        )
    if not re.fullmatch(r"/[A-Za-z0-9._~/-]*", creds.ecs_relative_uri):
        raise ConfigError(
            "credentials.ecs-relative-uri", creds.ecs_relative_uri, "a path like /v2/credentials/ID"
        )


def _check_host(key: str, host: str) -> None:
    if host in ("", "localhost") or re.fullmatch(r"[A-Za-z0-9.-]+", host):
        return
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ConfigError(key, host, "an IP address or host name") from None
