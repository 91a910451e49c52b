"""``ec2-metadata-mock``: AWS's Go mock's command-line interface (being built)."""

from __future__ import annotations

from collections.abc import Sequence

from .cli import main as imdsmock_main

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ec2-metadata-mock``."""
    return imdsmock_main(argv)
