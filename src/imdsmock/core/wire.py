"""Responses rendered to bytes ahead of time, in real IMDS's wire format.

A :class:`Response` holds everything but the ``Date`` header, which the server adds from
a once-a-second cache: ``head + date_line + tail``. Header order, ``Server: EC2ws``,
``Connection: close``, ``Accept-Ranges``, bodies without a trailing newline and the
XHTML error pages follow captured real responses.
"""

from __future__ import annotations

from email.utils import formatdate
from typing import NamedTuple

__all__ = [
    "REASONS",
    "Response",
    "error",
    "render",
]

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Response(NamedTuple):
    """A response ready to write: ``head``, then the ``Date`` line, then a tail."""

    status: int
    head: bytes
    tail_close: bytes
    tail_keep: bytes
    # When non-zero, the server sends this response with IP TTL / hop limit set to it
    # (the IMDSv2 token response).
    hop_limit: int = 0

    @property
    def body(self) -> bytes:
        """The body (for tests and logs; the server writes the pre-rendered bytes)."""
        return self.tail_close.split(b"\r\n\r\n", 1)[1]


def render(
    status: int,
    body: bytes,
    *,
    content_type: str = "text/plain",
    headers: tuple[tuple[str, str], ...] = (),
    last_modified: float | None = None,
    head_only: bool = False,
    hop_limit: int = 0,
) -> Response:
    """Render a response; ``head_only`` gives the HEAD variant (same length, no body)."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
    lines.append(f"Content-Type: {content_type}")
    if status == 200:
        ranges = "bytes" if content_type == "application/octet-stream" else "none"
        lines.append(f"Accept-Ranges: {ranges}")
        if last_modified is not None:
            lines.append(f"Last-Modified: {formatdate(last_modified, usegmt=True)}")
    lines.extend(f"{k}: {v}" for k, v in headers)
    lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
    payload = b"" if head_only else body
    return Response(
        status,
        head,
        b"Server: EC2ws\r\nConnection: close\r\n\r\n" + payload,
        b"Server: EC2ws\r\n\r\n" + payload,
        hop_limit,
    )


def _xhtml(status: int, prolog: str, indent: str, oneline_doctype: bool) -> bytes:
    title = f"{status} - {REASONS[status]}"
    doctype = '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"'
    dtd = '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">'
    doctype += " " + dtd if oneline_doctype else "\n\t" + dtd
    i1, i2 = indent, indent * 2
    return (
        f'<?xml version="1.0" encoding="{prolog}"?>\n{doctype}\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n'
        f"{i1}<head>\n{i2}<title>{title}</title>\n{i1}</head>\n"
        f"{i1}<body>\n{i2}<h1>{title}</h1>\n{i1}</body>\n</html>"
    ).encode()


# The XHTML pages real IMDS answers with (as reproduced by AWS's own Go mock):
# 404 with an iso-8859-1 prolog, 400 and 401 with a UTF-8 prolog and wider indentation.
ERROR_BODIES = {
    400: _xhtml(400, "UTF-8", "   ", True),
    401: _xhtml(401, "UTF-8", "   ", True),
    404: _xhtml(404, "iso-8859-1", " ", False),
}


def error(status: int, *, head_only: bool = False, allow: str | None = None) -> Response:
    """An IMDS error response: XHTML page for 400/401/404, empty text/plain otherwise."""
    body = ERROR_BODIES.get(status)
    headers = (("Allow", allow),) if allow else ()
    if body is None:
        return render(status, b"", headers=headers, head_only=head_only)
    return render(status, body, content_type="text/html", headers=headers, head_only=head_only)
