"""``python -m bench.serve CONFIG MODE``: imdsmock with its optional work off or on.

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
from imdsmock.config.load import load
from imdsmock.config.scenarios import parse_scenario

# bare and full are the benchmark's pair; the others switch one feature on, to find
# which one costs (bench.ab --mode bare,log).
FEATURES = {
    "bare": (),
    "full": ("log", "fault", "timeline"),
    "log": ("log",),
    "fault": ("fault",),
    "timeline": ("timeline",),
}


def main(argv: list[str]) -> int:
    """Serve until SIGTERM."""
    config_file, mode = argv
    features = FEATURES[mode]
    cfg = load(file=config_file, env={})
    if "timeline" in features:
        spot = parse_scenario({"type": "spot-interruption", "at": "+1h"}, default_id="spot")
        cfg = dataclasses.replace(cfg, scenarios=(*cfg.scenarios, spot))
    app = App(cfg)
    if "log" not in features:
        app.server.sink = None
    if "fault" in features:
        app.faults.add({"kind": "status", "status": 503, "path": "/latest/user-data*"})
    else:
        app.server.faults = None
    run(app, app.bind())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
