"""How much the imdsmock pytest plugin adds to pytest start-up in a project not using it.

Runs pytest on a one-test project repeatedly, interleaving runs with and without the
plugin, and prints the medians. Two settings:

* ``autoload``: every installed plugin loads, as in a real project; the plugin is removed
  with ``-p no:imdsmock`` (the noise of the other plugins is in both numbers);
* ``isolated``: ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``, with and without
  ``-p imdsmock.pytest_plugin``: the plugin's own cost, with little else around it;

and the time to import the plugin module in a process that has pytest loaded, which
is the whole of its start-up cost and is not drowned in process start-up noise.

Usage: ``python bench/plugin_startup.py [--runs 15]``. The target is < 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall time of one pytest run, in seconds (it must pass)."""
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def compare(
    name: str, runs: int, cwd: Path, env: dict[str, str], *, with_: list[str], without: list[str]
) -> float:
    """Median with and without the plugin; prints them and returns the difference (ms)."""
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_one.py"]
    timed([*base, *with_], cwd, env)  # warm the page cache and bytecode
    on: list[float] = []
    off: list[float] = []
    for _ in range(runs):
        on.append(timed([*base, *with_], cwd, env))
        off.append(timed([*base, *without], cwd, env))
    med_on, med_off = statistics.median(on), statistics.median(off)
    delta = (med_on - med_off) * 1000
    print(
        f"{name:9} with plugin {med_on * 1000:7.1f} ms   without {med_off * 1000:7.1f} ms   "
        f"added {delta:+6.1f} ms   (median of {runs})"
    )
    return delta


IMPORT_COST = (
    "import time, pytest\n"
    "t = time.perf_counter()\n"
    "import imdsmock.pytest_plugin\n"
    "print(time.perf_counter() - t)\n"
)


def import_cost(runs: int) -> float:
    """Median time to import the plugin once pytest is loaded (ms): its steady cost."""
    samples = [
        float(
            subprocess.run(
                [sys.executable, "-c", IMPORT_COST], check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(runs)
    ]
    cost = statistics.median(samples) * 1000
    print(f"{'import':9} imdsmock.pytest_plugin after pytest: {cost:.2f} ms (median of {runs})")
    return cost


def main(argv: list[str] | None = None) -> int:
    """Run both settings and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per variant (default 15)")
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "test_one.py").write_text("def test_one():\n    assert True\n")
        compare("autoload", args.runs, cwd, env, with_=[], without=["-p", "no:imdsmock"])
        isolated = {**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        plugin = ["-p", "imdsmock.pytest_plugin"]
        compare("isolated", args.runs, cwd, isolated, with_=plugin, without=[])
    import_cost(args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
