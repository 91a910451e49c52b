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

from .clock import Clock, SystemClock
from .config import Config
from .gate import ClientGate
from .scenarios import config_scenarios, with_scenarios
from .server import Server, bind_sockets
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
        self.clock: Clock = clock or SystemClock()
        self.started = self.clock.now()
        self.signer = signer or load_signer(config.signing)
        snapshot = build_snapshot(config, signer=self.signer, started=self.started)
        scenarios = config_scenarios(config.scenarios, self.started)
        self.state = State(with_scenarios(snapshot, scenarios))
        # Per-client gating of the scenario paths (--mock-ip-count); reset by the control API.
        self.gate = ClientGate(config.server.mock_ip_count)
        self.server = Server(
            self.state, self.clock, keep_alive=config.server.keep_alive, gate=self.gate
        )
        # Coroutines run beside the servers while serving (e.g. the config-file watcher).
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self) -> list[socket.socket]:
        """Bind the IMDS listeners (raises ServeError with one line on failure)."""
        return bind_sockets(self.config.server.listeners())

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
