"""The request log: a bounded ring buffer of what clients asked and what they got.

The server calls :meth:`RequestLog.record` after every answer; it appends one tuple to a
``deque`` with a ``maxlen`` (O(1), atomic under the GIL, nothing formatted), so logging
costs next to nothing on the hot path. Entries are turned into dictionaries only when
someone reads the log (the control API, ``imdsmock ctl requests``, the pytest plugin).

An entry records the method, the path, the status, the client address, the user agent
and whether an IMDSv2 token was sent -- never the token itself. The IMDSv1 report groups
token-less data requests by client and user agent, like the ``MetadataNoToken``
CloudWatch metric EC2 offers for finding IMDSv1 callers.

``--log-requests`` adds a second consumer of the same record: :meth:`RequestLog.sink`
chooses, once at start-up, either :meth:`RequestLog.record` alone or a sink that records
and then prints the entry as one access-log line on stderr, so the server makes the same
single call per request whether the flag is on or off.

The log is bounded in bytes as well as in entries: an entry keeps at most
:data:`HEAD_MAX` bytes of what the client sent. A request whose head is larger reaches
the log through :func:`capped` (the server does it, knowing the head's size from its
parse), which keeps a shortened path and user agent. Reading the log back is bounded
too: :meth:`RequestLog.page` looks at each entry at most once and returns at most
:data:`PAGE_MAX` of them.
"""

from __future__ import annotations

import collections
import itertools
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, TextIO

from imdsmock.config.fleet import DEFAULT_NAME
from imdsmock.core.imds import TOKEN_PATH, Request
from imdsmock.core.wire import Response

__all__ = [
    "HEAD_MAX",
    "PAGE_DEFAULT",
    "PAGE_MAX",
    "REPORT_MAX",
    "Entry",
    "RequestLog",
    "Sink",
    "capped",
]

DEFAULT_SIZE = 10_000
# A logged request holds at most HEAD_MAX bytes of strings from the client (path, user
# agent, token): a larger one is logged as capped() makes it, with the path cut to
# PATH_MAX characters and the user agent to AGENT_MAX, each marked with a trailing "...".
HEAD_MAX = 1024
PATH_MAX = 512
AGENT_MAX = 256
# Entries one page of the log holds unless asked for fewer, and at most.
PAGE_DEFAULT = 100
PAGE_MAX = 1000
# Groups the IMDSv1 report lists at most (the busiest).
REPORT_MAX = 100


class Entry(NamedTuple):
    """One logged request (the token value itself is never kept).

    A named tuple, not a frozen dataclass: the class is built at every start-up (a frozen
    dataclass is slower to define) and an entry per access-log line.
    """

    seq: int
    time: float
    method: str
    path: str
    status: int
    client: str
    user_agent: str | None
    token: bool
    instance: str | None = None
    """The fleet instance that answered (None: a mock without fleet)."""
    why: str | None = None
    """Why the client was recognised as that instance (the rule, the pod, the container)."""

    @property
    def imdsv1(self) -> bool:
        """A token-less data request: what real EC2 counts as IMDSv1 use."""
        return _imdsv1(self.method, self.path, self.token)

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready data (``instance`` and ``why`` only from a mock serving a
        fleet)."""
        data = {
            "seq": self.seq,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "client": self.client,
            "user-agent": self.user_agent,
            "token": self.token,
            "imdsv1": self.imdsv1,
        }
        if self.instance is not None:
            data["instance"] = self.instance
            if self.why is not None:
                data["why"] = self.why
        return data

    def access_line(self, size: int) -> str:
        """The entry as one access-log line: time (UTC), client, method, path, status, body
        bytes and the token use (``v2`` token sent, ``v1`` token-less data request, ``-``),
        then the fleet instance that answered, if any.

        ``2026-11-26T01:02:03.456Z 172.17.0.3 GET /latest/meta-data/instance-id 200 19 v2``;
        a request that got no answer (an injected hang or reset) shows ``- -``.
        """
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.time))
        millis = int(self.time * 1000) % 1000
        path = self.path if self.path.isprintable() else ascii(self.path)[1:-1]
        answer = f"{self.status} {size}" if self.status else "- -"
        use = "v2" if self.token else "v1" if self.imdsv1 else "-"
        line = f"{when}.{millis:03d}Z {self.client} {self.method} {path} {answer} {use}"
        return f"{line} {self.instance}\n" if self.instance is not None else line + "\n"


# (seq, time, request, status) -- formatted only when read.
_Raw = tuple[int, float, Request, int]

# What the server calls after every answer (imdsmock.server.RequestSink has this shape).
Sink = Callable[[Request, Response, float], None]


def capped(request: Request) -> Request:
    """``request`` as the log keeps one whose head is over :data:`HEAD_MAX` bytes: the path
    and user agent shortened, the token only as sent (``""``) or not, no token TTL."""
    path, agent = request.path, request.user_agent
    if len(path) > PATH_MAX:
        path = path[:PATH_MAX] + "..."
    if agent is not None and len(agent) > AGENT_MAX:
        agent = agent[:AGENT_MAX] + "..."
    return request._replace(
        path=path,
        token=None if request.token is None else "",
        token_ttl=None,
        user_agent=agent,
    )


def _entry(seq: int, now: float, req: Request, status: int) -> Entry:
    return Entry(
        seq=seq,
        time=now,
        method=req.method,
        path=req.path,
        status=status,
        client=req.client,
        user_agent=req.user_agent,
        token=req.token is not None,
        instance=req.instance,
        why=req.why,
    )


def _imdsv1(method: str, path: str, token: bool) -> bool:
    return not token and method in ("GET", "HEAD") and not path.startswith(TOKEN_PATH)


def _matcher(
    *,
    method: str | None,
    path: str | None,
    status: int | None,
    client: str | None,
    token: bool | None,
    imdsv1: bool | None,
    instance: str | None = None,
) -> Callable[[_Raw], bool]:
    """A test of one raw entry against the filters of :meth:`RequestLog.entries`."""
    method = None if method is None else method.upper()

    def match(raw: _Raw) -> bool:
        _, _, req, got = raw
        sent = req.token is not None
        return (
            (method is None or req.method == method)
            and (path is None or req.path.startswith(path))
            and (status is None or got == status)
            and (client is None or req.client == client)
            and (token is None or sent == token)
            and (imdsv1 is None or imdsv1 == _imdsv1(req.method, req.path, sent))
            and (instance is None or _answered_as(req.instance, instance))
        )

    return match


def _answered_as(logged: str | None, instance: str) -> bool:
    """Whether an entry logged as ``logged`` was answered by ``instance``: a mock without
    fleet logs no name, and all it has is the default instance."""
    return logged == instance or (logged is None and instance == DEFAULT_NAME)


def _body_size(response: Response) -> int:
    # The pre-rendered tail is "...\r\n\r\n" + body (no body for HEAD and non-answers).
    tail = response.tail_close
    end = tail.find(b"\r\n\r\n")
    return 0 if end < 0 else len(tail) - end - 4


class RequestLog:
    """The last ``size`` requests, oldest first; safe to feed from any thread."""

    __slots__ = ("_entries", "_seq", "size")

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._entries: collections.deque[_Raw] = collections.deque(maxlen=size)
        self._seq = itertools.count(1)

    def record(self, request: Request, response: Response, now: float) -> None:
        """The server's sink: remember one answered request."""
        # add() inlined: one Python call less on every request.
        self._entries.append((next(self._seq), now, request, response.status))

    def sink(self, *, access_log: bool = False, stream: TextIO | None = None) -> Sink:
        """The server's sink, chosen once: :meth:`record`, or with ``access_log`` a sink that
        records and also writes the entry's :meth:`Entry.access_line` to ``stream`` (stderr).

        A closed or broken stream loses the line, never the answer or the record.
        """
        if not access_log:
            return self.record
        add = self.add
        out = sys.stderr if stream is None else stream

        def record_and_print(request: Request, response: Response, now: float) -> None:
            status = response.status
            entry = _entry(add(request, status, now), now, request, status)
            # A try costs nothing per request; contextlib.suppress would build an object.
            try:  # noqa: SIM105
                out.write(entry.access_line(_body_size(response)))
            except (OSError, ValueError):  # EPIPE, or a closed stream
                pass

        return record_and_print

    def add(self, request: Request, status: int, now: float) -> int:
        """Remember one request with its status (0 when no answer was sent); its seq."""
        # No lock per request: next() and append() are each atomic under the GIL, and the
        # one writer is the event loop thread (entries keep seq order there).
        seq = next(self._seq)
        self._entries.append((seq, now, request, status))
        return seq

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()

    def counts(self) -> dict[str, int]:
        """How many logged requests each fleet instance answered (a mock without fleet
        logs them all as the default instance's), in one pass over the log."""
        found: dict[str | None, int] = {}
        for raw in list(self._entries):
            name = raw[2].instance
            found[name] = found.get(name, 0) + 1
        unnamed = found.pop(None, 0)
        if unnamed:
            found[DEFAULT_NAME] = found.get(DEFAULT_NAME, 0) + unnamed
        return {str(name): count for name, count in found.items()}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        for seq, now, req, status in list(self._entries):
            yield _entry(seq, now, req, status)

    def entries(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        client: str | None = None,
        token: bool | None = None,
        imdsv1: bool | None = None,
        instance: str | None = None,
        limit: int | None = None,
    ) -> list[Entry]:
        """Entries matching every given filter (``path`` is a prefix), oldest first.

        ``limit`` keeps the newest ``limit`` matches.
        """
        match = _matcher(
            method=method,
            path=path,
            status=status,
            client=client,
            token=token,
            imdsv1=imdsv1,
            instance=instance,
        )
        out = [_entry(*raw) for raw in list(self._entries) if match(raw)]
        if limit is not None:
            out = out[-limit:] if limit > 0 else []
        return out

    def page(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        client: str | None = None,
        token: bool | None = None,
        imdsv1: bool | None = None,
        instance: str | None = None,
        limit: int = PAGE_DEFAULT,
        before: int | None = None,
        after: int | None = None,
    ) -> tuple[list[Entry], int | None]:
        """The newest ``limit`` entries matching the filters (as :meth:`entries`) whose seq is
        above ``after`` and below ``before``, oldest first; and the ``before`` of the next,
        older page, or None when no older entry matches.

        The work is bounded: each entry is looked at once at most, and only the page's
        entries are built.
        """
        match = _matcher(
            method=method,
            path=path,
            status=status,
            client=client,
            token=token,
            imdsv1=imdsv1,
            instance=instance,
        )

        def newest(raws: Iterable[_Raw]) -> tuple[list[_Raw], bool]:
            found: list[_Raw] = []
            for raw in raws:
                seq = raw[0]
                if after is not None and seq <= after:
                    break  # older entries have lower seqs
                if (before is not None and seq >= before) or not match(raw):
                    continue
                if len(found) >= limit:
                    return found, True
                found.append(raw)
            return found, False

        # Newest first, without copying the log: a long poll asks every fraction of a second
        # for what came after a recent seq, which is a few entries from the end.
        try:
            found, more = newest(reversed(self._entries))
        except RuntimeError:  # another thread added an entry meanwhile: look at a copy
            found, more = newest(reversed(list(self._entries)))
        found.reverse()
        return [_entry(*raw) for raw in found], (found[0][0] if more and found else None)

    def imdsv1_report(self, instance: str | None = None) -> list[dict[str, Any]]:
        """Token-less data requests grouped by client, user agent and fleet instance (only
        ``instance``'s when given): the :data:`REPORT_MAX` busiest groups, busiest first."""
        groups: dict[tuple[str, str | None, str | None], dict[str, Any]] = {}
        for e in self:
            if not e.imdsv1 or (instance is not None and not _answered_as(e.instance, instance)):
                continue
            g = groups.get((e.client, e.user_agent, e.instance))
            if g is None:
                g = groups[(e.client, e.user_agent, e.instance)] = {
                    "client": e.client,
                    "user-agent": e.user_agent,
                    "requests": 0,
                    "served": 0,
                    "rejected": 0,
                    "first": e.time,
                    "last": e.time,
                    "paths": [],
                }
                if e.instance is not None:
                    g["instance"] = e.instance
            g["requests"] += 1
            if 200 <= e.status < 300:
                g["served"] += 1
            else:
                g["rejected"] += 1
            g["last"] = e.time
            if e.path not in g["paths"] and len(g["paths"]) < 10:
                g["paths"].append(e.path)
        busiest = sorted(groups.values(), key=lambda g: (-g["requests"], g["client"]))
        return busiest[:REPORT_MAX]
