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

from imdsmock.netsetup import container, detect, host, node, nodeagent, nodeplan, probe
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

    _add_node(sub)

    script = sub.add_parser("script", help=f"print the POSIX-shell entrypoint {SCRIPT_NAME}")
    script.add_argument("--path", action="store_true", help="print its file path instead")
    return parser


NODE_DESCRIPTION = f"""\
Per-node routing, what the node-mode DaemonSet runs (and, outside Kubernetes, what a
Docker host runs so that all its containers reach the mock): TCP to 169.254.169.254:80
(and 169.254.170.2:80 with --ecs) arriving on the pods' interfaces is DNATed to the mock
on this node. Only PREROUTING, only those interfaces: the node's own processes (host
network, the agent itself) keep reaching what they reached before. The rules sit in the
nat chain {nodeplan.CHAIN} (jumped to from PREROUTING) or the nft table inet
{nodeplan.NFT_TABLE}; adding them twice changes nothing.

With --dummy-link there are no rules: 169.254.169.254/32 goes on the dummy link
{nodeplan.LINK}, as the EKS Pod Identity agent does with its address, and the mock listens
on 169.254.169.254:80 itself. Then the node's own processes reach the mock too.

Without --once the command stays in the foreground holding the rules: SIGTERM or SIGINT
removes them (retrying) and exits 0; SIGHUP puts back what someone else removed. --down
removes them whether or not that process still runs (a preStop hook). The mock answers the
token one routed hop further than on the node itself: run it with --hop-limit 2.

Interface patterns: iptables names, '+' at the end for any suffix, '!' in front to
exclude. Default: {" ".join(nodeplan.DEFAULT_INTERFACES)}."""


def _add_node(sub: argparse._SubParsersAction[_Parser]) -> None:
    node_p = sub.add_parser(
        "node",
        help="per-node routing: DNAT from the pods' (containers') interfaces to the mock",
        description=NODE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    node_p.add_argument(
        "--mock",
        metavar="ADDR:PORT",
        help="where the mock listens on this node: an IPv4 address pods can reach, such as "
        "the node's (env IMDSMOCK_ROUTE_TO; port default 1338)",
    )
    node_p.add_argument(
        "--interface",
        action="append",
        default=[],
        metavar="PATTERN",
        help="the pods' interfaces, repeatable: cali+, cni0, !eth0 (default: common CNIs' "
        "and Docker's bridges)",
    )
    node_p.add_argument(
        "--ecs",
        nargs="?",
        const=-1,
        metavar="PORT",
        help=f"also route 169.254.170.2:80, to this port of the mock (default "
        f"{node.ECS_PORT}: imdsmock --ecs-listen NODE_IP:{node.ECS_PORT}); with --dummy-link "
        "the address goes on the link (imdsmock --ecs-listen 169.254.170.2:80)",
    )
    node_p.add_argument(
        "--dummy-link",
        action="store_true",
        help=f"put the addresses on the dummy link {nodeplan.LINK} instead of DNAT rules; "
        "the mock listens on 169.254.169.254:80",
    )
    _add_backend(node_p)
    how = node_p.add_mutually_exclusive_group()
    how.add_argument("--once", action="store_true", help="put the routing in place and exit")
    how.add_argument(
        "--down", action="store_true", help="remove what route node put in place, and exit"
    )
    how.add_argument("--status", action="store_true", help="show what of ours is in place")
    node_p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")


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
    if args.action == "node":
        return _node(args)
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


def _node(args: argparse.Namespace) -> int:
    if args.down or args.status:
        given = [
            o
            for o, v in (
                ("--mock", args.mock),
                ("--interface", args.interface),
                ("--ecs", args.ecs),
                ("--dummy-link", args.dummy_link),
            )
            if v
        ]
        if given:
            raise NetsetupError(
                f"{given[0]} with --{'down' if args.down else 'status'}: that removes or shows "
                "whatever route node put in place; it takes only --backend (and --dry-run)"
            )
        if args.down:
            sys.stdout.write(nodeagent.down(backend=args.backend, dry_run=args.dry_run))
        else:
            sys.stdout.write(nodeagent.status(backend=args.backend))
        return 0
    options = node.options(
        mock=args.mock or os.environ.get("IMDSMOCK_ROUTE_TO") or None,
        interfaces=tuple(args.interface),
        ecs=args.ecs,
        dummy_link=args.dummy_link,
        backend=args.backend,
    )
    if args.dry_run:
        sys.stdout.write(node.dry_run(options))
        return 0
    installed = node.install(options, hold=not args.once)
    sys.stdout.write(node.summary(options, installed))
    sys.stdout.flush()
    where = (
        ("169.254.169.254", 80) if options.dummy_link else (options.mock_host, options.mock_port)
    )
    if not probe.listening(*where):
        print(
            f"imdsmock route: warning: nothing listens on {_where(*where)} now; start the mock "
            "there"
            + ("" if options.dummy_link else " (imdsmock --host 0.0.0.0) or give --mock ADDR:PORT"),
            file=sys.stderr,
            flush=True,
        )
    if not args.once:
        sys.stdout.write(nodeagent.hold(installed))
    return 0


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
