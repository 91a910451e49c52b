"""The template by address: a client nothing else recognised is an instance of its own,
keyed by its address (``template.ways`` naming ``source``, ``template.source``)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable

from imdsmock.config.fleet import Network, source
from imdsmock.core.recognize import Workload
from imdsmock.serve.resolve import CachedResolver

__all__ = ["AddressTemplate"]


class AddressTemplate(CachedResolver):
    """The template's clients by address (``template.ways`` naming ``source``): a client
    nothing else recognised, in ``networks()`` (empty: any), is a workload keyed by its
    address, for which the fleet makes an instance off the loop (its first connection
    waiting for it, as for a lookup). Nothing to ask and nothing to watch: an address is
    the same client for the mock's life."""

    way = "source"

    def __init__(self, networks: Callable[[], tuple[str, ...]]) -> None:
        super().__init__()
        self._networks = networks
        self._parsed: tuple[tuple[str, ...], list[Network]] = ((), [])

    async def find(self, client: str) -> Workload | None:
        given = self._networks()
        if given != self._parsed[0]:
            self._parsed = (given, [source(s, "template.source") for s in given])
        networks = self._parsed[1]
        if networks:
            try:
                address = ipaddress.ip_address(client)
            except ValueError:
                return None
            if not any(address.version == n.version and address in n for n in networks):
                return None
        return Workload(self.way, client, client, (client,))

    async def watch(self) -> None:
        self.watch_started()
        await asyncio.Event().wait()
