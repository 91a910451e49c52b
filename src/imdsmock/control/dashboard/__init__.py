"""The dashboard: a web page on the control listener, and the files it is made of.

Plain HTML, CSS and hand-written JavaScript shipped in this package (no build step, no request
to any other host). The page reads and changes the mock only through the control API, from
the same origin, with the bearer token when the mock has one; the files themselves hold no
secret and are served without it.

The files are read once, on the first request for one of them, and kept as bytes. The page
links its script, style sheet and icon under names that carry a hash of their content
(``/ui/app.3f2a....js``), so a browser may keep them for a year and still never uses a stale
copy; the page itself and the plain names are revalidated every time. The choices the forms
offer (spot actions, event codes, Auto Scaling states, fault kinds, option values) are
written into the page from the modules that declare them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import resources
from typing import NamedTuple

__all__ = ["FILES", "PAGE_TYPE", "File", "file", "page"]

PREFIX = "/ui/"
PAGE_TYPE = "text/html; charset=utf-8"
FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
"""The page's files and their types."""

# The page runs nothing but its own files, talks only to its own origin and cannot be framed.
_SECURITY: tuple[tuple[str, str], ...] = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
_KEEP = (("Cache-Control", "public, max-age=31536000, immutable"), *_SECURITY)
_REVALIDATE = (("Cache-Control", "no-cache"), *_SECURITY)


class File(NamedTuple):
    """One answer of the dashboard: the bytes, their type and the headers to send."""

    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...]


def page() -> File:
    """The page (``GET /``)."""
    return _files()[0]


def file(name: str) -> File | None:
    """The file ``name`` (``app.js``, or ``app.<hash>.js`` as the page links it), or None."""
    return _files()[1].get(name)


def _hashed(name: str, body: bytes) -> str:
    stem, dot, ext = name.rpartition(".")
    return f"{stem}.{hashlib.sha256(body).hexdigest()[:16]}{dot}{ext}"


@functools.cache
def _files() -> tuple[File, dict[str, File]]:
    here = resources.files(__package__)
    html = here.joinpath("index.html").read_text(encoding="utf-8")
    files: dict[str, File] = {}
    for name, content_type in FILES.items():
        body = here.joinpath(name).read_bytes()
        hashed = _hashed(name, body)
        files[name] = File(body, content_type, _REVALIDATE)
        files[hashed] = File(body, content_type, _KEEP)
        html = html.replace("{{" + name + "}}", PREFIX + hashed)
    # "</" cannot end the data block early: JSON allows the escaped slash.
    html = html.replace("{{choices}}", json.dumps(_choices()).replace("</", "<\\/"))
    return File(html.encode(), PAGE_TYPE, _REVALIDATE), files


def _choices() -> dict[str, object]:
    from imdsmock.config.options import OPTIONS
    from imdsmock.config.scenarios import ACTIONS, ASG_STATES, EVENT_CODES
    from imdsmock.core.faults import KINDS, STATUSES

    return {
        "spot-actions": list(ACTIONS),
        "event-codes": list(EVENT_CODES),
        "asg-states": list(ASG_STATES),
        "fault-kinds": list(KINDS),
        "fault-statuses": list(STATUSES),
        "options": {o.name: list(o.choices) for o in OPTIONS if o.bounds is None},
        "ranges": {o.name: list(o.bounds) for o in OPTIONS if o.bounds is not None},
    }
