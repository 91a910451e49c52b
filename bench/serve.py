"""``python -m bench.serve CONFIG bare|full``: imdsmock with its optional work off or on.

``bare`` serves without the request log and without the fault check (the server's
``sink`` and ``faults`` hooks unset); ``full`` keeps the request log, adds a fault rule
that matches no benchmarked path (so every request is checked against it) and a spot
interruption an hour ahead (so the timeline has a change to bisect). The difference is
the cost of those features on the hot path.
"""

from __future__ import annotations

import dataclasses
import sys

from imdsmock.app import App, run
from imdsmock.configload import load


def main(argv: list[str]) -> int:
    """Serve until SIGTERM."""
    config_file, mode = argv
    cfg = load(file=config_file, env={})
    if mode == "full":
        spot = {"type": "spot-interruption", "at": "+1h"}
        cfg = dataclasses.replace(cfg, scenarios=(*cfg.scenarios, spot))
    app = App(cfg)
    if mode == "bare":
        app.server.sink = None
        app.server.faults = None
    else:
        app.faults.add({"kind": "status", "status": 503, "path": "/latest/user-data*"})
    run(app, app.bind())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
