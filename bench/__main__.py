"""``python -m bench``: measure imdsmock and nginx side by side; print and save the table.

Every load figure runs for both servers in the same run, alternating which goes first,
for ``--rounds`` rounds; the table shows medians. Servers are pinned to CPU 0 and wrk to
CPU 1 (see servers.py / wrk.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import probes, site
from .report import Row, median, ratio, render
from .servers import Imdsmock, Nginx, cpu_seconds, free_ports
from .wrk import WrkResult, wrk

RESULTS = Path(__file__).resolve().parent / "results"
ID_PATH = "/latest/meta-data/instance-id"
Server = Imdsmock | Nginx
# samples[figure][server] -> one value per round (or per run)
Samples = defaultdict[str, defaultdict[str, list[float]]]


def _load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def _alternate(servers: list[Any], rnd: int) -> list[Any]:
    return servers if rnd % 2 == 0 else servers[::-1]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _record(samples: Samples, figure: str, server: Server, value: float) -> None:
    samples[figure][server.name].append(value)


def _check(res: WrkResult, what: str) -> WrkResult:
    if res.errors and res.errors > res.requests * 0.001:
        _say(f"  warning: {what}: {res.errors} errors in {res.requests} requests")
    return res


def start(config: Path, root: Path) -> list[Server]:
    """imdsmock and nginx serving the same data (neither left running on failure)."""
    mock = Imdsmock(str(config))
    try:
        return [mock, Nginx(str(root))]
    except BaseException:
        mock.stop()
        raise


def main_group(args: argparse.Namespace, tmp: Path, samples: Samples) -> None:
    """Single-path figures on the default instance (plus one extra leaf)."""
    config = site.write_config(tmp, 1)
    root = site.write_root(tmp, config)
    servers = start(config, root)
    try:
        for s in servers:
            _record(samples, "rss idle", s, s.rss_kb() / 1024)
        role = _role(servers[0].port)
        d = args.duration
        for rnd in range(args.rounds):
            _say(f"round {rnd + 1}/{args.rounds} (load {_load()})")
            for s in _alternate(servers, rnd):
                r = _check(wrk(s.port, ID_PATH, duration=d), "keep-alive")
                _record(samples, "GET keep-alive, 32 conns", s, r.rps)
                r = _check(
                    wrk(s.port, ID_PATH, duration=d, headers=("Connection: close",)), "close"
                )
                _record(samples, "GET connection per request", s, r.rps)
                lat_env = {"BENCH_DELAY_MS": "8"}
                for label, hdr in (
                    ("per-request conn", ("Connection: close",)),
                    ("keep-alive", ()),
                ):
                    r = wrk(
                        s.port,
                        ID_PATH,
                        script="paced.lua",
                        connections=10,
                        duration=d,
                        headers=hdr,
                        env=lat_env,
                    )
                    _record(samples, f"p50 at ~1k req/s, {label}", s, r.p50_us / 1000)
                    _record(samples, f"p99 at ~1k req/s, {label}", s, r.p99_us / 1000)
                    _record(samples, f"rate of latency run, {label}", s, r.rps)
                if isinstance(s, Imdsmock):
                    env = {"BENCH_ROLE": role}
                    r = _check(wrk(s.port, "/", script="v2flow.lua", duration=d, env=env), "v2")
                    _record(samples, "IMDSv2 flow keep-alive (PUT+2 GET)", s, r.rps)
                    env["BENCH_CLOSE"] = "1"
                    r = _check(wrk(s.port, "/", script="v2flow.lua", duration=d, env=env), "v2c")
                    _record(samples, "IMDSv2 flow connection per request", s, r.rps)
        for s in servers:
            _record(samples, "rss after load", s, s.rss_kb() / 1024)
        _say(f"boto3 credentials x{args.boto_runs} (load {_load()})")
        for _ in range(args.boto_runs):
            wall, call = probes.boto3_credentials_ms(servers[0].port)
            _record(samples, "boto3 process: import + credentials", servers[0], wall)
            _record(samples, "boto3 get_credentials() call", servers[0], call)
    finally:
        for s in servers:
            s.stop()


def scale_group(args: argparse.Namespace, tmp: Path, samples: Samples) -> None:
    """Throughput and memory as leaves and live tokens grow (random leaf, random token)."""
    for leaves in args.leaves:
        config = site.write_config(tmp, leaves)
        t0 = time.perf_counter()
        root = site.write_root(tmp, config)
        _say(f"{leaves} leaves: tree built in {time.perf_counter() - t0:.1f} s")
        paths = tmp / f"paths-{leaves}.txt"
        paths.write_text("".join(f"/latest/{p}\n" for p in site.leaf_paths(leaves)))
        servers = start(config, root)
        try:
            for s in servers:
                _record(samples, f"rss idle, {leaves} leaves", s, s.rss_kb() / 1024)
            many = probes.mint_tokens(servers[0].port, max(args.tokens), tmp / "tokens.txt")
            token_lists = {}
            for count in args.tokens:
                out = tmp / f"tokens-{count}.txt"
                out.write_text("".join(many.read_text().splitlines(True)[:count]))
                token_lists[count] = out
            for rnd in range(args.rounds):
                _say(f"{leaves} leaves, round {rnd + 1}/{args.rounds} (load {_load()})")
                for count, tokens in token_lists.items():
                    env = {"BENCH_PATHS": str(paths), "BENCH_TOKENS": str(tokens)}
                    for s in _alternate(servers, rnd):
                        r = _check(
                            wrk(s.port, "/", script="spread.lua", duration=args.duration, env=env),
                            "spread",
                        )
                        _record(samples, f"GET {leaves} leaves, {count} tokens", s, r.rps)
            for s in servers:
                _record(samples, f"rss after load, {leaves} leaves", s, s.rss_kb() / 1024)
        finally:
            for s in servers:
                s.stop()


def overhead_group(args: argparse.Namespace, tmp: Path, samples: Samples) -> None:
    """The same imdsmock without and with request log, fault check and timeline."""
    config = site.write_config(tmp, 1)
    bare = Imdsmock(str(config), mode="bare")
    try:
        full = Imdsmock(str(config), mode="full")
    except BaseException:
        bare.stop()
        raise
    pair = [bare, full]
    try:
        for rnd in range(args.rounds):
            _say(f"features off/on, round {rnd + 1}/{args.rounds} (load {_load()})")
            for s in _alternate(pair, rnd):
                state = "off" if s is bare else "on"
                r = _check(wrk(s.port, ID_PATH, duration=args.duration), "features")
                samples[f"features {state}: GET keep-alive"]["imdsmock"].append(r.rps)
                hdr = ("Connection: close",)
                r = _check(wrk(s.port, ID_PATH, duration=args.duration, headers=hdr), "features")
                samples[f"features {state}: GET connection per request"]["imdsmock"].append(r.rps)
    finally:
        for s in pair:
            s.stop()


def workers_group(args: argparse.Namespace, tmp: Path, samples: Samples) -> None:
    """The --workers prototype: 1 vs 2 processes on one socket, nothing pinned."""
    config = site.write_config(tmp, 1)
    pair: list[Imdsmock] = []
    try:
        for n in (1, 2):
            pair.append(Imdsmock(str(config), mode=f"workers{n}"))
        for rnd in range(args.rounds):
            _say(f"workers 1/2, round {rnd + 1}/{args.rounds} (load {_load()})")
            for n, s in _alternate(list(enumerate(pair, 1)), rnd):
                for kind, hdr in (
                    ("keep-alive", ()),
                    ("connection per request", ("Connection: close",)),
                ):
                    r = wrk(s.port, ID_PATH, duration=args.duration, headers=hdr, cpus="0,1")
                    samples[f"workers {n}: GET {kind}, unpinned"]["imdsmock"].append(r.rps)
    finally:
        for s in pair:
            s.stop()


def fleet_group(args: argparse.Namespace, tmp: Path, samples: Samples) -> None:
    """One instance against a fleet of ``args.fleet`` instances: the state each holds, and
    keep-alive GETs from 32 clients, each on a port of its own instance (the fleet's
    members are recognised by listener; the one instance serves them all on its port)."""
    n = args.fleet
    for count, label in ((0, "1 instance"), (n, f"{n} instances")):
        _say(f"fleet state, {label} (load {_load()})")
        out = subprocess.run(
            [sys.executable, "-m", "bench.fleetmem", str(count)],
            capture_output=True,
            text=True,
            check=True,
        )
        data = json.loads(out.stdout.splitlines()[-1])
        samples[f"state (tracemalloc), {label}"]["imdsmock"].append(data["traced_mb"])
        samples[f"build, {label}"]["imdsmock"].append(data["build_s"])
    one = Imdsmock(str(site.write_fleet_config(tmp, 0)))
    # Taken after the one instance took its ports; the last two: the fleet's own IMDS and
    # control ports.
    ports = free_ports(n + 2)
    own = (ports.pop(), ports.pop())
    try:
        _say(f"starting {n} instances (load {_load()})")
        many = Imdsmock(str(site.write_fleet_config(tmp, n, ports)), timeout=900, ports=own)
    except BaseException:
        one.stop()
        raise
    pair = [one, many]
    rng = random.Random()
    try:
        for s, label in ((one, "1 instance"), (many, f"{n} instances")):
            samples[f"rss idle, {label}"]["imdsmock"].append(s.rss_kb() / 1024)
        for rnd in range(args.rounds):
            _say(f"fleet, round {rnd + 1}/{args.rounds} (load {_load()})")
            for s in _alternate(pair, rnd):
                # 32 instances of the fleet, a new draw each round.
                chosen = rng.sample(ports, min(32, n)) if s is many else [s.port]
                env = {"BENCH_PORTS": ",".join(map(str, chosen))}
                before = cpu_seconds(s.pid)
                r = wrk(
                    s.port, ID_PATH, script="fleet.lua", threads=32, duration=args.duration, env=env
                )
                cpu_us = (cpu_seconds(s.pid) - before) * 1e6 / max(r.requests, 1)
                _check(r, "fleet")
                label = "1 instance" if s is one else f"{n} instances"
                samples[f"fleet GET keep-alive, 32 clients, {label}"]["imdsmock"].append(r.rps)
                samples[f"fleet server CPU per GET, {label}"]["imdsmock"].append(cpu_us)
    finally:
        for s in pair:
            s.stop()


def cold_group(args: argparse.Namespace, samples: Samples) -> None:
    """Process start to first 200, after one untimed run that fills the key cache."""
    probes.cold_start_ms()

    for _ in range(args.cold_runs):
        samples["cold start to first 200"]["imdsmock"].append(probes.cold_start_ms())


def _role(port: int) -> str:
    import urllib.request

    url = f"http://127.0.0.1:{port}/latest/meta-data/iam/security-credentials/"
    with urllib.request.urlopen(url, timeout=5) as resp:
        role: str = resp.read().decode().splitlines()[0]
        return role


def rows(samples: Samples, args: argparse.Namespace) -> list[Row]:
    """The table: one row per figure, with the target it is held to (if any)."""
    m: dict[str, dict[str, float | None]] = {
        f: {s: median(v) for s, v in by.items()} for f, by in samples.items()
    }
    out: list[Row] = []

    def add(
        figure: str,
        unit: str,
        target: str = "",
        ok: Callable[..., bool] | None = None,
        base: float | None = None,
    ) -> None:
        if figure not in m:
            return
        mine, theirs = m[figure].get("imdsmock"), m[figure].get("nginx")
        rat = ratio(mine, base if base is not None else theirs)
        met = None if ok is None or mine is None else ok(mine, rat)
        out.append(Row(figure, unit, mine, theirs, rat, target, met))

    ka = m.get("GET keep-alive, 32 conns", {}).get("nginx")
    close = m.get("GET connection per request", {}).get("nginx")
    add("GET keep-alive, 32 conns", "req/s", ">= 0.9x nginx", lambda v, r: r >= 0.9)
    add("GET connection per request", "req/s", ">= 0.9x nginx", lambda v, r: r >= 0.9)
    add(
        "IMDSv2 flow keep-alive (PUT+2 GET)",
        "req/s",
        ">= 0.6x nginx keep-alive GET",
        lambda v, r: r >= 0.6,
        base=ka,
    )
    add(
        "IMDSv2 flow connection per request", "req/s", "(vs nginx conn-per-request GET)", base=close
    )
    for label in ("per-request conn", "keep-alive"):
        add(f"p50 at ~1k req/s, {label}", "ms")
        add(f"p99 at ~1k req/s, {label}", "ms", "<= 1 ms", lambda v, r: v <= 1.0)
        add(f"rate of latency run, {label}", "req/s")
    base = m.get(f"GET 1 leaves, {min(args.tokens)} tokens", {}).get("imdsmock")
    for leaves in args.leaves:
        for count in args.tokens:
            fig = f"GET {leaves} leaves, {count} tokens"
            if leaves == max(args.leaves) and count == max(args.tokens) and base:
                add(
                    fig, "req/s", "within 10% of 1 leaf, 1 token", lambda v, r, b=base: v >= 0.9 * b
                )
            else:
                add(fig, "req/s")
        add(f"rss idle, {leaves} leaves", "MB")
        add(f"rss after load, {leaves} leaves", "MB")
    add("cold start to first 200", "ms", "<= 150 ms", lambda v, r: v <= 150)
    add("rss idle", "MB", "<= 30 MB", lambda v, r: v <= 30)
    add("rss after load", "MB")
    add("boto3 process: import + credentials", "ms")
    add("boto3 get_credentials() call", "ms")
    for kind in ("keep-alive", "connection per request"):
        one = m.get(f"workers 1: GET {kind}, unpinned", {}).get("imdsmock")
        add(f"workers 1: GET {kind}, unpinned", "req/s")
        add(f"workers 2: GET {kind}, unpinned", "req/s", "(ratio: 2 workers / 1)", base=one)
    one = m.get("fleet GET keep-alive, 32 clients, 1 instance", {}).get("imdsmock")
    add("fleet GET keep-alive, 32 clients, 1 instance", "req/s")
    add(
        f"fleet GET keep-alive, 32 clients, {args.fleet} instances",
        "req/s",
        ">= 0.9x 1 instance (ratio column)",
        lambda v, r: r >= 0.9,
        base=one,
    )
    cpu_one = m.get("fleet server CPU per GET, 1 instance", {}).get("imdsmock")
    add("fleet server CPU per GET, 1 instance", "us")
    add(
        f"fleet server CPU per GET, {args.fleet} instances",
        "us",
        "<= 1.1x 1 instance (ratio column)",
        lambda v, r: r <= 1.1,
        base=cpu_one,
    )
    add("rss idle, 1 instance", "MB")
    add(f"rss idle, {args.fleet} instances", "MB")
    add("state (tracemalloc), 1 instance", "MB")
    add(f"state (tracemalloc), {args.fleet} instances", "MB", "<= 50 MB", lambda v, r: v <= 50)
    add("build, 1 instance", "s")
    add(f"build, {args.fleet} instances", "s")
    for kind in ("GET keep-alive", "GET connection per request"):
        off = m.get(f"features off: {kind}", {}).get("imdsmock")
        add(f"features off: {kind}", "req/s")
        add(
            f"features on: {kind}",
            "req/s",
            ">= 0.9x features off (ratio column)",
            lambda v, r: r >= 0.9,
            base=off,
        )
    return out


def _git() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1-second runs, fewer repeats")
    p.add_argument("--rounds", type=int, default=3, help="rounds of every load figure (3)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (5)")
    p.add_argument(
        "--only",
        action="append",
        choices=("main", "scale", "cold", "features", "workers", "fleet"),
        help="run only these groups (repeatable)",
    )
    p.add_argument("--fleet", type=int, default=1000, help="instances of the fleet group (1000)")
    p.add_argument("--out", type=Path, help="JSON file (default bench/results/<time>.json)")
    args = p.parse_args(argv)
    args.leaves = [1, 100, 10000]
    args.tokens = [1, 10000]
    args.cold_runs = args.boto_runs = 10
    if args.quick:
        args.duration = min(args.duration, 1.0)
        args.cold_runs = args.boto_runs = 3
        args.leaves = [1, 10000]
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON file; return 0."""
    args = parse(argv)
    groups = args.only or ["cold", "main", "features", "scale"]
    samples: Samples = defaultdict(lambda: defaultdict(list))
    load_before = _load()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="imdsmock-bench-") as tmp:
        if "cold" in groups:
            cold_group(args, samples)
        if "main" in groups:
            main_group(args, Path(tmp), samples)
        if "features" in groups:
            overhead_group(args, Path(tmp), samples)
        if "workers" in groups:
            workers_group(args, Path(tmp), samples)
        if "scale" in groups:
            scale_group(args, Path(tmp), samples)
        if "fleet" in groups:
            fleet_group(args, Path(tmp), samples)
    table = rows(samples, args)
    meta = {
        "when": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(
            timespec="seconds"
        ),
        "seconds": round(time.time() - started, 1),
        "commit": _git(),
        "load_before": load_before,
        "load_after": _load(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "nginx": subprocess.run(
            ["nginx", "-v"], capture_output=True, text=True, check=False
        ).stderr.strip(),
        "rounds": args.rounds,
        "duration": args.duration,
        "quick": args.quick,
    }
    text = render(table)
    print(
        f"imdsmock {meta['commit']} vs {meta['nginx']}; {args.rounds} rounds x "
        f"{args.duration:g} s; load before {load_before}, after {meta['load_after']}"
    )
    print(text)
    out = args.out or RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "meta": meta,
                "rows": [_row(r) for r in table],
                "samples": samples,
            },
            indent=2,
        )
    )
    print(f"results: {out}")
    return 0


def _row(r: Row) -> dict[str, object]:
    return {k: getattr(r, k) for k in Row.__slots__}


if __name__ == "__main__":
    raise SystemExit(main())
