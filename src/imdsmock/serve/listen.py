"""Binding listening sockets up front, with one clear line when an address cannot be had,
and the URL a bound one is reached at."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from typing import Any, NamedTuple

from imdsmock.config.addresses import Listen
from imdsmock.config.schema import Config, ServerConfig, spelled
from imdsmock.errors import ServeError

__all__ = ["Binding", "bind_sockets", "imds_bindings", "member_bindings", "url"]


class Binding(NamedTuple):
    """An address to bind and the configuration keys that chose it.

    An address that cannot be had is reported with the flag and variable of those keys,
    so the message names the setting to change (``--control-port``, not ``--port``).
    """

    listen: Listen
    port_key: str
    """The key that sets the port (``server.port``, ``server.ecs-listen``, ...)."""
    host_key: str
    """The key that sets the address."""


def url(address: tuple[Any, ...]) -> str:
    """``http://HOST:PORT`` for a bound socket's address (``getsockname()``), IPv6 in brackets."""
    return f"http://{Listen(host=address[0], port=address[1])}"


def imds_bindings(server: ServerConfig) -> list[Binding]:
    """The IMDS listeners: ``host:port`` (``--host``/``--port``), then each ``--listen`` entry."""
    first, *extra = server.listeners()
    return [Binding(first, "server.port", "server.host")] + [
        Binding(item, "server.listen", "server.listen") for item in extra
    ]


def member_bindings(cfg: Config) -> list[Binding]:
    """The listeners fleet members are recognised by (``match.listener``) that no IMDS
    listener covers already: a port alone is bound on ``server.host``."""
    from imdsmock.config.fleet import Port, listener  # only a fleet has members

    bound = list(cfg.server.listeners())
    out: list[Binding] = []
    for member in cfg.instances:
        for index, spec in enumerate(member.match.listener):
            key = f"instances.{member.name}.match.listener[{index}]"
            rule = listener(spec, key)
            if isinstance(rule, Port):
                if any(item.port == rule.port for item in bound):
                    continue
                item = Listen(host=cfg.server.host, port=rule.port)
            else:
                item = Listen(host=rule[0], port=rule[1])
                if any(_covers(other, item) for other in bound):
                    continue
            bound.append(item)
            out.append(Binding(item, key, key))
    return out


def _covers(bound: Listen, item: Listen) -> bool:
    """Whether a socket bound to ``bound`` already takes connections to ``item``."""
    if bound.port != item.port:
        return False
    host, wanted = bound.host.strip("[]"), item.host.strip("[]")
    wildcard = host in ("0.0.0.0", "") if ":" not in wanted else host == "::"
    return wildcard or host == wanted


def bind_sockets(bindings: Sequence[Binding]) -> list[socket.socket]:
    """Bind every listener up front, so an address in use fails before anything serves."""
    socks: list[socket.socket] = []
    try:
        for binding in bindings:
            socks.append(_bind(binding))
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def _bind(binding: Binding) -> socket.socket:
    item = binding.listen
    host = item.host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, item.port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ServeError(_bind_message(binding, exc)) from None
    return sock


def _bind_message(binding: Binding, exc: OSError) -> str:
    item, port, host = binding.listen, _spelled(binding.port_key), _spelled(binding.host_key)
    if exc.errno == errno.EADDRINUSE:
        return f"listen address {item} is already in use; choose another port ({port})"
    if exc.errno == errno.EACCES:
        return (
            f"listen address {item} needs privilege (ports below 1024 need root or "
            f"CAP_NET_BIND_SERVICE); use a port >= 1024 ({port}) or run with that capability"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"listen address {item} is not an address of this machine; add it first "
            f"(see `imdsmock route up`) or listen on 127.0.0.1 ({host})"
        )
    return f"cannot listen on {item} ({host}): {exc.strerror}"


def _spelled(key: str) -> str:
    # A fleet member's listener is set only in a config file: named by its key there.
    return f"{key} in the config file" if key.startswith("instances.") else spelled(key)
