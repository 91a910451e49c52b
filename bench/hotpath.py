"""``python -m bench.hotpath``: the Python cost of one request, in-process, no network.

Feeds request bytes to one :class:`~imdsmock.server.IMDSProtocol` (a real one, built by
the app's server) over a transport that keeps nothing, and prints microseconds per
request, the best of several repeats. It measures only the code we can change (parse
callbacks, ``handle``, the request log, the write call) plus the hop-limit
``setsockopt`` calls on a real socket; the loop and the kernel are what ``bench/run``
adds. Far less noisy than wrk on a shared machine, so good for A/B of a change:

    PYTHONPATH=/tmp/base-src python -m bench.hotpath     # before
    python -m bench.hotpath                              # after
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import sys
import time
from typing import Any

from imdsmock.app import App
from imdsmock.config.load import load
from imdsmock.config.scenarios import parse_scenario

ID_PATH = "/latest/meta-data/instance-id"
HOST = b"Host: 127.0.0.1:8080\r\n"


class _Sink:
    """A transport that accepts writes and keeps nothing."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.written = 0
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return ("127.0.0.1", 40000)
        if name == "socket":
            return self.sock
        return default

    def write(self, data: bytes) -> None:
        self.written += 1

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def write_eof(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed


def _app(mode: str) -> App:
    cfg = load(env={})
    cfg = cfg.replace(server=dataclasses.replace(cfg.server, keep_alive=True))
    if mode == "full":
        spot = parse_scenario({"type": "spot-interruption", "at": "+1h"}, default_id="spot")
        cfg = dataclasses.replace(cfg, scenarios=(*cfg.scenarios, spot))
    app = App(cfg)
    if mode == "bare":
        app.server.sink = None
        app.server.faults = None
    else:
        app.faults.add({"kind": "status", "status": 503, "path": "/latest/user-data*"})
    return app


def _get(path: str, token: str | None = None) -> bytes:
    extra = f"X-aws-ec2-metadata-token: {token}\r\n".encode() if token else b""
    return b"GET " + path.encode() + b" HTTP/1.1\r\n" + HOST + extra + b"\r\n"


PUT = (
    b"PUT /latest/api/token HTTP/1.1\r\n"
    + HOST
    + b"X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\n"
)


def _time(proto: Any, batch: list[bytes], rounds: int, repeats: int) -> float:
    """Best microseconds per request over ``repeats`` runs of ``rounds`` batches."""
    feed = proto.data_received
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(rounds):
            for data in batch:
                feed(data)
        best = min(best, (time.perf_counter() - start) / (rounds * len(batch)))
    return best * 1e6


async def _measure(rounds: int, repeats: int) -> list[tuple[str, float]]:
    out = []
    for mode in ("bare", "full", "cli"):
        app = _app(mode)
        proto = app.server.protocol()
        transport = _Sink()
        proto.connection_made(transport)  # type: ignore[arg-type]
        # The token and the role, fetched through the protocol itself.
        token = app.state.tokens.issue(21600, time.time())
        role = app.config.instance.iam_role or ""
        creds = "/latest/meta-data/iam/security-credentials/"
        figures = {"GET keep-alive": [_get(ID_PATH)]}
        if mode == "cli":
            figures = {
                "GET keep-alive": [_get(ID_PATH)],
                "GET with token": [_get(ID_PATH, token)],
                "PUT token": [PUT],
                "v2flow (PUT + 2 GET)": [PUT, _get(creds, token), _get(creds + role, token)],
                "GET 404": [_get("/latest/meta-data/nothing-here")],
            }
        for name, batch in figures.items():
            label = name if mode == "cli" else f"{name}, features {mode}"
            us = _time(proto, batch, rounds, repeats)
            out.append((label, us))
        proto.connection_lost(None)
        transport.sock.close()
    return out


def main(argv: list[str]) -> int:
    """Print microseconds of Python per request for each figure."""
    rounds = int(argv[0]) if argv else 20000
    results = asyncio.run(_measure(rounds, 7))
    for name, us in results:
        print(f"{name:34} {us:6.2f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
