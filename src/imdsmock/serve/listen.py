"""Binding listening sockets up front, with one clear line when an address cannot be had,
and the URL a bound one is reached at."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from typing import Any

from imdsmock.config.addresses import Listen
from imdsmock.errors import ServeError

__all__ = ["bind_sockets", "url"]


def url(address: tuple[Any, ...]) -> str:
    """``http://HOST:PORT`` for a bound socket's address (``getsockname()``), IPv6 in brackets."""
    return f"http://{Listen(host=address[0], port=address[1])}"


def bind_sockets(listens: Sequence[Listen]) -> list[socket.socket]:
    """Bind every listener up front, so an address in use fails before anything serves."""
    socks: list[socket.socket] = []
    try:
        for item in listens:
            socks.append(_bind(item))
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def _bind(item: Listen) -> socket.socket:
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
        raise ServeError(_bind_message(item, exc)) from None
    return sock


def _bind_message(item: Listen, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"listen address {item} is already in use; choose another port (--port)"
    if exc.errno == errno.EACCES:
        return (
            f"listen address {item} needs privilege (ports below 1024 need root or "
            "CAP_NET_BIND_SERVICE); use a port >= 1024 or run with that capability"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"listen address {item} is not an address of this machine; add it first "
            "(see `imdsmock route up`) or listen on 127.0.0.1"
        )
    return f"cannot listen on {item}: {exc.strerror}"
