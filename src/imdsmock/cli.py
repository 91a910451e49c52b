"""The command line: a thin skin over :mod:`imdsmock.config.schema` and :class:`imdsmock.app.App`.

``imdsmock`` with no subcommand serves. Subcommands: ``serve``, ``config`` (print the
effective configuration), ``cert`` (print the identity-signing certificate), ``route``
(make 169.254.169.254 reach the mock), ``ctl`` (drive a running mock), ``capture`` (write
the configuration of a running IMDS), ``version``, ``completion`` (a bash or zsh
completion script). Serve options may stand before ``serve``,
``config`` and ``cert`` too (``imdsmock --region eu-west-1 config``).

Bad input ends with one line on stderr and exit status 2; never a traceback.
"""

from __future__ import annotations

# Only what main() needs before it ignores SIGHUP: a hangup sent while the process starts
# must not end it, so everything else is imported after that, in functions (typing too:
# mypy treats a name TYPE_CHECKING as true).
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    import logging
    from collections.abc import Callable, Sequence
    from typing import Any

    from imdsmock.app import App
    from imdsmock.config.schema import Config

__all__ = ["aemm_main", "main", "serve_parser"]

PROG = "imdsmock"


def _add_serve_options(p: argparse.ArgumentParser) -> None:
    from imdsmock.config.options import OPTIONS

    p.add_argument("-c", "--config", metavar="FILE", help="config file (YAML, JSON or TOML)")
    p.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="reload the config file when it changes; a bad file keeps the old "
        "(SIGHUP reloads it with or without -w)",
    )
    g = p.add_argument_group("listening")
    g.add_argument("--host", help="IMDS listen address (default 127.0.0.1)")
    g.add_argument("--port", help="IMDS listen port (default 1338)")
    g.add_argument(
        "--listen",
        action="append",
        metavar="HOST:PORT",
        help="an extra IMDS listener, e.g. 169.254.169.254:80 or [fd00:ec2::254]:80 (repeatable)",
    )
    g.add_argument(
        "--keep-alive",
        action="store_const",
        const=True,
        help="keep connections open (real IMDS closes them)",
    )
    g.add_argument("--control-host", help="control API address (default 127.0.0.1)")
    g.add_argument("--control-port", help="control API port (default 1339)")
    g.add_argument("--control-token", help="bearer token for the control API")
    g.add_argument("--control-token-file", metavar="FILE", help="file holding that token")
    g.add_argument(
        "--allowed-hosts",
        action="append",
        metavar="NAME",
        help="a host name answered besides IP addresses and localhost, e.g. imds, .internal "
        "(with subdomains) or * (repeatable; a DNS rebinding guard)",
    )
    g.add_argument(
        "--clock", help="system | manual (time moves only by `imdsmock ctl clock advance`)"
    )
    g.add_argument(
        "--log-requests", action="store_const", const=True, help="log every request to stderr"
    )
    k = p.add_argument_group("credentials")
    k.add_argument(
        "--credentials-source", help="fake (default) | profile (real, needs imdsmock[aws])"
    )
    k.add_argument("--profile", help="AWS profile to take real credentials from")
    k.add_argument("--role-arn", help="assume this role with the profile's credentials")
    k.add_argument(
        "--ecs-listen",
        action="append",
        metavar="HOST:PORT",
        help="ECS-style credential endpoint, e.g. 169.254.170.2:80 (repeatable)",
    )
    k.add_argument(
        "--eks-listen",
        action="append",
        metavar="HOST:PORT",
        help="EKS Pod Identity-style endpoint, e.g. 169.254.170.23:80 (repeatable)",
    )
    o = p.add_argument_group("instance metadata options")
    for option in OPTIONS:  # checked by the configuration, as from a file or the API
        metavar = "{" + ",".join(option.choices) + "}" if option.choices else None
        o.add_argument(f"--{option.name}", metavar=metavar, help=option.flag_help())
    i = p.add_argument_group("instance")
    for name in (
        "instance-id",
        "instance-type",
        "region",
        "availability-zone",
        "account-id",
        "iam-role",
        "user-data",
        "user-data-base64",
    ):
        i.add_argument(f"--{name}")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="set any configuration key, e.g. --set instance.tags.Owner=alice",
    )


def serve_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The parser of ``imdsmock [serve]``."""
    from imdsmock._version import __version__
    from imdsmock.config.argparsing import Parser

    p = Parser(
        prog=prog,
        description="A faithful EC2 instance metadata service (IMDS) for local use.",
        epilog="Subcommands: serve (default), config, cert, route, ctl, capture, version, "
        "completion; "
        "serve options may come before config, cert and serve too. "
        "Every option has an IMDSMOCK_* environment variable (e.g. IMDSMOCK_PORT).",
    )
    p.add_argument("-v", "--version", action="version", version=__version__)
    _add_serve_options(p)
    return p


def load_config(ns: argparse.Namespace) -> Config:
    """Flags (from an argparse namespace) > env > file > defaults."""
    from imdsmock.config.load import load
    from imdsmock.config.schema import SHORT_NAMES
    from imdsmock.errors import ImdsMockError, quote

    flags: dict[str, Any] = {}
    for short in SHORT_NAMES:
        value = getattr(ns, short.replace("-", "_"))
        if value is not None:
            flags[short] = value
    for item in ns.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ImdsMockError(
                f"--set {quote(item)} is not KEY=VALUE; e.g. --set options.hop-limit=2"
            )
        flags[key.strip()] = value
    return load(file=ns.config, flags=_nest_set(flags))


def _nest_set(flags: dict[str, Any]) -> dict[str, Any]:
    # "--set instance.tags.Owner=x" and "--set paths.meta-data/foo=x" address mapping keys.
    out: dict[str, Any] = {}
    for key, value in flags.items():
        parts = key.split(".")
        if len(parts) > 2 and parts[0] in ("instance", "paths"):
            node = out.setdefault(parts[0], {})
            for part in parts[1:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        elif len(parts) == 2 and parts[0] == "paths":
            out.setdefault("paths", {})[parts[1]] = None if value == "" else value
        else:
            out[key] = value
    return out


def _cmd_serve(argv: Sequence[str], prog: str = PROG) -> int:
    import os

    from imdsmock.watch import serve_reloadable

    ns = serve_parser(prog).parse_args(argv)
    serve_reloadable(
        load_config(ns),
        ns.config or os.environ.get("IMDSMOCK_CONFIG"),
        lambda: load_config(ns),
        poll=ns.watch,
        hint="-c FILE or IMDSMOCK_CONFIG",
        ready=_ready(prog),
    )
    return 0


def _ready(prog: str) -> Callable[[App], None]:
    def ready(a: App) -> None:
        for url in a.addresses():
            print(f"{prog}: serving IMDS on {url}", file=sys.stderr, flush=True)
        control = a.control_url()
        if control is not None:
            print(f"{prog}: control API on {control}", file=sys.stderr, flush=True)

    return ready


def _config_parser() -> argparse.ArgumentParser:
    p = serve_parser(f"{PROG} config")
    p.description = (
        "Print the effective configuration (flags > env > file > defaults), with the values "
        "derived for keys left null marked as derived; exit 2 with the reason if serving it "
        "would be refused."
    )
    p.add_argument("--format", choices=("yaml", "json"), default="yaml")
    return p


def _cmd_config(argv: Sequence[str]) -> int:
    from imdsmock.app import check
    from imdsmock.config.dump import derived_keys, dump
    from imdsmock.instance.facts import derived_values

    ns = _config_parser().parse_args(argv)
    cfg = load_config(ns)
    check(cfg)
    derived = {f"instance.{key}": value for key, value in derived_values(cfg.instance).items()}
    print(dump(cfg, ns.format, derived), end="" if ns.format == "yaml" else "\n")
    marked = derived_keys(cfg, derived)
    if ns.format == "json" and marked:
        # JSON has no comments: say on stderr which values were derived, so that stdout
        # stays a configuration file that loads back (stdout first, as it reads).
        sys.stdout.flush()
        print(
            f"{PROG}: derived (left null, served as printed): {', '.join(marked)}", file=sys.stderr
        )
    return 0


def _cert_parser() -> argparse.ArgumentParser:
    p = serve_parser(f"{PROG} cert")
    p.description = "Print the PEM certificate that verifies the identity-document signatures."
    return p


def _cmd_cert(argv: Sequence[str]) -> int:
    from imdsmock.signing.store import load_signer

    ns = _cert_parser().parse_args(argv)
    print(load_signer(load_config(ns).signing).certificate_pem(), end="")
    return 0


def _version_parser() -> argparse.ArgumentParser:
    from imdsmock.config.argparsing import Parser

    return Parser(prog=f"{PROG} version", description="Print the version.")


def _cmd_version(argv: Sequence[str]) -> int:
    from imdsmock._version import __version__

    _version_parser().parse_args(argv)
    print(__version__)
    return 0


def _completion_parser() -> argparse.ArgumentParser:
    from imdsmock.completion import SHELLS
    from imdsmock.config.argparsing import Parser

    p = Parser(
        prog=f"{PROG} completion",
        description="Print a shell completion script: "
        "`source <(imdsmock completion bash)` (or zsh) in your shell's rc file.",
    )
    p.add_argument("shell", choices=SHELLS)
    return p


def _cmd_completion(argv: Sequence[str]) -> int:
    from imdsmock.completion import script

    ns = _completion_parser().parse_args(argv)
    print(script(ns.shell, PROG, command_parsers()), end="")
    return 0


def _capture_parser() -> argparse.ArgumentParser:
    from imdsmock.capture import run
    from imdsmock.config.argparsing import Parser

    p = Parser(
        prog=f"{PROG} capture",
        description="Walk a running IMDS (IMDSv2; IMDSv1 only when the token is refused with "
        "403, 404 or 405) and write a configuration that reproduces its tree: instance keys "
        "where they map, paths for the rest. Credentials, tokens and identity signatures are "
        "left out (the mock makes its own; the role name is kept). Requests go to URL only.",
    )
    p.add_argument(
        "url", nargs="?", default=run.DEFAULT_URL, metavar="URL", help=f"default {run.DEFAULT_URL}"
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default stdout)")
    p.add_argument("--user-data", action="store_true", help="keep the user data (left out else)")
    p.add_argument(
        "--as-instance",
        metavar="NAME",
        help="write one entry of a fleet's instances: (every key given, none inherited)",
    )
    b = p.add_argument_group("bounds (past one: exit 1)")
    b.add_argument(
        "--timeout",
        type=_number(float, 0.01, 600),
        default=run.TIMEOUT,
        metavar="SECONDS",
        help=f"for each request (default {run.TIMEOUT:g})",
    )
    for name, default, low, high, what in (
        ("max-paths", run.MAX_PATHS, 2, 1_000_000, "requests"),
        ("max-bytes", run.MAX_BYTES, 1024, 1024**3, "body bytes in all"),
        ("max-depth", run.MAX_DEPTH, 2, 64, "segments of a path"),
    ):
        b.add_argument(
            f"--{name}",
            type=_number(int, low, high),
            default=default,
            metavar="N",
            help=f"at most N {what} (default {default})",
        )
    return p


def _number(kind: Callable[[str], float], low: float, high: float) -> Callable[[str], Any]:
    """An argparse type: a number of ``kind`` from ``low`` to ``high``, else one line."""
    import argparse

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number from {low:g} to {high:g}")
        return value

    return convert


def _cmd_capture(argv: Sequence[str]) -> int:
    from imdsmock.capture.client import CaptureFailed
    from imdsmock.capture.run import capture, report

    ns = _capture_parser().parse_args(argv)

    def say(line: str, level: str = "") -> None:
        print(f"{PROG}: {level}{line}", file=sys.stderr, flush=True)

    try:
        result = capture(
            ns.url,
            user_data=ns.user_data,
            as_instance=ns.as_instance,
            timeout=ns.timeout,
            max_paths=ns.max_paths,
            max_bytes=ns.max_bytes,
            max_depth=ns.max_depth,
            warn=lambda line: say(line, "warning: "),
        )
    except CaptureFailed as exc:
        say(str(exc), "error: ")
        return 1
    if ns.output is None:
        sys.stdout.write(result.text)
        sys.stdout.flush()  # the configuration, then what is said about it
    else:
        _write(ns.output, result.text)
    for line in report(result):
        say(line)
    return 0


def _write(path: str, text: str) -> None:
    from imdsmock.errors import ImdsMockError, quote

    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise ImdsMockError(f"-o {quote(path)} cannot be written: {exc.strerror or exc}") from None


def _cmd_route(argv: Sequence[str]) -> int:
    from .netsetup.cli import main as route_main

    return route_main(list(argv))


def _cmd_ctl(argv: Sequence[str]) -> int:
    from imdsmock.control.ctl import main as ctl_main

    status: int = ctl_main(list(argv))
    return status


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "serve": _cmd_serve,
    "config": _cmd_config,
    "cert": _cmd_cert,
    "route": _cmd_route,
    "ctl": _cmd_ctl,
    "capture": _cmd_capture,
    "version": _cmd_version,
    "completion": _cmd_completion,
}
# The subcommands that take the serve options, which may stand before them as well.
_SERVE_OPTIONS_BEFORE = frozenset({"serve", "config", "cert"})


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    """The parser of ``imdsmock`` itself (key ``""``) and of each subcommand, for completion."""
    from imdsmock.control.ctl import build_parser as ctl_parser
    from imdsmock.netsetup.cli import build_parser as route_parser

    return {
        "": serve_parser(),
        "serve": serve_parser(f"{PROG} serve"),
        "config": _config_parser(),
        "cert": _cert_parser(),
        "route": route_parser(),
        "ctl": ctl_parser(),
        "capture": _capture_parser(),
        "version": _version_parser(),
        "completion": _completion_parser(),
    }


def _split(args: list[str]) -> tuple[str, list[str]]:
    """The subcommand and its arguments; serve options before it go to it too.

    ``imdsmock --region X config`` is ``imdsmock config --region X``. A word where the
    subcommand would stand that is none is refused with the close match; serve options
    before a subcommand that does not take them are refused.
    """
    from imdsmock.config.argparsing import first_positional
    from imdsmock.errors import ImdsMockError, did_you_mean, quote

    at = first_positional(serve_parser(), args)
    if at is None:
        return "serve", args
    word, before = args[at], args[:at]
    if word not in COMMANDS:
        raise ImdsMockError(
            f"unknown command {quote(word)}; expected one of: {', '.join(COMMANDS)}"
            + did_you_mean(word, COMMANDS)
        )
    if before and word not in _SERVE_OPTIONS_BEFORE:
        raise ImdsMockError(
            f"{before[0]} is a serve option, which '{PROG} {word}' does not take; "
            f"give serve options to serve, config or cert"
        )
    return word, [*before, *args[at + 1 :]]


def _prefixed(prog: str) -> logging.Formatter:
    """One prefix style for every line a command writes on stderr: ``PROG: message``,
    ``PROG: warning: message``, ``PROG: error: message`` (``PROG`` is the command:
    ``imdsmock`` or ``ec2-metadata-mock``); a record of another library names it too."""
    import logging

    class Prefixed(logging.Formatter):
        # Defined here, not at import: the module imports nothing before main() runs.
        def format(self, record: logging.LogRecord) -> str:
            if record.levelno >= logging.ERROR:
                level = "error: "
            elif record.levelno >= logging.WARNING:
                level = "warning: "
            elif record.levelno < logging.INFO:
                level = "debug: "
            else:
                level = ""
            ours = record.name == PROG or record.name.startswith(PROG + ".")
            source = "" if ours else f"{record.name}: "
            return f"{prog}: {level}{source}{super().format(record)}"

    return Prefixed()


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_to_stderr(prog: str) -> None:
    """Send log records to stderr with ``prog``'s prefix, at ``IMDSMOCK_LOG_LEVEL`` (INFO);
    a level that is not one of Python's names is a :class:`ConfigError`. Nothing changes
    when the root logger already has a handler (a test's, an embedding program's)."""
    import logging
    import os

    from imdsmock.errors import ConfigError

    level = os.environ.get("IMDSMOCK_LOG_LEVEL", "INFO")
    if level.strip().upper() not in _LOG_LEVELS:
        allowed = "one of: " + ", ".join(_LOG_LEVELS)
        raise ConfigError("IMDSMOCK_LOG_LEVEL", level, allowed)
    handler = logging.StreamHandler()
    handler.setFormatter(_prefixed(prog))
    logging.basicConfig(level=level.strip().upper(), handlers=[handler])


def _ignore_hangup() -> Any:
    """Ignore SIGHUP; returns what to set back (None off the main thread, where signals
    are not ours to set).

    The server's SIGHUP handler (a reload, or a logged "ignored") is installed once the
    event loop runs; until then SIGHUP's default would end the process.
    """
    try:
        return signal.signal(signal.SIGHUP, signal.SIG_IGN)
    except ValueError:  # not the main thread
        return None


def _restore_hangup(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGHUP, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``imdsmock``; returns the exit status."""
    previous = _ignore_hangup()
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    finally:
        _restore_hangup(previous)


def _main(args: list[str]) -> int:
    from imdsmock.errors import ImdsMockError

    try:
        _log_to_stderr(PROG)
        name, rest = _split(args)
        return COMMANDS[name](rest)
    except ImdsMockError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def aemm_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ec2-metadata-mock``: AWS's Go mock's interface."""
    previous = _ignore_hangup()
    try:
        from imdsmock.aemm.cli import PROG as AEMM
        from imdsmock.aemm.cli import main as aemm
        from imdsmock.errors import ImdsMockError
        from imdsmock.watch import serve_reloadable

        try:
            _log_to_stderr(AEMM)
        except ImdsMockError as exc:
            print(f"{AEMM}: error: {exc}", file=sys.stderr)
            return 2
        return aemm(argv, serve_reloadable)
    finally:
        _restore_hangup(previous)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
