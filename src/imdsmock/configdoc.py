"""The key tables of ``docs/configuration.md``, generated from the schema.

Each key's type, default and one-line description come from :mod:`imdsmock.config.schema`
(the description is the string under the field; allowed values and ranges are the ones
every other surface takes, see :mod:`imdsmock.config.options`); its variable from
:func:`~imdsmock.config.schema.env_name` and ``SHORT_NAMES``; its AWS Go mock (AEMM)
equivalent from the tables :mod:`imdsmock.aemm.config` translates with. The generated part
sits between two markers in the document; the prose around it is written by hand.

``python -m imdsmock.configdoc`` prints the tables; ``--write FILE`` updates them in place;
``--check FILE`` exits 1 when the file is stale. A test runs the check.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import sys
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from imdsmock.config import schema as config
from imdsmock.config.scenarios import ScenarioConfig
from imdsmock.config.schema import (
    DEFAULT_RANGE,
    RANGES,
    SECRET_KEYS,
    SHORT_NAMES,
    Config,
    InterfaceConfig,
    MemberConfig,
    PodRule,
    dashed,
    env_name,
)

__all__ = ["BEGIN", "END", "Row", "main", "render", "rows", "update"]

BEGIN = "<!-- BEGIN GENERATED: python -m imdsmock.configdoc --write docs/configuration.md -->"
END = "<!-- END GENERATED -->"

# Our key -> how AEMM spells it, beside its metadata.values table (aemm_defaults.META):
# the root and server keys, and the dynamic / userdata values translate() reads.
_AEMM_KEYS: Mapping[str, tuple[str, ...]] = {
    "server.host": ("server.hostname",),
    "server.port": ("server.port",),
    "server.mock-ip-count": ("mock-ip-count",),
    "options.http-tokens": ("imdsv2",),
    "instance.user-data-base64": ("userdata.values.userdata",),
    "instance.monitoring": ("dynamic.values.fws-instance-monitoring",),
    "instance.identity-document": ("dynamic.values.instance-identity-document",),
}
# Keys that only a config file (or the Python API) can set: their values are structures.
_FILE_ONLY = frozenset({"instance.interfaces", "scenarios", "instances"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One key as the document shows it."""

    key: str
    type: str
    default: str
    env: str
    flag: str
    aemm: str
    description: str


def rows() -> list[Row]:
    """Every key of :class:`~imdsmock.config.schema.Config`, then an interface's keys and a
    fleet member's."""
    docs = _descriptions()
    out = list(_rows(Config, "", docs))
    out += _rows(InterfaceConfig, "instance.interfaces[].", docs)
    out += _rows(MemberConfig, "instances[].", docs)
    out += _rows(PodRule, "instances[].match.pod[].", docs)
    return out


def render() -> str:
    """The generated part: one table per section, markers included."""
    lines = [BEGIN, ""]
    section = None
    for row in rows():
        head = _section_of(row.key)
        if head != section:
            section = head
            if lines[-1] != "":
                lines.append("")
            lines += [f"### {head}", "", _HEADER, _RULE]
        cells = [f"`{row.key}`", *dataclasses.astuple(row)[1:]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", END]
    return "\n".join(lines)


def update(text: str) -> str:
    """``text`` with its generated part replaced by :func:`render`'s."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"markers not found: {BEGIN!r} ... {END!r}")
    return text[:start] + render() + text[end + len(END) :]


def main(argv: Sequence[str] | None = None) -> int:
    """``[--write FILE | --check FILE]``: print, update in place, or check the tables."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(render())
        return 0
    if len(args) != 2 or args[0] not in ("--write", "--check"):
        print("usage: python -m imdsmock.configdoc [--write FILE | --check FILE]", file=sys.stderr)
        return 2
    path = Path(args[1])
    text = path.read_text(encoding="utf-8")
    fresh = update(text)
    if args[0] == "--write":
        path.write_text(fresh, encoding="utf-8")
        return 0
    if fresh != text:
        print(f"{path} is stale: run python -m imdsmock.configdoc --write {path}", file=sys.stderr)
        return 1
    return 0


_HEADER = "| Key | Type | Default | Environment | Flag | AEMM | Description |"
_RULE = "|---|---|---|---|---|---|---|"


def _section_of(key: str) -> str:
    if key.startswith("instance.interfaces[]."):
        return "`instance.interfaces[]`: each extra interface"
    if key.startswith("instances[]."):
        return "`instances[]`: each instance of the fleet"
    head, dot, _ = key.partition(".")
    return f"`{head}`" if dot else "Top level"


def _rows(cls: type, prefix: str, docs: Mapping[tuple[str, str], str]) -> Iterator[Row]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = prefix + dashed(f.name)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _rows(tp, key + ".", docs)  # type: ignore[arg-type]
            continue
        description = docs.get((cls.__name__, f.name))
        if not description:
            raise ValueError(f"{key} has no description: add a string under the field")
        if f.default is not dataclasses.MISSING:
            default = _default(key, f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = _default(key, f.default_factory())
        else:
            default = "(required)"
        yield Row(
            key=key,
            type=_type(tp, key),
            default=default,
            env=_env(key, tp),
            flag=_flag(key, tp),
            aemm=_aemm().get(key, ""),
            description=description,
        )


def _descriptions() -> dict[tuple[str, str], str]:
    """(class, field) -> the string under the field in config.py's source."""
    tree = ast.parse(inspect.getsource(config))
    out: dict[tuple[str, str], str] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for field, doc in zip(node.body, node.body[1:], strict=False):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(doc, ast.Expr)
                and isinstance(doc.value, ast.Constant)
                and isinstance(doc.value.value, str)
            ):
                out[(node.name, field.target.id)] = " ".join(doc.value.value.split())
    return out


def _type(tp: Any, key: str) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return _type(rest[0], key) + " or null"
    if origin is Literal:
        names = [f"`{a}`" for a in args]
        return " or ".join(names) if len(names) == 2 else "one of " + ", ".join(names)
    if tp is int:
        low, high = RANGES.get(key, DEFAULT_RANGE)
        return "integer" if (low, high) == DEFAULT_RANGE else f"integer ({low} to {high})"
    if tp is bool:
        return "boolean"
    if tp is str:
        return "string"
    if origin is tuple:
        item = args[0]
        if item is InterfaceConfig:
            return "list of interfaces"
        if item is MemberConfig:
            return "list of instances"
        if item is PodRule:
            return "list of pod rules"
        if item == ScenarioConfig:
            return "list of mappings"
        if typing.get_origin(item) is Mapping:
            return "list of mappings"
        return "list of strings"
    if origin is Mapping:
        if args[1] is Any or Any in typing.get_args(args[1]):
            return "mapping of JSON values"
        return "mapping of strings" + (" or null" if typing.get_args(args[1]) else "")
    raise TypeError(f"no description of type {tp!r} ({key})")  # a new kind of field


def _default(key: str, value: Any) -> str:
    if key in SECRET_KEYS and value is not None:
        return "(secret)"
    if isinstance(value, tuple | Mapping) and not value:
        return "`[]`" if isinstance(value, tuple) else "`{}`"
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, Mapping):
        value = {k: _shorten(v) for k, v in value.items()}
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return f"`{json.dumps(value)}`"


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 40:
        return value[:16] + "..." + value[-10:]
    return value


def _env(key: str, tp: Any) -> str:
    # One string cannot carry a mapping or a list of structures: those take a file.
    if key in _FILE_ONLY or "[]" in key or typing.get_origin(tp) is Mapping:
        return ""
    names = [f"`{env_name(key)}`"]
    short = next((s for s, k in SHORT_NAMES.items() if k == key), None)
    if short is not None:
        names.append(f"`{env_name(short)}`")
    return " ".join(names)


def _flag(key: str, tp: Any) -> str:
    if key in _FILE_ONLY or "[]" in key:
        return ""
    short = next((s for s, k in SHORT_NAMES.items() if k == key), None)
    if short is not None:
        return f"`--{short}`"
    if typing.get_origin(tp) is Mapping:
        name = "PATH" if key == "paths" else "NAME"
        return f"`--set {key}.{name}=V`"
    return f"`--set {key}=V`"


def _aemm() -> dict[str, str]:
    """Our key -> its AEMM equivalents: config key, ``AEMM_*`` variable, flag."""
    from imdsmock.aemm.cli import (
        _GLOBAL as AEMM_FLAGS,  # the Go mock's root flags
    )
    from imdsmock.aemm.config import ENV_KEYS
    from imdsmock.aemm.config import env_name as aemm_env
    from imdsmock.aemm.defaults import DOCUMENT_KEYS, META

    flags = {f.key: "/".join(f"`{n}`" for n in (f.short, f.long) if n) for f in AEMM_FLAGS}
    variables = set(ENV_KEYS)
    spellings: dict[str, list[str]] = {}

    def add(ours: str, key: str, field: str = "") -> None:
        names = [f"`{key}`" + (f" field `{field}`" if field else "")]
        if not field and aemm_env(key) in variables:
            names.append(f"`{aemm_env(key)}`")
        if key in flags:
            names.append(flags[key])
        spellings.setdefault(ours, []).append(" ".join(names))

    for aemm_key, (_path, _default, ours) in META.items():
        section = ours.partition(".")[0] if ours else None
        if ours == "public-key":
            add("instance.public-keys", f"metadata.values.{aemm_key}")
        elif section in ("bdm", "tag"):
            target = "block-device-mapping" if section == "bdm" else "tags"
            add(f"instance.{target}", f"metadata.values.{aemm_key}")
        elif ours is not None:
            add(ours, f"metadata.values.{aemm_key}")
    for field, ours in DOCUMENT_KEYS.items():
        add(f"instance.{ours}", "dynamic.values.instance-identity-document", field)
    for ours, theirs in _AEMM_KEYS.items():
        for key in theirs:
            add(ours, key)
    return {ours: "; ".join(parts) for ours, parts in spellings.items()}


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or "-"


if __name__ == "__main__":
    raise SystemExit(main())
