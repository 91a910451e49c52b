"""The notice paths scenarios add: spot, rebalance, maintenance events, Auto Scaling.

AWS's Go mock shows them only to the first N clients (``--mock-ip-count``). Every snapshot
marks them as gated, scenarios or not (a path set by configuration is gated too), so they
are named here, apart from the scenario machinery that is loaded only when a scenario
exists.
"""

from __future__ import annotations

__all__ = [
    "GATED_PATHS",
    "HISTORY",
    "LIFECYCLE",
    "REBALANCE",
    "SCHEDULED",
    "SPOT_ACTION",
    "SPOT_TIME",
]

SPOT_ACTION = "meta-data/spot/instance-action"
SPOT_TIME = "meta-data/spot/termination-time"
REBALANCE = "meta-data/events/recommendations/rebalance"
SCHEDULED = "meta-data/events/maintenance/scheduled"
HISTORY = "meta-data/events/maintenance/history"
LIFECYCLE = "meta-data/autoscaling/target-lifecycle-state"
GATED_PATHS = frozenset({SPOT_ACTION, SPOT_TIME, REBALANCE, SCHEDULED, HISTORY, LIFECYCLE})
