"""JSON as IMDS prints it.

Real IMDS pretty-prints its JSON documents with two-space indentation, a space on both
sides of the colon (``"Code" : "Success"``) and lists kept on one line
(``[ "a", "b" ]``); shell scripts that parse credentials with whitespace splitting depend on
it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["dumps", "event_time", "imds_time"]


def dumps(document: Any, indent: int = 0) -> str:
    """Render ``document`` the way IMDS does."""
    pad = "  " * (indent + 1)
    if isinstance(document, Mapping):
        if not document:
            return "{ }"
        items = [f"{pad}{json.dumps(str(k))} : {dumps(v, indent + 1)}" for k, v in document.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(document, Sequence) and not isinstance(document, str | bytes):
        if not document:
            return "[ ]"
        return "[ " + ", ".join(dumps(v, indent) for v in document) + " ]"
    return json.dumps(document, ensure_ascii=False)


def imds_time(when: float) -> str:
    """Format a POSIX time as IMDS timestamps are written: ``YYYY-MM-DDTHH:MM:SSZ``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def event_time(when: float) -> str:
    """Format a time as scheduled-event documents do: ``21 Jan 2019 09:00:43 GMT``."""
    t = time.gmtime(when)
    return f"{t.tm_mday} {time.strftime('%b %Y %H:%M:%S', t)} GMT"
