"""Running wrk (Debian's package) with one of the Lua scripts in bench/lua, pinned to the
CPU the servers do not use, and reading back the JSON line the script prints."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).resolve().parent / "lua"
LOAD_CPU = "1"


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What one wrk run measured."""

    rps: float
    p50_us: float
    p99_us: float
    errors: int
    requests: int


def wrk(
    port: int,
    path: str,
    *,
    script: str = "get.lua",
    connections: int = 32,
    threads: int = 1,
    duration: float = 5.0,
    headers: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    cpus: str = LOAD_CPU,
) -> WrkResult:
    """One wrk run against ``127.0.0.1:port``; raises if wrk fails or says nothing."""
    argv = ["taskset", "-c", cpus, "wrk", "-t", str(threads), "-c", str(connections)]
    argv += ["-d", f"{max(duration, 1.0):g}s", "--timeout", "5s", "-s", str(LUA / script)]
    for h in headers:
        argv += ["-H", h]
    argv.append(f"http://127.0.0.1:{port}{path}")
    full_env = dict(os.environ, BENCH_LUA=str(LUA), **(env or {}))
    out = subprocess.run(argv, env=full_env, capture_output=True, text=True, check=True)
    line = next((x for x in out.stdout.splitlines() if x.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {out.stdout}{out.stderr}")
    data = json.loads(line)
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return WrkResult(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_us=float(data["p50_us"]),
        p99_us=float(data["p99_us"]),
        errors=errors,
        requests=data["requests"],
    )
