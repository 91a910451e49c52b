"""Resolvers: who a client is, asked of another system (Docker, Kubernetes), never waited for.

A fleet names resolver ways in ``fleet.recognize`` (``docker``, ``kubernetes``); the app
builds one :class:`CachedResolver` per way named (:func:`build_resolvers`) and hands them
to the fleet's recogniser (:mod:`imdsmock.core.recognize`), which stays pure: it only calls
:meth:`CachedResolver.lookup`, a dictionary read.

A client the resolver does not know yet gets None at once (the next way in the order
recognises it, or nothing does), and a lookup starts as a task on the serving loop: its
I/O is asynchronous, so the loop never waits. When the answer lands it is cached, and the
client's next connection is recognised. A lookup that fails is logged once per client,
not per request, and retried no sooner than :data:`RETRY_AFTER` seconds later.

What a resolver knows stays true only while it watches the other system: a subclass's
:meth:`CachedResolver.watch` follows its events (a container that stops, a pod deleted)
and calls :meth:`CachedResolver.forget` so that an address handed to someone else is
never answered with the identity (and credentials) of its previous owner. While the watch
is not running, answers are trusted for :data:`RETRY_AFTER` seconds only.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping

from imdsmock.config.schema import RESOLVER_WAYS, Config
from imdsmock.core.recognize import Workload
from imdsmock.errors import ImdsMockError

__all__ = [
    "PENDING_MAX",
    "RETRY_AFTER",
    "CachedResolver",
    "ResolveError",
    "build_resolvers",
]

log = logging.getLogger("imdsmock")

RETRY_AFTER = 2.0
"""Seconds an unknown client stays unknown before it is looked up again (also how long an
answer is trusted while the resolver is not watching)."""

PENDING_MAX = 256
"""Lookups running at once; a client beyond it is looked up on a later connection."""

WATCH_RETRY_FIRST, WATCH_RETRY_CAP = 1.0, 30.0
"""Seconds before a watch that ended is started again, doubling up to the cap."""

KNOWN_MAX = 16_384
"""Clients remembered (answers and failures logged); past it the memory starts again."""


class ResolveError(ImdsMockError):
    """A lookup that could not be made (the other system unreachable, or answering an error)."""


class CachedResolver(ABC):
    """A resolver's cache and its lookups; a subclass says how to :meth:`find` a client
    and how to :meth:`watch` for the changes that make an answer stale.

    ``found`` is called with each workload a lookup finds, in a worker thread (the fleet
    makes a template instance for it there, off the loop).
    """

    way: str = ""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # client address -> (what it is, or None: nothing; the time the answer expires)
        self._known: dict[str, tuple[Workload | None, float]] = {}
        self._pending: set[str] = set()
        self._logged: set[str] = set()
        # IDs seen gone, so that a lookup started before they went does not bring them back.
        self._gone: dict[str, None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.watching = False
        """Whether :meth:`watch` is following the other system's changes right now."""
        self._failing = False
        self._delay = WATCH_RETRY_FIRST
        self.found: Callable[[Workload], object] | None = None

    # -- what a subclass provides ------------------------------------------------------

    @abstractmethod
    async def find(self, client: str) -> Workload | None:
        """Who ``client`` is, asked of the other system (None: nobody it knows); raise
        :class:`ResolveError` (or OSError) when it cannot be asked."""

    async def watch(self) -> None:  # pragma: no cover - every resolver overrides it
        """Follow the other system's changes, calling :meth:`forget` for what is gone and
        setting :attr:`watching` while subscribed; return or raise when the stream ends."""
        await asyncio.Event().wait()

    # -- the recogniser's side (on the serving loop) ----------------------------------

    def lookup(self, client: str) -> Workload | None:
        """Who ``client`` is, from the cache; an unknown or stale client is looked up in the
        background and None answered meanwhile."""
        entry = self._known.get(client)
        if entry is not None and entry[1] > self._clock():
            return entry[0]
        self._start(client)
        return None

    def _start(self, client: str) -> None:
        loop = self._loop
        if loop is None or client in self._pending or len(self._pending) >= PENDING_MAX:
            return
        self._pending.add(client)
        loop.call_soon_threadsafe(self._spawn, client)

    def _spawn(self, client: str) -> None:
        task = asyncio.ensure_future(self._resolve(client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, client: str) -> None:
        try:
            try:
                workload = await self.find(client)
            except (ResolveError, OSError) as exc:
                self._remember(client, None, RETRY_AFTER)
                if client not in self._logged:
                    if len(self._logged) >= KNOWN_MAX:
                        self._logged.clear()
                    self._logged.add(client)
                    log.warning(
                        "%s lookup of client %s failed (%s); it is recognised by the next "
                        "way until a lookup succeeds (logged once per client)",
                        self.way,
                        client,
                        exc,
                    )
                return
            if workload is not None and workload.id in self._gone:
                workload = None  # it went while we asked
            trusted = math.inf if self.watching and workload is not None else RETRY_AFTER
            if workload is not None and self.found is not None:
                # The fleet may make an instance for it: compiling one is not the loop's work.
                await asyncio.to_thread(self.found, workload)
            if workload is not None and workload.id in self._gone:
                workload = None
            self._remember(client, workload, trusted)
        finally:
            self._pending.discard(client)

    def _remember(self, client: str, workload: Workload | None, seconds: float) -> None:
        known = self._known
        if len(known) >= KNOWN_MAX:
            known.clear()
        known[client] = (workload, self._clock() + seconds)

    # -- the watch's side --------------------------------------------------------------

    def learn(self, client: str, workload: Workload | None) -> None:
        """Remember who ``client`` is, learnt by a watch that lists everything (a pod table
        kept by list and watch): trusted until forgotten once :meth:`watch_started` was
        called, else for :data:`RETRY_AFTER` seconds."""
        trusted = math.inf if self.watching else RETRY_AFTER
        self._remember(client, workload, trusted)

    def forget(self, ident: str) -> None:
        """Drop every answer naming ``ident`` (a container stopped, a pod deleted): its
        addresses are unknown again, looked up anew on their next connection."""
        gone = self._gone
        if len(gone) >= KNOWN_MAX:
            gone.clear()
        gone[ident] = None
        for client, (workload, _) in list(self._known.items()):
            if workload is not None and workload.id == ident:
                del self._known[client]

    def forget_unknown(self) -> None:
        """Drop the answers that found nobody (something new started: look again)."""
        for client, (workload, _) in list(self._known.items()):
            if workload is None:
                del self._known[client]

    def forget_all(self) -> None:
        """Drop every answer (the watch stopped: nothing known can be trusted)."""
        self._known.clear()

    async def run(self) -> None:
        """Serve lookups on the running loop and watch until cancelled (a background job
        of the app). A watch that ends or fails is started again after a pause (doubling
        up to :data:`WATCH_RETRY_CAP` seconds); a failure is logged when it starts and
        when the watch is back, not on every attempt."""
        self._loop = asyncio.get_running_loop()
        while True:
            try:
                await self.watch()
            except (ResolveError, OSError) as exc:
                if not self._failing:
                    log.warning(
                        "%s: cannot follow changes (%s); answers are trusted for %g s "
                        "only until it can, retrying",
                        self.way,
                        exc,
                        RETRY_AFTER,
                    )
                self._failing = True
            finally:
                if self.watching:  # answers trusted while it watched are not any more
                    self.watching = False
                    self.forget_all()
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, WATCH_RETRY_CAP)

    def watch_started(self) -> None:
        """Called by :meth:`watch` once it follows the changes: answers are trusted from
        now on until it stops."""
        self.watching = True
        self._delay = WATCH_RETRY_FIRST
        if self._failing:
            self._failing = False
            log.warning("%s: following changes again", self.way)

    async def close(self) -> None:
        """Cancel the lookups still running."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def build_resolvers(config: Config) -> dict[str, CachedResolver]:
    """One resolver per resolver way ``fleet.recognize`` names that this version serves."""
    makers: Mapping[str, Callable[[Config], CachedResolver]] = {}
    return {
        way: makers[way](config)
        for way in config.fleet.recognize
        if way in RESOLVER_WAYS and way in makers
    }
