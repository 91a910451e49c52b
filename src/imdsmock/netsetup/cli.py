"""``imdsmock route ...``: a thin skin over :mod:`.host` and :mod:`.container`.

The main ``imdsmock`` CLI passes everything after the word ``route`` to :func:`main`. Bad
input and missing privileges print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from typing import NoReturn

from imdsmock.netsetup import container, detect, host, probe
from imdsmock.netsetup.errors import NetsetupError

SCRIPT_NAME = "imdsmock-route.sh"


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise NetsetupError(f"{message} (see: imdsmock route --help)")


def _add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=detect.BACKEND_CHOICES,
        default="auto",
        help="firewall tool: auto (the system's iptables, else nft), iptables, "
        "iptables-nft, iptables-legacy or nft",
    )


def _add_mock_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mock",
        metavar="HOST[:PORT]",
        help="the mock's name or address (env IMDSMOCK_ROUTE_TO, else IMDSMOCK_HOST; port "
        "from IMDSMOCK_PORT, default 1338)",
    )
    p.add_argument(
        "--credentials-port",
        default=os.environ.get("IMDSMOCK_CREDENTIALS_PORT"),
        metavar="P",
        help="also route 169.254.170.2:80 (ECS credentials) to this port of the mock "
        "(env IMDSMOCK_CREDENTIALS_PORT)",
    )
    p.add_argument(
        "--timeout",
        default=os.environ.get("IMDSMOCK_TIMEOUT", "30"),
        metavar="S",
        help="seconds to wait for the mock's name to resolve (env IMDSMOCK_TIMEOUT, default 30)",
    )
    _add_backend(p)
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")


def build_parser() -> argparse.ArgumentParser:
    """The ``route`` parser: up, down, status, container, sidecar, script."""
    parser = _Parser(
        prog="imdsmock route",
        description="Make 169.254.169.254 (and 169.254.170.2, fd00:ec2::254) reach the mock.",
    )
    sub = parser.add_subparsers(dest="action", required=True, parser_class=_Parser)
    up = sub.add_parser("up", help="route the endpoints to a mock on this machine")
    up.add_argument(
        "--mock",
        default="127.0.0.1:1338",
        metavar="ADDR[:PORT]",
        help="where the mock listens on this machine (default 127.0.0.1:1338)",
    )
    up.add_argument(
        "--credentials-port", metavar="P", help="also route 169.254.170.2:80 to this port"
    )
    up.add_argument(
        "--ipv6", action="store_true", help="also route [fd00:ec2::254]:80 to [::1] (same port)"
    )
    up.add_argument(
        "--alias-only",
        action="store_true",
        help="only add the addresses; the mock listens on 169.254.169.254:80 itself",
    )
    up.add_argument("--platform", choices=("linux", "macos"), default=host.this_platform())
    _add_backend(up)
    up.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")

    down = sub.add_parser("down", help="remove exactly what up added")
    down.add_argument("--platform", choices=("linux", "macos"), default=host.this_platform())
    _add_backend(down)
    down.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")

    status = sub.add_parser(
        "status",
        help="show the aliases and rules in place, and whether 169.254.169.254 answers as the "
        "mock (asked through its control API)",
    )
    _add_backend(status)
    status.add_argument(
        "--control-url",
        default=os.environ.get("IMDSMOCK_CONTROL_URL", probe.DEFAULT_CONTROL_URL),
        metavar="URL",
        help=f"the mock's control API (env IMDSMOCK_CONTROL_URL, default "
        f"{probe.DEFAULT_CONTROL_URL}; token from IMDSMOCK_CONTROL_TOKEN)",
    )

    run = sub.add_parser(
        "container", help="entrypoint: wait for the mock, DNAT to it here, exec CMD"
    )
    _add_mock_options(run)
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ...")

    side = sub.add_parser(
        "sidecar", help="as container, then stay idle (network_mode: service:app)"
    )
    _add_mock_options(side)

    script = sub.add_parser("script", help=f"print the POSIX-shell entrypoint {SCRIPT_NAME}")
    script.add_argument("--path", action="store_true", help="print its file path instead")
    return parser


def main(argv: list[str]) -> int:
    """Run ``imdsmock route`` with ``argv`` (the words after ``route``); exit status."""
    try:
        return _main(argv)
    except NetsetupError as exc:
        print(f"imdsmock route: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except SystemExit as exc:  # --help and --version from argparse
        return exc.code if isinstance(exc.code, int) else 0


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "up":
        port_host, port = container.parse_mock(args.mock)
        options = host.HostOptions(
            mock_host=port_host,
            mock_port=port,
            credentials_port=_port_or_none("--credentials-port", args.credentials_port),
            ipv6=args.ipv6,
            alias_only=args.alias_only,
            backend=args.backend,
            platform=args.platform,
        )
        sys.stdout.write(host.up(options, dry_run=args.dry_run))
        if not args.alias_only and not probe.listening(port_host, port):
            print(
                f"imdsmock route: warning: nothing listens on {_where(port_host, port)} now; "
                "start the mock there (imdsmock listens on 127.0.0.1:1338) or give "
                "--mock ADDR:PORT",
                file=sys.stderr,
            )
        return 0
    if args.action == "down":
        out = host.down(backend=args.backend, platform=args.platform, dry_run=args.dry_run)
        sys.stdout.write(out)
        return 0
    if args.action == "status":
        shown = host.status(backend=args.backend)
        token = os.environ.get("IMDSMOCK_CONTROL_TOKEN")
        answers = [probe.report(args.control_url, token)]
        if "fd00:ec2::254" in shown:
            answers.append(probe.report(args.control_url, token, host="fd00:ec2::254"))
        sys.stdout.write(shown + "".join(line + "\n" for line in answers))
        return 0
    if args.action == "script":
        return _script(path_only=args.path)
    options_c = _container_options(args)
    if args.action == "container":
        command = list(args.command)
        if command[:1] == ["--"]:
            command = command[1:]
        if not command:
            raise NetsetupError("no command given; expected: container --mock HOST -- CMD ...")
        container.install(options_c, dry_run=args.dry_run)
        if args.dry_run:
            return 0
        container.exec_command(command)
        return 0  # pragma: no cover - exec does not return
    installed = container.install(options_c, dry_run=args.dry_run, what="sidecar")
    if not args.dry_run:
        container.idle_until_stopped(installed)
    return 0


def _container_options(args: argparse.Namespace) -> container.ContainerOptions:
    mock_host, mock_port = container.mock_target(args.mock, os.environ)
    try:
        timeout = float(args.timeout)
    except ValueError:
        timeout = -1.0
    if not 0 <= timeout <= 86400:
        raise NetsetupError(f"--timeout is {args.timeout!r}; expected seconds, 0..86400")
    return container.ContainerOptions(
        mock_host=mock_host,
        mock_port=mock_port,
        credentials_port=_port_or_none("--credentials-port", args.credentials_port),
        timeout=timeout,
        backend=args.backend,
    )


def _where(host_: str, port: int) -> str:
    return f"[{host_}]:{port}" if ":" in host_ else f"{host_}:{port}"


def _port_or_none(what: str, text: str | None) -> int | None:
    return None if text in (None, "") else container.parse_port(what, str(text))


def _script(*, path_only: bool) -> int:
    resource = resources.files("imdsmock.netsetup").joinpath(SCRIPT_NAME)
    if path_only:
        with resources.as_file(resource) as real:
            print(real)
    else:
        sys.stdout.write(resource.read_text(encoding="utf-8"))
    return 0
