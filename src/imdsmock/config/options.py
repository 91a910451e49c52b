"""The instance metadata options, one vocabulary for every surface that sets them.

Each option is declared once, as a field of :class:`~imdsmock.config.schema.OptionsConfig`:
its type gives the allowed values, :data:`~imdsmock.config.schema.RANGES` the range of a
number, the field its default and the string under it the documentation. :data:`OPTIONS`
adds only what the other surfaces need besides: the spellings of the EC2 API
(``ModifyInstanceMetadataOptions``) and the note of the ``imdsmock`` flag's help. The
``imdsmock`` and ``imdsmock ctl`` flags, the control API's names and its OpenAPI schema are
built from it, and :meth:`MetadataOption.check` is the configuration's own conversion, so a
bad value is refused with the same line wherever it is given.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Literal, NamedTuple

from imdsmock.config.build import from_mapping
from imdsmock.config.schema import DEFAULT_RANGE, RANGES, OptionsConfig, dashed

__all__ = ["OPTIONS", "MetadataOption", "find"]


class MetadataOption(NamedTuple):
    """One instance metadata option as the flags, the control API and its schema see it.

    A named tuple, not a frozen dataclass: the ``imdsmock`` flags are built from it at every
    start, and a dataclass costs several times more to define.
    """

    name: str
    """The dashed name: the flag, the control API's field and the key under ``options``."""
    field: str
    """The :class:`~imdsmock.config.schema.OptionsConfig` field."""
    choices: tuple[str, ...]
    """The allowed values of a string option; empty for a number."""
    bounds: tuple[int, int] | None
    """The inclusive range of a number option; None for a string."""
    default: str | int
    """The value when nothing sets it."""
    aliases: tuple[str, ...]
    """The EC2 API's spellings, accepted by the control API too."""
    note: str
    """What the ``imdsmock --NAME`` help says besides the allowed values."""

    @property
    def key(self) -> str:
        """The dotted configuration key (``options.hop-limit``)."""
        return f"options.{self.name}"

    def allowed(self) -> str:
        """The allowed values as help text spells them: ``optional | required``, ``1..64``."""
        if self.bounds is not None:
            low, high = self.bounds
            return f"{low}..{high}"
        return " | ".join(self.choices)

    def flag_help(self) -> str:
        """The help of the ``imdsmock --NAME`` flag."""
        if self.bounds is not None:
            return f"{self.note}, {self.allowed()} (default {self.default})"
        return f"{self.allowed()} ({self.note})" if self.note else self.allowed()

    def check(self, value: object) -> str | int:
        """``value`` (a flag's text or a JSON value) as the option's type.

        Raises the configuration's :class:`~imdsmock.errors.ConfigError` (``options.NAME``,
        the value, what is allowed) when it is not allowed.
        """
        options = from_mapping({"options": {self.name: value}}).options
        checked: str | int = getattr(options, self.field)
        return checked


# How the other surfaces spell each OptionsConfig field: (EC2 API names, the flag's note).
_SPELLINGS: Mapping[str, tuple[tuple[str, ...], str]] = {
    "http_tokens": (("HttpTokens",), "IMDSv2 only"),
    "http_endpoint": (("HttpEndpoint",), "disabled: 403 everywhere"),
    "hop_limit": (
        ("HttpPutResponseHopLimit", "http-put-response-hop-limit"),
        "IP TTL of the token response",
    ),
    "http_protocol_ipv6": (("HttpProtocolIpv6",), ""),
    "instance_metadata_tags": (("InstanceMetadataTags",), "tags/instance"),
}


def _declared() -> tuple[MetadataOption, ...]:
    hints = typing.get_type_hints(OptionsConfig)
    out = []
    for f in dataclasses.fields(OptionsConfig):
        name, tp = dashed(f.name), hints[f.name]
        aliases, note = _SPELLINGS[f.name]
        if typing.get_origin(tp) is Literal:
            choices, bounds = typing.get_args(tp), None
        elif tp is int:
            choices, bounds = (), RANGES.get(f"options.{name}", DEFAULT_RANGE)
        else:  # pragma: no cover - a new kind of option needs its surfaces described
            raise TypeError(f"options.{name}: no vocabulary for {tp!r}")
        out.append(
            MetadataOption(
                name=name,
                field=f.name,
                choices=choices,
                bounds=bounds,
                default=f.default,  # type: ignore[arg-type]
                aliases=aliases,
                note=note,
            )
        )
    return tuple(out)


OPTIONS: tuple[MetadataOption, ...] = _declared()
"""Every instance metadata option, in the order OptionsConfig declares them."""

_BY_NAME = {spelling: o for o in OPTIONS for spelling in (o.name, *o.aliases)}


def find(name: str) -> MetadataOption | None:
    """The option a name means: dashed, with underscores, or as the EC2 API spells it."""
    return _BY_NAME.get(name) or _BY_NAME.get(name.replace("_", "-"))
