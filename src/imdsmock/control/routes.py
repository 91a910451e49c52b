"""The control API: a route table from HTTP requests to :class:`Controller` operations.

Pure: :func:`handle` takes a parsed :class:`ControlRequest` and returns a
:class:`ControlResponse`; the listener in :mod:`imdsmock.serve.control` only moves bytes.
Bodies are JSON. Errors are JSON too: ``{"error": "...", "field": "...", "allowed": [...]}``
with 400 for a rejected request (which changed nothing), 401 without the bearer token,
404 for an unknown route or id and 405 for a wrong method. The dashboard page and its files
(:mod:`imdsmock.control.dashboard`) are routes too, the only ones answered without the token.

:data:`ROUTES` is the one list of routes: each names its method, its path (an OpenAPI path
template), the function in :mod:`imdsmock.control.handlers` that answers it, and how the
OpenAPI document served at ``/openapi.json`` describes it (:mod:`imdsmock.control.openapi`
builds the document from this table).
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote, unquote

from imdsmock.control import handlers as h
from imdsmock.control.dashboard import PAGE_TYPE, File
from imdsmock.control.handlers import MAX_WAIT, REQUEST_FILTERS, BadRequest, Call, Handler, LongPoll
from imdsmock.control.openapi import Operation, document, query, ref
from imdsmock.control.operations import MAX_FAIL_COUNT, Controller, UnknownIdError
from imdsmock.core.fleet import UnknownInstanceError
from imdsmock.errors import ConfigError, ImdsMockError
from imdsmock.errors import quote as quoted

__all__ = ["ROUTES", "ControlRequest", "ControlResponse", "Route", "handle"]


class ControlRequest(NamedTuple):
    """One control request as the listener parsed it."""

    method: str
    target: str  # path and query, as sent
    body: bytes = b""
    authorization: str | None = None


class ControlResponse(NamedTuple):
    """A status, a body and its content type, and what the listener should know besides."""

    status: int
    body: bytes
    content_type: str = "application/json"
    allow: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    """Headers of the route's own (the dashboard's caching and content policy)."""
    wait: float = 0.0
    """An empty long poll: the listener may hold it this many seconds, asking again."""


# A path template's parameters as they match: an IMDS path takes the rest, an id or a file
# name one segment.
_PARAMETERS = {"path": "(.+)", "id": "([^/]+)", "file": "([^/]+)", "name": "([^/]+)"}


@dataclass(frozen=True, slots=True)
class Route:
    """One control route: method, path template, handler, and its OpenAPI description."""

    method: str
    path: str
    """An OpenAPI path template: ``/v1/metadata/{path}``, ``/v1/faults/{id}``."""
    handler: Handler
    doc: Operation | None
    """How the OpenAPI document describes the route; None leaves it out."""
    static: bool = False
    """A fixed document: answers HEAD as GET and ignores the query."""
    content_type: str = "application/json"
    """The answer's type: JSON data, or the handler's text as is."""
    public: bool = False
    """Answered without the bearer token (the dashboard page and files hold no secret)."""
    several: Handler | None = None
    """The handler of a call naming several fleet instances (``?instance=web,api`` or
    ``*``); None: the route acts on one instance only."""
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = re.split(r"\{(\w+)\}", self.path)
        regex = "".join(_PARAMETERS[p] if i % 2 else re.escape(p) for i, p in enumerate(parts))
        object.__setattr__(self, "pattern", re.compile(regex))


def _openapi(call: Call) -> tuple[int, Any]:
    return 200, document(ROUTES)


def _object_of(required: tuple[str, ...] = (), /, **properties: Any) -> dict[str, Any]:
    """A JSON object of exactly these properties (``required`` ones must be there)."""
    head: dict[str, Any] = {"type": "object"}
    if required:
        head["required"] = list(required)
    return {**head, "additionalProperties": False, "properties": properties}


def _list_of(key: str, item: str) -> dict[str, Any]:
    return {"type": "object", "properties": {key: {"type": "array", "items": ref(item)}}}


_FILTER_SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer", "minimum": 0},
    "boolean": {"type": "boolean"},
    "seconds": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT},
}

ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/state", h.state, Operation(summary="Get state")),
    Route("GET", "/v1/metadata", h.metadata_edits, Operation(summary="List metadata edits")),
    Route(
        "PATCH",
        "/v1/metadata",
        h.metadata_patch,
        Operation(summary="Edit metadata", body=ref("Edits")),
    ),
    Route("DELETE", "/v1/metadata", h.metadata_reset, Operation(summary="Reset metadata")),
    Route(
        "GET",
        "/v1/metadata/{path}",
        h.metadata_get,
        Operation(summary="Get metadata", not_found=True),
    ),
    Route(
        "PUT",
        "/v1/metadata/{path}",
        h.metadata_put,
        Operation(
            summary="Set metadata",
            body=_object_of(("value",), value={"type": "string"}),
        ),
    ),
    Route("DELETE", "/v1/metadata/{path}", h.metadata_delete, Operation(summary="Delete metadata")),
    Route(
        "GET",
        "/v1/instance",
        h.instance,
        Operation(summary="Get instance", response=ref("Instance")),
    ),
    Route(
        "PATCH",
        "/v1/instance",
        h.instance_patch,
        Operation(summary="Change instance", response=ref("Instance"), body=ref("InstanceChanges")),
    ),
    Route(
        "DELETE",
        "/v1/instance",
        h.instance_reset,
        Operation(summary="Reset instance", response=ref("Instance")),
    ),
    Route(
        "GET",
        "/v1/scenarios",
        h.scenarios,
        Operation(summary="List scenarios"),
        several=h.scenarios_of,
    ),
    Route(
        "POST",
        "/v1/scenarios",
        h.scenario_start,
        Operation(summary="Start scenario", status=201, body=ref("Scenario")),
        several=h.scenario_start_on,
    ),
    Route(
        "DELETE",
        "/v1/scenarios/{id}",
        h.scenario_cancel,
        Operation(summary="Cancel scenario", not_found=True),
        several=h.scenario_cancel_on,
    ),
    Route(
        "GET", "/v1/options", h.options, Operation(summary="Get options", response=ref("Options"))
    ),
    Route(
        "PATCH",
        "/v1/options",
        h.options_patch,
        Operation(summary="Set options", response=ref("Options"), body=ref("Options")),
    ),
    Route(
        "GET",
        "/v1/faults",
        h.faults,
        Operation(summary="List faults", response=_list_of("faults", "FaultRule")),
    ),
    Route(
        "POST",
        "/v1/faults",
        h.fault_add,
        Operation(summary="Add fault", response=ref("FaultRule"), status=201, body=ref("Fault")),
    ),
    Route("DELETE", "/v1/faults", h.faults_clear, Operation(summary="Clear faults")),
    Route(
        "DELETE",
        "/v1/faults/{id}",
        h.fault_remove,
        Operation(summary="Remove fault", not_found=True),
    ),
    Route(
        "POST",
        "/v1/credentials/rotate",
        h.credentials_rotate,
        Operation(summary="Rotate credentials"),
    ),
    Route(
        "POST",
        "/v1/credentials/expire",
        h.credentials_expire,
        Operation(
            summary="Expire credentials",
            body=_object_of(on={"type": "boolean"}),
            body_required=False,
        ),
    ),
    Route(
        "POST",
        "/v1/credentials/fail",
        h.credentials_fail,
        Operation(
            summary="Fail credential refreshes",
            body=_object_of(count={"type": "integer", "minimum": 0, "maximum": MAX_FAIL_COUNT}),
            body_required=False,
        ),
    ),
    Route("GET", "/v1/clock", h.clock, Operation(summary="Get clock", response=ref("Clock"))),
    Route(
        "POST",
        "/v1/clock/advance",
        h.clock_advance,
        Operation(
            summary="Advance clock",
            response=ref("Clock"),
            body=_object_of(("seconds",), seconds={"type": "number", "minimum": 0}),
        ),
    ),
    Route(
        "POST",
        "/v1/clock/reset",
        h.clock_reset,
        Operation(summary="Reset clock", response=ref("Clock")),
    ),
    Route(
        "GET",
        "/v1/requests",
        h.requests,
        Operation(
            summary="List requests",
            response={
                "type": "object",
                "properties": {
                    "requests": {"type": "array", "items": ref("LoggedRequest")},
                    "next": {
                        "type": "string",
                        "nullable": True,
                        "description": "The URL of the next (older) page; null on the last.",
                    },
                },
            },
            query=tuple(
                query(name, _FILTER_SCHEMAS[kind], description)
                for name, (kind, description) in REQUEST_FILTERS.items()
            ),
        ),
    ),
    Route("DELETE", "/v1/requests", h.requests_clear, Operation(summary="Clear requests")),
    Route("GET", "/v1/reports/imdsv1", h.report_imdsv1, Operation(summary="IMDSv1 report")),
    Route(
        "GET",
        "/v1/certificate",
        h.certificate,
        Operation(
            summary="Identity signing certificate",
            operation_id="certificate",
            response={"type": "string"},
            answers="PEM",
            rejects=False,
        ),
        static=True,
        content_type="application/x-pem-file",
    ),
    Route(
        "GET",
        "/",
        h.dashboard_page,
        Operation(
            summary="Dashboard",
            response={"type": "string"},
            answers="The dashboard: a web page that drives this API",
            rejects=False,
        ),
        static=True,
        content_type=PAGE_TYPE,
        public=True,
    ),
    Route(
        "GET",
        "/ui/{file}",
        h.dashboard_file,
        Operation(
            summary="Dashboard file",
            response={"type": "string"},
            answers="A script, style sheet or image of the dashboard",
            rejects=False,
            not_found=True,
        ),
        static=True,
        content_type="*/*",
        public=True,
    ),
    Route(
        "GET",
        "/v1/instances",
        h.instances,
        Operation(summary="List instances", response=_list_of("instances", "FleetInstance")),
    ),
    Route(
        "POST",
        "/v1/instances",
        h.instance_add,
        Operation(
            summary="Add instance",
            status=201,
            response=ref("FleetInstance"),
            body=ref("FleetEntry"),
        ),
    ),
    Route(
        "GET",
        "/v1/instances/{name}",
        h.instance_entry,
        Operation(summary="Get fleet instance", response=ref("FleetInstance"), not_found=True),
    ),
    Route(
        "PATCH",
        "/v1/instances/{name}",
        h.instance_change,
        Operation(
            summary="Change fleet instance",
            response=ref("FleetInstance"),
            body=ref("FleetEntry"),
            not_found=True,
        ),
    ),
    Route(
        "DELETE",
        "/v1/instances/{name}",
        h.instance_remove,
        Operation(summary="Remove fleet instance", not_found=True),
    ),
    Route(
        "GET",
        "/v1/instances/{name}/clients",
        h.instance_clients,
        Operation(
            summary="Fleet instance clients",
            response=_list_of("clients", "FleetClient"),
            not_found=True,
        ),
    ),
    Route("GET", "/openapi.json", _openapi, None, static=True),
    Route("GET", "/v1/openapi.json", _openapi, None, static=True),
)


# How to give the token: the header, and imdsmock ctl's flag and variable.
_TOKEN_MESSAGE = (
    "missing or wrong bearer token; send the server's control token as "
    "'Authorization: Bearer TOKEN' (imdsmock ctl: --token or IMDSMOCK_CONTROL_TOKEN)"
)


# A fleet instance's routes: /v1/instances/NAME/ + the route of the default instance.
_SCOPED = re.compile(r"/v1/instances/([^/]+)(/.+)")


def handle(
    controller: Controller, request: ControlRequest, token: str | None = None
) -> ControlResponse:
    """Answer one control request; ``token``, when set, is the required bearer token.

    Every route also answers for one instance of the fleet, under
    ``/v1/instances/NAME/...`` or with ``?instance=NAME``; without either, for the
    default (top-level) instance. The scenario routes also act on several at once: names
    separated by commas (``web,api``), or ``*`` for every instance.
    """
    path, _, raw_query = request.target.partition("?")
    method = request.method
    if (
        token is not None
        and not _authorized(request.authorization, token)
        and not _public(method, path)
    ):
        return _error(401, _TOKEN_MESSAGE, "Authorization", ["Bearer <token>"])
    prefix = "/v1"
    try:
        scope = _scope(path, raw_query)
    except UnicodeDecodeError:
        return _error(400, "the URL is not valid UTF-8", "path", [])
    selector = ""
    names: tuple[str, ...] = ()
    if scope is not None:
        selector, path, raw_query = scope
        try:
            if _several(selector):
                names = controller.select(selector)
            else:
                prefix = "/v1/instances/" + quote(selector, safe="")
                controller = controller.for_instance(selector)
        except UnknownInstanceError as exc:
            return _error(404, str(exc), "instance", exc.names)
        except ConfigError as exc:
            return _error(400, str(exc), exc.key, _allowed(exc.allowed))
        except ImdsMockError as exc:
            return _error(400, str(exc))
    allowed: list[str] = []
    for route in ROUTES:
        m = route.pattern.fullmatch(path)
        if m is None:
            continue
        if route.method != method and not (route.static and method == "HEAD"):
            allowed.append(route.method)
            continue
        query: dict[str, str] = {}
        try:
            params = tuple(unquote(p, errors="strict") for p in m.groups())
            if not route.static:
                query = {k: v[-1] for k, v in parse_qs(raw_query, errors="strict").items()}
        except UnicodeDecodeError:
            return _error(400, "the URL is not valid UTF-8", "path", [])
        handler = route.handler
        if names:
            if route.several is None:
                return _error(400, _one_only(selector), "instance", ["one instance's name"])
            handler = route.several
        try:
            status, data = handler(Call(controller, params, query, request.body, prefix, names))
        except BadRequest as exc:
            return _error(400, str(exc), exc.field, exc.allowed)
        except UnknownIdError as exc:
            return _error(404, str(exc), "id", [])
        except UnknownInstanceError as exc:
            return _error(404, str(exc), "instance", exc.names)
        except ConfigError as exc:
            return _error(400, str(exc), exc.key, _allowed(exc.allowed))
        except ImdsMockError as exc:
            return _error(400, str(exc))
        if isinstance(data, File):
            return ControlResponse(status, data.body, data.content_type, headers=data.headers)
        if isinstance(data, LongPoll):
            return _json(status, data.data)._replace(wait=data.wait)
        if isinstance(data, str):  # a text route's answer (errors stay JSON)
            return ControlResponse(status, data.encode(), route.content_type)
        return _json(status, data)
    if allowed:
        return _method_not_allowed(", ".join(sorted(set(allowed))))
    return _error(404, f"no such control route: {path}", "path", ["see /openapi.json"])


def _scope(path: str, raw_query: str) -> tuple[str, str, str] | None:
    """The fleet instance a request names, the route's own path and the query left: from
    ``/v1/instances/NAME/ROUTE`` (not the fleet's own routes) or ``?instance=NAME``."""
    m = _SCOPED.fullmatch(path)
    if m is not None and m.group(2) != "/clients":
        return unquote(m.group(1), errors="strict"), "/v1" + m.group(2), raw_query
    if "instance=" not in raw_query:
        return None
    name = None
    rest = []
    for part in raw_query.split("&"):
        key, _, value = part.partition("=")
        if unquote(key, errors="strict") == "instance":
            name = unquote(value.replace("+", " "), errors="strict")
        else:
            rest.append(part)
    return None if name is None else (name, path, "&".join(rest))


def _several(selector: str) -> bool:
    """Whether an instance selector names several instances (``*``, ``web,api``): no
    instance's name holds a comma or a star."""
    return selector == "*" or "," in selector


def _one_only(selector: str) -> str:
    return (
        f"instance {quoted(selector)} names several instances; only the scenario routes "
        "act on several (GET and POST /v1/scenarios, DELETE /v1/scenarios/{id})"
    )


def _public(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") and any(
        route.public and route.pattern.fullmatch(path) for route in ROUTES
    )


def _json(status: int, data: Any) -> ControlResponse:
    return ControlResponse(status, json.dumps(data, indent=2).encode() + b"\n")


def _error(
    status: int, message: str, field: str | None = None, allowed: list[str] | None = None
) -> ControlResponse:
    return _json(status, {"error": message, "field": field, "allowed": allowed or []})


def _method_not_allowed(allow: str) -> ControlResponse:
    response = _error(405, "method not allowed", "method", allow.split(", "))
    return response._replace(allow=allow)


def _allowed(text: str) -> list[str]:
    if text.startswith("one of: "):
        return text[len("one of: ") :].split(", ")
    return [text]


def _authorized(header: str | None, token: str) -> bool:
    if header is None:
        return False
    scheme, _, value = header.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), token.encode()
    )
