"""Container modes: wait for the mock's name, DNAT to it in this namespace, then run.

``container`` execs the application command afterwards (an entrypoint wrapper); ``sidecar``
stays idle in the application's namespace (``network_mode: service:app``) and removes its
rules when stopped. Both need CAP_NET_ADMIN in that namespace, not on the host.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from imdsmock.netsetup import detect, goals, layout, linux, txn
from imdsmock.netsetup.converge import converge
from imdsmock.netsetup.errors import CommandFailed, NetsetupError
from imdsmock.netsetup.linux import ECS_CREDENTIALS, IMDS_V4, Target
from imdsmock.netsetup.plan import Runner, render, run

DEFAULT_PORT = 1338
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerOptions:
    """Where the mock is (a name or an address) and what to route to it."""

    mock_host: str
    mock_port: int = DEFAULT_PORT
    credentials_port: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    backend: detect.BackendChoice = "auto"


# Where ``container`` / ``sidecar`` look for the mock when --mock is not given, in order.
# IMDSMOCK_HOST is also the server's bind host (the image sets 0.0.0.0), so it is only the
# fallback of earlier releases.
MOCK_VARIABLES = ("IMDSMOCK_ROUTE_TO", "IMDSMOCK_HOST")


def parse_mock(
    value: str, default_port: int = DEFAULT_PORT, what: str = "--mock"
) -> tuple[str, int]:
    """Split ``HOST``, ``HOST:PORT`` or ``[V6]:PORT`` into host and port (1..65535).

    ``what`` names the option or variable the value came from, for the error line. An
    unspecified address (0.0.0.0, ::) says where to listen, not where a mock is: refused.
    """
    host, port_text = value, ""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    if not host:
        raise NetsetupError(f"{what} is {value!r}; expected HOST or HOST:PORT, e.g. imds:1338")
    if _unspecified(host):
        raise NetsetupError(
            f"{what} is {value!r}, the listen-on-every-address value, not an address to route "
            "to; name the mock instead, e.g. --mock imds:1338 or IMDSMOCK_ROUTE_TO=imds:1338"
        )
    return host, parse_port(f"{what} port", port_text) if port_text else default_port


def mock_target(flag: str | None, env: Mapping[str, str]) -> tuple[str, int]:
    """Host and port of the mock: ``--mock``, else IMDSMOCK_ROUTE_TO, else IMDSMOCK_HOST.

    The port is the value's own, else IMDSMOCK_PORT, else 1338.
    """
    what, value = "--mock", flag
    if not value:
        what, value = next(((n, env[n]) for n in MOCK_VARIABLES if env.get(n)), (what, None))
    if not value:
        raise NetsetupError(
            "--mock is missing; give --mock HOST[:PORT] or set IMDSMOCK_ROUTE_TO=HOST[:PORT]"
        )
    env_port = env.get("IMDSMOCK_PORT")
    default_port = parse_port("IMDSMOCK_PORT", env_port) if env_port else DEFAULT_PORT
    return parse_mock(value, default_port, what)


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False  # a name


def parse_port(what: str, text: str) -> int:
    """A TCP port number, or a :class:`NetsetupError` naming ``what`` and the value."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise NetsetupError(f"{what} is {text!r}; expected a port number 1..65535")
    return int(text)


def wait_for_address(
    host: str,
    timeout: float,
    resolve: Callable[[str], str | None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """The IPv4 address of ``host``, polling until it resolves or ``timeout`` seconds pass.

    In compose the mock's name appears in the embedded DNS only once its container has
    started, so an application container started at the same moment must wait for it.
    """
    lookup = resolve or _resolve_v4
    deadline = clock() + timeout
    while True:
        address = lookup(host)
        if address is not None:
            return address
        if clock() >= deadline:
            raise NetsetupError(
                f"timed out after {timeout:g} s waiting for the mock's name {host!r} to "
                "resolve; is the mock service running on this network? "
                "(--timeout / IMDSMOCK_TIMEOUT to wait longer)"
            )
        sleep(0.2)


def _resolve_v4(host: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None
    return str(infos[0][4][0]) if infos else None


def targets(address: str, options: ContainerOptions) -> tuple[Target, ...]:
    """DNATs to the mock's address: IMDS, and the ECS credential endpoint when asked."""
    found = [Target(address=IMDS_V4, to_host=address, to_port=options.mock_port)]
    if options.credentials_port is not None:
        found.append(
            Target(address=ECS_CREDENTIALS, to_host=address, to_port=options.credentials_port)
        )
    return tuple(found)


@dataclass(frozen=True, slots=True, kw_only=True)
class Installed:
    """What :func:`install` changed: the backend it used and the namespace before it."""

    scope: layout.Scope
    before: layout.Layout


def plan(
    options: ContainerOptions, address: str, runner: Runner = run, what: str = "container"
) -> tuple[tuple[Target, ...], txn.Change]:
    """Look at this namespace and build the change to the mock at ``address`` (nothing
    applied): the routed targets and the change."""
    fw = detect.detect_firewall(options.backend, runner=runner)
    scope = (fw,)
    before = layout.observe(scope, runner, routes=True)
    wanted = targets(address, options)
    toward = detect.route_to(address, runner)
    routes = frozenset(
        route
        for t in wanted
        if (route := linux.host_route(t.address, detect.route_to(t.address, runner), toward))
    )
    goal = goals.firewall_goal(fw, wanted, before, routes)
    change = txn.Change(
        what=what,
        backend=fw.name,
        scope=scope,
        before=before,
        steps=converge(scope, before, goal),
        journal=False,
        routes=True,
    )
    return wanted, change


def install(
    options: ContainerOptions,
    *,
    dry_run: bool = False,
    runner: Runner = run,
    what: str = "container",
) -> Installed:
    """Build the change and apply it (or print it, with ``dry_run``).

    Waiting for the mock's name ends at a signal as usual; once the change starts, a
    failed step, SIGINT, SIGTERM or SIGHUP rolls the namespace back to how it was.
    """
    address = wait_for_address(options.mock_host, options.timeout)
    with txn.StopSignals(what) as stop:
        wanted, change = plan(options, address, runner, what)
        if dry_run:
            text = render(tuple(step.command for step in change.steps))
            sys.stdout.write(text or "# nothing to do: already in place\n")
            return Installed(scope=change.scope, before=change.before)
        detect.require_net_admin(what)
        txn.commit(change, stop, runner)
    routes = ", ".join(f"{t.address}:{t.port} -> {t.to}" for t in wanted)
    print(f"imdsmock route: {routes}", file=sys.stderr, flush=True)
    return Installed(scope=change.scope, before=change.before)


def exec_command(command: Sequence[str]) -> None:
    """Replace this process with ``command`` (the application), searching ``PATH``."""
    if not command:
        raise NetsetupError("no command given after --; expected: -- CMD [ARG...]")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(command[0], list(command))
    except OSError as exc:
        raise NetsetupError(f"cannot run {command[0]!r}: {exc.strerror}") from exc


def idle_until_stopped(installed: Installed, runner: Runner = run) -> None:
    """Sidecar: say ``ready``, sleep until SIGTERM or SIGINT, then restore the namespace.

    The signals are blocked and collected with ``sigwait`` so this also works as PID 1,
    where the kernel ignores signals that have no handler.
    """
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    print("imdsmock route sidecar: ready", flush=True)
    signal.sigwait(stop)
    trouble = txn.restore(installed.scope, installed.before, runner, routes=True)
    if trouble:
        raise CommandFailed(f"sidecar: removing its rules and routes did not finish ({trouble})")
