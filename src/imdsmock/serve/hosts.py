"""Which names a listener answers to, the control API's same-origin rule, and absolute-form
request targets.

A web page cannot read another origin's answers, but DNS rebinding turns the mock into the
page's own origin: a name the page's owner controls first resolves to his server, then to
127.0.0.1, and the browser lets the page read what the mock answers there. The page cannot
choose the ``Host`` header, though: it carries that name. A listener that answers only to IP
addresses, ``localhost`` and the names the user allowed (``server.allowed-hosts``) is out of
rebinding's reach. Pages that are not rebound can still send requests (a ``text/plain``
POST needs no preflight); the browser names their ``Origin``, which the control API compares
with its own (:func:`same_origin`).

Which listeners check what: the control API always checks ``Host`` and ``Origin``; the
IMDS and container-credential listeners check ``Host`` only while they serve real
credentials (``credentials.source: profile``), since fake ones are worth nothing to a page.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

from imdsmock.errors import quote

__all__ = ["SETTING", "HostRule", "absolute_form", "same_origin", "split_host"]

SETTING = "server.allowed-hosts (--allowed-hosts, IMDSMOCK_ALLOWED_HOSTS)"
"""How a refusal names the setting that allows a name."""

_MEMO_LIMIT = 1024  # distinct Host values remembered (each at most _MEMO_KEY_MAX characters)
_MEMO_KEY_MAX = 300
_LOGGED_LIMIT = 256  # distinct refused names logged; each is quoted short (errors.quote)


def split_host(value: str) -> tuple[str, int | None] | None:
    """``host[:port]`` as (name, port): the name lower-cased, without IPv6 brackets or a
    trailing dot; port None when absent. None when ``value`` is not a host and port."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or not _is_ip(name):
            return None
    elif value.count(":") > 1:  # an IPv6 address without brackets (not a browser's)
        name, rest = value, ""
    else:
        name, colon, port = value.partition(":")
        name, rest = name.removesuffix("."), colon + port
    if rest[:1] not in ("", ":"):
        return None
    port = rest[1:]  # empty when absent, or given empty (allowed, and means none)
    if not name or (port and not (port.isascii() and port.isdigit() and len(port) <= 5)):
        return None
    return name, int(port) if port else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def absolute_form(target: str) -> tuple[str | None, str]:
    """The authority and the path of an absolute-form target (``http://host/path``, as
    sent to proxies; RFC 9112 says servers accept it and take the host from it), or
    (None, ``target``) for any other form."""
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return None, target
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    authority = authority.rpartition("@")[2]  # user information is not part of the host
    if not path.startswith("/"):
        path = "/" + path
    return authority, path


def same_origin(origin: str, host: str | None) -> bool:
    """Whether a browser's ``Origin`` is the origin of a page served at ``host`` over plain
    HTTP (``null``, another scheme, name or port is not)."""
    scheme, sep, authority = origin.strip().partition("://")
    if not sep or scheme.lower() != "http" or host is None:
        return False
    mine, theirs = split_host(host), split_host(authority)
    if mine is None or theirs is None:
        return False
    return mine[0] == theirs[0] and (mine[1] or 80) == (theirs[1] or 80)


class HostRule:
    """The ``Host`` values a listener answers: IP addresses, ``localhost`` and the allowed
    names (``name``, ``.domain`` for it and its subdomains, ``*`` for any), with or
    without a port. A request without ``Host`` is answered: browsers always send one.

    Shared by the listeners of one app and changed in place on a reload (:meth:`allow`).
    Answers are remembered per distinct value (bounded), so the IMDS listener pays a dict
    lookup per request; each refused name is logged once.
    """

    __slots__ = ("_any", "_logged", "_memo", "_names", "_suffixes", "allowed")

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self._logged: set[tuple[str, str]] = set()
        self.allow(allowed)

    def allow(self, allowed: Iterable[str]) -> None:
        """Answer these names from now on (the configured ``server.allowed-hosts``)."""
        entries = tuple(allowed)
        names = {e.lower().removesuffix(".") for e in entries}
        self.allowed = entries
        self._any = "*" in names
        self._suffixes = tuple(n for n in names if n.startswith("."))
        self._names = frozenset(n.lstrip(".") for n in names)
        self._memo: dict[str, bool] = {}

    def allows(self, host: str | None) -> bool:
        """Whether a request with this ``Host`` value is answered."""
        if host is None:
            return True
        known = self._memo.get(host)
        if known is None:
            known = self._check(host)
            if len(host) <= _MEMO_KEY_MAX:  # any client can send any value: stay bounded
                if len(self._memo) >= _MEMO_LIMIT:
                    self._memo = {}
                self._memo[host] = known
        return known

    def _check(self, host: str) -> bool:
        parts = split_host(host)
        if parts is None:
            return False
        name = parts[0]
        if name == "localhost" or _is_ip(name) or self._any:
            return True
        return name in self._names or name.endswith(self._suffixes)

    def refused(
        self, log: logging.Logger, listener: str, host: str | None, *, credentials: bool
    ) -> None:
        """Log a refused ``Host`` once per listener and name (a bounded number of names)."""
        host = host or ""
        parts = split_host(host)
        name = quote(parts[0] if parts is not None else host)
        key = (listener, name)
        if key in self._logged or len(self._logged) >= _LOGGED_LIMIT:
            return
        self._logged.add(key)
        why = "it serves real credentials and " if credentials else ""
        log.warning(
            "refused a request for Host %s on the %s listener: %sanswers only IP addresses, "
            "localhost and the names in %s; add the name there if it is yours",
            name,
            listener,
            why,
            SETTING,
        )
