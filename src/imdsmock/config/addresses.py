"""Addresses in the configuration: listeners (``HOST:PORT``, ``[V6]:PORT``) and IP checks."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from imdsmock.errors import ConfigError

__all__ = ["Listen", "check_ip", "parse_listen"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Listen:
    """One address a listener binds."""

    host: str
    port: int

    def __str__(self) -> str:
        """``HOST:PORT``, an IPv6 address in brackets (given with them or not)."""
        host = self.host.strip("[]")
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


def parse_listen(spec: str, key: str) -> Listen:
    """Parse ``HOST:PORT`` or ``[V6]:PORT`` into a :class:`Listen`."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([^:\[\]]*):([0-9]{1,5})", spec.strip())
    if m is None:
        raise ConfigError(key, spec, "HOST:PORT or [IPV6]:PORT")
    host = m.group(1) or m.group(3) or "0.0.0.0"
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise ConfigError(key, spec, "a port from 0 to 65535")
    if m.group(1):
        check_ip(key, host, 6)
    return Listen(host=host, port=port)


def check_ip(key: str, value: str, version: int) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an IP address of that version (without
    an IPv6 zone: the zone would take anything, a newline included)."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        ip = None
    if ip is None or ip.version != version or "%" in value:
        raise ConfigError(key, value, f"an IPv{version} address")
