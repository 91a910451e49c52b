"""What ``route up`` added, so ``route down`` removes exactly that.

Our chain and nft table are ours by name, but an address on ``lo`` may have been there
before ``up`` (added by hand, or by an earlier tool); only addresses ``up`` itself added are
recorded and later removed. The file is keyed by network namespace, because ``/run`` is
shared between namespaces.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from imdsmock.netsetup.detect import netns_id
from imdsmock.netsetup.errors import NetsetupError

RUN_DIR_ENV = "IMDSMOCK_RUN_DIR"
DEFAULT_RUN_DIR = "/run/imdsmock"


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """What ``up`` used and made: backend, addresses added to ``lo``, nat tables created."""

    backend: str
    added: tuple[str, ...] = ()
    created: tuple[str, ...] = ()


def path() -> Path:
    """The record file of this network namespace (``$IMDSMOCK_RUN_DIR`` overrides the dir)."""
    base = Path(os.environ.get(RUN_DIR_ENV, DEFAULT_RUN_DIR))
    return base / f"route-net{netns_id()}.json"


def load() -> Record | None:
    """The record, or ``None`` when ``up`` has not run in this namespace."""
    try:
        data = json.loads(path().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise NetsetupError(f"cannot read {path()}: {exc}; delete it to start over") from exc
    return Record(
        backend=str(data["backend"]),
        added=tuple(str(a) for a in data["added"]),
        created=tuple(str(t) for t in data.get("created", ())),
    )


def save(record: Record) -> None:
    """Write the record (creating the directory, mode 0700)."""
    target = path()
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = {
            "backend": record.backend,
            "added": list(record.added),
            "created": list(record.created),
        }
        target.write_text(json.dumps(body) + "\n", encoding="utf-8")
    except OSError as exc:
        raise NetsetupError(f"cannot write {target}: {exc}") from exc


def clear() -> None:
    """Remove the record after ``down``."""
    path().unlink(missing_ok=True)
