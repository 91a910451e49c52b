"""Docker figures, on demand (never in the test suite): image sizes, and the time from
``docker compose up`` to a healthy mock for each compose recipe.

    .venv/bin/python bench/docker_report.py [--runs 3] [--recipe env-only ...]

Builds the images from the offline base (scripts/build-base-image) unless they exist, brings
each recipe up with its own compose file under a unique project name, polls the engine for
the mock's health, and always brings the project down again with ``down -v``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RECIPES = ["dnat-entrypoint", "env-only", "link-local-network", "sidecar"]
BASE_IMAGE = os.environ.get("IMDSMOCK_BASE_IMAGE", "imdsmock-base:bookworm")
IMAGES = {
    "imdsmock:local": "Dockerfile",
    "imdsmock-demo-app:local": "examples/compose/demo-app/Dockerfile",
}


def run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; never raises on a non-zero status."""
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kw)


def compose_command() -> list[str]:
    """``docker compose`` when the plugin is installed, else ``docker-compose``."""
    if shutil.which("docker") and run(["docker", "compose", "version"]).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    sys.exit("docker_report: neither `docker compose` nor `docker-compose` is installed")


def image_size(tag: str) -> int | None:
    """The image's size in bytes, or None when the engine has no such image."""
    out = run(["docker", "image", "inspect", "--format", "{{.Size}}", tag])
    return int(out.stdout) if out.returncode == 0 else None


def ensure_images() -> None:
    """Build what is missing, from the offline base, exactly as the tests do."""
    if all(image_size(tag) is not None for tag in IMAGES):
        return
    subprocess.run(["bash", str(REPO / "scripts" / "build-base-image")], check=True)
    for tag, dockerfile in IMAGES.items():
        subprocess.run(
            ["docker", "build", "-q", "-f", dockerfile, "-t", tag,
             "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "."],
            cwd=REPO, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip


def time_to_healthy(compose: list[str], recipe: str) -> tuple[float, float]:
    """Seconds from ``up`` until it returns with every container started (compose waits for
    the mock's health before starting the app), and from the mock's start to its first
    passing health probe."""
    file = REPO / "examples" / "compose" / recipe / "compose.yaml"
    project = ["-p", f"imdsmock-bench-{recipe}-{os.getpid()}", "-f", str(file)]
    env = {**os.environ, "IMDSMOCK_BASE_IMAGE": BASE_IMAGE, "IMDSMOCK_CONTROL_PORT": "0"}
    start = time.monotonic()
    try:
        up = run([*compose, *project, "up", "-d", "--no-build"], env=env, cwd=file.parent)
        elapsed = time.monotonic() - start
        if up.returncode != 0:
            sys.exit(f"docker_report: {recipe}: compose up failed:\n{up.stderr}")
        mock = run([*compose, *project, "ps", "-q", "imds"], env=env, cwd=file.parent)
        state = json.loads(
            run(["docker", "inspect", "--format", "{{json .State}}", mock.stdout.strip()]).stdout
        )
        started = _timestamp(state["StartedAt"])
        passed = [_timestamp(p["End"]) for p in state["Health"]["Log"] if p["ExitCode"] == 0]
        return elapsed, min(passed) - started
    finally:
        run([*compose, *project, "down", "-v", "--timeout", "5"], env=env, cwd=file.parent)


def _timestamp(text: str) -> float:
    """Seconds since the epoch from the engine's RFC 3339 time with nanoseconds."""
    head, _, frac = text.rstrip("Z").partition(".")
    whole = datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.UTC).timestamp()
    return whole + float(f"0.{frac.split('+')[0] or 0}")


def main(argv: list[str] | None = None) -> int:
    """Print the image sizes, then the up-to-healthy times per recipe (median of runs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per recipe (default 3)")
    parser.add_argument("--recipe", action="append", choices=RECIPES, help="default: all")
    args = parser.parse_args(argv)
    compose = compose_command()
    ensure_images()

    base = image_size(BASE_IMAGE)
    print(f"{'image':34} {'size':>9}")
    for tag in [BASE_IMAGE, *IMAGES]:
        size = image_size(tag)
        extra = f"  (+{(size - base) / 1e6:.1f} MB over the base)" if size and base else ""
        extra = (
            extra if tag != BASE_IMAGE else "  (the offline test base; users get python:3.12-slim)"
        )
        print(f"{tag:34} {size / 1e6 if size else 0:7.1f} MB{extra}")
    healthcheck = run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Healthcheck}}", "imdsmock:local"]
    ).stdout.strip()
    print(f"health check: {healthcheck}")
    print()
    print(f"{'recipe':20} {'compose up → healthy, app started':>34} {'mock start → healthy':>21}")
    for recipe in args.recipe or RECIPES:
        times = [time_to_healthy(compose, recipe) for _ in range(args.runs)]
        up = statistics.median(t[0] for t in times)
        healthy = statistics.median(t[1] for t in times)
        print(f"{recipe:20} {up:32.2f} s {healthy:19.2f} s")
    print(f"(medians of {args.runs} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
