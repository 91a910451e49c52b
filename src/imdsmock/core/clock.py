"""Clocks: time is a parameter, never read behind the caller's back.

The server asks its clock for ``now()`` once per request and passes the value down; the
IMDS core never reads the time itself. A :class:`ManualClock` makes a two-minute spot
notice a one-line test: ``clock.advance(120)``.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Anything that tells the current time in POSIX seconds."""

    def now(self) -> float:
        """Return the current time in seconds since the epoch."""
        ...


class SystemClock:
    """The wall clock."""

    __slots__ = ()

    def now(self) -> float:
        """Return ``time.time()``."""
        return time.time()


class ManualClock:
    """A clock that only moves when told to; safe to share between threads."""

    __slots__ = ("_lock", "_now", "start")

    def __init__(self, start: float | None = None) -> None:
        self.start = time.time() if start is None else float(start)
        self._now = self.start
        self._lock = threading.Lock()

    def now(self) -> float:
        """Return the frozen time."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (not backwards) and return the new time."""
        if seconds < 0:
            raise ValueError(f"cannot advance a clock by {seconds!r} seconds; expected >= 0")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float) -> None:
        """Jump to an absolute time (used by ``reset``)."""
        with self._lock:
            self._now = float(when)

    def reset(self) -> None:
        """Go back to the time the clock started at."""
        self.set(self.start)
