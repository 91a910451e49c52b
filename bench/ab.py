"""``python -m bench.ab A_SRC B_SRC``: two source trees of imdsmock, one figure, A/B.

For comparing a change with what it replaces on a shared, noisy machine: both servers run
side by side (pinned to CPU 0, wrk on CPU 1), the order alternates every round, and
besides requests per second each run reports the server's own CPU time per request
(user + system, from /proc), which other processes' load disturbs much less.

    cp -r src /tmp/base-src          # before the change
    python -m bench.ab /tmp/base-src src --figure v2flow --rounds 6

Figures: ``get`` (keep-alive GET), ``close`` (connection per request), ``v2flow`` (PUT
token + 2 GETs, keep-alive), ``spread`` (random leaf of ``--leaves``, random token of
``--tokens``), ``features`` (``bench.serve`` full; compare with ``--mode bare``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

from . import probes, site
from .servers import Imdsmock, cpu_seconds
from .wrk import wrk

ID_PATH = "/latest/meta-data/instance-id"
FIGURES = ("get", "close", "v2flow", "spread", "features")


def _run(s: Imdsmock, args: argparse.Namespace, env: dict[str, str]) -> tuple[float, float]:
    """One wrk run: (requests per second, server CPU microseconds per request)."""
    script, path = "get.lua", ID_PATH
    headers: tuple[str, ...] = ()
    if args.figure == "close":
        headers = ("Connection: close",)
    elif args.figure == "v2flow":
        script, path = "v2flow.lua", "/"
    elif args.figure == "spread":
        script, path = "spread.lua", "/"
    before = cpu_seconds(s.pid)
    r = wrk(s.port, path, script=script, duration=args.duration, headers=headers, env=env)
    cpu = cpu_seconds(s.pid) - before
    if r.errors:
        print(f"  {r.errors} errors (non-2xx or socket) in {r.requests} requests")
    return r.rps, cpu * 1e6 / max(r.requests, 1)


def _pair(value: str) -> list[str]:
    """'x' -> [x, x]; 'x,y' -> [x, y] (A's and B's setting)."""
    parts = value.split(",")
    return parts if len(parts) == 2 else [value, value]


def main(argv: list[str] | None = None) -> int:
    """Run the A/B and print one line per run and the medians."""
    p = argparse.ArgumentParser(prog="bench.ab", description=__doc__.splitlines()[0])
    p.add_argument("a", help="source directory holding the imdsmock package (A)")
    p.add_argument("b", help="source directory holding the imdsmock package (B)")
    p.add_argument("--figure", choices=FIGURES, default="get")
    p.add_argument(
        "--mode",
        help="bench.serve mode (bare, full) for both, or 'A,B' (e.g. bare,full); default: the CLI",
    )
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--leaves", default="1", help="extra leaves, or 'A,B' (e.g. 1,10000)")
    p.add_argument("--tokens", default="0", help="live tokens (spread), or 'A,B'")
    args = p.parse_args(argv)
    mode = args.mode or ("full" if args.figure == "features" else None)
    modes = _pair(mode) if mode else [None, None]
    leaves = [int(x) for x in _pair(args.leaves)]
    token_counts = [int(x) for x in _pair(args.tokens)]
    with tempfile.TemporaryDirectory(prefix="imdsmock-ab-") as tmp:
        pair = []
        try:
            for src, m, n in zip((args.a, args.b), modes, leaves, strict=True):
                config = site.write_config(Path(tmp), n)
                pair.append(Imdsmock(str(config), mode=m, src=src))
            envs: dict[str, dict[str, str]] = {"A": {}, "B": {}}
            for name, s, n, count in zip(("A", "B"), pair, leaves, token_counts, strict=True):
                env = envs[name]
                if args.figure == "v2flow":
                    url = f"http://127.0.0.1:{s.port}/latest/meta-data/iam/security-credentials/"
                    with urllib.request.urlopen(url, timeout=5) as resp:
                        env["BENCH_ROLE"] = resp.read().decode().splitlines()[0]
                if args.figure == "spread":
                    paths = Path(tmp, f"paths-{n}.txt")
                    paths.write_text("".join(f"/latest/{x}\n" for x in site.leaf_paths(n)))
                    env["BENCH_PATHS"] = str(paths)
                if count:  # each server verifies only its own tokens
                    tokens = probes.mint_tokens(s.port, count, Path(tmp, f"t{name}.txt"))
                    env["BENCH_TOKENS"] = str(tokens)
            results: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
            for rnd in range(args.rounds):
                order = [("A", pair[0]), ("B", pair[1])]
                for name, s in order if rnd % 2 == 0 else order[::-1]:
                    rps, us = _run(s, args, envs[name])
                    results[name].append((rps, us))
                    print(f"round {rnd + 1} {name}: {rps:9,.0f} req/s {us:6.2f} us CPU/req")
            for name in ("A", "B"):
                rps = statistics.median(r for r, _ in results[name])
                us = statistics.median(u for _, u in results[name])
                print(f"median {name}: {rps:9,.0f} req/s {us:6.2f} us CPU/req")
            a_us = statistics.median(u for _, u in results["A"])
            b_us = statistics.median(u for _, u in results["B"])
            a_rps = statistics.median(r for r, _ in results["A"])
            b_rps = statistics.median(r for r, _ in results["B"])
            print(f"B/A: {b_rps / a_rps:.3f} req/s, {b_us / a_us:.3f} CPU per request")
        finally:
            for s in pair:
                s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
