"""``python -m bench.fleetmem N``: what a mock with N fleet instances holds, in-process.

Builds the app of a configuration with ``N`` members (none for 0), as the benchmark's
fleet group serves it, and prints one JSON line: the seconds to build it, the resident
memory it added (imports included) and what ``tracemalloc`` counts as held by a second
such app, built beside the first (the state alone: no imports, no caches filled).
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from imdsmock.app import App
from imdsmock.config.load import load

from . import site


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str]) -> int:
    """Build the app, print the JSON line."""
    count = int(argv[0])
    with tempfile.TemporaryDirectory(prefix="imdsmock-fleetmem-") as tmp:
        config = load(file=str(site.write_fleet_config(Path(tmp), count)), env={})
    gc.collect()
    rss = _rss_mb()
    start = time.perf_counter()
    first = App(config)
    seconds = time.perf_counter() - start
    gc.collect()
    rss_after = _rss_mb()
    tracemalloc.start()
    app = App(config)
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    for built in (first, app):
        assert built.fleet is None or len(built.fleet.roster.states) == count
    print(
        json.dumps(
            {
                "instances": count,
                "build_s": round(seconds, 2),
                "rss_mb": round(rss_after - rss, 1),
                "traced_mb": round(traced / 2**20, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
