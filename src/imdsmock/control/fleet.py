"""The fleet's control operations: list, add, change and remove instances at run time, and
the clients each one served.

A member given through the control API is a mapping shaped like an entry of the
configuration's ``instances`` and validated by the loader's own rules
(:func:`imdsmock.config.build.with_members`), against the configuration the fleet was
built from and the members in force: a rejected one changes nothing. Listeners are bound
at start only: a member added at run time may name a listener the mock already has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from imdsmock.config.build import with_members
from imdsmock.config.dump import part, to_mapping
from imdsmock.config.fleet import DEFAULT_NAME, Port, listener
from imdsmock.config.schema import MemberConfig
from imdsmock.core.fleet import Fleet
from imdsmock.errors import ConfigError, did_you_mean

__all__ = ["EVERY", "added", "changed", "clients", "describe", "listing", "selected"]

EVERY = "*"
"""The selector naming every instance of the fleet, the default one included."""

_KEYS = ("name", "match", "instance", "options", "paths", "scenarios")


def listing(fleet: Fleet, requests: Mapping[str, int]) -> list[dict[str, Any]]:
    """Every instance, the default one first, as :func:`describe` shows it in short, with
    how many of its requests the log holds (``requests``: per instance name).

    The clients are counted in one pass for all (the dashboard asks every few seconds,
    whatever the size of the fleet).
    """
    counts = fleet.client_counts()
    out = [describe(fleet, name, clients=counts.get(name, 0)) for name in fleet.names()]
    for item in out:
        item["requests"] = requests.get(item["name"], 0)
    return out


def selected(fleet: Fleet, selector: str) -> tuple[str, ...]:
    """The instances ``selector`` names, each once: ``*`` every one, the default instance
    first; else names separated by commas, in the order given. A name the fleet does not
    have is an :class:`~imdsmock.core.fleet.UnknownInstanceError`."""
    if selector == EVERY:
        return tuple(fleet.names())
    names = selector.split(",")
    if not all(names):
        raise ConfigError(
            "instance",
            selector,
            "an instance name, names separated by commas (web,api), or * for every instance",
        )
    for name in names:
        fleet.state(name)
    return tuple(dict.fromkeys(names))


def describe(
    fleet: Fleet, name: str, *, full: bool = False, clients: int | None = None
) -> dict[str, Any]:
    """One instance: its name, instance-id, role, match rules (only the kinds it has), the
    scenarios it runs (``running``: as its ``/v1/scenarios`` lists them, configured or
    started at run time) and how many clients it served; with ``full`` the keys its entry
    sets too (``scenarios``: the entry's own). ``clients``, when the caller counted them,
    is the number of clients."""
    state = fleet.state(name)
    snapshot = state.snapshot
    instance = snapshot.config.instance
    out: dict[str, Any] = {"name": name, "default": name == DEFAULT_NAME}
    out["instance-id"] = instance.instance_id
    out["iam-role"] = instance.iam_role
    if name == DEFAULT_NAME:
        out["match"] = {}
    else:
        # The member alone, as the configuration's instances list spells it (dumping the
        # whole configuration for each of a thousand members took most of a second).
        entry = part(fleet.member(name), "instances.")
        out["match"] = {kind: rules for kind, rules in entry["match"].items() if rules}
        made = fleet.template_key(name)
        if made is not None:
            out["template"] = made  # made by the template for this client key
        if full:
            out.update((key, entry[key]) for key in _KEYS[2:])
    out["running"] = [dict(s.describe()) for s in snapshot.scenarios]
    out["clients"] = len(fleet.clients(name)) if clients is None else clients
    return out


def clients(fleet: Fleet, name: str) -> list[dict[str, Any]]:
    """The clients recognised as ``name``, most recent first: address, why, when first and
    last seen (POSIX times) and how many connections."""
    return [client._asdict() for client in fleet.clients(name)]


def added(fleet: Fleet, data: Any, bound: Sequence[tuple[str, int]]) -> MemberConfig:
    """A new member from a control API mapping, validated beside the members in force."""
    if not isinstance(data, Mapping):
        raise ConfigError("instance", data, "a JSON object with a name (and match, ...)")
    members = [_entry(fleet, m) for m in fleet.roster.members.values()]
    member = with_members(fleet.top, [*members, dict(data)]).instances[-1]
    _check_listeners(member, bound)
    return member


def changed(fleet: Fleet, name: str, data: Any, bound: Sequence[tuple[str, int]]) -> MemberConfig:
    """Member ``name`` with ``data``'s keys over its entry: ``match`` kinds and
    ``scenarios`` replaced, ``instance``, ``options`` and ``paths`` keys merged in."""
    if name == DEFAULT_NAME:
        raise ConfigError(
            "name",
            name,
            "a member's name (the default instance is the top-level configuration: "
            "change it with /v1/instance and /v1/options)",
        )
    if not isinstance(data, Mapping):
        raise ConfigError("instance", data, "a JSON object of entry keys")
    entry = _entry(fleet, fleet.member(name))
    for key, value in data.items():
        if key not in _KEYS:
            allowed = "one of: " + ", ".join(_KEYS)
            raise ConfigError(key, value, allowed, hint=did_you_mean(str(key), _KEYS))
        if key == "name":
            if value != name:
                raise ConfigError("name", value, f"{name!r} (an instance keeps its name)")
        elif key in ("match", "instance", "options", "paths") and isinstance(value, Mapping):
            entry[key] = {**entry[key], **value}
        else:
            entry[key] = value
    members = [entry if m.name == name else _entry(fleet, m) for m in fleet.roster.members.values()]
    member = next(m for m in with_members(fleet.top, members).instances if m.name == name)
    _check_listeners(member, bound)
    return member


def _entry(fleet: Fleet, member: MemberConfig) -> dict[str, Any]:
    """A member as the configuration file spells it."""
    entry: dict[str, Any] = to_mapping(fleet.top.replace(instances=(member,)), secrets=True)[
        "instances"
    ][0]
    return entry


def _check_listeners(member: MemberConfig, bound: Sequence[tuple[str, int]]) -> None:
    """Refuse a listener rule no bound listener answers (listeners are bound at start)."""
    for index, spec in enumerate(member.match.listener):
        key = f"instances.{member.name}.match.listener[{index}]"
        rule = listener(spec, key)
        if isinstance(rule, Port):
            ok = any(port == rule.port for _, port in bound)
        else:
            ok = any(port == rule[1] and host in (rule[0], "0.0.0.0", "::") for host, port in bound)
        if not ok:
            shown = ", ".join(f"{h}:{p}" for h, p in bound) or "none"
            raise ConfigError(
                key,
                spec,
                f"a listener the mock has (bound: {shown}); new ones are bound at start, "
                "from the configuration file",
            )
