"""A file-shaped mapping -> frozen dataclasses, by the dataclasses' own type hints.

Values from a file arrive typed (YAML ints, lists, mappings); values from the environment
and flags arrive as strings ("5", "a,b", "true"). Both convert here, each field by its
type hint; a value that does not fit raises :class:`~imdsmock.errors.ConfigError` naming
the key, the value and what is allowed. Then :func:`~imdsmock.config.rules.check` applies
the rules that span fields (some of which a caller may relax into warnings), so nothing
downstream validates again.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal

from imdsmock.config.fleet import check_fleet, check_name
from imdsmock.config.inputs import check_tree
from imdsmock.config.rules import check
from imdsmock.config.scenarios import SCENARIOS, parse_scenarios
from imdsmock.config.schema import (
    DEFAULT_RANGE,
    RANGES,
    Config,
    InstanceConfig,
    MatchConfig,
    MemberConfig,
    OptionsConfig,
    TemplateConfig,
    dashed,
    leaf_keys,
)
from imdsmock.config.template import check_template, derive
from imdsmock.errors import ConfigError, close_match, did_you_mean, quote

__all__ = ["from_mapping", "refusal", "with_members"]


def from_mapping(
    raw: Mapping[str, Any],
    *,
    relaxed: Collection[str] = (),
    warn: Callable[[ConfigError], None] | None = None,
) -> Config:
    """Validate a nested mapping (file-shaped, dashed keys) into a :class:`Config`.

    ``relaxed`` names rules (:data:`~imdsmock.config.rules.RULES`) whose broken values
    are kept and passed to ``warn`` instead of refused.
    """
    check_tree(raw)  # nesting and text, before anything walks it
    cfg: Config = _build(Config, raw, "")
    check(cfg, relaxed=relaxed, warn=warn)
    _check_members(cfg, relaxed=relaxed, warn=warn)
    _check_template(cfg, relaxed=relaxed, warn=warn)
    return cfg


def with_members(cfg: Config, raw: Any) -> Config:
    """``cfg`` serving the fleet members ``raw`` lists (file-shaped, as a configuration
    file's ``instances``), validated as loading validates them."""
    check_tree(raw, "instances")
    members = _convert(tuple[MemberConfig, ...], raw, "instances")
    new = cfg.replace(instances=members)
    _check_members(new)
    return new


def _check_members(
    cfg: Config,
    *,
    relaxed: Collection[str] = (),
    warn: Callable[[ConfigError], None] | None = None,
) -> None:
    check_fleet(cfg)
    for member in cfg.instances:
        # Each instance as served: the same rules, naming the key under its entry.
        try:
            check(member.config(cfg), relaxed=relaxed, warn=warn)
        except ConfigError as exc:
            raise exc.renamed(f"instances.{member.name}.{exc.key}") from None


def _check_template(
    cfg: Config,
    *,
    relaxed: Collection[str] = (),
    warn: Callable[[ConfigError], None] | None = None,
) -> None:
    """The template's keys, then an instance it would make, checked as any instance is."""
    check_template(cfg)
    template = cfg.template
    if template == TemplateConfig():
        return
    given = MemberConfig(
        name="template", instance=template.instance, options=template.options, paths=template.paths
    )
    for member in (given, *(derive(cfg, way, "example") for way in template.ways[:1])):
        try:
            # What the top level breaks of a relaxed rule was reported already.
            check(member.config(cfg), relaxed=relaxed, warn=lambda _error: None)
        except ConfigError as exc:
            raise exc.renamed(f"template.{exc.key}") from None


def refusal(key: str, value: Any, *, relaxed: Collection[str] = ()) -> str | None:
    """What ``key`` allows, when a configuration setting only it to ``value`` is refused.

    None when the value is accepted (relaxed rules count as accepting).
    """
    section, _, name = key.partition(".")
    try:
        from_mapping({section: {name: value}}, relaxed=relaxed)
    except ConfigError as exc:
        return exc.allowed
    return None


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    # Once per schema class: a fleet's 1,000 members would evaluate the same annotations
    # 3,000 times (0.6 s of a 0.9 s load).
    return typing.get_type_hints(cls)


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "configuration"
    if not isinstance(raw, Mapping):
        raise ConfigError(where, raw, "a mapping")
    hints = _hints(cls)
    fields = {dashed(f.name): f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        f = fields.get(str(key).replace("_", "-"))
        if f is None:
            allowed = "one of: " + ", ".join(sorted(fields))
            raise ConfigError(
                f"{prefix}{key}",
                value,
                f"a known key ({allowed})",
                hint=_meant(str(key).replace("_", "-"), fields),
            ) from None
        kwargs[f.name] = _convert(hints[f.name], value, prefix + dashed(f.name))
    for f in fields.values():  # a required key left out (found by tests/test_fuzz.py)
        missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if missing and f.name not in kwargs:
            raise ConfigError(f"{prefix}{dashed(f.name)}", None, "a value (this key is required)")
    return cls(**kwargs)


def _meant(key: str, fields: Mapping[str, Any]) -> str:
    """A close key of the same section, else a key of another section that ``key`` names."""
    hint = did_you_mean(key, fields)
    if hint:
        return hint
    elsewhere: dict[str, str] = {}
    for dotted in leaf_keys(Config):
        elsewhere.setdefault(dotted.rpartition(".")[2], dotted)
    match = close_match(key, elsewhere)
    return "" if match is None else f"; did you mean {elsewhere[match]!r}?"


def _member(raw: Any, key: str) -> MemberConfig:
    """One entry of ``instances``: its name first, then every key named under it."""
    if not isinstance(raw, Mapping):
        raise ConfigError(key, raw, "a mapping with a name (and match, instance, options ...)")
    known = ("name", "match", "instance", "options", "paths", "scenarios")
    given = {str(k).replace("_", "-"): v for k, v in raw.items()}
    for name, value in given.items():
        if name not in known:
            allowed = "a known key (one of: " + ", ".join(known) + ")"
            raise ConfigError(f"{key}.{name}", value, allowed, hint=did_you_mean(name, known))
    if "name" not in given:
        raise ConfigError(f"{key}.name", None, "a value (this key is required)")
    name = check_name(given["name"], f"{key}.name")
    under = f"instances.{name}."
    match = _build(MatchConfig, given.get("match", {}), under + "match.")
    try:
        instance = _partial(InstanceConfig, given.get("instance", {}), "instance")
        options = _partial(OptionsConfig, given.get("options", {}), "options")
    except ConfigError as exc:
        raise exc.renamed(under + exc.key) from None
    paths = _convert(Mapping[str, str | None], given.get("paths", {}), under + "paths")
    scenarios = _convert(SCENARIOS, given.get("scenarios", []), under + "scenarios")
    return MemberConfig(
        name=name,
        match=match,
        instance=instance,
        options=options,
        paths=paths,
        scenarios=scenarios,
    )


def _partial(cls: type, raw: Any, section: str) -> dict[str, Any]:
    """The keys of a section that ``raw`` gives, converted (dashed key -> value); the rest
    stay unset. Keys are checked as in the section itself (``options.hop-limit``)."""
    built = _build(cls, raw, section + ".")
    given = (str(k).replace("_", "-") for k in raw)
    return {key: getattr(built, key.replace("-", "_")) for key in given}


def _template(raw: Any) -> TemplateConfig:
    """The ``template`` section: its ``instance`` and ``options`` keys checked as in those
    sections, each left out unset."""
    built: TemplateConfig = _build(
        TemplateConfig, {k: v for k, v in _mapping(raw, "template").items()
                         if str(k) not in ("instance", "options")}, "template."
    )  # fmt: skip
    given = {str(k): v for k, v in raw.items()}
    try:
        instance = _partial(InstanceConfig, given.get("instance", {}), "instance")
        options = _partial(OptionsConfig, given.get("options", {}), "options")
    except ConfigError as exc:
        raise exc.renamed("template." + exc.key) from None
    return dataclasses.replace(built, instance=instance, options=options)


def _mapping(raw: Any, key: str) -> Mapping[Any, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, raw, "a mapping")
    return raw


def _convert(tp: Any, value: Any, key: str) -> Any:
    if tp is MemberConfig:
        return _member(value, key)
    if tp is TemplateConfig:
        return _template(value)
    if tp == SCENARIOS:  # a list of mappings, each then validated as a scenario
        return parse_scenarios(_convert(tuple[Mapping[str, Any], ...], value, key), key)
    if tp is Any:
        return value  # a scenario's field: validated by parse_scenarios
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if value is None:
            raise ConfigError(key, value, _describe(rest[0]))
        return _convert(rest[0], value, key)
    if origin is Literal:
        text = "" if _huge(value) else _scalar_text(value)
        if text.lower() not in [a.lower() for a in args]:
            raise ConfigError(
                key, value, "one of: " + ", ".join(args), hint=did_you_mean(text, args)
            )
        return next(a for a in args if a.lower() == text.lower())
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".")  # type: ignore[arg-type]
    if tp is bool:
        return _to_bool(value, key)
    if tp is int:
        return _to_int(value, key)
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float) or _huge(value):
            raise ConfigError(key, value, "a string")
        return str(value)
    if origin is tuple:
        items = _to_list(value, key)
        return tuple(_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(items))
    if origin is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(key, value, "a mapping of names to values")
        return {
            str(k): _convert(args[1], v, f"{key}.{k}")
            for k, v in value.items()
            if not (v is None and type(None) not in typing.get_args(args[1]))
            or _reject_null(key, k, v)
        }
    raise TypeError(f"no converter for {tp!r}")  # a programming error, not user input


def _reject_null(key: str, name: object, value: object) -> bool:
    raise ConfigError(f"{key}.{name}", value, "a string")


def _describe(tp: Any) -> str:
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true or false"
    if typing.get_origin(tp) is tuple:
        return "a list"
    return "a string"


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return quote(value)  # a list or mapping (bounded: it may hold huge integers)


# No setting takes a longer number: longer ones are refused without converting them (Python
# refuses to convert an integer of more than 4300 digits, and the work grows with the length).
_MAX_DIGITS = 40


def _huge(value: Any) -> bool:
    """An integer longer than any setting takes (its text is not worth making)."""
    return isinstance(value, int) and value.bit_length() > 4 * _MAX_DIGITS


def _to_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off", ""):
        return False
    raise ConfigError(key, value, "true or false")


def _to_int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(key, value, "an integer")
    low, high = RANGES.get(key, DEFAULT_RANGE)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        if len(value.strip().lstrip("-").lstrip("0")) > _MAX_DIGITS:
            raise ConfigError(key, value, f"an integer from {low} to {high}")
        number = int(value)
    else:
        raise ConfigError(key, value, "an integer")
    if not low <= number <= high:
        raise ConfigError(key, value, f"an integer from {low} to {high}")
    return number


def _to_list(value: Any, key: str) -> list[Any]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    raise ConfigError(key, value, "a list (or a comma-separated string)")
