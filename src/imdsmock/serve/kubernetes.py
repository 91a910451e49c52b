"""The ``kubernetes`` way: who a client is, from the pods of its node a
:class:`~imdsmock.serve.podwatch.PodWatcher` follows through the Kubernetes API.

The table is whole (every pod of the node, kept current by a watch), so a lookup is a
dictionary read and nothing is asked per client; a pod's instance is decided by the
recogniser (:mod:`imdsmock.core.recognize`: its annotation, the ``match.pod`` rules, the
template). Built by the app when ``fleet.recognize`` names ``kubernetes``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from imdsmock.config.schema import FleetConfig
from imdsmock.core.pods import Pod
from imdsmock.core.recognize import Workload
from imdsmock.serve.podwatch import TRUSTED_FOR, PodWatcher

__all__ = ["KubernetesResolver"]

log = logging.getLogger("imdsmock")

# Clients remembered as logged (and pods as offered); past it the memory starts again.
_LOGGED_MAX = 16_384


class KubernetesResolver:
    """The ``kubernetes`` way: who a client is, from the pods a :class:`PodWatcher`
    follows (a dictionary read: the table is whole, nothing is asked per client).

    A client no live pod has is unknown (recognised by the next way) until the watch says
    a pod has its address. Each pod seen live is offered to :attr:`found` (the fleet may
    make a template instance for it), in a worker thread, one at a time, so that its
    instance is ready by the time its containers ask; again when its labels or annotation
    change (a rule may have stopped matching it), not for every status change.
    """

    way = "kubernetes"

    def __init__(
        self,
        fleet: FleetConfig,
        env: Mapping[str, str] | None = None,
        *,
        trusted_for: float = TRUSTED_FOR,
    ) -> None:
        self.watcher = PodWatcher(fleet, env, changed=self._changed, trusted_for=trusted_for)
        self.found: Callable[[Workload], object] | None = None
        self._workloads: dict[str, Workload] = {}  # pod uid -> its workload now
        self._offers: asyncio.Queue[Workload] | None = None
        self._offered: dict[Workload, None] = {}  # each pod as it was offered
        self._unknown: dict[str, None] = {}  # clients logged as no pod's
        # pod uid -> done when the fleet has had its offer (a template instance made).
        self._making: dict[str, asyncio.Future[None]] = {}

    def pending(self, client: str) -> asyncio.Future[None] | None:
        """The offer of ``client``'s pod to the fleet while it is under way (its first
        connection waits for a template instance being made), else None: the pods are
        known from the watch, nothing is looked up per client."""
        pod = self.watcher.index.get(client)
        making = None if pod is None else self._making.get(pod.uid)
        return None if making is None or making.done() else making

    def lookup(self, client: str) -> Workload | None:
        """The workload of the live pod with address ``client``, or None (also while the
        pods known are no longer trusted: :meth:`PodWatcher.trusted`)."""
        watcher = self.watcher
        pod = watcher.index.get(client)
        if pod is not None:
            if watcher.failing_since is not None and not watcher.trusted(time.monotonic()):
                return None
            return self._workloads.get(pod.uid)
        if self.watcher.synced.is_set() and client not in self._unknown:
            if len(self._unknown) >= _LOGGED_MAX:
                self._unknown.clear()
            self._unknown[client] = None
            log.info(
                "kubernetes: no live pod of %s has address %s (the node, a host-network "
                "pod, or one not seen yet); recognised by the next way (logged once)",
                self.watcher.scope.removeprefix("the pods of "),
                client,
            )
        return None

    def _changed(self, old: Pod | None, new: Pod | None) -> None:
        if new is None or not new.live:
            if old is not None:
                self._workloads.pop(old.uid, None)
            return
        workload = Workload(
            way=self.way,
            id=new.uid,
            key=new.key,
            names=(new.key,),
            instance=new.instance,
            labels=tuple(sorted(new.labels.items())),
        )
        self._workloads[new.uid] = workload
        for address in new.ips:
            self._unknown.pop(address, None)  # its next unknown answer is logged again
        if self.found is not None and workload not in self._offered:
            if len(self._offered) >= _LOGGED_MAX:
                self._offered.clear()
            self._offered[workload] = None
            if self._offers is not None:
                if new.uid not in self._making:
                    self._making[new.uid] = asyncio.get_running_loop().create_future()
                self._offers.put_nowait(workload)

    async def run(self) -> None:
        """Follow the pods until cancelled, offering new ones to :attr:`found`."""
        self._offers = asyncio.Queue()
        offering = asyncio.ensure_future(self._offer(self._offers))
        try:
            await self.watcher.run()
        finally:
            offering.cancel()
            await asyncio.gather(offering, return_exceptions=True)

    async def _offer(self, offers: asyncio.Queue[Workload]) -> None:
        while True:
            workload = await offers.get()
            found = self.found
            try:
                # Making an instance compiles its tables: not the loop's work.
                why = None if found is None else await asyncio.to_thread(found, workload)
            except Exception:  # a bug in the fleet must not stop the watch
                log.exception("kubernetes: making an instance for pod %s failed", workload.key)
                why = None
            finally:
                making = self._making.pop(workload.id, None)
                if making is not None and not making.done():
                    making.set_result(None)  # a connection held for it goes on
            if isinstance(why, str):  # offered once per pod: logged once
                log.warning(
                    "kubernetes: no template instance for pod %s (%s); it is recognised by "
                    "the next way",
                    workload.key,
                    why,
                )

    async def close(self) -> None:
        """Nothing to stop beyond :meth:`run` (cancelled by the app)."""
