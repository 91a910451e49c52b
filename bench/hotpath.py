"""``python -m bench.hotpath``: the Python cost of one request, in-process, no network.

Feeds request bytes to one :class:`~imdsmock.server.IMDSProtocol` (a real one, built by
the app's server) over a transport that keeps nothing, and prints microseconds per
request, the best of several repeats. It measures only the code we can change (parse
callbacks, ``handle``, the request log, the write call) plus the hop-limit
``setsockopt`` calls on a real socket; the loop and the kernel are what ``bench/run``
adds. Far less noisy than wrk on a shared machine, so good for A/B of a change:

    PYTHONPATH=/tmp/base-src python -m bench.hotpath     # before
    python -m bench.hotpath                              # after
    python -m bench.hotpath --only spread,fleet          # the scale figures alone

Times are the thread's CPU time (``time.thread_time``): other processes taking the CPU
do not count, their use of the caches does. Besides the single-request figures:

* ``spread``: 10,000 distinct requests (a random one of 10,000 leaves, one of 10,000
  live tokens, as ``bench/lua/spread.lua`` sends) against the same request every time
  on 1 leaf with 1 token; each packet is a new bytes object, as a socket read gives.
* ``fleet``: one keep-alive GET on each of 1,000 connections in turn, from 1,000 source
  addresses, to a mock without instances and to one with 1,000 instances recognised by
  those addresses.

A and B of a pair are timed in alternating windows in one process; the figure is the
best window, and the ratio's spread over the rounds is printed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import random
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imdsmock.app import App
from imdsmock.config.load import load
from imdsmock.config.scenarios import parse_scenario

from . import site

ID_PATH = "/latest/meta-data/instance-id"
HOST = b"Host: 127.0.0.1:8080\r\n"


class _Sink:
    """A transport that accepts writes and keeps nothing."""

    def __init__(self, peer: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.peer = peer
        self.written = 0
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return (self.peer, 40000)
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
        start = time.thread_time()
        for _ in range(rounds):
            for data in batch:
                feed(data)
        best = min(best, (time.thread_time() - start) / (rounds * len(batch)))
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


def _served(config: dict[str, Any], tmp: Path, name: str) -> App:
    """An app serving ``config`` (keep-alive on), what start-up built frozen as the CLI
    freezes it."""
    file = tmp / f"{name}.json"
    file.write_text(json.dumps(config))
    cfg = load(file=str(file), env={})
    app = App(cfg.replace(server=dataclasses.replace(cfg.server, keep_alive=True)))
    gc.collect(1)
    gc.freeze()
    return app


Feeder = Callable[[list[bytes]], None]


def _pair(
    a: Feeder, b: Feeder, load: Callable[[], tuple[list[bytes], list[bytes]]], rounds: int
) -> tuple[float, float, list[float]]:
    """Best microseconds per request of A and B, timed in alternating windows, and the
    B/A ratios of the rounds."""
    best = {"a": float("inf"), "b": float("inf")}
    ratios: list[float] = []
    for _ in range(rounds):
        got: dict[str, float] = {}
        for key, feed in (("a", a), ("b", b)):
            batch = load()[0 if key == "a" else 1]  # fresh bytes objects, made untimed
            start = time.thread_time()
            feed(batch)
            got[key] = (time.thread_time() - start) / len(batch) * 1e6
            best[key] = min(best[key], got[key])
        ratios.append(got["b"] / got["a"])
    return best["a"], best["b"], ratios


def _fresh(packets: list[bytes]) -> list[bytes]:
    # A socket read gives a new bytes object each time: its hash is not cached yet.
    return [bytes(bytearray(p)) for p in packets]


async def _spread(rounds: int) -> list[tuple[str, float]]:
    """1 leaf, 1 token, the same request (A) against 10,000 leaves, 10,000 tokens (B)."""
    with tempfile.TemporaryDirectory(prefix="imdsmock-hotpath-") as tmp:
        apps = {
            n: _served(json.loads(site.write_config(Path(tmp), n).read_text()), Path(tmp), f"s{n}")
            for n in (1, 10000)
        }
    rng = random.Random(17)
    packets = {}
    for n, app in apps.items():
        now = time.time()
        tokens = [app.state.tokens.issue(21600, now) for _ in range(n)]
        paths = ["/latest/" + p for p in site.leaf_paths(n)]
        # As spread.lua: max(leaves, tokens) requests, a random leaf each, tokens in turn.
        packets[n] = [_get(rng.choice(paths), tokens[i % n]) for i in range(n)]
    feeds = {}
    for n, app in apps.items():
        proto = app.server.protocol()
        proto.connection_made(_Sink())  # type: ignore[arg-type]
        feeds[n] = _feeder(proto)
        feeds[n](_fresh(packets[n]))  # the parse memo learns them, as in a warm server
    draws = 20000
    a, b, ratios = _pair(
        feeds[1],
        feeds[10000],
        lambda: (_fresh(packets[1] * draws), _fresh(rng.choices(packets[10000], k=draws))),
        rounds,
    )
    return [
        ("GET 1 leaf, 1 token", a),
        ("GET 10000 leaves, 10000 tokens", b),
        _ratio_line("spread: 1 leaf / 10000 leaves", a / b, [1 / r for r in ratios]),
    ]


def _feeder(proto: Any) -> Feeder:
    feed = proto.data_received

    def run(batch: list[bytes]) -> None:
        for data in batch:
            feed(data)

    return run


async def _fleet(rounds: int, instances: int = 1000) -> list[tuple[str, float]]:
    """A keep-alive GET on each of ``instances`` connections in turn, from as many source
    addresses: one instance (A) against a fleet recognising each address (B)."""
    with tempfile.TemporaryDirectory(prefix="imdsmock-hotpath-") as tmp:
        one = _served(site.fleet_config(0), Path(tmp), "one")
        many = _served(site.fleet_config(instances), Path(tmp), "fleet")
    feeds = []
    for app in (one, many):
        protos = []
        for i in range(instances):
            proto = app.server.protocol()
            proto.connection_made(_Sink(site.fleet_source(i)))  # type: ignore[arg-type]
            protos.append(proto)
        feeds.append(_round_robin(protos))
    request = _get(ID_PATH)
    a, b, ratios = _pair(
        feeds[0], feeds[1], lambda: (_fresh([request] * 20 * instances),) * 2, rounds
    )
    return [
        (f"GET keep-alive, 1 instance, {instances} clients", a),
        (f"GET keep-alive, {instances} instances", b),
        _ratio_line(f"fleet: {instances} instances / 1", a / b, [1 / r for r in ratios]),
    ]


def _round_robin(protos: list[Any]) -> Feeder:
    feeds = [p.data_received for p in protos]

    def run(batch: list[bytes]) -> None:
        n = len(feeds)
        for i, data in enumerate(batch):
            feeds[i % n](data)

    return run


def _ratio_line(name: str, ratio: float, ratios: list[float]) -> tuple[str, float]:
    low, high = min(ratios), max(ratios)
    med = statistics.median(ratios)
    return (f"{name} (rounds: {low:.2f}-{high:.2f}, median {med:.2f})", ratio)


GROUPS = ("main", "spread", "fleet")


def main(argv: list[str]) -> int:
    """Print microseconds of Python per request for each figure (ratios as such)."""
    only = set(GROUPS)
    args = list(argv)
    if "--only" in args:
        at = args.index("--only")
        only = set(args[at + 1].split(","))
        del args[at : at + 2]
        if not only <= set(GROUPS):
            print(f"bench.hotpath: --only is {sorted(only)}; expected some of {GROUPS}")
            return 2
    rounds = int(args[0]) if args else 20000
    results: list[tuple[str, float]] = []
    if "main" in only:
        results += asyncio.run(_measure(rounds, 7))
    if "spread" in only:
        results += asyncio.run(_spread(9))
    if "fleet" in only:
        results += asyncio.run(_fleet(9))
    for name, value in results:
        unit = "" if name.startswith(("spread", "fleet")) else " us"
        print(f"{name:34} {value:6.2f}{unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
