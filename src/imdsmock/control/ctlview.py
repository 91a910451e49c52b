"""How ``imdsmock ctl`` shows the control API's answers to a person.

Lists of records are tables, mappings are ``key: value`` lines with nested mappings as
indented sections (``ctl state``), times are RFC 3339 in UTC, and a request of the log
followed live is one line. ``--json`` bypasses all of this and prints the API's JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = ["readable", "request_line", "rfc3339"]

# Lists of records shown as tables: their key in an answer -> the columns, in order.
COLUMNS: Mapping[str, tuple[str, ...]] = {
    "requests": ("seq", "method", "path", "status", "client", "token", "user-agent"),
    "clients": ("client", "user-agent", "requests", "served", "rejected"),
    "faults": ("id", "kind", "path", "client", "count", "probability", "status", "latency-ms"),
    "scenarios": ("id", "type", "at"),
}
_INDENT = "  "


def rfc3339(epoch: float) -> str:
    """``2026-12-04T06:04:59.162Z``: a POSIX time as RFC 3339 in UTC, to the millisecond."""
    when = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    return when.replace("+00:00", "Z")


def text(value: Any) -> str:
    """One value as a table cell or after ``key:``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    """``rows`` as a table under a header of ``columns``, or ``(none)``."""
    if not rows:
        return ["(none)"]
    cells = [[text(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return [line.rstrip() for line in lines]


def clock(data: Mapping[str, Any]) -> dict[str, Any]:
    """The clock as a person reads it: times as RFC 3339, the elapsed time in seconds."""
    shown = {k: v for k, v in data.items() if k != "now-iso"}  # ``now`` shows it
    for key in ("now", "started"):
        if isinstance(shown.get(key), int | float):
            shown[key] = rfc3339(shown[key])
    if isinstance(shown.get("elapsed"), int | float):
        shown["elapsed"] = f"{shown['elapsed']:g} s"
    return shown


def _entry(key: str, value: Any, depth: int) -> list[str]:
    pad = _INDENT * depth
    if isinstance(value, dict | list) and not value:
        return [f"{pad}{key}: (none)"]
    if isinstance(value, dict):
        return [
            f"{pad}{key}:",
            *(line for k, v in value.items() for line in _entry(k, v, depth + 1)),
        ]
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        if depth == 0 and key in COLUMNS:
            return [f"{key}:", *(_INDENT + line for line in table(value, COLUMNS[key]))]
        lines = [f"{pad}{key}:"]
        for item in value:
            inner = [line for k, v in item.items() for line in _entry(k, v, 0)]
            lines.append(f"{pad}{_INDENT}- {inner[0]}")
            lines += [f"{pad}{_INDENT}  {line}" for line in inner[1:]]
        return lines
    if isinstance(value, list):
        return [f"{pad}{key}: {', '.join(text(item) for item in value)}"]
    return [f"{pad}{key}: {text(value)}"]


def instance(data: Mapping[str, Any]) -> list[str]:
    """The instance's keys as ``key: value`` lines, derived and run-time values marked."""
    marks = {key: "  (derived)" for key in data.get("derived", ())}
    marks.update((key, "  (changed)") for key in data.get("changed", ()))
    lines = []
    for key, value in data["instance"].items():
        first, *rest = _entry(key, value, 0)
        lines += [first + marks.get(key, ""), *rest]
    return lines


# The fleet's tables (``ctl instances``, ``ctl instances clients NAME``).
FLEET_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "instances": ("name", "instance-id", "iam-role", "match", "clients"),
    "clients": ("client", "why", "first", "last", "connections"),
}


def fleet(data: Mapping[str, Any]) -> list[str] | None:
    """The fleet's list or an instance's clients as a table; None for any other answer.

    Match rules show as ``source=10.0.0.7,10.1.0.0/24``; times as RFC 3339."""
    if len(data) != 1:
        return None
    ((key, rows),) = data.items()
    if key not in FLEET_COLUMNS or not isinstance(rows, list):
        return None
    shown = []
    for given in rows:
        row = dict(given)
        if isinstance(row.get("match"), dict):
            rules = [f"{kind}={','.join(map(_rule, v))}" for kind, v in row["match"].items()]
            made = f"template={row['template']}" if row.get("template") else ""
            row["match"] = " ".join(rules) or made or ("(the rest)" if row.get("default") else "")
        for when in ("first", "last"):
            if isinstance(row.get(when), int | float):
                row[when] = rfc3339(row[when])
        shown.append(row)
    return table(shown, FLEET_COLUMNS[key])


def readable(command: str, data: Any) -> str:
    """An answer of the control API as ``imdsmock ctl COMMAND`` prints it."""
    if isinstance(data, str):
        return data.rstrip("\n")
    if command == "instances" and isinstance(data, dict):
        lines = fleet(data)
        if lines is not None:
            return "\n".join(lines)
    if command == "instance" and isinstance(data, dict) and "instance" in data:
        return "\n".join(instance(data))
    if command == "clock" and isinstance(data, dict):
        data = clock(data)
    if command == "state" and isinstance(data, dict) and isinstance(data.get("clock"), dict):
        data = {**data, "clock": clock(data["clock"])}
    if isinstance(data, dict) and len(data) == 1:
        ((key, value),) = data.items()
        if isinstance(value, list) and key in COLUMNS:
            columns = COLUMNS[key]
            if key == "scenarios" and any("instance" in row for row in value):
                columns = ("instance", *columns)  # the scenarios of several instances
            return "\n".join(table(value, columns))
    if isinstance(data, dict):
        return "\n".join(line for k, v in data.items() for line in _entry(k, v, 0))
    return json.dumps(data, indent=2)


def request_line(entry: Mapping[str, Any]) -> str:
    """One logged request as ``ctl requests --follow`` prints it: time, client, method and
    path, status (``-`` when a fault sent no answer), whether a token was sent, user agent.

    ``2026-12-04T06:04:59.162Z  127.0.0.1  GET /latest/meta-data/ami-id  200  token=no  curl/8.5.0``
    """
    path = str(entry["path"])
    agent = text(entry.get("user-agent"))
    status = entry["status"] or "-"
    token = "token=yes" if entry["token"] else "token=no"
    fields = (rfc3339(entry["time"]), entry["client"], f"{entry['method']} {_shown(path)}")
    return "  ".join((*map(str, fields), str(status), token, _shown(agent)))


def _shown(value: str) -> str:
    """A client's text as printable characters (escapes for control characters)."""
    return value if value.isprintable() else ascii(value)[1:-1]


def _rule(rule: object) -> str:
    """A match rule as the table shows it: as is, or a pod rule as ``NAMESPACE/NAME[LABELS]``
    (``*`` for what it leaves open)."""
    if not isinstance(rule, dict):
        return str(rule)
    labels = rule.get("labels") or {}
    shown = f"{rule.get('namespace') or '*'}/{rule.get('name') or '*'}"
    if labels:
        shown += "[" + ",".join(f"{k}={v}" for k, v in labels.items()) + "]"
    return shown
