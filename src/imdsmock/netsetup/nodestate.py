"""What ``route node`` put in place, kept where the next agent and the preStop hook read it.

Our chain, table and link are ours by name, so removal finds them without a record; the
record adds the backends that may hold them (a backend the system's ``iptables`` no longer
points at) and is written before each change, so it names everything a change in progress
may have made, even when the process is killed. One file per network namespace, beside
``route up``'s (``$IMDSMOCK_RUN_DIR``, default ``/run/imdsmock``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imdsmock.netsetup.state import read_record, record_path, write_record


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRecord:
    """The backends that may hold our chain or table, whether a change made the link, and
    what of iptables-nft's ``ip nat`` table and its PREROUTING chain our changes brought
    into being (``ip nat``, ``ip nat PREROUTING``), so that removal deletes them again."""

    backends: tuple[str, ...] = ()
    link: bool = False
    created: tuple[str, ...] = ()

    def merged(self, other: NodeRecord) -> NodeRecord:
        """Everything either record names."""
        return NodeRecord(
            backends=tuple(dict.fromkeys(self.backends + other.backends)),
            link=self.link or other.link,
            created=tuple(dict.fromkeys(self.created + other.created)),
        )


def path() -> Path:
    """The record file of this network namespace."""
    return record_path("node")


def _parse(data: Any) -> NodeRecord:
    return NodeRecord(
        backends=tuple(str(b) for b in data["backends"]),
        link=bool(data["link"]),
        created=tuple(str(c) for c in data.get("created", ())),
    )


def load() -> NodeRecord | None:
    """The record, or ``None`` when ``route node`` has nothing in place here."""
    return read_record(path(), _parse)


def put(record: NodeRecord | None) -> None:
    """Write the record whole (a new file renamed over the old), or remove it (``None``)."""
    if record is None:
        path().unlink(missing_ok=True)
        return
    body = {"backends": list(record.backends), "link": record.link, "created": list(record.created)}
    write_record(path(), body)
