"""Assembly: configuration -> state -> listening servers, and the process lifecycle.

The CLI, the Python API and the pytest plugin all run an :class:`App`; none of them
builds state or servers on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from .awscreds import CredentialRefresher
from .clock import Clock, ManualClock, SystemClock
from .config import Config
from .containercreds import ContainerEndpoints
from .controller import Controller
from .controlserver import ControlProtocol, bind_control
from .faults import FaultBook
from .gate import ClientGate
from .requestlog import RequestLog
from .scenarios import config_scenarios, with_scenarios
from .server import Limits, Server, bind_sockets
from .signing import Signer, load_signer
from .state import State, build_snapshot

__all__ = ["App"]

log = logging.getLogger("imdsmock")


class App:
    """One mock instance: its state, clock and servers."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        signer: Signer | None = None,
    ) -> None:
        self.config = config
        if clock is None:
            clock = ManualClock() if config.server.clock == "manual" else SystemClock()
        self.clock: Clock = clock
        self.started = self.clock.now()
        self.signer = signer or load_signer(config.signing)
        snapshot = build_snapshot(config, signer=self.signer, started=self.started)
        scenarios = config_scenarios(config.scenarios, self.started)
        self.state = State(with_scenarios(snapshot, scenarios))
        # Per-client gating of the scenario paths (--mock-ip-count); reset by the control API.
        self.gate = ClientGate(config.server.mock_ip_count)
        self.server = Server(
            self.state,
            self.clock,
            keep_alive=config.server.keep_alive,
            gate=self.gate,
            limits=Limits(
                max_connections=config.server.max_connections,
                idle_timeout=float(config.server.idle_timeout),
                max_header_bytes=config.server.max_header_bytes,
            ),
        )
        # Coroutines run beside the servers while serving (e.g. the config-file watcher).
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The request log and the fault rules: the server feeds and applies them, the
        # control API (self.controller: the one implementation of every operation) reads
        # and changes them.
        self.requests = RequestLog()
        self.faults = FaultBook()
        # Chosen once: with --log-requests the sink also prints an access-log line.
        self.server.sink = self.requests.sink(access_log=config.server.log_requests)
        self.server.faults = self.faults
        self.controller = Controller(self)
        self._control: tuple[socket.socket, str | None] | None = None
        self._control_server: asyncio.AbstractServer | None = None
        # Container credential endpoints (ECS / EKS style) on listeners of their own, and
        # for real credentials the refresher that fetches them off the request path.
        self.containers = ContainerEndpoints(self.state, self.clock, config)
        self.refresher: CredentialRefresher | None = None
        if config.credentials.source == "profile":
            self.refresher = CredentialRefresher(self.state, self.clock, config.credentials)
            self.background.append(self.refresher.run)

    def bind(self) -> list[socket.socket]:
        """Bind the IMDS listeners and the control listener (raises ServeError on failure).

        Both are bound up front, so an address in use fails before anything serves. The
        control socket is kept on the app; ``server.control: false`` skips it.
        """
        socks = bind_sockets(self.config.server.listeners())
        try:
            self.containers.bind()
        except BaseException:
            for s in socks:
                s.close()
            raise
        if self.config.server.control and self._control is None:
            try:
                self._control = bind_control(self.config.server)
            except BaseException:
                for s in socks:
                    s.close()
                raise
        return socks

    def control_url(self) -> str | None:
        """URL of the control API (None when it is not bound)."""
        if self._control is None:
            return None
        host, port = self._control[0].getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

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
        await self.containers.start()
        if self._control is not None:
            sock, token = self._control
            self._control_server = await self._loop.create_server(
                lambda: ControlProtocol(self.controller, token), sock=sock
            )
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    self._loop.add_signal_handler(sig, self._stop.set)
        tasks = [asyncio.ensure_future(job()) for job in self.background]
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
            await self.containers.stop()
            await self.server.stop()

    def shutdown(self) -> None:
        """Ask a serving app to stop (thread-safe)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)

    def addresses(self) -> list[str]:
        """URLs of the IMDS listeners."""
        out = []
        for addr in self.server.addresses():
            host, port = addr[0], addr[1]
            out.append(f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}")
        return out


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where available (several times faster), else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(app: App, socks: list[socket.socket], ready: Callable[[App], None] | None = None) -> None:
    """Serve ``app`` on the current thread until stopped."""
    loop = new_event_loop()
    try:
        loop.run_until_complete(app.serve(socks, ready=ready))
    finally:
        loop.close()
