"""Changes of the instance over time, as data.

A :class:`Timeline` is a sorted list of :class:`Change` s (at time *t*, set or remove
these paths). Between two change points the instance does not move, so each segment is
compiled once into its own table and ``bisect`` picks the segment for a request's time
(:mod:`imdsmock.core.state`). Scenarios (spot interruption, rebalance, maintenance events,
Auto Scaling) compile to timelines in :mod:`imdsmock.instance.scenarios`.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field

from imdsmock.instance.model import Leaf

__all__ = ["Change", "Timeline"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """At ``at``, set the leaves in ``set`` and remove the paths (and subtrees) in ``remove``."""

    at: float
    set: Mapping[str, Leaf] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    # From this change on the instance no longer answers (terminated / stopped).
    halt: bool = False


@dataclass(frozen=True, slots=True)
class Timeline:
    """Changes sorted by time; segment ``i`` is the state after the first ``i`` changes."""

    changes: tuple[Change, ...] = ()
    points: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.changes, key=lambda c: c.at))
        object.__setattr__(self, "changes", ordered)
        object.__setattr__(self, "points", tuple(c.at for c in ordered))

    def segment(self, now: float) -> tuple[int, float, float]:
        """The index of the segment holding ``now`` and its ``[start, end)``."""
        i = bisect.bisect_right(self.points, now)
        start = self.points[i - 1] if i else float("-inf")
        end = self.points[i] if i < len(self.points) else float("inf")
        return i, start, end

    def apply(self, tree: dict[str, Leaf], index: int) -> bool:
        """Apply the first ``index`` changes to ``tree``; return whether the instance halted."""
        halted = False
        for change in self.changes[:index]:
            for path in change.remove:
                for existing in [p for p in tree if p == path or p.startswith(path + "/")]:
                    del tree[existing]
            tree.update(change.set)
            halted = halted or change.halt
        return halted

    def merged(self, other: Timeline) -> Timeline:
        """Both timelines' changes in one."""
        return Timeline(self.changes + other.changes)
