"""Routing 169.254.169.254 (and friends) to the mock, on a host or inside a container.

Every side effect here is a :class:`~imdsmock.netsetup.plan.Plan`: a list of argv tuples
to run and the list that undoes them. Builders are pure functions of what was observed, so
unit tests assert the exact commands; :func:`~imdsmock.netsetup.plan.apply` runs them and
``--dry-run`` prints them. This package never imports the server (a test guards that).
"""

from imdsmock.netsetup.errors import NetsetupError
from imdsmock.netsetup.plan import Command, Plan

__all__ = ["Command", "NetsetupError", "Plan"]
