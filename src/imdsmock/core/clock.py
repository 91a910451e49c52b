"""Clocks: time is a parameter, never read behind the caller's back.

The server asks its clock for ``now()`` once per request and passes the value down; the
IMDS core never reads the time itself. A :class:`ManualClock` makes a two-minute spot
notice a one-line test: ``clock.advance(120)``.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from imdsmock.errors import quote

__all__ = ["LATEST", "Clock", "ManualClock", "SystemClock"]

LATEST = 253402300799.0
"""9999-12-31T23:59:59Z: a manual clock goes no further (IMDS timestamps have four-digit
years, and Python's datetime ends there)."""


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
        """Move the clock forward by ``seconds`` (not backwards, not past :data:`LATEST`) and
        return the new time; a refused move leaves the clock where it was."""
        if not seconds >= 0:  # NaN too
            raise ValueError(f"cannot advance a clock by {quote(seconds)} seconds; expected >= 0")
        with self._lock:
            if seconds > LATEST - self._now:
                raise ValueError(
                    f"cannot advance the clock by {quote(seconds)} seconds; expected at most "
                    f"{LATEST - self._now:.0f} (the clock stops at 9999-12-31T23:59:59Z)"
                )
            self._now += seconds
            return self._now

    def set(self, when: float) -> None:
        """Jump to an absolute time (used by ``reset``)."""
        with self._lock:
            self._now = float(when)

    def reset(self) -> None:
        """Go back to the time the clock started at."""
        self.set(self.start)
