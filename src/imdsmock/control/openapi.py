"""The OpenAPI 3.0 description of the control API, as data (served at ``/openapi.json``).

Written by hand next to the route table in :mod:`imdsmock.control.routes`; a test validates it
with openapi-spec-validator and fuzzes the live API against it with schemathesis.
"""

from __future__ import annotations

import copy
from typing import Any

from imdsmock._version import __version__

__all__ = ["document"]

_ENABLED = {"type": "string", "enum": ["enabled", "disabled"]}
_ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": {"$ref": "#/components/responses/Rejected"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
}


def _op(
    summary: str,
    response: dict[str, Any],
    *,
    status: str = "200",
    body: dict[str, Any] | None = None,
    body_required: bool = True,
    params: list[dict[str, Any]] | None = None,
    not_found: bool = False,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "operationId": summary.lower().replace(" ", "_").replace(",", "").replace("-", "_"),
        "responses": {status: _json(response), **_ERRORS},
    }
    if not_found:
        op["responses"]["404"] = {"$ref": "#/components/responses/NotFound"}
    if body is not None:
        op["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": body}},
        }
    if params:
        op["parameters"] = params
    return op


_PATH_PARAM = {
    "name": "path",
    "in": "path",
    "required": True,
    "description": "An IMDS path under the version root, e.g. meta-data/tags/instance/Owner",
    "schema": {"type": "string", "pattern": "^(meta-data|dynamic|user-data)(/[^/\\s]+)*$"},
}
_ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "field", "allowed"],
        "properties": {
            "error": {"type": "string", "description": "One line: what was wrong."},
            "field": {"type": "string", "nullable": True, "description": "The field at fault."},
            "allowed": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Options": {
        "type": "object",
        "description": "Instance metadata options as ModifyInstanceMetadataOptions sets them.",
        "additionalProperties": False,
        "properties": {
            "http-tokens": {"type": "string", "enum": ["optional", "required"]},
            "http-endpoint": _ENABLED,
            "hop-limit": {"type": "integer", "minimum": 1, "maximum": 64},
            "http-protocol-ipv6": _ENABLED,
            "instance-metadata-tags": _ENABLED,
        },
    },
    "Scenario": {
        "type": "object",
        "description": (
            "A scenario: spot-interruption, rebalance-recommendation, maintenance-event or "
            "asg-lifecycle; `at` is now, +30s, an RFC 3339 time or epoch seconds."
        ),
        "required": ["type"],
        "properties": {
            "type": {
                "type": "string",
                "enum": [
                    "spot-interruption",
                    "rebalance-recommendation",
                    "maintenance-event",
                    "asg-lifecycle",
                ],
            },
            "action": {"type": "string", "enum": ["terminate", "stop", "hibernate"]},
            "at": {"oneOf": [{"type": "string"}, {"type": "number"}]},
        },
        "additionalProperties": True,
    },
    "Fault": {
        "type": "object",
        "required": ["kind"],
        "additionalProperties": False,
        "properties": {
            "kind": {"type": "string", "enum": ["status", "latency", "reset", "hang"]},
            "path": {"type": "string", "description": "A glob over the request path."},
            "client": {"type": "string", "description": "An IP address or network."},
            "count": {"type": "integer", "minimum": 1, "nullable": True},
            "probability": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 1},
            "status": {"type": "integer", "enum": [429, 500, 503]},
            "latency-ms": {"type": "integer", "minimum": 1, "maximum": 600000},
        },
    },
    "FaultRule": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "kind": {"type": "string"},
            "path": {"type": "string"},
            "client": {"type": "string", "nullable": True},
            "count": {"type": "integer", "nullable": True},
            "probability": {"type": "number"},
            "status": {"type": "integer"},
            "latency-ms": {"type": "integer"},
        },
    },
    "Clock": {
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": ["system", "manual"]},
            "now": {"type": "number"},
            "now-iso": {"type": "string"},
            "started": {"type": "number"},
            "elapsed": {"type": "number"},
        },
    },
    "LoggedRequest": {
        "type": "object",
        "properties": {
            "seq": {"type": "integer"},
            "time": {"type": "number"},
            "method": {"type": "string"},
            "path": {"type": "string"},
            "status": {"type": "integer", "description": "0: no answer was sent (a fault)."},
            "client": {"type": "string"},
            "user-agent": {"type": "string", "nullable": True},
            "token": {"type": "boolean", "description": "An IMDSv2 token was sent."},
            "imdsv1": {"type": "boolean"},
        },
    },
    "Edits": {
        "type": "object",
        "description": "IMDS path -> value; null deletes the path.",
        "additionalProperties": {"type": "string", "nullable": True},
    },
}

_PATHS: dict[str, Any] = {
    "/v1/state": {
        "get": _op("Get state", _ANY_OBJECT),
    },
    "/v1/metadata": {
        "get": _op("List metadata edits", _ANY_OBJECT),
        "patch": _op("Edit metadata", _ANY_OBJECT, body=_ref("Edits")),
        "delete": _op("Reset metadata", _ANY_OBJECT),
    },
    "/v1/metadata/{path}": {
        "get": _op("Get metadata", _ANY_OBJECT, params=[_PATH_PARAM], not_found=True),
        "put": _op(
            "Set metadata",
            _ANY_OBJECT,
            params=[_PATH_PARAM],
            body={
                "type": "object",
                "required": ["value"],
                "additionalProperties": False,
                "properties": {"value": {"type": "string"}},
            },
        ),
        "delete": _op("Delete metadata", _ANY_OBJECT, params=[_PATH_PARAM]),
    },
    "/v1/scenarios": {
        "get": _op("List scenarios", _ANY_OBJECT),
        "post": _op("Start scenario", _ANY_OBJECT, status="201", body=_ref("Scenario")),
    },
    "/v1/scenarios/{id}": {
        "delete": _op("Cancel scenario", _ANY_OBJECT, params=[_ID_PARAM], not_found=True),
    },
    "/v1/options": {
        "get": _op("Get options", _ref("Options")),
        "patch": _op("Set options", _ref("Options"), body=_ref("Options")),
    },
    "/v1/faults": {
        "get": _op(
            "List faults",
            {
                "type": "object",
                "properties": {"faults": {"type": "array", "items": _ref("FaultRule")}},
            },
        ),
        "post": _op("Add fault", _ref("FaultRule"), status="201", body=_ref("Fault")),
        "delete": _op("Clear faults", _ANY_OBJECT),
    },
    "/v1/faults/{id}": {
        "delete": _op("Remove fault", _ANY_OBJECT, params=[_ID_PARAM], not_found=True),
    },
    "/v1/credentials/rotate": {
        "post": _op("Rotate credentials", _ANY_OBJECT),
    },
    "/v1/credentials/expire": {
        "post": _op(
            "Expire credentials",
            _ANY_OBJECT,
            body={
                "type": "object",
                "additionalProperties": False,
                "properties": {"on": {"type": "boolean"}},
            },
            body_required=False,
        ),
    },
    "/v1/credentials/fail": {
        "post": _op(
            "Fail credential refreshes",
            _ANY_OBJECT,
            body={
                "type": "object",
                "additionalProperties": False,
                "properties": {"count": {"type": "integer", "minimum": 0, "maximum": 1000}},
            },
            body_required=False,
        ),
    },
    "/v1/clock": {
        "get": _op("Get clock", _ref("Clock")),
    },
    "/v1/clock/advance": {
        "post": _op(
            "Advance clock",
            _ref("Clock"),
            body={
                "type": "object",
                "required": ["seconds"],
                "additionalProperties": False,
                "properties": {"seconds": {"type": "number", "minimum": 0}},
            },
        ),
    },
    "/v1/clock/reset": {
        "post": _op("Reset clock", _ref("Clock")),
    },
    "/v1/requests": {
        "get": _op(
            "List requests",
            {
                "type": "object",
                "properties": {"requests": {"type": "array", "items": _ref("LoggedRequest")}},
            },
            params=[
                _query("method", {"type": "string"}, "Only this method."),
                _query("path", {"type": "string"}, "Only paths starting with this."),
                _query("status", {"type": "integer", "minimum": 0}, "Only this status."),
                _query("client", {"type": "string"}, "Only this client address."),
                _query("token", {"type": "boolean"}, "Only with (true) or without a token."),
                _query("imdsv1", {"type": "boolean"}, "Only IMDSv1 data requests (true)."),
                _query("limit", {"type": "integer", "minimum": 0}, "Only the newest N."),
            ],
        ),
        "delete": _op("Clear requests", _ANY_OBJECT),
    },
    "/v1/reports/imdsv1": {
        "get": _op("IMDSv1 report", _ANY_OBJECT),
    },
    "/v1/certificate": {
        "get": {
            "summary": "Identity signing certificate",
            "operationId": "certificate",
            "responses": {
                "200": {
                    "description": "PEM",
                    "content": {"application/x-pem-file": {"schema": {"type": "string"}}},
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
            },
        }
    },
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "imdsmock control API",
        "version": __version__,
        "description": (
            "Drive a running imdsmock: metadata, scenarios, instance metadata options, "
            "faults, credentials, the clock and the request log. Every change is atomic; a "
            "rejected request changes nothing and answers 400."
        ),
    },
    "paths": _PATHS,
    "components": {
        "schemas": _SCHEMAS,
        "responses": {
            "Rejected": _json(_ref("Error"), "Rejected; nothing changed"),
            "Unauthorized": _json(_ref("Error"), "Missing or wrong bearer token"),
            "NotFound": _json(_ref("Error"), "No such path or id"),
        },
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{}, {"bearer": []}],
}


def document() -> dict[str, Any]:
    """A fresh copy of the OpenAPI document."""
    return copy.deepcopy(_DOCUMENT)
