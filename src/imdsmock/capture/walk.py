"""Walking a running IMDS: the token, the listings, the leaves, and what is left out.

The walk starts at ``/latest/`` and follows listings as cloud-init's crawler does: an entry
ending in ``/`` is a directory, ``N=name`` (``public-keys/``) is the directory ``N/`` of a
key named ``name``, any other entry is a leaf; the version root lists ``meta-data`` and
``dynamic`` without the slash. Credentials, the identity signatures, the scenario notices
and (unless asked) user data are never fetched: they are recorded as left out, with why.

It is bounded: at most ``max_paths`` requests, paths at most ``max_depth`` segments deep,
and the client's timeout and byte budget; going past a bound ends the capture with
:class:`~imdsmock.capture.client.CaptureFailed`, naming the option that raises it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from imdsmock.capture.client import TOKEN_PATH, Answer, CaptureFailed, Client
from imdsmock.config.inputs import is_segment
from imdsmock.errors import quote
from imdsmock.instance.model import TEXT, Leaf
from imdsmock.instance.notices import GATED_PATHS

__all__ = ["Captured", "Entry", "left_out", "parse_listing", "walk"]

_INDEXED = re.compile(r"([0-9]+)=(.*)")
_ROOT_DIRECTORIES = frozenset({"meta-data", "dynamic"})
_ROLE_DOCUMENTS = frozenset(
    {"meta-data/iam/security-credentials", "meta-data/iam/security-credentials-extended"}
)
# Statuses worth asking again after a pause (real IMDS throttles with 429).
_AGAIN = frozenset({429, 503})
_PAUSES = (0.1, 0.3, 0.9)


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a listing."""

    name: str
    directory: bool
    label: str | None = None
    """The key name of a ``N=name`` entry."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Captured:
    """What a walk found."""

    url: str
    imdsv2: bool
    """Whether the walk used a token (False: the server refused one, IMDSv1)."""
    tokens_required: bool
    """Whether a request without a token was refused with 401 (http-tokens: required)."""
    leaves: Mapping[str, Leaf]
    """Path relative to the version root (``meta-data/ami-id``) -> body and content type."""
    listings: Mapping[str, bytes]
    """Directory (``""``: the version root) -> its listing as served."""
    labels: Mapping[str, str]
    """Directory of a ``N=name`` entry (``meta-data/public-keys/0``) -> the name, in order."""
    left_out: Mapping[str, str]
    """Path (a directory ends in ``/``) -> why it was not fetched."""
    absent: tuple[str, ...]
    """Listed leaves that answered 404."""
    notes: tuple[str, ...]
    """Whatever else the walk met that a copy cannot show (one line each)."""
    requests: int
    received: int


def left_out(path: str, *, user_data: bool) -> str | None:
    """Why ``path`` is not fetched, or None when it is."""
    parent, _, name = path.rpartition("/")
    if path == "meta-data/identity-credentials" or path.startswith(
        "meta-data/identity-credentials/"
    ):
        return "instance identity credentials: the mock makes its own"
    if parent in _ROLE_DOCUMENTS:
        return "role credentials: the mock makes its own for the same role"
    if parent == "dynamic/instance-identity" and name != "document":
        return "identity signatures: the mock signs the document with its own key"
    if path == "user-data" and not user_data:
        return "user data: --user-data keeps it"
    if path in GATED_PATHS:
        return "scenario notices: start the scenario on the copy, see docs/scenarios.md"
    return None


def parse_listing(directory: str, body: bytes) -> tuple[list[Entry], list[str]]:
    """The entries of a listing, and a note for each line that names no path.

    Lines are separated by LF (a CR before it and blank lines are ignored); a name listed
    both as a leaf and as a directory is the directory.
    """
    notes: list[str] = []
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return [], [f"the listing of {directory}/ is not UTF-8 text: not walked"]
    found: dict[str, Entry] = {}
    for line in text.split("\n"):
        word = line.strip()
        if not word:
            continue
        indexed = _INDEXED.fullmatch(word)
        if indexed is not None:
            entry = Entry(indexed[1], True, indexed[2])
        elif word.endswith("/"):
            entry = Entry(word[:-1], True)
        else:
            entry = Entry(word, directory == "" and word in _ROOT_DIRECTORIES)
        if not is_segment(entry.name):
            notes.append(f"the listing of {directory}/ names {quote(word)}, no path: not walked")
            continue
        seen = found.get(entry.name)
        if seen is not None:
            notes.append(
                f"the listing of {directory}/ names {entry.name} twice; the copy lists it once"
            )
            if seen.directory:
                continue
        found[entry.name] = entry
    return list(found.values()), notes


def walk(
    client: Client,
    *,
    user_data: bool = False,
    max_depth: int = 12,
    max_paths: int = 4096,
    warn: Callable[[str], None] = lambda line: None,
) -> Captured:
    """Walk the IMDS ``client`` reaches, within the bounds; ``warn`` hears the IMDSv1
    fallback as it happens."""
    imdsv2 = _open(client, warn)
    required = imdsv2 and client.get("/latest/", token=False).status == 401
    leaves: dict[str, Leaf] = {}
    listings: dict[str, bytes] = {}
    labels: dict[str, str] = {}
    skipped: dict[str, str] = {}
    absent: list[str] = []
    notes: list[str] = []
    url = client.target.url

    def fetch(path: str, directory: bool) -> Answer | None:
        if client.requests >= max_paths:
            raise CaptureFailed(
                f"{url} has more than {max_paths} paths (at {path}); --max-paths raises the limit"
            )
        answer = _get(client, "/latest/" + (path + "/" if directory and path else path))
        if answer.status == 200:
            return answer
        if path == "":
            raise CaptureFailed(_refused_root(url, answer.status, imdsv2))
        if answer.status == 404 and not directory:
            absent.append(path)
        else:
            shown = path + ("/" if directory else "")
            notes.append(f"{shown} answered {answer.status}: left out")
        return None

    todo = [""]
    while todo:
        directory = todo.pop()
        answer = fetch(directory, True)
        if answer is None:
            continue
        listings[directory] = answer.body
        entries, problems = parse_listing(directory, answer.body)
        notes += problems
        for entry in entries:
            path = f"{directory}/{entry.name}" if directory else entry.name
            if path.count("/") + 1 > max_depth:
                raise CaptureFailed(
                    f"{url} has paths deeper than {max_depth} levels ({quote(path)}); "
                    "--max-depth raises the limit"
                )
            why = left_out(path, user_data=user_data)
            if why is not None:
                skipped[path + ("/" if entry.directory else "")] = why
                continue
            if entry.label is not None:
                labels[path] = entry.label
            if entry.directory:
                todo.append(path)
                continue
            leaf = fetch(path, False)
            if leaf is not None:
                leaves[path] = Leaf(leaf.body, leaf.content_type or TEXT)
    return Captured(
        url=url,
        imdsv2=imdsv2,
        tokens_required=required,
        leaves=leaves,
        listings=listings,
        labels=labels,
        left_out=skipped,
        absent=tuple(absent),
        notes=tuple(notes),
        requests=client.requests,
        received=client.received,
    )


def _open(client: Client, warn: Callable[[str], None]) -> bool:
    """Take an IMDSv2 token; True when one was given, False for IMDSv1 (told to ``warn``)."""
    answer = client.put_token()
    url = client.target.url
    if answer.status == 200:
        token = answer.body.strip()
        if not token or len(token) > 4096 or not token.isascii():
            raise CaptureFailed(f"{url} answered PUT {TOKEN_PATH} with 200 but no token")
        client.token = token.decode("ascii")
        return True
    if answer.status in (403, 404, 405):
        warn(
            f"{url} refused the IMDSv2 token (PUT {TOKEN_PATH} answered {answer.status}); "
            "walking it with IMDSv1"
        )
        return False
    raise CaptureFailed(
        f"{url} answered PUT {TOKEN_PATH} with {answer.status}; expected 200 with a token, "
        "or 403, 404 or 405 from a server without IMDSv2"
    )


def _get(client: Client, path: str) -> Answer:
    """GET ``path``; a 401 with a token takes a new token once (it may have expired), a
    429 or 503 is asked again after a pause, three times at most."""
    renewed = False
    pauses = iter(_PAUSES)
    while True:
        answer = client.get(path)
        if answer.status == 401 and client.token is not None and not renewed:
            renewed = True
            token = client.put_token()
            body = token.body.strip()
            if token.status == 200 and body and len(body) <= 4096 and body.isascii():
                client.token = body.decode("ascii")
                continue
            return answer
        pause = next(pauses, None) if answer.status in _AGAIN else None
        if pause is None:
            return answer
        time.sleep(pause)


def _refused_root(url: str, status: int, imdsv2: bool) -> str:
    if status == 401 and not imdsv2:
        return (
            f"{url} answered GET /latest/ with 401 (it wants a token) but refused to give one: "
            "it cannot be walked"
        )
    if status == 403:
        return f"{url} answered GET /latest/ with 403: its metadata endpoint is turned off"
    return f"{url} answered GET /latest/ with {status}; expected 200 and a listing"
