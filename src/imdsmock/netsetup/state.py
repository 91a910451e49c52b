"""What ``route up`` added, so ``route down`` removes exactly that.

Our chain and nft table are ours by name, but an address on ``lo`` may have been there
before ``up`` (added by hand, or by an earlier tool); only addresses ``up`` itself added are
recorded and later removed. The record is written before each change is applied, so it
names everything a change in progress may have made, even when the process is killed.
The file is keyed by network namespace, because ``/run`` is shared between namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from imdsmock.netsetup.detect import netns_id
from imdsmock.netsetup.errors import NetsetupError

T = TypeVar("T")

RUN_DIR_ENV = "IMDSMOCK_RUN_DIR"
DEFAULT_RUN_DIR = "/run/imdsmock"


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """What ``up`` used and made.

    ``backend`` is the firewall of the last ``up``; ``backends`` every firewall that may
    hold our chain or table; ``added`` the addresses put on ``lo``; ``created`` the
    iptables-nft ``nat`` tables that did not exist before the first ``up``.
    """

    backend: str
    added: tuple[str, ...] = ()
    created: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()

    def merged(self, other: Record) -> Record:
        """Everything either record names (``other``'s backend is the current one)."""
        return Record(
            backend=other.backend,
            added=tuple(dict.fromkeys(self.added + other.added)),
            created=tuple(dict.fromkeys(self.created + other.created)),
            backends=tuple(dict.fromkeys(self.backends + other.backends)),
        )


def record_path(kind: str) -> Path:
    """The ``kind`` record file of this network namespace (``route``, ``node``;
    ``$IMDSMOCK_RUN_DIR`` overrides the directory)."""
    base = Path(os.environ.get(RUN_DIR_ENV, DEFAULT_RUN_DIR))
    return base / f"{kind}-net{netns_id()}.json"


def read_record(target: Path, parse: Callable[[Any], T]) -> T | None:
    """``parse`` of the JSON in ``target``; None when there is no such file; a file that
    cannot be read or parsed is one :class:`NetsetupError`."""
    try:
        return parse(json.loads(target.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise NetsetupError(f"cannot read {target}: {exc}; delete it to start over") from exc


def write_record(target: Path, body: Mapping[str, Any]) -> None:
    """Write ``body`` as JSON, whole (a new file renamed over the old; directory mode 0700)."""
    fresh = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fresh.write_text(json.dumps(body) + "\n", encoding="utf-8")
        os.replace(fresh, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            fresh.unlink()
        raise NetsetupError(f"cannot write {target}: {exc}") from exc


def path() -> Path:
    """The record file of this network namespace (``$IMDSMOCK_RUN_DIR`` overrides the dir)."""
    return record_path("route")


def _parse(data: Any) -> Record:
    backend = str(data["backend"])
    return Record(
        backend=backend,
        added=tuple(str(a) for a in data["added"]),
        created=tuple(str(t) for t in data.get("created", ())),
        backends=tuple(str(b) for b in data.get("backends", (backend,))),
    )


def load() -> Record | None:
    """The record, or ``None`` when ``up`` has not run in this namespace."""
    return read_record(path(), _parse)


def save(record: Record) -> None:
    """Write the record whole (a new file renamed over the old; directory mode 0700)."""
    body = {
        "backend": record.backend,
        "backends": list(record.backends),
        "added": list(record.added),
        "created": list(record.created),
    }
    write_record(path(), body)


def put(record: Record | None) -> None:
    """Save ``record``, or remove the file when it is ``None``."""
    if record is None:
        clear()
    else:
        save(record)


def clear() -> None:
    """Remove the record after ``down``."""
    path().unlink(missing_ok=True)
