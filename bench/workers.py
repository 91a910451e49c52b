"""``python -m bench.workers CONFIG N``: a throw-away prototype of ``--workers N``.

The listening sockets are bound once, then the process forks N-1 times and every process
serves the same sockets (the kernel spreads connections); the token secret is created
before the fork, so tokens from one worker verify in another. Control changes would NOT
reach the other workers (state lives in each process), which is why this is a prototype
for measuring, not a feature: see docs/performance.md.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys

from imdsmock.app import App, run
from imdsmock.config.load import load


def main(argv: list[str]) -> int:
    """Serve with N processes until SIGTERM (the parent stops its children)."""
    config_file, count = argv[0], int(argv[1])
    cfg = load(file=config_file, env={})
    cfg = cfg.replace(server=dataclasses.replace(cfg.server, control=False))
    app = App(cfg)
    socks = app.bind()
    kids = []
    for _ in range(count - 1):
        pid = os.fork()
        if pid == 0:
            run(app, socks)
            os._exit(0)
        kids.append(pid)
    try:
        run(app, socks)
    finally:
        for pid in kids:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
