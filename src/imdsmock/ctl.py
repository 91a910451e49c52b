"""``imdsmock ctl``: drive a running mock through its control API (being built)."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """Entry point of ``imdsmock ctl``."""
    print("imdsmock ctl: error: the control API client is not available yet", file=sys.stderr)
    return 2
