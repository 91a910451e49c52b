"""The served data, written twice: as an imdsmock config, and as nginx's document root.

nginx's files are generated from imdsmock's own compiled table, so both servers answer
the same paths with the same body bytes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from imdsmock.config.load import load
from imdsmock.core.snapshot import build_snapshot
from imdsmock.core.state import Compiled
from imdsmock.signing.store import load_signer

LEAF_DIR = "meta-data/bench"


def leaf_paths(count: int) -> list[str]:
    """Relative IMDS paths of ``count`` extra leaves (beside the default instance)."""
    return [f"{LEAF_DIR}/leaf-{i:05d}" for i in range(count)]


def fleet_source(index: int) -> str:
    """The source address of the benchmark's fleet client ``index`` (127.1.0.1 onwards)."""
    return f"127.1.{index // 250}.{index % 250 + 1}"


def fleet_config(instances: int, ports: list[int] | None = None) -> dict[str, object]:
    """A config of ``instances`` fleet members (none for 0) beside the default instance,
    each with its own instance ID and role, recognised by its source address
    (:func:`fleet_source`) and, given ``ports``, by the listener on its own port."""
    members = []
    for i in range(instances):
        match: dict[str, list[str]] = {"source": [fleet_source(i)]}
        if ports is not None:
            match["listener"] = [str(ports[i])]
        members.append(
            {
                "name": f"i{i:04d}",
                "match": match,
                "instance": {"instance-id": f"i-{i:017x}", "iam-role": f"role-{i}"},
            }
        )
    config: dict[str, object] = {"credentials": {"seed": "imdsmock-bench"}}
    if members:
        config["instances"] = members
    return config


def write_fleet_config(directory: Path, instances: int, ports: list[int] | None = None) -> Path:
    """:func:`fleet_config` as a JSON file."""
    out = directory / f"imdsmock-fleet-{instances}.json"
    out.write_text(json.dumps(fleet_config(instances, ports)))
    return out


def write_config(directory: Path, leaves: int) -> Path:
    """An imdsmock JSON config adding ``leaves`` leaves of 32 bytes each."""
    paths = {p: f"value-{i:05d}-" + "x" * 20 for i, p in enumerate(leaf_paths(leaves))}
    # A fixed credential seed so both servers can hold the very same credential bytes.
    config = {"paths": paths, "credentials": {"seed": "imdsmock-bench"}}
    out = directory / f"imdsmock-{leaves}.json"
    out.write_text(json.dumps(config))
    return out


def write_root(directory: Path, config_file: Path) -> Path:
    """nginx's document root: every answer of the compiled table as a file under /latest.

    A directory's listing becomes its ``index.txt`` (nginx is configured to serve it).
    """
    cfg = load(file=config_file, env={})
    now = time.time()
    snapshot = build_snapshot(cfg, signer=load_signer(cfg.signing), started=now)
    compiled = Compiled(snapshot)
    rels = compiled.table(now).entries
    dirs = {rel.rsplit("/", 1)[0] if "/" in rel else "" for rel in rels}
    root = directory / f"root-{config_file.stem}"
    for rel in rels:
        entry = compiled.lookup(rel, now)
        assert entry is not None
        base = root / "latest" / rel if rel else root / "latest"
        target = base / "index.txt" if rel in dirs else base
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(entry.get.body)
    return root
