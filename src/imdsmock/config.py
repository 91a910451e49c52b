"""Configuration: parse and validate once, at the boundary, into frozen dataclasses.

Sources, strongest first: command-line flags > environment (``IMDSMOCK_*``) > one config
file (YAML, JSON or TOML) > defaults. Every key is spelled as in the file, dashed
(``options.http-tokens``); its environment variable is ``IMDSMOCK_`` + the key upper-cased
with ``.`` and ``-`` turned into ``_`` (``IMDSMOCK_OPTIONS_HTTP_TOKENS``), and the most used
keys have a short flag and variable too (``--http-tokens`` / ``IMDSMOCK_HTTP_TOKENS``).

A bad value raises :class:`~imdsmock.errors.ConfigError` naming the key, the value and
what is allowed; nothing downstream validates again.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import json
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError

__all__ = [
    "Config",
    "CredentialsConfig",
    "InstanceConfig",
    "InterfaceConfig",
    "Listen",
    "OptionsConfig",
    "ServerConfig",
    "SigningConfig",
    "dump",
    "load",
    "to_mapping",
]

Enabled = Literal["enabled", "disabled"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Listen:
    """One address the IMDS server listens on."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Where and how the server listens."""

    host: str = "127.0.0.1"
    port: int = 1338
    # Extra IMDS listeners ("169.254.169.254:80", "[fd00:ec2::254]:80"), beside host:port.
    listen: tuple[str, ...] = ()
    # Real IMDS closes every connection; keep-alive is an opt-in for speed.
    keep_alive: bool = False
    control_host: str = "127.0.0.1"
    control_port: int = 1339
    # Required when the control listener binds a non-loopback address.
    control_token: str | None = field(default=None, repr=False)
    control_token_file: str | None = None
    # Disable the control listener entirely.
    control: bool = True
    # "manual": time stands still until the control API advances it (tests, demos).
    clock: Literal["system", "manual"] = "system"
    log_requests: bool = False
    # Only the first N distinct clients see spot/rebalance/events/Auto Scaling paths
    # (AWS's Go mock's --mock-ip-count); -1: everyone, 0: nobody.
    mock_ip_count: int = -1
    # Robustness limits of the IMDS listeners (docs/reliability.md): connections beyond
    # max-connections are answered 429 and closed; a request must arrive within
    # idle-timeout seconds of connecting (or of the previous answer, with keep-alive);
    # a request head (line and headers) over max-header-bytes is answered 431.
    max_connections: int = 1024
    idle_timeout: int = 10
    max_header_bytes: int = 16 * 1024
    # ECS-style container credential listeners ("169.254.170.2:80"); none by default.
    ecs_listen: tuple[str, ...] = ()
    # EKS Pod Identity-style listeners ("169.254.170.23:80"); none by default.
    eks_listen: tuple[str, ...] = ()

    def listeners(self) -> tuple[Listen, ...]:
        """All IMDS listeners: ``host:port`` then every ``listen`` entry, deduplicated."""
        out = [Listen(host=self.host, port=self.port)]
        for spec in self.listen:
            item = parse_listen(spec, "server.listen")
            if item not in out:
                out.append(item)
        return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionsConfig:
    """Instance metadata options, as ``ModifyInstanceMetadataOptions`` names them."""

    http_tokens: Literal["optional", "required"] = "optional"
    http_endpoint: Enabled = "enabled"
    hop_limit: int = 1
    http_protocol_ipv6: Enabled = "disabled"
    instance_metadata_tags: Enabled = "enabled"


@dataclass(frozen=True, slots=True, kw_only=True)
class InterfaceConfig:
    """One elastic network interface; unset fields are derived from the instance."""

    mac: str
    device_number: int | None = None
    interface_id: str | None = None
    local_ipv4s: tuple[str, ...] = ()
    public_ipv4s: tuple[str, ...] = ()
    ipv6s: tuple[str, ...] = ()
    subnet_id: str | None = None
    subnet_ipv4_cidr_block: str | None = None
    subnet_ipv6_cidr_blocks: tuple[str, ...] = ()
    vpc_id: str | None = None
    vpc_ipv4_cidr_blocks: tuple[str, ...] = ()
    vpc_ipv6_cidr_blocks: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    network_card_index: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceConfig:
    """The facts of the one instance served. ``None`` means "derive from the others"."""

    instance_id: str = "i-1234567890abcdef0"
    instance_type: str = "m4.xlarge"
    ami_id: str = "ami-0a887e401f7654935"
    ami_launch_index: int = 0
    ami_manifest_path: str = "(unknown)"
    account_id: str = "515336597381"
    region: str | None = None
    availability_zone: str | None = None
    availability_zone_id: str | None = None
    architecture: Literal["x86_64", "arm64", "i386"] = "x86_64"
    kernel_id: str | None = "aki-5c21674b"
    ramdisk_id: str | None = "ari-01bb5768"
    product_codes: tuple[str, ...] = ("3iplms73etrdhxdepv72l6ywj",)
    reservation_id: str = "r-046cb3eca3e201d2f"
    instance_life_cycle: Literal["on-demand", "spot", "scheduled", "capacity-block"] = "on-demand"
    instance_action: str = "none"
    local_ipv4: str = "172.16.34.43"
    public_ipv4: str | None = "192.0.2.54"
    ipv6: str | None = "2001:db8:8:4::2"
    mac: str = "0e:49:61:0f:c3:11"
    interface_id: str = "eni-0f95d3625f5c521cc"
    subnet_id: str = "subnet-0ac62554"
    subnet_ipv4_cidr_block: str = "192.0.2.0/24"
    subnet_ipv6_cidr_blocks: tuple[str, ...] = ("2001:db8::/32",)
    vpc_id: str = "vpc-d295a6a7"
    vpc_ipv4_cidr_blocks: tuple[str, ...] = ("192.0.2.0/24",)
    vpc_ipv6_cidr_blocks: tuple[str, ...] = ("2001:db8::/32",)
    security_groups: tuple[str, ...] = ("ura-launch-wizard-harry-1",)
    security_group_ids: tuple[str, ...] = ("sg-0b07f8f6cb485d4df",)
    hostname: str | None = None
    public_hostname: str | None = None
    # More network interfaces beside the primary one described by the fields above.
    interfaces: tuple[InterfaceConfig, ...] = ()
    placement_group_name: str | None = "a-placement-group"
    placement_host_id: str | None = "h-0da999999f9999fb9"
    placement_partition_number: int | None = 1
    # Key name -> OpenSSH public key, served as public-keys/N=name in this order.
    public_keys: Mapping[str, str] = field(default_factory=lambda: {"test": _AEMM_KEY})
    # Block device mapping: virtual name -> device.
    block_device_mapping: Mapping[str, str] = field(
        default_factory=lambda: {
            "ami": "/dev/xvda",
            "ebs0": "sdb",
            "ephemeral0": "sdb",
            "root": "/dev/xvda",
            "swap": "sdcs",
        }
    )
    tags: Mapping[str, str] = field(
        default_factory=lambda: {"Name": "test-instance", "Test": "test-tag"}
    )
    # The IAM role of the instance profile; None means no role attached.
    iam_role: str | None = "baskinc-role"
    instance_profile_id: str = "AIPA5BOGHHXZELSK34VU4"
    # User data: text, or base64 in user-data-base64; None (both) means none (404).
    user_data: str | None = None
    user_data_base64: str | None = "MTIzNCxqb2huLHJlYm9vdCx0cnVlCg=="
    monitoring: Enabled = "disabled"
    # Launch time, as an IMDS timestamp; None means "when the server started".
    pending_time: str | None = None

    def user_data_bytes(self) -> bytes | None:
        """The user data as bytes, or ``None`` when the instance has none."""
        if self.user_data is not None:
            return self.user_data.encode()
        if self.user_data_base64 is not None:
            return base64.b64decode(self.user_data_base64, validate=True)
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialsConfig:
    """How role credentials are made (fake ones by default)."""

    # Lifetime of one set, seconds (EC2: about six hours).
    lifetime: int = 6 * 3600
    # A new set is issued this often; must leave at least 5 minutes before expiry.
    rotate_every: int = 3600
    # Serve iam/security-credentials-extended/ (with AccountId); off makes it 404.
    extended: bool = True
    # Seed for deterministic fake keys; None means random per process.
    seed: str | None = field(default=None, repr=False)
    # "fake": generated keys; "profile": real ones from a local AWS profile (imdsmock[aws]).
    source: Literal["fake", "profile"] = "fake"
    # The AWS profile (shared config / credentials file, SSO included); None: the default.
    profile: str | None = None
    # Assume this role with the profile's credentials (sts:AssumeRole); None: use them as is.
    role_arn: str | None = None
    role_session_name: str = "imdsmock"
    # Lifetime asked of STS (AssumeRole / GetSessionToken), seconds.
    duration_seconds: int = 3600
    # Fetch the next real set this many seconds before the current one expires.
    refresh_ahead: int = 900
    # The relative URI of the ECS-style endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI).
    ecs_relative_uri: str = "/v2/credentials/6f1c2d9e-8a3b-4c5d-9e7f-0a1b2c3d4e5f"
    # The Authorization token the EKS-style endpoint demands (or a file holding it);
    # neither set: any non-empty token is accepted.
    container_token: str | None = field(default=None, repr=False)
    container_token_file: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningConfig:
    """Keys for the instance identity signatures; generated at start-up when unset."""

    key_file: str | None = None
    cert_file: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole, validated configuration."""

    server: ServerConfig = field(default_factory=ServerConfig)
    options: OptionsConfig = field(default_factory=OptionsConfig)
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    credentials: CredentialsConfig = field(default_factory=CredentialsConfig)
    signing: SigningConfig = field(default_factory=SigningConfig)
    # Any IMDS path (relative to the version root, e.g. "meta-data/tags/instance/Owner")
    # -> its value; null removes the path. Applied last, so it can override anything.
    paths: Mapping[str, str | None] = field(default_factory=dict)
    # Timed changes of the instance (spot interruption, rebalance, maintenance events,
    # Auto Scaling states): raw mappings, validated by imdsmock.scenarios at start, with
    # relative times ("+30s") counted from the start. See docs/scenarios.md.
    scenarios: tuple[Mapping[str, Any], ...] = ()

    def replace(self, **changes: Any) -> Config:
        """A copy with some top-level sections replaced."""
        return dataclasses.replace(self, **changes)


_AEMM_KEY = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC/JxGByvHDHgQAU+0nRFWdvMPi22OgNUn9ansrI8QN1ZJGxD1ML8"
    "DRnJ3Q3zFKqqjGucfNWW0xpVib+ttkIBp8G9P/EOcX9C3FF63O3SnnIUHJsp5faRAZsTJPx0G5HUbvhBvnAcCtSqQg"
    "mr02c1l582vAWx48pOmeXXMkl9qe9V/s7K3utmeZkRLo9DqnbsDlg5GWxLC/rWKYaZR66CnMEyZ7yBy3v3abKaGGRo"
    "vLkHNAgWjSSgmUTI1nT5/S2OLxxuDnsC7+BiABLPaqlIE70SzcWZ0swx68Bo2AY9T9ymGqeAM/1T4yRtg0sPB98TpT"
    "7WrY5A3iia2UVtLO/xcTt test"
)

# Short flag / variable names for the most used keys: name -> dotted key.
SHORT_NAMES: Mapping[str, str] = {
    "host": "server.host",
    "port": "server.port",
    "listen": "server.listen",
    "keep-alive": "server.keep-alive",
    "control-host": "server.control-host",
    "control-port": "server.control-port",
    "control-token": "server.control-token",
    "control-token-file": "server.control-token-file",
    "clock": "server.clock",
    "log-requests": "server.log-requests",
    "ecs-listen": "server.ecs-listen",
    "eks-listen": "server.eks-listen",
    "credentials-source": "credentials.source",
    "profile": "credentials.profile",
    "role-arn": "credentials.role-arn",
    "http-tokens": "options.http-tokens",
    "http-endpoint": "options.http-endpoint",
    "hop-limit": "options.hop-limit",
    "http-protocol-ipv6": "options.http-protocol-ipv6",
    "instance-metadata-tags": "options.instance-metadata-tags",
    "instance-id": "instance.instance-id",
    "instance-type": "instance.instance-type",
    "region": "instance.region",
    "availability-zone": "instance.availability-zone",
    "account-id": "instance.account-id",
    "iam-role": "instance.iam-role",
    "user-data": "instance.user-data",
    "user-data-base64": "instance.user-data-base64",
}

# Keys whose value is a secret: never printed by `imdsmock config`.
SECRET_KEYS = frozenset({"server.control-token", "credentials.seed", "credentials.container-token"})

_LIMITS: Mapping[str, tuple[int, int]] = {
    "server.port": (0, 65535),
    "server.control-port": (0, 65535),
    "server.mock-ip-count": (-1, 2**31),
    "server.max-connections": (1, 1_000_000),
    "server.idle-timeout": (1, 3600),
    "server.max-header-bytes": (1024, 1024 * 1024),
    "options.hop-limit": (1, 64),
    "credentials.lifetime": (900, 43200),
    "credentials.rotate-every": (60, 43200),
    "credentials.duration-seconds": (900, 43200),
    "credentials.refresh-ahead": (60, 3600),
    "instance.ami-launch-index": (0, 10000),
    "instance.placement-partition-number": (1, 7),
}

_TAG_KEY = re.compile(r"^[A-Za-z0-9+\-=._:@]+$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
_USER_DATA_LIMIT = 16 * 1024


# ---------------------------------------------------------------------------------------
# Loading


def load(
    *,
    file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
) -> Config:
    """Merge the sources (flags > env > file > base > defaults) and validate once.

    ``flags`` maps dotted keys or short names to values; ``None`` values are ignored, so
    an argparse namespace with unset options can be passed as is. ``env`` defaults to
    ``os.environ``; the config file may also be named by ``IMDSMOCK_CONFIG``.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if base:
        _merge(raw, _nest(base, "config"))
    path = file if file is not None else env.get("IMDSMOCK_CONFIG") or None
    if path is not None:
        _merge(raw, read_file(path))
    _merge(raw, _from_env(env))
    if flags:
        _merge(raw, _from_flags(flags))
    return from_mapping(raw)


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read one YAML, JSON or TOML file into a mapping (format chosen by extension)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file", str(p), "an existing, readable file") from None
    except IsADirectoryError:
        raise ConfigError("config file", str(p), "a file, not a directory") from None
    except PermissionError:
        raise ConfigError("config file", str(p), "a file this user may read") from None
    except UnicodeDecodeError:
        raise ConfigError("config file", str(p), "UTF-8 text") from None
    suffix = p.suffix.lower()
    errors: tuple[type[Exception], ...] = (json.JSONDecodeError, *_parse_errors(suffix))
    try:
        if suffix == ".json":
            data: Any = json.loads(text) if text.strip() else {}
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml", ""):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise ConfigError("config file", str(p), "a .yaml, .yml, .json or .toml file")
    except errors as exc:
        where = _error_position(exc)
        raise ConfigError(
            "config file", str(p), f"valid {suffix.lstrip('.') or 'yaml'}{where}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("config file", str(p), "a mapping of sections at the top level")
    return data


def _parse_errors(suffix: str) -> tuple[type[Exception], ...]:
    # Parsers load on demand (start-up time is a benchmark figure): most runs read no file.
    if suffix == ".toml":
        import tomllib

        return (tomllib.TOMLDecodeError,)
    if suffix == ".json":
        return ()
    import yaml

    return (yaml.YAMLError,)


def _error_position(exc: Exception) -> str:
    line = getattr(exc, "lineno", None)
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        line = mark.line + 1
    return f" (error near line {line})" if line else ""


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    by_var = _env_names()
    for var, value in env.items():
        key = by_var.get(var)
        if key is not None:
            _merge(out, _nest({key: value}, var))
    return out


def _from_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in flags.items():
        if value is None:
            continue
        key = SHORT_NAMES.get(name.replace("_", "-"), name)
        _merge(out, _nest({key: value}, f"--{name}"))
    return out


def env_name(key: str) -> str:
    """The ``IMDSMOCK_*`` variable for a dotted key."""
    return "IMDSMOCK_" + re.sub(r"[.\-]", "_", key).upper()


def _env_names() -> dict[str, str]:
    names = {env_name(key): key for key in _leaf_keys(Config)}
    for short, key in SHORT_NAMES.items():
        names[env_name(short)] = key
    return names


def _leaf_keys(cls: type, prefix: str = "") -> list[str]:
    keys: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = prefix + _dash(f.name)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys.extend(_leaf_keys(tp, key + "."))  # type: ignore[arg-type]
        else:
            keys.append(key)
    return keys


def _nest(flat: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Turn ``{"a.b": 1}`` into ``{"a": {"b": 1}}``; nested mappings pass through."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".") if "." in key and key.split(".")[0] in _SECTIONS else [key]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict) and key != "paths":
            _merge(into[key], value)
        elif isinstance(value, Mapping):
            into[key] = dict(value)
        else:
            into[key] = value


# ---------------------------------------------------------------------------------------
# Validation: a mapping -> frozen dataclasses, by the dataclasses' own type hints.


def from_mapping(raw: Mapping[str, Any]) -> Config:
    """Validate a nested mapping (file-shaped, dashed keys) into a :class:`Config`."""
    cfg: Config = _build(Config, raw, "")
    _check(cfg)
    return cfg


def _dash(name: str) -> str:
    return name.replace("_", "-")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "configuration"
    if not isinstance(raw, Mapping):
        raise ConfigError(where, raw, "a mapping")
    hints = typing.get_type_hints(cls)
    fields = {_dash(f.name): f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        f = fields.get(str(key).replace("_", "-"))
        if f is None:
            allowed = "one of: " + ", ".join(sorted(fields))
            raise ConfigError(f"{prefix}{key}", value, f"a known key ({allowed})") from None
        kwargs[f.name] = _convert(hints[f.name], value, prefix + _dash(f.name))
    for f in fields.values():  # a required key left out (found by tests/test_fuzz.py)
        missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if missing and f.name not in kwargs:
            raise ConfigError(f"{prefix}{_dash(f.name)}", None, "a value (this key is required)")
    return cls(**kwargs)


def _convert(tp: Any, value: Any, key: str) -> Any:
    if tp is Any:
        return value  # validated by its owner (scenarios: imdsmock.scenarios)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if value is None:
            raise ConfigError(key, value, _describe(rest[0]))
        return _convert(rest[0], value, key)
    if origin is Literal:
        text = _scalar_text(value)
        if text.lower() not in [a.lower() for a in args]:
            raise ConfigError(key, value, "one of: " + ", ".join(args))
        return next(a for a in args if a.lower() == text.lower())
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".")  # type: ignore[arg-type]
    if tp is bool:
        return _to_bool(value, key)
    if tp is int:
        return _to_int(value, key)
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(key, value, "a string")
        return str(value)
    if origin is tuple:
        items = _to_list(value, key)
        return tuple(_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(items))
    if origin is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(key, value, "a mapping of names to values")
        return {
            str(k): _convert(args[1], v, f"{key}.{k}")
            for k, v in value.items()
            if not (v is None and type(None) not in typing.get_args(args[1]))
            or _reject_null(key, k, v)
        }
    raise TypeError(f"no converter for {tp!r}")  # a programming error, not user input


def _reject_null(key: str, name: object, value: object) -> bool:
    raise ConfigError(f"{key}.{name}", value, "a string")


def _describe(tp: Any) -> str:
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true or false"
    if typing.get_origin(tp) is tuple:
        return "a list"
    return "a string"


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return repr(value)


def _to_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off", ""):
        return False
    raise ConfigError(key, value, "true or false")


def _to_int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(key, value, "an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        number = int(value)
    else:
        raise ConfigError(key, value, "an integer")
    low, high = _LIMITS.get(key, (-(2**31), 2**31))
    if not low <= number <= high:
        raise ConfigError(key, value, f"an integer from {low} to {high}")
    return number


def _to_list(value: Any, key: str) -> list[Any]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    raise ConfigError(key, value, "a list (or a comma-separated string)")


# ---------------------------------------------------------------------------------------
# Cross-field checks: the facts must make a possible instance.


def _check(cfg: Config) -> None:
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
    _check_ip("instance.local-ipv4", inst.local_ipv4, 4)
    if inst.public_ipv4 is not None:
        _check_ip("instance.public-ipv4", inst.public_ipv4, 4)
    if inst.ipv6 is not None:
        _check_ip("instance.ipv6", inst.ipv6, 6)
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


def _check_ip(key: str, value: str, version: int) -> None:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        ip = None
    if ip is None or ip.version != version:
        raise ConfigError(key, value, f"an IPv{version} address")


def _check_host(key: str, host: str) -> None:
    if host in ("", "localhost") or re.fullmatch(r"[A-Za-z0-9.-]+", host):
        return
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ConfigError(key, host, "an IP address or host name") from None


def parse_listen(spec: str, key: str) -> Listen:
    """Parse ``HOST:PORT`` or ``[V6]:PORT`` into a :class:`Listen`."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]+)|([^:\[\]]*):([0-9]+)", spec.strip())
    if m is None:
        raise ConfigError(key, spec, "HOST:PORT or [IPV6]:PORT")
    host = m.group(1) or m.group(3) or "0.0.0.0"
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise ConfigError(key, spec, "a port from 0 to 65535")
    if m.group(1):
        _check_ip(key, host, 6)
    return Listen(host=host, port=port)


_SECTIONS = frozenset(_dash(f.name) for f in dataclasses.fields(Config))


# ---------------------------------------------------------------------------------------
# Output


def to_mapping(cfg: Config, *, secrets: bool = False) -> dict[str, Any]:
    """The configuration as a file-shaped mapping (dashed keys); secrets masked."""

    def walk(obj: Any, prefix: str) -> Any:
        if dataclasses.is_dataclass(obj):
            out = {}
            for f in dataclasses.fields(obj):
                key = prefix + _dash(f.name)
                value = getattr(obj, f.name)
                if key in SECRET_KEYS and value is not None and not secrets:
                    out[_dash(f.name)] = "***"
                else:
                    out[_dash(f.name)] = walk(value, key + ".")
            return out
        if isinstance(obj, tuple):
            return [walk(v, prefix) for v in obj]
        if isinstance(obj, Mapping):
            return {str(k): walk(v, prefix) for k, v in obj.items()}
        return obj

    result: dict[str, Any] = walk(cfg, "")
    return result


def dump(cfg: Config, fmt: Literal["yaml", "json"] = "yaml") -> str:
    """Render the effective configuration for ``imdsmock config``."""
    data = to_mapping(cfg)
    if fmt == "json":
        return json.dumps(data, indent=2)
    import yaml

    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
