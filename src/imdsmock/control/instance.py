"""Run-time changes to the instance's facts, by configuration key or by served path.

A change is validated as the configuration validates the key (the same one-line error),
then the snapshot is rebuilt from the changed configuration, so every place that shows a
fact follows it: the identity document and its signatures, host names, ``iam/info``'s ARN,
the credentials' account. An edit of a path that shows one fact as is
(:data:`~imdsmock.instance.facts.FACT_PATHS`) is such a change; an edit of a path built
from several (:data:`~imdsmock.instance.facts.DERIVED_PATHS`) is refused, naming the keys
to change instead. The configured instance is kept, so a reset goes back to it.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

from imdsmock.config.build import from_mapping
from imdsmock.config.dump import to_mapping
from imdsmock.config.schema import InstanceConfig
from imdsmock.core.snapshot import Snapshot, rebuild
from imdsmock.errors import ConfigError
from imdsmock.instance.facts import FACT_PATHS, derived_from, derived_values

__all__ = ["HOW", "FactPathError", "changed", "fact_change", "reset", "view"]

HOW = "PATCH /v1/instance, imdsmock ctl instance set KEY=VALUE"
"""Where the instance's facts are changed, as error messages name it."""


class FactPathError(ConfigError):
    """An edit the instance's facts decide against: the message says what to do instead."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__("path", path, "a path the instance's facts do not decide")
        self.args = (message,)


# Keys whose value lists items, one a line where IMDS serves them.
_LISTS = frozenset({"product-codes", "security-groups"})


def fact_change(path: str, value: str | None) -> tuple[str, Any] | None:
    """The instance key and value an edit of ``path`` stands for; None for a plain path.

    Raises :class:`FactPathError` for a path built from several facts, and for deleting a
    fact every instance has.
    """
    key = FACT_PATHS.get(path)
    if key is None:
        follows = derived_from(path)
        if follows is not None:
            raise FactPathError(
                path, f"{path} is built from {follows}; change the instance instead ({HOW})"
            )
        return None
    if value is None:
        hint = typing.get_type_hints(InstanceConfig)[key.replace("-", "_")]
        if type(None) in typing.get_args(hint):
            return key, None
        raise FactPathError(
            path, f"{path} shows instance.{key}, which every instance has; set another value"
        )
    if key in _LISTS:
        return key, [item for item in value.split("\n") if item]
    return key, value


def changed(snapshot: Snapshot, changes: Mapping[str, Any]) -> Snapshot:
    """The snapshot with instance keys changed (``region``, ``instance.region``,
    ``tags.Owner`` for one entry of a map; None sets a key to null or removes an entry).

    Raises :class:`ConfigError` naming the key, the value and what is allowed, as the
    configuration does; nothing changes then.
    """
    if not isinstance(changes, Mapping):
        raise ConfigError("instance", changes, "an object of instance keys and values")
    merged = to_mapping(snapshot.config, secrets=True)["instance"]
    for raw, value in changes.items():
        key = str(raw).removeprefix("instance.").replace("_", "-")
        head, dot, entry = key.partition(".")
        if dot and isinstance(merged.get(head), dict):
            entries = dict(merged[head])
            if value is None:
                entries.pop(entry, None)
            else:
                entries[entry] = value
            merged[head] = entries
        else:
            merged[key] = value
    instance = from_mapping({"instance": merged}).instance
    if instance == snapshot.config.instance:
        return snapshot
    configured = snapshot.configured_instance or snapshot.config.instance
    rebuilt = rebuild(snapshot, snapshot.config.replace(instance=instance))
    return rebuilt.evolve(configured_instance=None if instance == configured else configured)


def reset(snapshot: Snapshot) -> Snapshot:
    """The snapshot with the configured instance again (no run-time change)."""
    configured = snapshot.configured_instance
    if configured is None:
        return snapshot
    rebuilt = rebuild(snapshot, snapshot.config.replace(instance=configured))
    return rebuilt.evolve(configured_instance=None)


def view(snapshot: Snapshot) -> dict[str, Any]:
    """The instance as served: its keys with the derived values in place of nulls, which
    keys are derived, and which were changed at run time."""
    instance = snapshot.config.instance
    data = to_mapping(snapshot.config)["instance"]
    derived = derived_values(instance)
    data.update(derived)
    configured = snapshot.configured_instance
    changes = [] if configured is None else _differences(configured, instance)
    return {"instance": data, "derived": sorted(derived), "changed": changes}


def _differences(before: InstanceConfig, after: InstanceConfig) -> list[str]:
    return sorted(
        name.replace("_", "-")
        for name in InstanceConfig.__dataclass_fields__
        if getattr(before, name) != getattr(after, name)
    )
