"""Shell completion scripts for bash and zsh, generated from the argparse parsers.

:func:`script` walks the parser of every subcommand (options, which of them take a value,
their choices, nested subcommands, positional choices) and writes them as shell ``case``
tables, so the script completes exactly what the parsers accept. The tables and the
function that finds the subcommand under the cursor are plain POSIX shell, shared by both
shells; only the small driver differs (``COMP_WORDS``/``COMPREPLY`` in bash, ``words``/
``compadd`` in zsh).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

__all__ = ["SHELLS", "script"]

SHELLS = ("bash", "zsh")

# A word the tables can hold unquoted inside single quotes and split on spaces.
_WORD = re.compile(r"[A-Za-z0-9._:/+@%=,-]+")


@dataclass
class _Node:
    """What one (sub)command accepts."""

    subcommands: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    valued: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    choices: dict[str, list[str]] = field(default_factory=dict)
    positionals: list[str] = field(default_factory=list)


def _words(values: object) -> list[str]:
    if not isinstance(values, Mapping | list | tuple):
        return []
    return [str(v) for v in values if _WORD.fullmatch(str(v))]


def _listed(metavar: object) -> list[str]:
    """The values a ``{a,b}`` metavar lists (a flag checked elsewhere shows its choices so)."""
    if isinstance(metavar, str) and metavar.startswith("{") and metavar.endswith("}"):
        return _words(metavar[1:-1].split(","))
    return []


def _walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, _Node]]:
    node = _Node()
    children: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:  # argparse has no public walk of its actions
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                node.subcommands.append(name)
                children.append((name, sub))
        elif action.option_strings:
            node.options += action.option_strings
            if action.nargs != 0:
                node.valued += action.option_strings
                if action.metavar == "FILE":
                    node.files += action.option_strings
                values = _words(action.choices) or _listed(action.metavar)
                for option in action.option_strings:
                    if values:
                        node.choices[option] = values
        elif action.choices is not None and not node.positionals:
            node.positionals = _words(action.choices)
    yield path, node
    for name, sub in children:
        yield from _walk(sub, f"{path} {name}".strip())


def _nodes(parsers: Mapping[str, argparse.ArgumentParser]) -> dict[str, _Node]:
    """Every command path (``""``, ``"ctl"``, ``"ctl metadata"``) and what it accepts."""
    nodes: dict[str, _Node] = {}
    for name, parser in parsers.items():
        nodes.update(_walk(parser, name))
    nodes[""].subcommands = [name for name in parsers if name]
    return nodes


def _table(function: str, rows: Mapping[str, list[str]]) -> str:
    lines = [f"{function}() {{", '    case "$1" in']
    for key, words in rows.items():
        if words:
            lines.append(f"        '{key}') echo '{' '.join(words)}' ;;")
    lines += ["    esac", "}"]
    return "\n".join(lines)


def _tables(prefix: str, nodes: Mapping[str, _Node]) -> str:
    choices = {
        f"{path} {option}".strip(): words
        for path, node in nodes.items()
        for option, words in node.choices.items()
    }
    tables = [
        _table(f"{prefix}_subcommands", {p: n.subcommands for p, n in nodes.items()}),
        _table(f"{prefix}_positionals", {p: n.positionals for p, n in nodes.items()}),
        _table(f"{prefix}_options", {p: n.options for p, n in nodes.items()}),
        _table(f"{prefix}_valued", {p: n.valued for p, n in nodes.items()}),
        _table(f"{prefix}_files", {p: n.files for p, n in nodes.items()}),
        _table(f"{prefix}_choices", choices),
    ]
    return "\n\n".join(tables)


_NODE_FUNCTION = """\
# The command path the words before the cursor name ("", "ctl", "ctl metadata"),
# skipping options and the values of those that take one.
{p}_node() {{
    local node='' skip='' w
    for w in "$@"; do
        if [ -n "$skip" ]; then skip=''; continue; fi
        case "$w" in
            --*=*) ;;
            -*) if {p}_is valued "$node" "$w"; then skip=1; fi ;;
            *) if {p}_is subcommands "$node" "$w"; then node="${{node:+$node }}$w"; fi ;;
        esac
    done
    printf '%s\\n' "$node"
}}

# Whether word $3 is in table $1 (subcommands, valued, files) of command path $2.
{p}_is() {{
    case " $({p}_$1 "$2") " in *" $3 "*) return 0 ;; esac
    return 1
}}"""

_BASH_DRIVER = """\
{p}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev='' node
    if (( COMP_CWORD > 1 )); then prev="${{COMP_WORDS[COMP_CWORD-1]}}"; fi
    node="$({p}_node "${{COMP_WORDS[@]:1:COMP_CWORD-1}}")"
    if [ -n "$prev" ] && {p}_is valued "$node" "$prev"; then
        local choices
        choices="$({p}_choices "${{node:+$node }}$prev")"
        if [ -n "$choices" ]; then
            COMPREPLY=( $(compgen -W "$choices" -- "$cur") )
        elif {p}_is files "$node" "$prev"; then
            COMPREPLY=( $(compgen -f -- "$cur") )
        else
            COMPREPLY=()
        fi
    elif [[ "$cur" == -* ]]; then
        COMPREPLY=( $(compgen -W "$({p}_options "$node")" -- "$cur") )
    else
        local next="$({p}_subcommands "$node") $({p}_positionals "$node")"
        COMPREPLY=( $(compgen -W "$next" -- "$cur") )
    fi
}}

complete -F {p} {prog}"""

_ZSH_DRIVER = """\
{p}() {{
    local cur="${{words[CURRENT]}}" prev='' node
    local -a candidates
    if (( CURRENT > 2 )); then prev="${{words[CURRENT-1]}}"; fi
    node="$({p}_node "${{(@)words[2,CURRENT-1]}}")"
    if [[ -n "$prev" ]] && {p}_is valued "$node" "$prev"; then
        candidates=( ${{=$({p}_choices "${{node:+$node }}$prev")}} )
        if (( ${{#candidates}} == 0 )) && {p}_is files "$node" "$prev"; then
            _files
            return
        fi
    elif [[ "$cur" == -* ]]; then
        candidates=( ${{=$({p}_options "$node")}} )
    else
        candidates=( ${{=$({p}_subcommands "$node")}} ${{=$({p}_positionals "$node")}} )
    fi
    compadd -- "${{candidates[@]}}"
}}

if [[ "${{funcstack[1]}}" == "{p}" ]]; then
    {p} "$@"
else
    compdef {p} {prog}
fi"""


def script(shell: str, prog: str, parsers: Mapping[str, argparse.ArgumentParser]) -> str:
    """The completion script of ``prog`` for ``shell`` (``bash`` or ``zsh``).

    ``parsers`` maps each subcommand to its parser, and ``""`` to the parser of ``prog``
    without a subcommand.
    """
    prefix = "_" + re.sub(r"\W", "_", prog)
    nodes = _nodes(parsers)
    head = (
        f"#compdef {prog}\n" if shell == "zsh" else ""
    ) + f"# {shell} completion for {prog}: generated by `{prog} completion {shell}`.\n"
    driver = _ZSH_DRIVER if shell == "zsh" else _BASH_DRIVER
    body = [_tables(prefix, nodes), _NODE_FUNCTION.format(p=prefix)]
    body.append(driver.format(p=prefix, prog=prog))
    return head + "\n" + "\n\n".join(body) + "\n"
