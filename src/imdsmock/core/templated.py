"""The instances a fleet's template made: which client key each was made for, making one
for a new workload, making them all again under a reloaded template.

Pure: :class:`~imdsmock.core.fleet.Fleet` holds a :class:`Made` and replaces it whole,
under its lock, with the roster it goes with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from imdsmock.config.fleet import DEFAULT_NAME
from imdsmock.config.schema import Config, MemberConfig
from imdsmock.config.template import derive
from imdsmock.core.recognize import Workload
from imdsmock.errors import ImdsMockError

__all__ = ["NONE", "Made", "make", "remake"]


class Made(NamedTuple):
    """(way, client key) -> instance name, and instance name -> client key."""

    by_key: Mapping[tuple[str, str], str]
    by_name: Mapping[str, str]

    @classmethod
    def of(cls, by_key: Mapping[tuple[str, str], str]) -> Made:
        return cls(dict(by_key), {name: key for (_, key), name in by_key.items()})

    def without(self, name: str) -> Made:
        """These, but instance ``name``."""
        return Made.of({made: n for made, n in self.by_key.items() if n != name})


NONE = Made({}, {})
"""Nothing made."""


def _addresses(top: Config, members: Iterable[MemberConfig]) -> set[str]:
    """The IPv4 addresses the instances have (a template instance takes another)."""
    inst = top.instance
    taken = {inst.local_ipv4, *([inst.public_ipv4] if inst.public_ipv4 else [])}
    for member in members:
        for key in ("local-ipv4", "public-ipv4"):
            value = member.instance.get(key)
            if isinstance(value, str):
                taken.add(value)
    return taken


def make(
    top: Config, members: Mapping[str, MemberConfig], made: Made, workload: Workload
) -> tuple[MemberConfig, Made] | str:
    """The instance the template makes for ``workload`` beside ``members`` and what the
    template made then; or why none can be made (its limit reached, no address left)."""
    limit = top.template.limit
    if len(made.by_key) >= limit:
        return f"the template's limit of {limit} instances is reached"
    try:
        member = derive(
            top,
            workload.way,
            workload.key,
            taken_names=[DEFAULT_NAME, *members],
            taken_addresses=_addresses(top, members.values()),
        )
    except ImdsMockError as exc:
        return str(exc)
    return member, Made.of({**made.by_key, (workload.way, workload.key): member.name})


def remake(top: Config, members: dict[str, MemberConfig], made: Made) -> Made:
    """Make the template's instances again under ``top`` (a reload), adding them to
    ``members``: the same names and keys and, where free, addresses; those of a way the
    template no longer names, or past its limit, are gone."""
    remade: dict[tuple[str, str], str] = {}
    for (way, key), name in made.by_key.items():
        if way not in top.template.ways or name in members:
            continue
        if len(remade) >= top.template.limit:
            break
        try:
            member = derive(
                top, way, key, name=name, taken_addresses=_addresses(top, members.values())
            )
        except ImdsMockError:
            continue
        members[name] = member
        remade[(way, key)] = name
    return Made.of(remade)
