"""The configuration schema: frozen dataclasses, their key names and variable names.

Every key is spelled as in the config file, dashed (``options.http-tokens``); its
environment variable is ``IMDSMOCK_`` + the key upper-cased with ``.`` and ``-`` turned
into ``_`` (``IMDSMOCK_OPTIONS_HTTP_TOKENS``), and the most used keys have a short flag and
variable too (``--http-tokens`` / ``IMDSMOCK_HTTP_TOKENS``). The string under each field is
its one-line description: ``docs/configuration.md`` is generated from it
(:mod:`imdsmock.configdoc`).

Loading lives in :mod:`imdsmock.config.load`, conversion in :mod:`imdsmock.config.build`,
the cross-field rules in :mod:`imdsmock.config.rules`, output in :mod:`imdsmock.config.dump`.
This module imports little: everything that touches a config pays for it at start-up.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from imdsmock.config.addresses import Listen, parse_listen
from imdsmock.config.defaults import AEMM_PUBLIC_KEY
from imdsmock.config.scenarios import ScenarioConfig

__all__ = [
    "RANGES",
    "RECOGNIZE",
    "RESOLVER_WAYS",
    "SECRET_KEYS",
    "SERVICE_ACCOUNT",
    "SHORT_NAMES",
    "Config",
    "CredentialsConfig",
    "FleetConfig",
    "InstanceConfig",
    "InterfaceConfig",
    "MatchConfig",
    "MemberConfig",
    "OptionsConfig",
    "PodRule",
    "ServerConfig",
    "SigningConfig",
    "TemplateConfig",
    "dashed",
    "env_name",
    "leaf_keys",
    "spelled",
]

Enabled = Literal["enabled", "disabled"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Where and how the server listens."""

    host: str = "127.0.0.1"
    """Address of the main IMDS listener (169.254.169.254 needs `imdsmock route`)."""
    port: int = 1338
    """Port of the main IMDS listener; 0 picks a free one."""
    listen: tuple[str, ...] = ()
    """Extra IMDS listeners beside host:port, e.g. `169.254.169.254:80`, `[fd00:ec2::254]:80`."""
    keep_alive: bool = False
    """Keep connections open; real IMDS closes every connection (an opt-in for speed)."""
    control_host: str = "127.0.0.1"
    """Address of the control API listener."""
    control_port: int = 1339
    """Port of the control API listener; 0 picks a free one."""
    control_token: str | None = field(default=None, repr=False)
    """Bearer token the control API demands; required on a non-loopback control-host."""
    control_token_file: str | None = None
    """A file holding the control API token (instead of control-token)."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names answered besides IP addresses and localhost (a DNS rebinding guard):
    `name`, `.domain` (it and its subdomains), `*` (any). The control API checks always,
    IMDS and container listeners while serving real credentials."""
    control: bool = True
    """Run the control API listener at all; false disables it."""
    clock: Literal["system", "manual"] = "system"
    """`manual`: time stands still until the control API advances it (tests, demos)."""
    log_requests: bool = False
    """Log every request to stderr."""
    mock_ip_count: int = -1
    """Only the first N distinct clients see spot, events and Auto Scaling paths; -1: all."""
    max_connections: int = 1024
    """Open connections of all listeners together; beyond it, 429 (see reliability.md)."""
    idle_timeout: int = 10
    """Seconds an IMDS, ECS or EKS connection may wait for its request (or the next one)."""
    max_header_bytes: int = 16 * 1024
    """A request head (line and headers) over this many bytes is answered 431."""
    ecs_listen: tuple[str, ...] = ()
    """ECS-style container credential listeners, e.g. `169.254.170.2:80`; none by default."""
    eks_listen: tuple[str, ...] = ()
    """EKS Pod Identity-style credential listeners, e.g. `169.254.170.23:80`; none by default."""

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
    """`required`: IMDSv2 only (a request without a token gets 401)."""
    http_endpoint: Enabled = "enabled"
    """`disabled`: every request gets 403, as on an instance with IMDS turned off."""
    hop_limit: int = 1
    """IP TTL of the token response (PUT /latest/api/token)."""
    http_protocol_ipv6: Enabled = "disabled"
    """The instance option as recorded; IPv6 listeners themselves come from server.listen."""
    instance_metadata_tags: Enabled = "enabled"
    """Serve the instance tags under meta-data/tags/instance/."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InterfaceConfig:
    """One elastic network interface; unset fields are derived from the instance."""

    mac: str
    """MAC address of the interface (required), lower case."""
    device_number: int | None = None
    """Device number; null: its position in the list (1, 2, ...)."""
    interface_id: str | None = None
    """ENI ID; null: derived from the MAC."""
    local_ipv4s: tuple[str, ...] = ()
    """Private IPv4 addresses; empty: the instance's local-ipv4 + 10 x device-number."""
    public_ipv4s: tuple[str, ...] = ()
    """Public IPv4 addresses, associated with the private ones in order."""
    ipv6s: tuple[str, ...] = ()
    """IPv6 addresses."""
    subnet_id: str | None = None
    """Subnet ID; null: the instance's."""
    subnet_ipv4_cidr_block: str | None = None
    """Subnet IPv4 CIDR block; null: the instance's."""
    subnet_ipv6_cidr_blocks: tuple[str, ...] = ()
    """Subnet IPv6 CIDR blocks; empty: the instance's."""
    vpc_id: str | None = None
    """VPC ID; null: the instance's."""
    vpc_ipv4_cidr_blocks: tuple[str, ...] = ()
    """VPC IPv4 CIDR blocks; empty: the instance's."""
    vpc_ipv6_cidr_blocks: tuple[str, ...] = ()
    """VPC IPv6 CIDR blocks; empty: the instance's."""
    security_groups: tuple[str, ...] = ()
    """Security group names; empty: the instance's."""
    security_group_ids: tuple[str, ...] = ()
    """Security group IDs; empty: the instance's."""
    network_card_index: int = 0
    """Network card index."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceConfig:
    """The facts of the one instance served. ``None`` means "derive from the others"."""

    instance_id: str = "i-1234567890abcdef0"
    """Instance ID: i- and 8 or 17 hex digits."""
    instance_type: str = "m4.xlarge"
    """Instance type."""
    ami_id: str = "ami-0a887e401f7654935"
    """AMI ID the instance was launched from."""
    ami_launch_index: int = 0
    """Launch index of the instance within its reservation."""
    ami_manifest_path: str = "(unknown)"
    """AMI manifest path (`(unknown)` for EBS-backed AMIs)."""
    account_id: str = "515336597381"
    """AWS account ID (12 digits): identity document, ARNs, owner-id."""
    region: str | None = None
    """Region; null: from availability-zone, else us-east-1."""
    availability_zone: str | None = None
    """Availability zone; null: the region + `a`."""
    availability_zone_id: str | None = None
    """Availability zone ID; null: derived from the zone."""
    allow_unknown_regions: bool = False
    """Take a region or zone missing from the known list (a new or private region)."""
    architecture: Literal["x86_64", "arm64", "i386"] = "x86_64"
    """CPU architecture in the identity document."""
    kernel_id: str | None = "aki-5c21674b"
    """Kernel ID; null: none (path absent)."""
    ramdisk_id: str | None = "ari-01bb5768"
    """RAM disk ID; null: none (path absent)."""
    product_codes: tuple[str, ...] = ("3iplms73etrdhxdepv72l6ywj",)
    """Marketplace product codes."""
    reservation_id: str = "r-046cb3eca3e201d2f"
    """Reservation ID."""
    instance_life_cycle: Literal["on-demand", "spot", "scheduled", "capacity-block"] = "on-demand"
    """Purchasing option the instance runs under."""
    instance_action: str = "none"
    """Value of meta-data/instance-action."""
    local_ipv4: str = "172.16.34.43"
    """Private IPv4 address of the primary interface."""
    public_ipv4: str | None = "192.0.2.54"
    """Public IPv4 address; null: none."""
    ipv6: str | None = "2001:db8:8:4::2"
    """IPv6 address of the primary interface; null: none."""
    mac: str = "0e:49:61:0f:c3:11"
    """MAC address of the primary interface, lower case."""
    interface_id: str = "eni-0f95d3625f5c521cc"
    """ENI ID of the primary interface."""
    subnet_id: str = "subnet-0ac62554"
    """Subnet ID of the primary interface."""
    subnet_ipv4_cidr_block: str = "192.0.2.0/24"
    """Subnet IPv4 CIDR block."""
    subnet_ipv6_cidr_blocks: tuple[str, ...] = ("2001:db8::/32",)
    """Subnet IPv6 CIDR blocks."""
    vpc_id: str = "vpc-d295a6a7"
    """VPC ID."""
    vpc_ipv4_cidr_blocks: tuple[str, ...] = ("192.0.2.0/24",)
    """VPC IPv4 CIDR blocks."""
    vpc_ipv6_cidr_blocks: tuple[str, ...] = ("2001:db8::/32",)
    """VPC IPv6 CIDR blocks."""
    security_groups: tuple[str, ...] = ("ura-launch-wizard-harry-1",)
    """Security group names."""
    security_group_ids: tuple[str, ...] = ("sg-0b07f8f6cb485d4df",)
    """Security group IDs."""
    hostname: str | None = None
    """Private DNS name; null: derived from local-ipv4 and the region."""
    public_hostname: str | None = None
    """Public DNS name; null: derived from public-ipv4 and the region."""
    interfaces: tuple[InterfaceConfig, ...] = ()
    """More network interfaces beside the primary one (keys in the table below)."""
    placement_group_name: str | None = "a-placement-group"
    """Placement group name; null: none."""
    placement_host_id: str | None = "h-0da999999f9999fb9"
    """Dedicated host ID; null: none."""
    placement_partition_number: int | None = 1
    """Partition number in a partition placement group; null: none."""
    public_keys: Mapping[str, str] = field(default_factory=lambda: {"test": AEMM_PUBLIC_KEY})
    """Key name -> OpenSSH public key, served as public-keys/N=name in this order."""
    block_device_mapping: Mapping[str, str] = field(
        default_factory=lambda: {
            "ami": "/dev/xvda",
            "ebs0": "sdb",
            "ephemeral0": "sdb",
            "root": "/dev/xvda",
            "swap": "sdcs",
        }
    )
    """Block device mapping: virtual name -> device."""
    tags: Mapping[str, str] = field(
        default_factory=lambda: {"Name": "test-instance", "Test": "test-tag"}
    )
    """Instance tags: key -> value (meta-data/tags/instance/)."""
    iam_role: str | None = "baskinc-role"
    """IAM role of the instance profile; null: no role attached."""
    instance_profile_id: str = "AIPA5BOGHHXZELSK34VU4"
    """Instance profile ID (meta-data/iam/info)."""
    user_data: str | None = None
    """User data as text; wins over user-data-base64."""
    user_data_base64: str | None = "MTIzNCxqb2huLHJlYm9vdCx0cnVlCg=="
    """User data as base64; null (and user-data null): no user data (404)."""
    monitoring: Enabled = "disabled"
    """Detailed monitoring (dynamic/fws/instance-monitoring)."""
    pending_time: str | None = None
    """Launch time as an IMDS timestamp (2024-01-02T03:04:05Z); null: when the server started."""
    identity_document: Mapping[str, Any | None] = field(default_factory=dict)
    """Identity-document fields served as given over the derived ones (signed too)."""

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

    lifetime: int = 6 * 3600
    """Lifetime of one credential set, seconds (EC2: about six hours)."""
    rotate_every: int = 3600
    """A new set is issued this often, seconds; at most lifetime - 300."""
    extended: bool = True
    """Serve iam/security-credentials-extended/ (with AccountId); false makes it 404."""
    seed: str | None = field(default=None, repr=False)
    """Seed for deterministic fake keys; null: random per process."""
    source: Literal["fake", "profile"] = "fake"
    """`fake`: generated keys; `profile`: real ones from a local AWS profile (imdsmock[aws])."""
    profile: str | None = None
    """AWS profile to take real credentials from (SSO included); null: the default chain."""
    role_arn: str | None = None
    """Assume this role with the profile's credentials (sts:AssumeRole); null: use them as is."""
    role_session_name: str = "imdsmock"
    """Session name for AssumeRole."""
    duration_seconds: int = 3600
    """Lifetime asked of STS (AssumeRole / GetSessionToken), seconds."""
    refresh_ahead: int = 900
    """Fetch the next real set this many seconds before the current one expires."""
    ecs_relative_uri: str = "/v2/credentials/6f1c2d9e-8a3b-4c5d-9e7f-0a1b2c3d4e5f"
    """Path of the ECS-style endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)."""
    container_token: str | None = field(default=None, repr=False)
    """Authorization token the EKS-style endpoint demands; null (and no file): any non-empty one."""
    container_token_file: str | None = None
    """A file holding the container token (instead of container-token)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningConfig:
    """Keys for the instance identity signatures; generated at start-up when unset."""

    key_file: str | None = None
    """PEM RSA private key signing the identity document; null: generated (and cached)."""
    cert_file: str | None = None
    """PEM certificate of that key; null: self-signed at start-up."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PodRule:
    """Kubernetes pods of one kind: every key it gives must match (at least one is given)."""

    namespace: str | None = None
    """The pod's namespace."""
    name: str | None = None
    """The pod's name, or a pattern where `*` is any run of characters: `web-*`."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels the pod carries, each with this value."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchConfig:
    """How a client is recognised as one instance of the fleet (any rule matching is enough)."""

    source: tuple[str, ...] = ()
    """Client addresses and networks (IPv4 or IPv6): `10.1.0.7`, `10.1.0.0/24`."""
    listener: tuple[str, ...] = ()
    """Listeners the client connected to: `HOST:PORT` or a port; bound at start if new."""
    host: tuple[str, ...] = ()
    """Host header names the client asked for (case-insensitive, port ignored)."""
    pod: tuple[PodRule, ...] = ()
    """Kubernetes pods (`kubernetes` in fleet.recognize): `namespace`, `name`, `labels` each."""
    container: tuple[str, ...] = ()
    """Docker containers (way `docker`): a container name or a compose service name."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberConfig:
    """One more instance of the fleet: a name, how its clients are recognised, and what it
    sets over the top-level configuration (only the keys given; the rest come from there)."""

    name: str
    """Unique name: 1-63 of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit."""
    match: MatchConfig = field(default_factory=MatchConfig)
    """The rules recognising this instance's clients."""
    instance: Mapping[str, Any] = field(default_factory=dict)
    """Any `instance` key (dashed) -> its value, over the top-level instance."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Any `options` key (dashed) -> its value, over the top-level options."""
    paths: Mapping[str, str | None] = field(default_factory=dict)
    """IMDS path -> value (null removes it), merged over the top-level paths."""
    scenarios: tuple[ScenarioConfig, ...] = ()
    """This instance's own scenarios (the top-level ones are the default instance's)."""

    def config(self, top: Config) -> Config:
        """This instance's whole configuration: ``top`` with this entry's keys over it."""
        return dataclasses.replace(
            top,
            instance=dataclasses.replace(top.instance, **_fields(self.instance)),
            options=dataclasses.replace(top.options, **_fields(self.options)),
            paths={**top.paths, **self.paths},
            scenarios=self.scenarios,
            instances=(),
            fleet=FleetConfig(),
            template=TemplateConfig(),
        )


def _fields(keys: Mapping[str, Any]) -> dict[str, Any]:
    return {key.replace("-", "_"): value for key, value in keys.items()}


SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where a pod's service account token and cluster CA are mounted."""

Way = Literal["listener", "host", "source", "docker", "kubernetes"]

RECOGNIZE: tuple[Way, ...] = ("listener", "host", "source")
"""The ways a client is recognised, in the default order (resolver ways only when named)."""

RESOLVER_WAYS: tuple[Way, ...] = ("docker", "kubernetes")
"""The ways that ask another system who a client is (a resolver each, built by the app)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetConfig:
    """How clients are told apart when `instances` lists more than one instance."""

    recognize: tuple[Way, ...] = RECOGNIZE
    """The ways a client is recognised, in order; the first that matches wins."""
    unknown: Literal["default", "reject"] = "default"
    """A client no instance matches: `default` serves it the top-level instance, `reject` 404."""
    kubernetes_api: str = ""
    """Kubernetes API server URL; empty: in a pod, https://$KUBERNETES_SERVICE_HOST:PORT."""
    kubernetes_node: str = ""
    """The node whose pods the kubernetes way looks up; empty: $NODE_NAME, else every node."""
    kubernetes_namespace: str = ""
    """The namespace whose pods it looks up; empty: every namespace (a ClusterRole)."""
    kubernetes_token_file: str = SERVICE_ACCOUNT + "/token"
    """Bearer token for the API, read again as it changes; a missing file: none sent."""
    kubernetes_ca_file: str = SERVICE_ACCOUNT + "/ca.crt"
    """CA certificates of an https API; this default missing: the system's."""
    docker_socket: str = "/var/run/docker.sock"
    """The Docker Engine API's unix socket (way `docker`); read at start."""


TemplateWay = Literal["docker", "kubernetes", "source"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateConfig:
    """The instance made for each client a resolver way recognises that no instance
    matches: its instance ID and addresses derived from the client's key (docs/fleet.md)."""

    ways: tuple[TemplateWay, ...] = ()
    """Whose unmatched clients get an instance: resolver ways, and `source` (by address)."""
    source: tuple[str, ...] = ()
    """With `source` in ways: the addresses and networks whose clients it covers; empty: any."""
    instance: Mapping[str, Any] = field(default_factory=dict)
    """Any `instance` key but the derived ones (instance-id, addresses), over the top level."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Any `options` key (dashed) -> its value, over the top-level options."""
    paths: Mapping[str, str | None] = field(default_factory=dict)
    """IMDS path -> value (null removes it), merged over the top-level paths."""
    limit: int = 256
    """At most this many instances are made; a client past it is recognised by the next way."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole, validated configuration."""

    server: ServerConfig = field(default_factory=ServerConfig)
    options: OptionsConfig = field(default_factory=OptionsConfig)
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    credentials: CredentialsConfig = field(default_factory=CredentialsConfig)
    signing: SigningConfig = field(default_factory=SigningConfig)
    paths: Mapping[str, str | None] = field(default_factory=dict)
    """IMDS path (`meta-data/tags/instance/Owner`) -> value; null removes it. Applied last."""
    scenarios: tuple[ScenarioConfig, ...] = ()
    """Timed changes: spot interruption, rebalance, events, Auto Scaling (docs/scenarios.md)."""
    instances: tuple[MemberConfig, ...] = ()
    """More instances in this mock, each served to the clients it matches (docs/fleet.md)."""
    fleet: FleetConfig = field(default_factory=FleetConfig)
    template: TemplateConfig = field(default_factory=TemplateConfig)

    def replace(self, **changes: Any) -> Config:
        """A copy with some top-level sections replaced."""
        return dataclasses.replace(self, **changes)


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
    "allowed-hosts": "server.allowed-hosts",
    "clock": "server.clock",
    "log-requests": "server.log-requests",
    "ecs-listen": "server.ecs-listen",
    "eks-listen": "server.eks-listen",
    "credentials-source": "credentials.source",
    "profile": "credentials.profile",
    "role-arn": "credentials.role-arn",
    # Every instance metadata option has its flag (imdsmock.config.options).
    **{
        name: f"options.{name}"
        for name in (f.name.replace("_", "-") for f in dataclasses.fields(OptionsConfig))
    },
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

# Integer keys with a range other than a signed 32-bit integer's: key -> (low, high).
RANGES: Mapping[str, tuple[int, int]] = {
    "server.port": (0, 65535),
    "server.control-port": (0, 65535),
    "server.mock-ip-count": (-1, 2**31 - 1),
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
    "template.limit": (1, 100_000),
}
DEFAULT_RANGE = (-(2**31), 2**31 - 1)


def dashed(name: str) -> str:
    """The key spelling of a field name (``hop_limit`` -> ``hop-limit``)."""
    return name.replace("_", "-")


def env_name(key: str) -> str:
    """The ``IMDSMOCK_*`` variable for a dotted key."""
    return "IMDSMOCK_" + re.sub(r"[.\-]", "_", key).upper()


def spelled(key: str) -> str:
    """How a user sets a key from the command line: ``--port or IMDSMOCK_PORT``.

    A key with a short name gives its flag and variable; any other, ``--set`` and its own
    variable (``--set server.idle-timeout=N or IMDSMOCK_SERVER_IDLE_TIMEOUT``).
    """
    for short, dotted in SHORT_NAMES.items():
        if dotted == key:
            return f"--{short} or {env_name(short)}"
    return f"--set {key}=... or {env_name(key)}"


def leaf_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted key of a section (``server.host``, ...), in declaration order."""
    keys: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = prefix + dashed(f.name)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys.extend(leaf_keys(tp, key + "."))  # type: ignore[arg-type]
        else:
            keys.append(key)
    return keys
