"""Resolvers: who a client is, asked of another system (Docker, Kubernetes), never waited for.

A fleet names resolver ways in ``fleet.recognize`` (``docker``, ``kubernetes``); the app
builds one :class:`CachedResolver` per way named (``app.build_resolvers``) and hands them
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
from collections.abc import Callable
from typing import Protocol

from imdsmock.core.recognize import Workload
from imdsmock.errors import ImdsMockError

__all__ = [
    "PENDING_MAX",
    "RETRY_AFTER",
    "WAIT_FOR",
    "CachedResolver",
    "ResolveError",
    "Running",
]

log = logging.getLogger("imdsmock")

RETRY_AFTER = 2.0
"""Seconds an unknown client stays unknown before it is looked up again (also how long an
answer is trusted while the resolver is not watching)."""

WAIT_FOR = 1.0
"""Seconds into a lookup during which a new connection of its client waits for it (as
long as the IMDS listener holds one: ``serve.server.HOLD``)."""

PENDING_MAX = 256
"""Lookups running at once; a client beyond it is looked up on a later connection."""

WATCH_RETRY_FIRST, WATCH_RETRY_CAP = 1.0, 30.0
"""Seconds before a watch that ended is started again, doubling up to the cap."""

KNOWN_MAX = 16_384
"""Clients remembered (answers and failures logged); past it the memory starts again."""


def _running() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


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
        # client -> (done when its lookup ends, the loop time it started)
        self._waiters: dict[str, tuple[asyncio.Future[None], float]] = {}
        # Clients learnt from a listing whose workload the fleet has not been given yet.
        self._unseen: set[str] = set()
        self._logged: set[tuple[str, str]] = set()
        # Counts forget() calls: a lookup that saw it change while under way keeps nothing
        # (what it found may have gone meanwhile, its address someone else's).
        self.epoch = 0
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
            if client in self._unseen:  # learnt from a listing: the fleet has not seen it
                self._unseen.discard(client)
                if entry[0] is not None:
                    self._hand(client, entry[0])
            return entry[0]
        self._start(client)
        return None

    def pending(self, client: str) -> asyncio.Future[None] | None:
        """Done when the lookup of ``client`` under way ends (None: none is): a new
        connection of that client may wait for it, without blocking the loop."""
        waiting = self._waiters.get(client)
        if waiting is None or self._loop is None:
            return None
        # A lookup that has taken longer than a connection waits is not waited for again:
        # with the other system stuck, only the first second of each lookup holds clients.
        if self._loop.time() - waiting[1] > WAIT_FOR:
            return None
        return waiting[0]

    def _start(self, client: str) -> None:
        loop = self._loop
        if loop is None or client in self._pending or len(self._pending) >= PENDING_MAX:
            return
        self._pending.add(client)
        if _running() is loop:  # on the serving loop (a connection): start it at once
            self._spawn(client)
        else:
            loop.call_soon_threadsafe(self._spawn, client)

    def _spawn(self, client: str) -> None:
        assert self._loop is not None
        self._waiters[client] = (self._loop.create_future(), self._loop.time())
        self._track(asyncio.ensure_future(self._resolve(client)))

    def _hand(self, client: str, workload: Workload) -> None:
        """Give the fleet a workload learnt from a listing, on the first connection of its
        client (in a worker thread, as a lookup does); that connection waits for it, as
        for a lookup (the fleet may be making its instance)."""
        loop = self._loop
        if loop is None or self.found is None or client in self._pending:
            return
        found = self.found
        self._pending.add(client)

        async def hand() -> None:
            try:
                why = await asyncio.to_thread(found, workload)
                self._explain(client, workload, why)
            finally:
                self._done(client)

        def start() -> None:
            self._waiters[client] = (loop.create_future(), loop.time())
            self._track(asyncio.ensure_future(hand()))

        if _running() is loop:
            start()
        else:
            loop.call_soon_threadsafe(start)

    def _done(self, client: str) -> None:
        """The lookup (or hand-over) of ``client`` ended: connections waiting go on."""
        self._pending.discard(client)
        waiting = self._waiters.pop(client, None)
        if waiting is not None and not waiting[0].done():
            waiting[0].set_result(None)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _explain(self, client: str, workload: Workload, why: object) -> None:
        if isinstance(why, str):
            self._once(
                ("template", client),
                "%s: no instance made for client %s (%s): %s; it is recognised by the next "
                "way (logged once per client)",
                self.way,
                client,
                workload.key,
                why,
            )

    async def _resolve(self, client: str) -> None:
        epoch = self.epoch
        try:
            try:
                workload = await self.find(client)
            except (ResolveError, OSError) as exc:
                self._remember(client, None, RETRY_AFTER)
                self._once(
                    ("failed", client),
                    "%s lookup of client %s failed (%s); it is recognised by the next way "
                    "until a lookup succeeds (logged once per client)",
                    self.way,
                    client,
                    exc,
                )
                return
            trusted = math.inf if self.watching and workload is not None else RETRY_AFTER
            if workload is not None and self.found is not None and epoch == self.epoch:
                # The fleet may make an instance for it: compiling one is not the loop's work.
                why = await asyncio.to_thread(self.found, workload)
                self._explain(client, workload, why)
            if epoch == self.epoch:  # else something went while we asked: ask again
                self._remember(client, workload, trusted)
        finally:
            self._done(client)

    def _once(self, what: tuple[str, str], message: str, *args: object) -> None:
        """Log ``message`` the first time only for ``what`` (a kind of line and a client)."""
        if what in self._logged:
            return
        if len(self._logged) >= KNOWN_MAX:
            self._logged.clear()
        self._logged.add(what)
        log.warning(message, *args)

    def _remember(self, client: str, workload: Workload | None, seconds: float) -> None:
        known = self._known
        if len(known) >= KNOWN_MAX:
            known.clear()
            self._unseen.clear()
        self._unseen.discard(client)
        known[client] = (workload, self._clock() + seconds)

    # -- the watch's side --------------------------------------------------------------

    def learn(self, client: str, workload: Workload | None, epoch: int | None = None) -> None:
        """Remember who ``client`` is, learnt from a listing of everything (a pod table
        kept by list and watch, all the containers): trusted until forgotten once
        :meth:`watch_started` was called, else for :data:`RETRY_AFTER` seconds. With
        ``epoch`` (:attr:`epoch` when the listing was asked for), nothing is learnt when
        something was forgotten since."""
        if epoch is not None and epoch != self.epoch:
            return
        trusted = math.inf if self.watching else RETRY_AFTER
        self._remember(client, workload, trusted)
        if workload is not None:
            self._unseen.add(client)

    def forget(self, ident: str, *, gone: bool = True) -> None:
        """Drop every answer naming ``ident`` (a container stopped, a pod deleted): its
        addresses are unknown again, looked up anew on their next connection. ``gone``:
        lookups under way keep nothing either (their listing may show it still); false
        for something that only changed (a container started again with a new address).
        """
        if gone:
            self.epoch += 1
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


class Running(Protocol):
    """A resolver as the app runs it: :class:`CachedResolver`, or one that keeps a whole
    table of its own (the Kubernetes pods of a node: :mod:`imdsmock.serve.kubernetes`)."""

    way: str
    found: Callable[[Workload], object] | None

    def lookup(self, client: str) -> Workload | None:
        """Who ``client`` is, from memory (never waits)."""

    def pending(self, client: str) -> asyncio.Future[None] | None:
        """The lookup of ``client`` under way (its first connection waits for it)."""

    async def run(self) -> None:
        """Follow the other system until cancelled (a background job of the app)."""

    async def close(self) -> None:
        """Stop what still runs."""
