"""Assembly: configuration -> state -> listening servers, and the process lifecycle.

The CLI, the Python API and the pytest plugin all run an :class:`App`; none of them
builds state or servers on its own. A reload reaches a running app only through
:meth:`App.reconfigure`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NamedTuple

from imdsmock.config.schema import RESOLVER_WAYS, Config
from imdsmock.core.clock import Clock, ManualClock, SystemClock
from imdsmock.core.faults import FaultBook
from imdsmock.core.gate import ClientGate
from imdsmock.core.requestlog import RequestLog
from imdsmock.core.snapshot import build_snapshot
from imdsmock.core.state import State
from imdsmock.errors import ImdsMockError
from imdsmock.instance.notices import GATED_PATHS
from imdsmock.serve.hosts import HostRule
from imdsmock.serve.limits import Limits, fit_open_files
from imdsmock.serve.listen import bind_sockets, imds_bindings, member_bindings, url
from imdsmock.serve.server import Server
from imdsmock.signing.signer import Signer
from imdsmock.signing.store import load_signer

# Start-up time counts (a mock is started per test run, per container), and most runs use
# few of the optional parts. So App imports a part only when the configuration turns it
# on: scenarios, real AWS credentials, container credential endpoints, and the control
# API's routes (on its first request, see imdsmock.serve.control). A part the control API
# can switch on later (scenarios) is imported by the Controller when that happens.
if TYPE_CHECKING:
    from imdsmock.control.operations import Controller
    from imdsmock.core.fleet import Fleet
    from imdsmock.serve.awscreds import CredentialRefresher
    from imdsmock.serve.container import ContainerEndpoints
    from imdsmock.serve.http import HTTPProtocol
    from imdsmock.serve.resolve import Running

__all__ = ["App", "Deferred", "build_resolvers", "check"]

log = logging.getLogger("imdsmock")


class Deferred(NamedTuple):
    """What :meth:`App.reconfigure` was given but applies only after a restart.

    A named tuple: the class is defined at every start, where a dataclass costs more.
    """

    listeners: bool
    """The IMDS listen addresses differ from those bound."""
    settings: tuple[str, ...]
    """Other start-only keys that differ from the ones in force, as the file spells them."""


# Read once at start (the server's limits, the control listener, the container endpoints,
# the credential refresher, the signing key): a reconfiguration cannot change them.
_START_ONLY = {
    "server": (
        "keep_alive", "control", "control_host", "control_port", "control_token",
        "control_token_file", "clock", "max_connections", "idle_timeout", "max_header_bytes",
        "ecs_listen", "eks_listen",
    ),
    "credentials": (
        "source", "profile", "role_arn", "role_session_name", "duration_seconds",
        "refresh_ahead", "container_token", "container_token_file",
    ),
    "signing": ("key_file", "cert_file"),
    "fleet": (
        "docker_socket", "kubernetes_api", "kubernetes_node", "kubernetes_namespace",
        "kubernetes_token_file", "kubernetes_ca_file",
    ),
}  # fmt: skip


class App:
    """One mock instance: its state, clock and servers."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        signer: Signer | None = None,
    ) -> None:
        # The settings read once at start stay these for the app's life (see reconfigure).
        self._start_config = config
        # The configuration last given (at start or to reconfigure): what fleet members
        # added at run time take their unset keys from.
        self._configured = config
        if clock is None:
            clock = ManualClock() if config.server.clock == "manual" else SystemClock()
        self.clock: Clock = clock
        self.started = self.clock.now()
        self.signer = signer or load_signer(config.signing)
        snapshot = build_snapshot(
            config, signer=self.signer, started=self.started, gated=GATED_PATHS
        )
        if config.scenarios:
            from imdsmock.core.scenarios import configured

            snapshot = configured(snapshot)
        self.state = State(snapshot)
        # Who clients are, asked of other systems (Docker, Kubernetes): one resolver per
        # way fleet.recognize names, built here (the recogniser in core only reads them)
        # and run beside the servers. Read at start: a reload cannot add one.
        self.resolvers: dict[str, Running] = {}
        if _asks_others(config):
            self.resolvers = build_resolvers(config, lambda: self._configured.template.source)
        # The instances told apart by client: only when the configuration has members (or
        # refuses unknown clients), or the control API adds one. None costs nothing.
        self.fleet: Fleet | None = None
        if _needs_fleet(config):
            self.fleet = self._new_fleet(config)
        # Per-client gating of the scenario paths (--mock-ip-count); reset by the control API.
        self.gate = ClientGate(config.server.mock_ip_count)
        # The request log and the fault rules: the server feeds and applies them, the
        # control API (self.controller: the one implementation of every operation) reads
        # and changes them.
        self.requests = RequestLog()
        self.faults = FaultBook()
        # The Host names answered (server.allowed-hosts): by the control API always, by the
        # IMDS and container listeners while they serve real credentials.
        self.hosts = HostRule(config.server.allowed_hosts)
        real = config.credentials.source == "profile"
        # The connection budget and deadlines every listener shares (IMDS, control, ECS,
        # EKS); bind() fits the budget under the open-file limit.
        self.limits = Limits(
            max_connections=config.server.max_connections,
            idle_timeout=float(config.server.idle_timeout),
            max_header_bytes=config.server.max_header_bytes,
        )
        self.server = Server(
            self.state,
            self.clock,
            keep_alive=config.server.keep_alive,
            # With --log-requests the sink also prints an access-log line.
            sink=self.requests.sink(access_log=config.server.log_requests),
            gate=self.gate,
            faults=self.faults,
            limits=self.limits,
            hosts=self.hosts if real else None,
            fleet=self.fleet,
        )
        # Coroutines run beside the servers while serving (e.g. the config-file watcher).
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = [
            resolver.run for resolver in self.resolvers.values()
        ]
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._control: tuple[socket.socket, str | None] | None = None
        self._control_server: asyncio.AbstractServer | None = None
        # Container credential endpoints (ECS / EKS style) on listeners of their own, and
        # for real credentials the refresher that fetches them off the request path; both
        # exist (and their modules are imported) only when configured. A container token
        # file is read at start even without listeners: a bad one is an error either way.
        self.containers: ContainerEndpoints | None = None
        server, creds = config.server, config.credentials
        if server.ecs_listen or server.eks_listen or creds.container_token_file is not None:
            from imdsmock.serve.container import ContainerEndpoints

            self.containers = ContainerEndpoints(
                self.state,
                self.clock,
                config,
                hosts=self.hosts if real else None,
                limits=self.limits,
            )
        self.refresher: CredentialRefresher | None = None
        if config.credentials.source == "profile":
            from imdsmock.serve.awscreds import CredentialRefresher

            self.refresher = CredentialRefresher(self.state, self.clock, config.credentials)
            self.background.append(self.refresher.run)

    @property
    def config(self) -> Config:
        """The configuration in force: the one started with or last given to :meth:`reconfigure`,
        with the control API's option changes."""
        return self.state.snapshot.config

    @functools.cached_property
    def controller(self) -> Controller:
        """The one implementation of every control operation (control API, Python API).

        Built on first use, from the parts it operates on: a mock nobody controls never
        imports it.
        """
        from imdsmock.control.operations import Controller

        return Controller(
            self.state,
            self.clock,
            started=self.started,
            requests=self.requests,
            faults=self.faults,
            signer=self.signer,
            addresses=self.addresses,
            fleet=self.ensure_fleet,
            made=lambda: self.fleet,
        )

    def _new_fleet(self, config: Config) -> Fleet:
        from imdsmock.core.fleet import Fleet

        fleet = Fleet(
            self.state,
            config,
            signer=self.signer,
            started=self.started,
            gated=GATED_PATHS,
            resolvers=self.resolvers,
        )
        for resolver in self.resolvers.values():
            resolver.found = fleet.found
        return fleet

    def ensure_fleet(self) -> Fleet:
        """The fleet, made (without members) on first use: the control API adds members to
        a mock started with none. The server tells clients apart only once it has some."""
        fleet = self.fleet
        if fleet is None:
            fleet = self.fleet = self._new_fleet(self._configured)
            self.server.fleet = fleet
        return fleet

    def reconfigure(self, config: Config) -> Deferred:
        """Serve ``config`` from now on, all at once (a config-file reload).

        One rebuilt snapshot is swapped in: values, moved paths, listings and scenarios
        change together (scenarios started at run time are kept). The client gate and the
        access log follow the new settings. What is read only at start (listeners, limits,
        the control listener, credential source, signing keys) keeps its running value;
        the returned :class:`Deferred` names what differs from it. A configuration that
        cannot be built raises :class:`~imdsmock.errors.ImdsMockError` and changes nothing.
        """
        # The scenario machinery is imported on the first reload, not at start-up.
        from imdsmock.core.scenarios import reconfigured

        before = self.config
        self.state.swap(lambda snap: reconfigured(snap, config))
        self._configured = config
        if self.fleet is not None:
            self.fleet.reconfigure(config)
        elif _needs_fleet(config):
            self.ensure_fleet()
        server = config.server
        if server.mock_ip_count != self.gate.limit:
            self.gate.reset(server.mock_ip_count)
        if server.allowed_hosts != self.hosts.allowed:
            self.hosts.allow(server.allowed_hosts)
        if server.log_requests != before.server.log_requests:
            # New connections take the new sink; open ones finish with the old one.
            self.server.sink = self.requests.sink(access_log=server.log_requests)
        running = self._start_config
        return Deferred(
            listeners=server.listeners() != running.server.listeners()
            or member_bindings(config) != member_bindings(running),
            settings=tuple(
                f"{section}.{name.replace('_', '-')}"
                for section, names in _START_ONLY.items()
                for name in names
                if getattr(getattr(running, section), name)
                != getattr(getattr(config, section), name)
            ),
        )

    def bind(self) -> list[socket.socket]:
        """Bind the IMDS listeners and the control listener (raises ServeError on failure).

        Both are bound up front, so an address in use fails before anything serves. The
        control socket is kept on the app; ``server.control: false`` skips it.
        """
        config = self._start_config
        budget, lowered = fit_open_files(config.server.max_connections)
        if lowered is not None and budget != self.limits.max_connections:
            log.warning("%s", lowered)
        self.limits.max_connections = budget
        socks = bind_sockets(imds_bindings(config.server) + member_bindings(config))
        try:
            if self.containers is not None:
                self.containers.bind()
        except BaseException:
            for s in socks:
                s.close()
            raise
        if config.server.control and self._control is None:
            from imdsmock.serve.control import bind_control

            try:
                self._control = bind_control(config.server)
            except BaseException:
                for s in socks:
                    s.close()
                raise
        return socks

    def control_url(self) -> str | None:
        """URL of the control API (None when it is not bound)."""
        if self._control is None:
            return None
        return url(self._control[0].getsockname())

    async def serve(
        self,
        socks: list[socket.socket],
        *,
        ready: Callable[[App], None] | None = None,
        install_signals: bool = True,
    ) -> None:
        """Serve until :meth:`shutdown` (or SIGTERM/SIGINT when ``install_signals``)."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.server.start(socks)
        if self.containers is not None:
            await self.containers.start()
        if self._control is not None:
            from imdsmock.serve.control import ControlProtocol

            sock, token = self._control
            connections: set[HTTPProtocol] = set()  # aborted at shutdown (a held long poll)
            self._control_server = await self._loop.create_server(
                lambda: ControlProtocol(
                    self.controller, token, self.hosts, self.limits, connections
                ),
                sock=sock,
            )
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    self._loop.add_signal_handler(sig, self._stop.set)
        tasks = [asyncio.ensure_future(_supervised(job)) for job in self.background]
        # Let every job take its first step (the config watcher installs its SIGHUP
        # handler there) before "serving" is announced: a signal sent on that line counts.
        await asyncio.sleep(0)
        if ready is not None:
            ready(self)
        try:
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.faults.release_all()  # connections a hang/latency fault still holds
            if self._control_server is not None:
                self._control_server.close()
                self._control_server = None
                self._control = None
                for connection in list(connections):
                    connection.abort()
            if self.containers is not None:
                await self.containers.stop()
            for resolver in self.resolvers.values():
                await resolver.close()
            await self.server.stop()

    def shutdown(self) -> None:
        """Ask a serving app to stop (thread-safe)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)

    def addresses(self) -> list[str]:
        """URLs of the IMDS listeners."""
        return [url(address) for address in self.server.addresses()]


def build_resolvers(
    config: Config, template_source: Callable[[], tuple[str, ...]] | None = None
) -> dict[str, Running]:
    """One resolver per resolver way ``fleet.recognize`` names that this version serves
    (each module imported only when its way is named), and the template's by address
    when ``template.ways`` names ``source`` (``template_source``: its networks now)."""
    resolvers: dict[str, Running] = {}
    if "source" in config.template.ways:
        from imdsmock.core.recognize import TEMPLATE
        from imdsmock.serve.addresstemplate import AddressTemplate

        given = config.template.source
        resolvers[TEMPLATE] = AddressTemplate(template_source or (lambda: given))
    for way in config.fleet.recognize:
        if way == "docker":
            from imdsmock.serve.docker import DockerResolver

            resolvers[way] = DockerResolver(config.fleet.docker_socket)
        elif way == "kubernetes":
            from imdsmock.serve.kubernetes import KubernetesResolver

            resolvers[way] = KubernetesResolver(config.fleet)
    return resolvers


def _asks_others(config: Config) -> bool:
    """Whether the configuration needs resolvers: a resolver way, or the template by
    address."""
    return any(way in RESOLVER_WAYS for way in config.fleet.recognize) or (
        "source" in config.template.ways
    )


def _needs_fleet(config: Config) -> bool:
    return bool(config.instances) or config.fleet.unknown == "reject" or _asks_others(config)


def check(config: Config) -> None:
    """Raise what serving ``config`` would raise short of binding its addresses.

    :func:`~imdsmock.config.load.load` validates the settings one by one; serving also
    reads the files they name (signing keys, tokens) and refuses a control API open beyond
    this machine without a token. ``imdsmock config`` checks all of it, so a configuration
    it prints is one that serves (ports free).
    """
    app = App(config)
    if app.config.server.control:
        from imdsmock.serve.control import checked_token

        checked_token(config.server)


# A background job that fails is restarted after this many seconds, doubling up to the cap.
RESTART_FIRST, RESTART_CAP = 1.0, 60.0


async def _supervised(job: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``job`` until cancelled; if it fails, log one line and start it again (backoff).

    A background job (credential refresher, config watcher) that ended on an error nobody
    foresaw would otherwise stop silently: credentials would stop rotating, reloads would
    stop. The line names the job and the error; the delay doubles from
    :data:`RESTART_FIRST` to :data:`RESTART_CAP` seconds while it keeps failing, and
    starts again from :data:`RESTART_FIRST` after a run that lasted longer than the cap.
    """
    name = getattr(job, "__qualname__", repr(job))
    loop = asyncio.get_running_loop()
    delay = RESTART_FIRST
    while True:
        started = loop.time()
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure: one line, then restart
            if loop.time() - started > RESTART_CAP:
                delay = RESTART_FIRST  # it ran well for a long time: not a failing streak
            log.error(
                "background job %s failed (%s: %s); restarting in %g s",
                name,
                type(exc).__name__,
                exc,
                delay,
            )
        else:
            return  # a job that finishes has done its work
        await asyncio.sleep(delay)
        delay = min(delay * 2, RESTART_CAP)


def _freeze_startup(app: App) -> None:
    """Collect start-up garbage, and freeze the rest.

    What start-up built (modules, the event loop, the model, the compiled tables) lives as
    long as the process; ``gc.freeze()`` moves it out of the cycle collector's reach, so
    no collection walks it again (fewer pages touched at idle, copy-on-write friendly).
    Only for a process that is the mock's own: it changes the collector process-wide.
    """
    # The young generations hold the start-up garbage (measured: a full collection after
    # this one finds nothing) and take ~0.3 ms; a full one walks every object (~4 ms).
    gc.collect(1)
    gc.freeze()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where available (several times faster), else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(app: App, socks: list[socket.socket], ready: Callable[[App], None] | None = None) -> None:
    """Serve ``app`` on the current thread until stopped; the process is the mock's own.

    The CLI's way to serve (the Python API serves in a thread of someone else's process
    and leaves its garbage collector alone).
    """
    loop = new_event_loop()
    _freeze_startup(app)
    try:
        loop.run_until_complete(app.serve(socks, ready=ready))
    finally:
        loop.close()


def serve_in_thread(
    app: App, socks: list[socket.socket], *, timeout: float = 10.0
) -> threading.Thread:
    """Serve ``app`` from a daemon thread with its own event loop; return once it serves.

    The Python API's way to serve, in a thread of someone else's process: no signal
    handlers, and the garbage collector left alone. A failure to start is raised here, in
    the calling thread. Stop with :meth:`App.shutdown`, then join the thread.
    """
    ready = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        loop = new_event_loop()
        try:
            loop.run_until_complete(
                app.serve(socks, ready=lambda _app: ready.set(), install_signals=False)
            )
        except BaseException as exc:  # handed to the starting thread below
            failure.append(exc)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=serve, name="imdsmock", daemon=True)
    thread.start()
    if not ready.wait(timeout):  # pragma: no cover - a wedged event loop
        app.shutdown()
        raise ImdsMockError(f"the mock did not start within {timeout:g} seconds")
    if failure:
        thread.join()
        raise failure[0]
    return thread
