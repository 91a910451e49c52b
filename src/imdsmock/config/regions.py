"""The known AWS regions and their availability zones.

The list is data, kept in one file beside this module (``regions.txt``: a region and its
zone letters on each line); :mod:`imdsmock.config.rules` checks ``instance.region`` and
``instance.availability-zone`` against it unless ``instance.allow-unknown-regions`` is set.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

__all__ = ["known_zones"]

_FILE = Path(__file__).with_name("regions.txt")


@functools.cache
def known_zones() -> Mapping[str, tuple[str, ...]]:
    """Each known region and the names of its zones (``us-east-1`` -> ``us-east-1a``, ...)."""
    zones: dict[str, tuple[str, ...]] = {}
    for line in _FILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            region, *letters = line.split()
            zones[region] = tuple(region + letter for letter in letters)
    return zones
