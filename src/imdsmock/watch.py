"""Config-file watching: reload everything atomically when the file changes or on SIGHUP.

The watcher polls the file's ``stat`` (inode, size, modification time) on the server's
event loop, with no extra dependency; on a change that has settled for one poll interval
(or on ``SIGHUP``, with or without polling) it loads the configuration through the
caller's loader and hands it to :meth:`~imdsmock.app.App.reconfigure`, both in a worker
thread: parsing a large file and building the new instance take a while, and the event
loop goes on answering IMDS meanwhile. Values, moved paths, listings and scenarios change
together, and requests see either the old instance or the new one. A broken file, whatever
is wrong with it, logs one line and the previous configuration keeps serving; the next
good version of the file is loaded as usual (AWS's Go mock reloads only some values and
leaves listings and scenarios stale).

A server does not die of SIGHUP: without a file to reload, :func:`ignore_hangup` logs it
and carries on. :func:`hangup_job` is how both commands (``imdsmock`` and
``ec2-metadata-mock``) set this up; until the event loop runs, their entry points ignore
SIGHUP (:mod:`imdsmock.cli`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
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

__all__ = ["Watcher", "hangup_job", "ignore_hangup", "serve_reloadable"]

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
        """Load and swap now; on a bad file log one line and keep serving the old config.

        Blocking (it parses and builds): :meth:`run` calls it in a worker thread.
        """
        try:
            with _collector_paused():
                deferred = self.app.reconfigure(self.load())
        except ImdsMockError as exc:
            self.failures += 1
            log.error("config file %s is invalid, keeping the previous config: %s", self.path, exc)
            return False
        except Exception:  # a bug, not the file: logged in full, and the watcher goes on
            self.failures += 1
            log.exception("config reload from %s failed, keeping the previous config", self.path)
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
                    await asyncio.to_thread(self.reload)
                elif seen is None or seen == self._seen:
                    pending = None
                elif seen != pending:
                    pending = seen
                else:
                    self._seen, pending = seen, None
                    await asyncio.to_thread(self.reload)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off in the body, then as it was.

    A parser builds a large file's node tree object by object, and every full collection
    in the meantime walks all of it while holding the interpreter: tens of milliseconds
    each, long enough to delay IMDS answers on the event loop. The tree is freed by
    reference counting once parsed.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
    """Serve a mock process for ``config`` until stopped, as both commands do: SIGHUP
    reloads ``file`` through ``load`` (``poll`` also watches it), or with no file is logged
    (``hint`` says how to give one). The caller ignores SIGHUP until the loop's handler is
    in (:mod:`imdsmock.cli`).
    """
    from imdsmock.app import App, run

    app = App(config)
    socks = app.bind()
    app.background.append(hangup_job(app, file, load, poll=poll, hint=hint))
    run(app, socks, ready)
