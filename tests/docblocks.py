"""The fenced blocks of the Markdown documentation, and the conventions the docs tests read.

A block may be preceded (directly, or across one blank line) by HTML comments, one a line,
that tell the tests how to run it:

* ``<!-- doctest: mock ARGS -->``: a ``console`` block that needs a running mock; the test
  starts ``imdsmock ARGS`` first (on free ports, as for ``$ imdsmock ... &`` inside a block).
* ``<!-- doctest: root REASON -->``: a block that runs only as root (it reads the firewall
  rules, say); elsewhere the test reports it skipped with the reason.
* ``<!-- doctest: skip REASON -->``: a block that cannot run here (it changes the machine's
  network, needs a Docker engine, a real AWS account...); the test reports it skipped with
  the reason.

In a ``console`` block a line starting ``$ `` is a command (a line ending in ``\\`` goes on on
the next one), and the lines up to the next command are what it prints, stdout and stderr
together. A line that is only ``...`` stands for any number of lines, ``...`` inside a line
for any text on that line, and two or more spaces for two or more (table columns whose
width follows their contents).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_DIRECTIVE = re.compile(r"^<!--\s*doctest:\s*(?P<kind>\w+)\s*(?P<rest>.*?)\s*-->$")
DIRECTIVES = ("mock", "root", "skip")


def documents() -> list[Path]:
    """README.md, every page of docs/, every recipe's README and the Helm chart's, in a
    fixed order."""
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "examples").glob("*/*/README.md")),
        ROOT / "deploy" / "helm" / "imdsmock" / "README.md",
    ]


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its info string, its text and its directives."""

    path: Path
    line: int
    """The line number of the opening fence (1-based)."""
    info: str
    text: str
    directives: tuple[tuple[str, str], ...] = ()
    """``(kind, rest)`` of each ``<!-- doctest: ... -->`` comment before the block."""

    @property
    def language(self) -> str:
        """The first word of the info string (``console``, ``python``...), or ``""``."""
        return self.info.split()[0] if self.info.split() else ""

    @property
    def where(self) -> str:
        """``docs/x.md:12``: the block's file (relative to the repository) and line."""
        name = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{name}:{self.line}"

    @property
    def skip_reason(self) -> str | None:
        """Why the block does not run here (a ``skip``, or ``root`` when not root), else None."""
        for kind, rest in self.directives:
            if kind == "skip" or (kind == "root" and os.geteuid() != 0):
                return rest or f"marked {kind}"
        return None

    @property
    def mock_args(self) -> str | None:
        """The arguments of the mock a ``mock`` directive asks for (``""``: none), or None."""
        return next((rest for kind, rest in self.directives if kind == "mock"), None)


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path``, each with the directive written before it."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, start = m["fence"], i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        found.append(
            Block(
                path=path,
                line=start + 1,
                info=m["info"].strip(),
                text="\n".join(body) + "\n",
                directives=_directives_before(lines, start),
            )
        )
    return found


def _directives_before(lines: Sequence[str], fence: int) -> tuple[tuple[str, str], ...]:
    j = fence - 1
    if j >= 0 and not lines[j].strip():
        j -= 1
    found: list[tuple[str, str]] = []
    while j >= 0 and (m := _DIRECTIVE.match(lines[j].strip())) is not None:
        if m["kind"] not in DIRECTIVES:
            raise ValueError(f"{lines[j].strip()}: unknown doctest directive; one of {DIRECTIVES}")
        found.insert(0, (m["kind"], m["rest"]))
        j -= 1
    return tuple(found)


def all_blocks(language: str) -> list[Block]:
    """Every block of :func:`documents` whose info string starts with ``language``."""
    return [b for path in documents() for b in blocks(path) if b.language == language]


# -- console sessions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One ``$`` command of a console block and the lines it is shown to print."""

    command: str
    expected: tuple[str, ...]

    @property
    def background(self) -> bool:
        """``$ CMD &``: started, not waited for; its output is not shown."""
        return self.command.endswith("&") and not self.command.endswith("&&")


def steps(block: Block) -> list[Step]:
    """The commands of a ``console`` block with the output shown under each."""
    found: list[Step] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            raise ValueError(f"{block.where}: output before the first '$ ' command: {line!r}")
        command = line[2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command[:-1] + "\n" + lines[i]
        i += 1
        shown: list[str] = []
        while i < len(lines) and not lines[i].startswith("$ "):
            shown.append(lines[i])
            i += 1
        while shown and not shown[-1].strip():
            shown.pop()
        found.append(Step(command.strip(), tuple(shown)))
    return found


@functools.cache
def _line_pattern(expected: str) -> re.Pattern[str]:
    parts = [
        " {2,}".join(re.escape(column) for column in re.split(r" {2,}", part))
        for part in expected.rstrip().split("...")
    ]
    return re.compile("[^\n]*".join(parts))


def output_matches(expected: Sequence[str], actual: Sequence[str]) -> bool:
    """Whether ``actual`` lines are what ``expected`` shows (``...`` lines and text as above);
    trailing blanks of every line are ignored."""
    want = [line.rstrip() for line in expected]
    got = [line.rstrip() for line in actual]

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(got)
        if want[i] == "...":
            return any(match(i + 1, k) for k in range(j, len(got) + 1))
        return (
            j < len(got) and bool(_line_pattern(want[i]).fullmatch(got[j])) and match(i + 1, j + 1)
        )

    return match(0, 0)


# -- links ----------------------------------------------------------------------------------------

_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def prose(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of the lines of ``path`` outside fenced blocks."""
    fence: str | None = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        m = _FENCE.match(line)
        if fence is None and m is not None:
            fence = m["fence"]
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            yield number, line


def links(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, target)`` of every Markdown link in ``path``'s prose."""
    for number, line in prose(path):
        for m in _LINK.finditer(line):
            yield number, m["target"]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of ``path``'s headings (a repeated one gets ``-1``, ``-2``... as on GitHub)."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose(path):
        m = _HEADING.match(line)
        if m is None:
            continue
        base = slug(m[2])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found
