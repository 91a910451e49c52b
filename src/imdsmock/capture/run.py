"""One capture from start to end: the URL checked, the walk, the configuration, the report.

:func:`capture` is what ``imdsmock capture`` runs; :func:`report` is what it then says on
stderr: what was captured, what was left out and why, and each difference the copy keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import yaml

from imdsmock.capture.client import Client, parse_url
from imdsmock.capture.render import render
from imdsmock.capture.reproduce import Reproduction, reproduce
from imdsmock.capture.walk import Captured, walk
from imdsmock.config.build import from_mapping
from imdsmock.config.fleet import check_name

__all__ = [
    "DEFAULT_URL",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_PATHS",
    "TIMEOUT",
    "Capture",
    "capture",
    "report",
]

DEFAULT_URL = "http://169.254.169.254"

# The bounds of a walk by default. A real instance has about 100 paths of a few KiB in all.
TIMEOUT = 2.0
"""Seconds each request may take (IMDS answers in milliseconds)."""
MAX_PATHS = 4096
"""Requests in all."""
MAX_BYTES = 16 * 1024 * 1024
"""Body bytes in all."""
MAX_DEPTH = 12
"""Segments of a path (``meta-data/network/interfaces/macs/MAC/ipv4-associations/IP`` has 7)."""


@dataclass(frozen=True, slots=True)
class Capture:
    """The configuration written, and what it came from."""

    text: str
    captured: Captured
    reproduction: Reproduction


def capture(
    url: str = DEFAULT_URL,
    *,
    user_data: bool = False,
    as_instance: str | None = None,
    timeout: float = TIMEOUT,
    max_paths: int = MAX_PATHS,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    warn: Callable[[str], None] = lambda line: None,
) -> Capture:
    """Walk the IMDS at ``url`` and write the configuration that reproduces it (with
    ``as_instance``, as that fleet entry). Raises :class:`~imdsmock.errors.ImdsMockError`
    for a bad argument, :class:`~imdsmock.capture.client.CaptureFailed` when the server
    cannot be reached or walked within the bounds."""
    target = parse_url(url)
    if as_instance is not None:
        check_name(as_instance, "--as-instance")
    client = Client(target, timeout=timeout, max_bytes=max_bytes)
    found = walk(client, user_data=user_data, max_depth=max_depth, max_paths=max_paths, warn=warn)
    made = reproduce(found, user_data=user_data, every_key=as_instance is not None)
    text = render(made, url=target.url, imdsv2=found.imdsv2, member=as_instance)
    if as_instance is not None:  # an entry that a fleet configuration takes as it is
        from_mapping({"instances": yaml.safe_load(text)})
    return Capture(text, found, made)


def report(result: Capture) -> list[str]:
    """The lines said about a capture: a summary, what was left out, each difference."""
    c, r = result.captured, result.reproduction
    how = "IMDSv2" if c.imdsv2 else "IMDSv1"
    lines = [
        f"captured {len(c.leaves)} leaves of {c.url} with {how} ({c.requests} requests, "
        f"{c.received} bytes): {len(r.instance)} instance keys, {len(r.paths)} paths"
    ]
    why: dict[str, list[str]] = {}
    for path, reason in c.left_out.items():
        why.setdefault(reason, []).append(path)
    lines += [f"left out ({reason}): {', '.join(paths)}" for reason, paths in why.items()]
    if c.absent:
        lines.append(f"listed but answered 404: {', '.join(c.absent)}")
    lines += [f"the copy differs: {note}" for note in (*c.notes, *r.notes)]
    return lines
