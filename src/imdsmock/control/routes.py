"""The control API: a route table from HTTP requests to :class:`Controller` operations.

Pure: :func:`handle` takes a parsed :class:`ControlRequest` and returns a
:class:`ControlResponse`; the listener in :mod:`imdsmock.serve.control` only moves bytes.
Bodies are JSON. Errors are JSON too: ``{"error": "...", "field": "...", "allowed": [...]}``
with 400 for a rejected request (which changed nothing), 401 without the bearer token,
404 for an unknown route or id and 405 for a wrong method. The routes are described by
the OpenAPI document served at ``/openapi.json`` (:mod:`imdsmock.control.openapi`).
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote

from imdsmock.control.openapi import document
from imdsmock.control.operations import Controller, UnknownIdError
from imdsmock.errors import ConfigError, ImdsMockError

__all__ = ["ROUTES", "ControlRequest", "ControlResponse", "handle"]


class ControlRequest(NamedTuple):
    """One control request as the listener parsed it."""

    method: str
    target: str  # path and query, as sent
    body: bytes = b""
    authorization: str | None = None


class ControlResponse(NamedTuple):
    """A status, a body and its content type."""

    status: int
    body: bytes
    content_type: str = "application/json"
    allow: str | None = None


class _Bad(Exception):
    """A malformed request (not a rejected value): bad JSON, wrong body shape."""

    def __init__(self, field: str, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.field = field
        self.allowed = allowed


class _Call(NamedTuple):
    controller: Controller
    params: tuple[str, ...]
    query: Mapping[str, str]
    body: bytes


Handler = Callable[[_Call], tuple[int, Any]]


def _json(status: int, data: Any) -> ControlResponse:
    return ControlResponse(status, json.dumps(data, indent=2).encode() + b"\n")


def _error(
    status: int, message: str, field: str | None = None, allowed: list[str] | None = None
) -> ControlResponse:
    return _json(status, {"error": message, "field": field, "allowed": allowed or []})


def _object(call: _Call, *, required: bool = True) -> dict[str, Any]:
    if not call.body.strip():
        if required:
            raise _Bad("body", "a JSON object body is required", ["a JSON object"])
        return {}
    try:
        data = json.loads(call.body)
    except (ValueError, UnicodeDecodeError):
        raise _Bad("body", "the body is not valid JSON", ["a JSON object"]) from None
    if not isinstance(data, dict):
        raise _Bad("body", "the body must be a JSON object", ["a JSON object"])
    return data


def _only(data: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    for key in data:
        if key not in keys:
            raise ConfigError(key, data[key], "one of the keys: " + ", ".join(keys))


# -- handlers ------------------------------------------------------------------------------


def _state(call: _Call) -> tuple[int, Any]:
    return 200, call.controller.state()


def _metadata_edits(call: _Call) -> tuple[int, Any]:
    return 200, {"metadata": dict(call.controller.snapshot.edits)}


def _metadata_patch(call: _Call) -> tuple[int, Any]:
    return 200, {"metadata": call.controller.edit_metadata(_object(call))}


def _metadata_reset(call: _Call) -> tuple[int, Any]:
    call.controller.reset_metadata()
    return 200, {"metadata": {}}


def _metadata_get(call: _Call) -> tuple[int, Any]:
    value = call.controller.get_metadata(call.params[0])
    if value is None:
        return 404, {"error": "nothing is served at this path", "field": "path", "allowed": []}
    return 200, {"path": call.params[0], "value": value}


def _metadata_put(call: _Call) -> tuple[int, Any]:
    data = _object(call)
    _only(data, ("value",))
    if "value" not in data:
        raise ConfigError("value", None, "a string")
    call.controller.set_metadata(call.params[0], data["value"])
    return 200, {"path": call.params[0], "value": data["value"]}


def _metadata_delete(call: _Call) -> tuple[int, Any]:
    call.controller.delete_metadata(call.params[0])
    return 200, {"path": call.params[0], "value": None}


def _scenarios(call: _Call) -> tuple[int, Any]:
    return 200, {"scenarios": call.controller.scenarios()}


def _scenario_start(call: _Call) -> tuple[int, Any]:
    return 201, call.controller.start_scenario(_object(call))


def _scenario_cancel(call: _Call) -> tuple[int, Any]:
    call.controller.cancel_scenario(call.params[0])
    return 200, {"cancelled": call.params[0]}


def _options(call: _Call) -> tuple[int, Any]:
    return 200, call.controller.options()


def _options_patch(call: _Call) -> tuple[int, Any]:
    return 200, call.controller.set_options(**_object(call))


def _faults(call: _Call) -> tuple[int, Any]:
    return 200, {"faults": call.controller.faults()}


def _fault_add(call: _Call) -> tuple[int, Any]:
    return 201, call.controller.add_fault(_object(call))


def _faults_clear(call: _Call) -> tuple[int, Any]:
    call.controller.clear_faults()
    return 200, {"faults": []}


def _fault_remove(call: _Call) -> tuple[int, Any]:
    call.controller.remove_fault(call.params[0])
    return 200, {"removed": call.params[0]}


def _creds_rotate(call: _Call) -> tuple[int, Any]:
    _only(_object(call, required=False), ())
    return 200, call.controller.rotate_credentials()


def _creds_expire(call: _Call) -> tuple[int, Any]:
    data = _object(call, required=False)
    _only(data, ("on",))
    return 200, call.controller.expire_credentials(data.get("on", True))


def _creds_fail(call: _Call) -> tuple[int, Any]:
    data = _object(call, required=False)
    _only(data, ("count",))
    return 200, call.controller.fail_credentials(data.get("count", 1))


def _clock(call: _Call) -> tuple[int, Any]:
    return 200, call.controller.clock()


def _clock_advance(call: _Call) -> tuple[int, Any]:
    data = _object(call)
    _only(data, ("seconds",))
    if "seconds" not in data:
        raise ConfigError("seconds", None, "a number of seconds")
    return 200, call.controller.advance_clock(data["seconds"])


def _clock_reset(call: _Call) -> tuple[int, Any]:
    _only(_object(call, required=False), ())
    return 200, call.controller.reset_clock()


_FILTERS = ("method", "path", "status", "client", "token", "imdsv1", "limit")


def _requests(call: _Call) -> tuple[int, Any]:
    filters: dict[str, Any] = {}
    for key, value in call.query.items():
        if key not in _FILTERS:
            raise ConfigError(key, value, "one of the filters: " + ", ".join(_FILTERS))
        if key in ("status", "limit"):
            if not re.fullmatch(r"[0-9]{1,6}", value):
                raise ConfigError(key, value, "a whole number")
            filters[key] = int(value)
        elif key in ("token", "imdsv1"):
            if value not in ("true", "false"):
                raise ConfigError(key, value, "one of: true, false")
            filters[key] = value == "true"
        else:
            filters[key] = value
    return 200, {"requests": call.controller.requests(**filters)}


def _requests_clear(call: _Call) -> tuple[int, Any]:
    call.controller.clear_requests()
    return 200, {"requests": []}


def _report_v1(call: _Call) -> tuple[int, Any]:
    return 200, {"clients": call.controller.imdsv1_report()}


_SEG = r"([^/]+)"
_ANY = r"(.+)"

ROUTES: tuple[tuple[str, re.Pattern[str], Handler], ...] = tuple(
    (method, re.compile(pattern), fn)
    for method, pattern, fn in (
        ("GET", r"/v1/state", _state),
        ("GET", r"/v1/metadata", _metadata_edits),
        ("PATCH", r"/v1/metadata", _metadata_patch),
        ("DELETE", r"/v1/metadata", _metadata_reset),
        ("GET", rf"/v1/metadata/{_ANY}", _metadata_get),
        ("PUT", rf"/v1/metadata/{_ANY}", _metadata_put),
        ("DELETE", rf"/v1/metadata/{_ANY}", _metadata_delete),
        ("GET", r"/v1/scenarios", _scenarios),
        ("POST", r"/v1/scenarios", _scenario_start),
        ("DELETE", rf"/v1/scenarios/{_SEG}", _scenario_cancel),
        ("GET", r"/v1/options", _options),
        ("PATCH", r"/v1/options", _options_patch),
        ("GET", r"/v1/faults", _faults),
        ("POST", r"/v1/faults", _fault_add),
        ("DELETE", r"/v1/faults", _faults_clear),
        ("DELETE", rf"/v1/faults/{_SEG}", _fault_remove),
        ("POST", r"/v1/credentials/rotate", _creds_rotate),
        ("POST", r"/v1/credentials/expire", _creds_expire),
        ("POST", r"/v1/credentials/fail", _creds_fail),
        ("GET", r"/v1/clock", _clock),
        ("POST", r"/v1/clock/advance", _clock_advance),
        ("POST", r"/v1/clock/reset", _clock_reset),
        ("GET", r"/v1/requests", _requests),
        ("DELETE", r"/v1/requests", _requests_clear),
        ("GET", r"/v1/reports/imdsv1", _report_v1),
    )
)


def handle(
    controller: Controller, request: ControlRequest, token: str | None = None
) -> ControlResponse:
    """Answer one control request; ``token``, when set, is the required bearer token."""
    if token is not None and not _authorized(request.authorization, token):
        return _error(401, "missing or wrong bearer token", "Authorization", ["Bearer <token>"])
    path, _, raw_query = request.target.partition("?")
    method = request.method
    if path in ("/openapi.json", "/v1/openapi.json"):
        if method not in ("GET", "HEAD"):
            return _method_not_allowed("GET")
        return _json(200, document())
    if path == "/v1/certificate":
        if method not in ("GET", "HEAD"):
            return _method_not_allowed("GET")
        pem = controller.certificate().encode()
        return ControlResponse(200, pem, "application/x-pem-file")
    allowed: list[str] = []
    for route_method, pattern, fn in ROUTES:
        m = pattern.fullmatch(path)
        if m is None:
            continue
        if route_method != method:
            allowed.append(route_method)
            continue
        try:
            params = tuple(unquote(p, errors="strict") for p in m.groups())
            query = {k: v[-1] for k, v in parse_qs(raw_query, errors="strict").items()}
        except UnicodeDecodeError:
            return _error(400, "the URL is not valid UTF-8", "path", [])
        try:
            status, data = fn(_Call(controller, params, query, request.body))
        except _Bad as exc:
            return _error(400, str(exc), exc.field, exc.allowed)
        except UnknownIdError as exc:
            return _error(404, str(exc), "id", [])
        except ConfigError as exc:
            return _error(400, str(exc), exc.key, _allowed(exc.allowed))
        except ImdsMockError as exc:
            return _error(400, str(exc))
        return _json(status, data)
    if allowed:
        return _method_not_allowed(", ".join(sorted(set(allowed))))
    return _error(404, f"no such control route: {path}", "path", ["see /openapi.json"])


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
