"""The configuration a capture writes: YAML, as a whole file or as one fleet entry.

Text of several lines (user data, a multi-line leaf) is written as a literal block, so the
file reads as the instance served it; YAML falls back to a quoted string where a block
could not carry the text exactly.
"""

from __future__ import annotations

from typing import Any

import yaml

from imdsmock.capture.reproduce import Reproduction

__all__ = ["render"]


class _Dumper(yaml.SafeDumper):
    """safe_dump with multi-line text as literal blocks."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def sections(r: Reproduction) -> dict[str, Any]:
    """The sections of the configuration (empty ones left out, ``instance`` always)."""
    out: dict[str, Any] = {"instance": r.instance}
    if r.options:
        out["options"] = r.options
    if r.paths:
        out["paths"] = r.paths
    return out


def render(r: Reproduction, *, url: str, imdsv2: bool, member: str | None = None) -> str:
    """The YAML text: a configuration file, or with ``member`` one entry of ``instances``."""
    how = "IMDSv2" if imdsv2 else "IMDSv1"
    head = f"# imdsmock capture of {url} ({how}).\n"
    if member is None:
        head += "# Serve it with: imdsmock -c FILE\n"
        data: Any = sections(r)
    else:
        head += (
            "# One entry of `instances:` in a fleet configuration (docs/fleet.md); give it\n"
            "# match rules: source, listener or host.\n"
        )
        data = [{"name": member, "match": {}, **sections(r)}]
    body = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
    )
    return head + str(body)
