"""Config-file watching: reload everything atomically when the file changes or on SIGHUP.

The watcher polls the file's ``stat`` (inode, size, modification time) on the server's
event loop, with no extra dependency and no thread; on a change that has settled for one
poll interval (or on ``SIGHUP``, with or without polling) it loads
the configuration through the caller's loader and hands it to
:meth:`~imdsmock.app.App.reconfigure`: values, moved paths, listings and scenarios change
together, and requests see either the old instance or the new one. A broken file logs one
line and the previous configuration keeps serving (AWS's Go mock reloads only some
values and leaves listings and scenarios stale).

A server does not die of SIGHUP: without a file to reload, :func:`ignore_hangup` logs it
and carries on. :func:`hangup_ignored` and :func:`hangup_job` are how both commands
(``imdsmock`` and ``ec2-metadata-mock``) set this up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imdsmock.config.schema import Config
from imdsmock.errors import ImdsMockError

if TYPE_CHECKING:
    from imdsmock.app import App

__all__ = ["Watcher", "hangup_ignored", "hangup_job", "ignore_hangup", "serve_reloadable"]

log = logging.getLogger("imdsmock.watch")

INTERVAL = 0.25


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class Watcher:
    """Reload ``app`` from ``load()`` whenever ``path`` changes, and on SIGHUP.

    ``interval=None`` does not poll: only SIGHUP (or :meth:`reload`) reloads.
    """

    def __init__(
        self,
        app: App,
        path: Path,
        load: Callable[[], Config],
        *,
        interval: float | None = INTERVAL,
    ) -> None:
        self.app = app
        self.path = path
        self.load = load
        self.interval = interval
        self.reloads = 0
        self.failures = 0
        self._seen = _signature(path)
        self._wake = asyncio.Event()

    def reload(self) -> bool:
        """Load and swap now; on a bad file log one line and keep serving the old config."""
        try:
            deferred = self.app.reconfigure(self.load())
        except ImdsMockError as exc:
            self.failures += 1
            log.error("config reload from %s failed, keeping the previous one: %s", self.path, exc)
            return False
        if deferred.listeners:
            log.warning("listen addresses changed in %s; they apply after a restart", self.path)
        if deferred.settings:
            changed = ", ".join(deferred.settings)
            log.warning("%s changed in %s; they apply after a restart", changed, self.path)
        self.reloads += 1
        log.info("reloaded configuration from %s", self.path)
        return True

    async def run(self) -> None:
        """Poll until cancelled; SIGHUP forces a reload (main thread only)."""
        # A changed file is reloaded once its stat held still for one interval: editors and
        # `>` truncate before they write, and an empty file would load as "all defaults".
        pending: tuple[int, int, int] | None = None
        with _on_hangup(self._wake.set):
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
                forced = self._wake.is_set()
                self._wake.clear()
                seen = _signature(self.path)
                if forced:
                    self._seen, pending = seen, None
                    self.reload()
                elif seen is None or seen == self._seen:
                    pending = None
                elif seen != pending:
                    pending = seen
                else:
                    self._seen, pending = seen, None
                    self.reload()


@contextlib.contextmanager
def _on_hangup(callback: Callable[[], None]) -> Iterator[None]:
    """``callback`` on SIGHUP in the body (main thread only), then SIGHUP as it was before.

    asyncio's remove_signal_handler() sets SIG_DFL, which ends the process on SIGHUP: a
    job restarted by the supervisor would leave the server to die of one in between.
    """
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGHUP)
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, callback)
    try:
        yield
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
            if previous is not None:
                signal.signal(signal.SIGHUP, previous)


async def ignore_hangup(hint: str = "-c FILE or IMDSMOCK_CONFIG") -> None:
    """Until cancelled, log SIGHUP and carry on (main thread only): no file to reload.

    ``hint`` says how to give the command a file.
    """

    def hangup() -> None:
        log.warning("SIGHUP ignored: no config file to reload (give %s)", hint)

    with _on_hangup(hangup):
        await asyncio.Event().wait()


@contextlib.contextmanager
def hangup_ignored() -> Iterator[None]:
    """SIGHUP is ignored in the body (a server's start-up), then set back as it was.

    Until the event loop's handler (:func:`hangup_job`) is in, SIGHUP's default would end
    the process. Off the main thread signals are not ours to set: nothing changes.
    """
    try:
        previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGHUP, previous)


def hangup_job(
    app: App, file: str | None, load: Callable[[], Config], *, poll: bool, hint: str
) -> Callable[[], Coroutine[Any, Any, None]]:
    """The background job that owns SIGHUP: a :class:`Watcher` of ``file`` (polling only
    with ``poll``, else SIGHUP alone reloads), or with no file :func:`ignore_hangup`."""
    if not file:
        return functools.partial(ignore_hangup, hint)
    return Watcher(app, Path(file), load, interval=INTERVAL if poll else None).run


def serve_reloadable(
    config: Config,
    file: str | None,
    load: Callable[[], Config],
    *,
    poll: bool,
    hint: str,
    ready: Callable[[App], None],
) -> None:
    """Serve a mock process for ``config`` until stopped, as both commands do: SIGHUP never
    ends it (ignored until the loop's handler is in); it reloads ``file`` through ``load``
    (``poll`` also watches it), or with no file is logged (``hint`` says how to give one).
    """
    from imdsmock.app import App, run

    with hangup_ignored():
        app = App(config)
        socks = app.bind()
        app.background.append(hangup_job(app, file, load, poll=poll, hint=hint))
        run(app, socks, ready)
