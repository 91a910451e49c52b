"""``ec2-metadata-mock``: AWS's Go mock's command line, served by imdsmock.

Accepts amazon-ec2-metadata-mock's root flags, subcommands (``spot``, ``events`` /
``se`` / ``scheduledevents``, ``asglifecycle`` / ``autoscaling`` / ``asg``), config file
and ``AEMM_*`` variables (as of its v1.13.0), translates them with
:mod:`imdsmock.aemm.config` and runs the same :class:`~imdsmock.app.App` as ``imdsmock``.
What is served keeps real IMDS's wire format; docs/aemm-compatibility.md lists every
difference from the Go mock. Bad input ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, Protocol

from imdsmock._version import __version__
from imdsmock.aemm.config import (
    RELAXED,
    as_given,
    find_config_file,
    merge,
    saved_config_path,
    translate,
)
from imdsmock.config.argparsing import Parser
from imdsmock.config.load import load
from imdsmock.config.schema import Config
from imdsmock.errors import ConfigError, ImdsMockError, quote

__all__ = ["Invocation", "main", "parse"]

PROG = "ec2-metadata-mock"
log = logging.getLogger("imdsmock.aemm")

# Subcommand -> mode; aliases as the Go mock's help lists them (and "spotitn" from old docs).
_COMMANDS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "spot": ("spot", ("spotitn",)),
    "events": ("events", ("se", "scheduledevents")),
    "asglifecycle": ("asglifecycle", ("autoscaling", "asg")),
}


class Flag(NamedTuple):
    """One root flag: its names, the dotted AEMM key it sets, its kind and help line."""

    short: str | None
    long: str
    key: str
    kind: str
    help: str


# The Go mock's root flags, with its meaning of each (its defaults in brackets).
_GLOBAL: tuple[Flag, ...] = (
    Flag("-n", "--hostname", "server.hostname", "str", "address to listen on [0.0.0.0]"),
    Flag("-p", "--port", "server.port", "str", "port to listen on [1338]"),
    Flag(
        "-c",
        "--config-file",
        "config-file",
        "str",
        "config file (JSON, YAML or TOML) [$HOME/aemm-config.json, .yaml, .yml or .toml]",
    ),
    Flag(
        "-s",
        "--save-config-to-file",
        "save-config-to-file",
        "bool",
        "save the merged configuration to $HOME/.ec2-metadata-mock/.aemm-config-used.json",
    ),
    Flag(
        "-w",
        "--watch-config-file",
        "watch-config-file",
        "bool",
        "reload the config file in use when it changes",
    ),
    Flag(
        "-d",
        "--mock-delay-sec",
        "mock-delay-sec",
        "int",
        "seconds after start before the spot notice and the scheduled event appear [0]",
    ),
    Flag(
        None,
        "--mock-trigger-time",
        "mock-trigger-time",
        "str",
        "RFC 3339 time at which the spot notice and scheduled event appear (wins over -d)",
    ),
    Flag(
        "-x",
        "--mock-ip-count",
        "mock-ip-count",
        "int",
        "how many distinct client IPs see spot, rebalance, events and Auto Scaling; -1: all [2]",
    ),
    Flag("-I", "--imdsv2", "imdsv2", "bool", "require an IMDSv2 token on every request"),
    Flag(
        None,
        "--rebalance-delay-sec",
        "rebalance-delay-sec",
        "int",
        "seconds after start before the rebalance recommendation appears [0]",
    ),
    Flag(
        None,
        "--rebalance-trigger-time",
        "rebalance-trigger-time",
        "str",
        "RFC 3339 time at which the rebalance recommendation appears (wins over the delay)",
    ),
    Flag(
        None,
        "--asg-termination-delay-sec",
        "asg-termination-delay-sec",
        "int",
        "seconds after start before target-lifecycle-state turns Terminated [0]",
    ),
    # A timestamp here (the Go mock declares it int64 and cannot parse one).
    Flag(
        None,
        "--asg-termination-trigger-time",
        "asg-termination-trigger-time",
        "str",
        "RFC 3339 time at which target-lifecycle-state turns Terminated (wins over the delay)",
    ),
)
_LOCAL: Mapping[str, tuple[tuple[str, str, str, str], ...]] = {
    "spot": (
        ("-a", "--action", "spot.action", "terminate | hibernate | stop (default terminate)"),
        ("-t", "--time", "spot.time", "termination time in the notice (RFC 3339)"),
        ("-r", "--rebalance-rec-time", "spot.rebalance-rec-time", "noticeTime (RFC 3339)"),
    ),
    "events": (
        ("-o", "--code", "events.code", "instance-reboot | system-reboot (default) | ..."),
        ("-t", "--state", "events.state", "active (default) | completed | canceled"),
        ("-b", "--not-before", "events.not-before", "RFC 3339 (default: start)"),
        ("-a", "--not-after", "events.not-after", "RFC 3339 (default: start + 7 days)"),
        ("-l", "--not-before-deadline", "events.not-before-deadline", "RFC 3339 (start + 9 d)"),
    ),
    "asglifecycle": (),
}
_BOOLS = {f.short for f in _GLOBAL if f.kind == "bool" and f.short} | {
    f.long for f in _GLOBAL if f.kind == "bool"
}


class _Parser(Parser):
    """argparse reporting errors in one line, exit status 2, under the command's own name
    (an unknown flag before the mode named, with its close match, as :class:`Parser`)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message}{self.option_hint(message)}\n")


def _add_globals(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("global flags")
    for flag in _GLOBAL:
        names = [n for n in (flag.short, flag.long) if n]
        if flag.kind == "bool":
            g.add_argument(
                *names,
                dest=flag.key,
                action="store_const",
                const=True,
                default=None,
                help=flag.help,
            )
        else:
            g.add_argument(
                *names, dest=flag.key, default=None, metavar=flag.kind.upper(), help=flag.help
            )


def build_parser() -> argparse.ArgumentParser:
    """The parser: root flags on the root and on every subcommand (cobra's persistence)."""
    p = _Parser(
        prog=PROG,
        description="Run imdsmock with AWS's amazon-ec2-metadata-mock interface.",
        epilog="Every setting also reads AEMM_* variables and the config file (-c).",
        argument_default=None,
    )
    p.add_argument("-v", "--version", action="version", version=__version__)
    _add_globals(p)
    sub = p.add_subparsers(dest="mode", metavar="{spot,events,asglifecycle,help}")
    for name, (_mode, aliases) in _COMMANDS.items():
        sp = sub.add_parser(name, aliases=list(aliases), help=f"serve the {name} mock only")
        # Subcommand values must not reset root values given before it.
        _add_globals(sp)
        for short, long, key, text in _LOCAL[name]:
            sp.add_argument(short, long, dest=key, default=None, help=text)
    for action in [*p._actions, *(a for s in sub.choices.values() for a in s._actions)]:
        if action.dest not in ("help", "version", "mode"):
            action.default = argparse.SUPPRESS
    return p


def _normalize(argv: Sequence[str]) -> list[str]:
    """pflag spellings argparse lacks: ``-d=5``, ``--imdsv2=false``, ``-I=true``."""
    out: list[str] = []
    for arg in argv:
        m = re.fullmatch(r"(-[A-Za-z]|--[a-z0-9-]+)=(.*)", arg)
        if m is not None and m.group(1) in _BOOLS:
            if m.group(2).lower() in ("true", "1", "t"):
                out.append(m.group(1))
            elif m.group(2).lower() not in ("false", "0", "f"):
                raise ImdsMockError(f"{m.group(1)} is {quote(m.group(2))}; expected true or false")
            continue
        if m is not None and len(m.group(1)) == 2:
            out.extend([m.group(1), m.group(2)])
            continue
        out.append(arg)
    return out


class Invocation:
    """A parsed command line: the mode, flag values (dotted AEMM keys) and the env."""

    def __init__(self, mode: str, flags: dict[str, Any], env: Mapping[str, str]) -> None:
        self.mode = mode
        self.flags = flags
        self.env = env
        self.file = find_config_file(flags.get("config-file"), env)

    def merged(self, warn: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Defaults < file < AEMM_* < flags, AEMM-shaped (what -s saves)."""
        flags = {k: v for k, v in self.flags.items() if k != "config-file"}
        merged = merge(file=self.file, env=self.env, flags=flags, warn=warn)
        merged["config-file"] = self.file or ""
        return merged

    def load(self, warn: Callable[[str], None] = log.warning) -> tuple[dict[str, Any], Config]:
        """The merged AEMM config and our validated configuration (``IMDSMOCK_*``
        variables still apply on top); each value served as given although real EC2
        would refuse it, and each key AEMM does not read, is one line to ``warn``."""
        merged = self.merged(warn)
        translation = translate(merged, self.mode)
        for line in translation.warnings:
            warn(line)

        def relaxed(error: ConfigError) -> None:
            key = translation.origins.get(error.key, error.key)
            warn(as_given(key, error.value, error.allowed))

        imdsmock_env = {k: v for k, v in self.env.items() if k.startswith("IMDSMOCK_")}
        cfg = load(env=imdsmock_env, base=translation.config, relaxed=RELAXED, warn=relaxed)
        return merged, _fleetwide(cfg)

    def config(self) -> Config:
        """Our validated configuration (warnings logged)."""
        return self.load()[1]


def _fleetwide(cfg: Config) -> Config:
    """The Go mock's notices for every instance of a fleet (``IMDSMOCK_CONFIG`` naming a
    file with ``instances``): a member without scenarios of its own runs the top-level
    ones, those the mode and its flags set. So ``mock-ip-count`` alone decides who sees
    them, as in the Go mock: the first N clients, whichever instance each one is."""
    if not cfg.instances or not cfg.scenarios:
        return cfg
    members = tuple(
        member if member.scenarios else dataclasses.replace(member, scenarios=cfg.scenarios)
        for member in cfg.instances
    )
    return cfg.replace(instances=members)


def parse(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Invocation:
    """Parse ``ec2-metadata-mock`` arguments (exits 0 for --help/-v, 2 for bad usage)."""
    ns = build_parser().parse_args(_normalize(argv))
    values = {k: v for k, v in vars(ns).items() if k != "mode"}
    mode = "root"
    for name, (m, aliases) in _COMMANDS.items():
        if ns.mode == name or ns.mode in aliases:
            mode = m
    return Invocation(mode, values, os.environ if env is None else env)


def _save(inv: Invocation, merged: Mapping[str, Any]) -> None:
    path = saved_config_path(inv.env)
    try:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        log.warning("could not save the config to %s: %s", path, exc.strerror)


class Serve(Protocol):
    """How a process serves a config until it is stopped (``imdsmock.watch.serve_reloadable``)."""

    def __call__(
        self,
        config: Config,
        file: str | None,
        reload: Callable[[], Config],
        /,
        *,
        poll: bool,
        hint: str,
        ready: Callable[[Any], None],
    ) -> None: ...


def _serve(inv: Invocation, serve: Serve) -> int:
    if inv.file is not None and not Path(inv.file).exists():
        log.warning("config file %s not found; using flags, AEMM_* and defaults", inv.file)
    merged, cfg = inv.load()
    if _truthy(merged.get("save-config-to-file")):
        _save(inv, merged)

    def reload() -> Config:
        fresh, cfg = inv.load()
        if _truthy(fresh.get("save-config-to-file")):
            _save(inv, fresh)
        return cfg

    def ready(a: Any) -> None:
        what = "all mocks" if inv.mode == "root" else f"the {inv.mode} mock"
        for url in a.addresses():
            print(f"{PROG}: serving {what} on {url}", file=sys.stderr, flush=True)

    # As imdsmock: SIGHUP never ends the server (the Go mock dies of it). It reloads the
    # config file, with or without -w (which also polls it), or is logged with no file.
    poll = _truthy(merged.get("watch-config-file"))
    serve(cfg, inv.file, reload, poll=poll, hint="-c FILE or AEMM_CONFIG_FILE", ready=ready)
    return 0


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1"))


def main(argv: Sequence[str] | None, serve: Serve) -> int:
    """Run ``ec2-metadata-mock`` with ``serve`` as the server loop; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["help"]:
        build_parser().parse_args([*args[1:2], "--help"])
    try:
        return _serve(parse(args), serve)
    except ImdsMockError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
