"""Following a node's pods through the Kubernetes API: a list, then a watch, kept in a
:class:`~imdsmock.core.pods.PodIndex` that the ``kubernetes`` way reads from memory.

The pods are listed (in pages) with the field selector ``spec.nodeName=NODE``, then
watched from the list's resource version with bookmarks on; each event updates the index
at once (a deleted pod's address is dropped as the event lands). A watch the server ends
is started again from the last version seen; an expired version (410 Gone) lists again;
a failure (the API unreachable, an error answer) is logged once, retried with a growing
pause, and logged again when the watch is back. Meanwhile the pods known are answered for
:data:`TRUSTED_FOR` seconds, then none until the watch is back (a pod deleted meanwhile may
have handed its address to another); a watch resumed from its version replays what it
missed.

Nothing here blocks the event loop: the API is read with asyncio streams
(:mod:`imdsmock.serve.kubeapi`), a list's pages are read in a worker thread. The way that
answers from the index is :mod:`imdsmock.serve.kubernetes`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from imdsmock.config.fleet import NODE_RULE, check_node
from imdsmock.config.schema import FleetConfig
from imdsmock.core.pods import Pod, PodIndex, pod_from
from imdsmock.errors import ConfigError, quote
from imdsmock.serve.kubeapi import ApiError, Endpoint, Gone, endpoint, get_json, lines

__all__ = ["PAGE", "RETRY_CAP", "RETRY_FIRST", "TRUSTED_FOR", "WATCH_SECONDS", "PodWatcher"]

log = logging.getLogger("imdsmock")

PAGE = 500
"""Pods asked per page of a list."""

WATCH_SECONDS = 300
"""How long the server is asked to keep one watch open (then it is started again)."""

RETRY_FIRST, RETRY_CAP = 0.5, 30.0
"""Seconds before a failed list or watch is tried again, doubling up to the cap."""

TRUSTED_FOR = 30.0
"""Seconds the pods known are still answered for once the API cannot be followed (then no
client is, until it can: a pod deleted meanwhile may have handed its address on)."""

# Changes a list applies to the index between two turns of the event loop.
_BATCH = 200

# A watch that ends sooner than this having delivered nothing counts as a failure (a
# server that closes every watch at once must not be asked in a tight loop).
_SHORT = 1.0


class PodWatcher:
    """The pods of one node (``fleet.kubernetes-node``, else ``$NODE_NAME``, else every
    node), in one namespace or all, followed into :attr:`index`.

    ``changed(old, new)`` is called on the loop for every pod that changes (None: it was
    not known, or is gone), after the index took the change. ``trusted_for``: see
    :meth:`trusted` (:data:`TRUSTED_FOR` by default).
    """

    def __init__(
        self,
        fleet: FleetConfig,
        env: Mapping[str, str] | None = None,
        *,
        changed: Callable[[Pod | None, Pod | None], object] | None = None,
        trusted_for: float = TRUSTED_FOR,
    ) -> None:
        env = os.environ if env is None else env
        self.trusted_for = trusted_for
        """Seconds the pods known are answered for once following the API failed."""
        self.api: Endpoint = endpoint(fleet, env)
        node = fleet.kubernetes_node
        if not node:
            node = env.get("NODE_NAME", "").strip()
            if node and not check_node(node):
                raise ConfigError("NODE_NAME", node, NODE_RULE)
        self.node = node
        self.namespace = fleet.kubernetes_namespace
        self.index = PodIndex()
        self.changed = changed
        self.version = ""
        """The resource version the watch resumes from ("" until a list landed)."""
        self.synced = asyncio.Event()
        """Set once a list landed (the index holds every pod since)."""
        self.failing_since: float | None = None
        """When following the API began to fail (``time.monotonic()``), None while it works."""

    @property
    def scope(self) -> str:
        """What is followed, as logs say it: ``the pods of node n1 in namespace shop``."""
        where = f"node {self.node}" if self.node else "every node"
        inside = f" in namespace {self.namespace}" if self.namespace else ""
        return f"the pods of {where}{inside}"

    def target(self, **query: str) -> str:
        """The API path and query asking for this watcher's pods."""
        path = f"/api/v1/namespaces/{self.namespace}/pods" if self.namespace else "/api/v1/pods"
        if self.node:
            query = {"fieldSelector": f"spec.nodeName={self.node}", **query}
        return path + ("?" + urlencode(query) if query else "")

    async def run(self) -> None:
        """List and watch until cancelled (a background job of the app)."""
        delay = RETRY_FIRST
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            listed = not self.version
            try:
                if listed:
                    await self.list_pods()
                events = await self.watch()
            except Gone as exc:
                self.version = ""
                if not listed:
                    log.info("kubernetes: %s; listing %s again", exc, self.scope)
                    continue
                # A list, or a watch from a list just made, already gone: not in a loop.
                self._failed(exc)
            except ApiError as exc:
                self._failed(exc)
            else:
                if events or loop.time() - started >= _SHORT:
                    delay = RETRY_FIRST
                    continue
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, RETRY_CAP)

    def trusted(self, now: float) -> bool:
        """Whether the pods known may be answered for at ``now`` (``time.monotonic()``):
        while the API is followed, and :attr:`trusted_for` seconds after it failed."""
        since = self.failing_since
        return since is None or now - since <= self.trusted_for

    def _failed(self, exc: ApiError) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            known = len(self.index)
            log.warning(
                "kubernetes: cannot follow %s (%s); the %d pod%s known are answered for "
                "%g s more, then none until it is back; retrying",
                self.scope,
                exc,
                known,
                "" if known == 1 else "s",
                self.trusted_for,
            )

    def _back(self) -> None:
        if self.failing_since is not None:
            self.failing_since = None
            log.warning("kubernetes: following %s again at %s", self.scope, self.api.url)

    async def list_pods(self) -> None:
        """List the pods (page by page) and know exactly those; remember the version.

        The pages are read off the loop (a list of every pod of a cluster is megabytes)
        and the index takes the differences in batches, the loop free between them."""
        pods: list[Pod] = []
        token = ""
        while True:
            query = {"limit": str(PAGE)}
            if token:
                query["continue"] = token
            page = await get_json(self.api, self.target(**query))
            items, meta = _list_parts(page, self.api.url)
            pods += await asyncio.to_thread(self._pods_of, items)
            token = str(meta.get("continue") or "")
            if not token:
                break
        for done, (kind, pod) in enumerate(self.index.changes(pods), 1):
            self._apply(kind, pod)
            if done % _BATCH == 0:
                await asyncio.sleep(0)
        self.version = str(meta.get("resourceVersion") or "")
        first = not self.synced.is_set()
        self.synced.set()
        self._back()
        if first:
            log.info(
                "kubernetes: following %s at %s (%d listed)", self.scope, self.api.url, len(pods)
            )

    def _pods_of(self, items: list[Any]) -> list[Pod]:
        """The pods of a list's items that this watcher follows (in a worker thread)."""
        return [p for p in map(pod_from, items) if p is not None and self._ours(p)]

    def _apply(self, kind: str, pod: Pod) -> None:
        """One change to the index, then to :attr:`changed`."""
        old = self.index.pod(pod.uid)
        self.index.apply(kind, pod)
        if self.changed is not None:
            self.changed(old, None if kind == "DELETED" else pod)

    async def watch(self) -> int:
        """Follow the changes from :attr:`version` until the server ends the stream; the
        number of events it delivered."""
        query = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "resourceVersion": self.version,
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        count = 0
        async for line in lines(self.api, self.target(**query), idle=WATCH_SECONDS + 30):
            self.event(line)
            count += 1
            if count == 1:
                self._back()
        return count

    def event(self, line: bytes) -> None:
        """Apply one line of a watch stream (a JSON event) to the index."""
        try:
            event = json.loads(line)
        except ValueError:
            message = f"{self.api.url} sent a watch event that is not JSON: {quote(line)}"
            raise ApiError(message) from None
        kind = event.get("type") if isinstance(event, dict) else None
        obj = event.get("object") if isinstance(event, dict) else None
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        version = meta.get("resourceVersion") if isinstance(meta, dict) else None
        if kind == "ERROR":
            status = obj if isinstance(obj, dict) else {}
            code = status.get("code")
            message = f"the watch ended with {code}: {quote(status.get('message', ''), 200)}"
            raise (Gone if code == 410 else ApiError)(message, code if isinstance(code, int) else 0)
        if kind == "BOOKMARK":
            if isinstance(version, str) and version:
                self.version = version
            return
        pod = pod_from(obj)
        if kind not in ("ADDED", "MODIFIED", "DELETED") or pod is None:
            log.debug("kubernetes: ignored watch event %s", quote(line))
            return
        if not self._ours(pod):
            kind = "DELETED"  # not (or no longer) this watcher's: never answer for it
        self._apply(kind, pod)
        if pod.version:
            self.version = pod.version

    def _ours(self, pod: Pod) -> bool:
        """Whether ``pod`` is one this watcher follows (the server filters already)."""
        return (not self.node or pod.node == self.node) and (
            not self.namespace or pod.namespace == self.namespace
        )


def _list_parts(page: Any, url: str) -> tuple[list[Any], Mapping[str, Any]]:
    """A pod list's items and metadata, or :class:`ApiError` when it is not a list."""
    items = page.get("items") if isinstance(page, dict) else None
    meta = page.get("metadata") if isinstance(page, dict) else None
    if not isinstance(page, dict) or not (items is None or isinstance(items, list)):
        raise ApiError(f"{url} answered something other than a list of pods: {quote(page)}")
    return items or [], meta if isinstance(meta, dict) else {}
