"""The ``docker`` way: a client's container, found through the Docker Engine API.

Plain HTTP/1.1 over the engine's unix socket (``fleet.docker-socket``) with asyncio: no
SDK. A client unknown to the cache is looked up by listing the running containers
(``GET /containers/json``) and finding its address among the addresses of every network
each container is on (``NetworkSettings.Networks``: on a user-defined network the
top-level ``IPAddress`` is empty); every container of the listing is remembered at once.
The events stream (``GET /events``, containers' ``die``, ``stop``, ``destroy`` and
networks' ``disconnect``) drops a container's answers the moment it stops, so its address,
handed to the next container, is never answered with its instance.

A container is told apart by its name, its compose service
(``com.docker.compose.service``) and the ``imdsmock.instance`` label naming an instance
itself; its key, from which a template instance is derived, is its name, or for a compose
container ``PROJECT.SERVICE-NUMBER`` (the same across ``up``/``down``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote as urlquote

from imdsmock.core.gate import client_key
from imdsmock.core.recognize import Workload
from imdsmock.serve.resolve import CachedResolver, ResolveError

__all__ = ["INSTANCE_LABEL", "DockerResolver", "containers", "request", "workload"]

INSTANCE_LABEL = "imdsmock.instance"
"""The container label naming the instance a container is."""
SERVICE_LABEL = "com.docker.compose.service"
PROJECT_LABEL = "com.docker.compose.project"
NUMBER_LABEL = "com.docker.compose.container-number"

TIMEOUT = 5.0
"""Seconds a request to the engine may take (the events stream: to answer at all)."""
MAX_BODY = 64 * 1024 * 1024
"""The largest answer read from the engine (a listing of many thousands of containers)."""

PARSE_ON_LOOP_MAX = 256 * 1024
"""An answer larger than this is parsed in a worker thread (the loop serves meanwhile)."""

_GONE = ("die", "stop", "destroy", "disconnect")
_EVENTS = {"type": ["container", "network"], "event": [*_GONE, "start", "connect"]}


async def request(
    socket_path: str, path: str, *, timeout: float = TIMEOUT
) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter, Mapping[str, str]]:
    """Send ``GET path`` to the engine; its status, the stream positioned at the body, the
    writer (to close) and the headers (lower-cased names)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(socket_path), timeout)
    except FileNotFoundError:
        raise ResolveError(f"no Docker engine socket at {socket_path}") from None
    except PermissionError:
        raise ResolveError(f"no permission to use the Docker socket {socket_path}") from None
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        writer.close()
        raise ResolveError("the Docker engine closed the connection") from None
    except BaseException:
        writer.close()
        raise
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        writer.close()
        raise ResolveError(f"the Docker engine answered {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), reader, writer, headers


async def _body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> bytes:
    """The whole body of an answer: chunked, with a length, or up to the end."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            chunk = await _chunk(reader)
            if chunk is None:
                return bytes(out)
            out += chunk
            if len(out) > MAX_BODY:
                raise ResolveError("the Docker engine's answer is too large")
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        if int(length) > MAX_BODY:
            raise ResolveError("the Docker engine's answer is too large")
        return await reader.readexactly(int(length))
    return await reader.read(MAX_BODY)


async def _chunk(reader: asyncio.StreamReader) -> bytes | None:
    """One chunk of a chunked body; None after the last."""
    line = await reader.readline()
    if not line.endswith(b"\n"):
        raise ResolveError("the Docker engine closed the connection")
    try:
        size = int(line.split(b";")[0].strip(), 16)
    except ValueError:
        raise ResolveError("the Docker engine sent a malformed chunk") from None
    if size == 0:
        await reader.readline()
        return None
    if size > MAX_BODY:
        raise ResolveError("the Docker engine's answer is too large")
    data = await reader.readexactly(size)
    await reader.readexactly(2)
    return data


async def get_json(socket_path: str, path: str) -> Any:
    """``GET path`` from the engine as JSON (an error status: :class:`ResolveError`)."""
    status, reader, writer, headers = await request(socket_path, path)
    try:
        body = await asyncio.wait_for(_body(reader, headers), TIMEOUT)
    except asyncio.IncompleteReadError:
        raise ResolveError("the Docker engine closed the connection") from None
    finally:
        writer.close()
    if status != 200:
        raise ResolveError(f"the Docker engine answered {status} to {path}: {body[:200]!r}")
    try:
        if len(body) > PARSE_ON_LOOP_MAX:  # thousands of containers: not the loop's work
            return await asyncio.to_thread(json.loads, body)
        return json.loads(body)
    except ValueError:
        raise ResolveError(f"the Docker engine's answer to {path} is not JSON") from None


def workload(container: Mapping[str, Any]) -> Workload:
    """Who a container of ``/containers/json`` is: its ID, key, names and named instance."""
    labels = container.get("Labels") or {}
    names = [str(n).lstrip("/") for n in container.get("Names") or () if n]
    name = names[0] if names else str(container.get("Id", ""))[:12]
    service = labels.get(SERVICE_LABEL)
    project, number = labels.get(PROJECT_LABEL), labels.get(NUMBER_LABEL)
    key = f"{project}.{service}-{number}" if service and project and number else name
    answers = [name]
    if service:
        answers.append(service)
    named = labels.get(INSTANCE_LABEL)
    return Workload(
        "docker",
        str(container.get("Id", "")),
        key,
        tuple(dict.fromkeys(answers)),
        named if isinstance(named, str) and named else None,
    )


def containers(listing: Any) -> Iterator[tuple[str, Workload]]:
    """Each address of each container of a ``/containers/json`` listing, with who it is:
    the addresses of every network it is on (IPv4 and IPv6); none for a host-network
    container (it has no address of its own)."""
    if not isinstance(listing, list):
        raise ResolveError("the Docker engine's container list is not a list")
    for container in listing:
        if not isinstance(container, dict):
            continue
        found = workload(container)
        networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
        seen: set[str] = set()
        for network in networks.values():
            if not isinstance(network, dict):
                continue
            for field in ("IPAddress", "GlobalIPv6Address"):
                address = network.get(field)
                if isinstance(address, str) and address and address not in seen:
                    try:
                        ipaddress.ip_address(address)
                    except ValueError:
                        continue
                    seen.add(address)
                    yield client_key(address), found


class DockerResolver(CachedResolver):
    """Clients' containers, from the Docker Engine API on ``socket_path``."""

    way = "docker"

    def __init__(self, socket_path: str) -> None:
        super().__init__()
        self.socket_path = socket_path

    async def find(self, client: str) -> Workload | None:
        epoch = self.epoch
        listing = await get_json(self.socket_path, "/containers/json")
        answer = None
        for address, found in containers(listing):
            if address == client:
                answer = found
            elif self.watching:
                self.learn(address, found, epoch)
        return answer

    async def watch(self) -> None:
        """Follow the engine's events: a container that stops, dies, is removed or leaves
        a network is forgotten; one that starts or joins a network makes unknown
        addresses worth asking about again."""
        filters = urlquote(json.dumps(_EVENTS, separators=(",", ":")))
        status, reader, writer, headers = await request(
            self.socket_path, f"/events?filters={filters}"
        )
        try:
            if status != 200:
                raise ResolveError(f"the Docker engine answered {status} to /events")
            self.watch_started()
            chunked = headers.get("transfer-encoding", "").lower() == "chunked"
            pending = b""
            while True:
                data = await _chunk(reader) if chunked else await reader.read(65536)
                if not data:
                    raise ResolveError("the Docker engine ended the events stream")
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._event(line)
        finally:
            writer.close()

    def _event(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        action = str(event.get("Action") or event.get("status") or "")
        actor = event.get("Actor") or {}
        if event.get("Type") == "network":
            ident = str((actor.get("Attributes") or {}).get("container") or "")
        else:
            ident = str(actor.get("ID") or event.get("id") or "")
        if action in _GONE and ident:
            self.forget(ident)
        elif action in ("start", "connect"):
            # Its addresses may be new (a restarted container keeps its ID, not always its
            # address), and addresses that were nobody's may be its now.
            if ident:
                self.forget(ident, gone=False)
            self.forget_unknown()
