"""Benchmarks of imdsmock against nginx serving the same bytes (run on demand, never in CI).

``bash bench/run`` (or ``.venv/bin/python -m bench``) starts both servers on loopback
ports, measures them alternately for several rounds and prints medians and the
imdsmock / nginx ratio of each figure; the same table goes to ``bench/results/*.json``.
See docs/performance.md.
"""
