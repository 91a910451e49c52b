"""The OpenAPI 3.0 description of the control API (served at ``/openapi.json``), built from
its route table.

:func:`document` walks the routes (:data:`imdsmock.control.routes.ROUTES`): each route's
path template is an OpenAPI path, its path parameters come from the template, and its
:class:`Operation` says what it takes and answers. The shared schemas come from the
declarations the server validates with: the instance metadata options
(:data:`imdsmock.config.options.OPTIONS`) and the fault kinds, statuses and latency limit
(:mod:`imdsmock.core.faults`). A test validates the document with openapi-spec-validator
and fuzzes the live API against it with schemathesis.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from imdsmock._version import __version__
from imdsmock.config.options import OPTIONS, MetadataOption
from imdsmock.config.scenarios import ACTIONS
from imdsmock.config.scenarios import FIELDS as SCENARIO_FIELDS
from imdsmock.core.faults import KINDS, MAX_LATENCY_MS, STATUSES

__all__ = ["ANY_OBJECT", "Documented", "Operation", "document", "query", "ref"]

Schema = dict[str, Any]

ANY_OBJECT: Schema = {"type": "object", "additionalProperties": True}
"""The schema of an answer described no closer: a JSON object."""


def ref(name: str) -> Schema:
    """A reference to one of the document's shared schemas (``Options``, ``Fault``...)."""
    return {"$ref": f"#/components/schemas/{name}"}


def query(name: str, schema: Schema, description: str) -> Schema:
    """An optional query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """How the document describes one route: what it takes and what it answers."""

    summary: str
    """A few words; the operationId is made from them unless ``operation_id`` is given."""
    response: Schema = field(default_factory=lambda: ANY_OBJECT)
    """The schema of a successful answer."""
    status: int = 200
    """The status of a successful answer."""
    body: Schema | None = None
    """The schema of the JSON request body; None: the route takes none."""
    body_required: bool = True
    """Whether the body may be left out."""
    query: tuple[Schema, ...] = ()
    """Query parameters (made by :func:`query`)."""
    not_found: bool = False
    """It answers 404 for an id or path that does not exist."""
    rejects: bool = True
    """It answers 400 for a rejected request."""
    answers: str = "OK"
    """The description of a successful answer."""
    operation_id: str | None = None
    """The operationId, when not made from the summary."""


class Documented(Protocol):
    """A route as the document needs it (:class:`imdsmock.control.routes.Route`)."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def content_type(self) -> str: ...
    @property
    def doc(self) -> Operation | None: ...
    @property
    def public(self) -> bool: ...


def document(routes: Iterable[Documented]) -> dict[str, Any]:
    """The OpenAPI document of ``routes`` (a route without ``doc`` is left out)."""
    paths: dict[str, Any] = {}
    for route in routes:
        if route.doc is not None:
            operation = _operation(route.path, route.content_type, route.doc, route.public)
            paths.setdefault(route.path, {})[route.method.lower()] = operation
    return copy.deepcopy({**_DOCUMENT, "paths": paths, "components": _COMPONENTS})


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(path: str, content_type: str, doc: Operation, public: bool) -> Schema:
    """One operation; a public one needs no token (no 401, an empty security list)."""
    op_id = doc.operation_id or re.sub(r"[ -]", "_", doc.summary.lower().replace(",", ""))
    answer = {"description": doc.answers, "content": {content_type: {"schema": doc.response}}}
    responses: Schema = {str(doc.status): answer}
    if doc.rejects:
        responses["400"] = {"$ref": "#/components/responses/Rejected"}
    if not public:
        responses["401"] = {"$ref": "#/components/responses/Unauthorized"}
    if doc.not_found:
        responses["404"] = {"$ref": "#/components/responses/NotFound"}
    op: Schema = {"summary": doc.summary, "operationId": op_id, "responses": responses}
    if public:
        op["security"] = []
    if doc.body is not None:
        op["requestBody"] = {
            "required": doc.body_required,
            "content": {"application/json": {"schema": doc.body}},
        }
    params = [_PATH_PARAMS[name] for name in re.findall(r"\{(\w+)\}", path)] + list(doc.query)
    if params:
        op["parameters"] = params
    return op


_PATH_PARAMS: dict[str, Schema] = {
    "path": {
        "name": "path",
        "in": "path",
        "required": True,
        "description": "An IMDS path under the version root, e.g. meta-data/tags/instance/Owner",
        "schema": {"type": "string", "pattern": "^(meta-data|dynamic|user-data)(/[^/\\s]+)*$"},
    },
    "id": {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
    "file": {"name": "file", "in": "path", "required": True, "schema": {"type": "string"}},
    "name": {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "A fleet instance's name (default: the top-level instance)",
        "schema": {"type": "string"},
    },
}


def _option_schema(option: MetadataOption) -> Schema:
    if option.bounds is not None:
        low, high = option.bounds
        return {"type": "integer", "minimum": low, "maximum": high}
    return {"type": "string", "enum": list(option.choices)}


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
        "properties": {option.name: _option_schema(option) for option in OPTIONS},
    },
    "Scenario": {
        "type": "object",
        "description": (
            f"A scenario: {', '.join(SCENARIO_FIELDS)}; `at` is now, +30s, an RFC 3339 time "
            "or epoch seconds; the other fields are those of its type (docs/scenarios.md)."
        ),
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "enum": list(SCENARIO_FIELDS)},
            "action": {"type": "string", "enum": list(ACTIONS)},
            "at": {"oneOf": [{"type": "string"}, {"type": "number"}]},
        },
        "additionalProperties": True,
    },
    "Fault": {
        "type": "object",
        "required": ["kind"],
        "additionalProperties": False,
        "properties": {
            "kind": {"type": "string", "enum": list(KINDS)},
            "path": {"type": "string", "description": "A glob over the request path."},
            "client": {"type": "string", "description": "An IP address or network."},
            "count": {"type": "integer", "minimum": 1, "nullable": True},
            "probability": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 1},
            "status": {"type": "integer", "enum": list(STATUSES)},
            "latency-ms": {"type": "integer", "minimum": 1, "maximum": MAX_LATENCY_MS},
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
            "instance": {
                "type": "string",
                "description": "The fleet instance that answered (only from a fleet).",
            },
        },
    },
    "FleetInstance": {
        "type": "object",
        "description": "One instance of the fleet (default: the top-level one).",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "default": {"type": "boolean"},
            "instance-id": {"type": "string"},
            "iam-role": {"type": "string", "nullable": True},
            "match": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
            "running": {
                "type": "array",
                "items": ANY_OBJECT,
                "description": "The scenarios it runs, as its /v1/scenarios lists them.",
            },
            "clients": {"type": "integer", "description": "Clients it served."},
            "requests": {
                "type": "integer",
                "description": "Requests of it the log holds (in the list only).",
            },
        },
        "additionalProperties": True,
    },
    "FleetEntry": {
        "type": "object",
        "description": (
            "An instance as an entry of the configuration's `instances` spells it: name, "
            "match (source, listener, host), instance, options, paths, scenarios."
        ),
        "properties": {
            "name": {"type": "string"},
            "match": {
                "type": "object",
                "properties": {
                    kind: {"type": "array", "items": {"type": "string"}}
                    for kind in ("source", "listener", "host")
                },
            },
            "instance": ANY_OBJECT,
            "options": ANY_OBJECT,
            "paths": {
                "type": "object",
                "additionalProperties": {"type": "string", "nullable": True},
            },
            "scenarios": {"type": "array", "items": ref("Scenario")},
        },
        "additionalProperties": True,
    },
    "FleetClient": {
        "type": "object",
        "properties": {
            "client": {"type": "string"},
            "why": {"type": "string", "description": "The rule that matched it."},
            "first": {"type": "number"},
            "last": {"type": "number"},
            "connections": {"type": "integer"},
        },
    },
    "Instance": {
        "type": "object",
        "description": "The instance as served: its keys, derived values in place of nulls.",
        "properties": {
            "instance": ANY_OBJECT,
            "derived": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Keys left null whose value is derived from the others.",
            },
            "changed": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Keys changed at run time (a reset undoes them).",
            },
        },
    },
    "InstanceChanges": {
        "type": "object",
        "description": (
            "Instance keys as the configuration spells them (region, instance-type, "
            "tags.Owner for one entry of a map) -> values; null sets a key to null."
        ),
        "additionalProperties": True,
    },
    "Edits": {
        "type": "object",
        "description": "IMDS path -> value; null deletes the path.",
        "additionalProperties": {"type": "string", "nullable": True},
    },
}


_COMPONENTS: dict[str, Any] = {
    "schemas": _SCHEMAS,
    "responses": {
        "Rejected": _json(ref("Error"), "Rejected; nothing changed"),
        "Unauthorized": _json(ref("Error"), "Missing or wrong bearer token"),
        "NotFound": _json(ref("Error"), "No such path or id"),
    },
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
}

# Key order as served: openapi, info, paths, components, security.
_DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "imdsmock control API",
        "version": __version__,
        "description": (
            "Drive a running imdsmock: metadata, the instance's facts, scenarios, instance "
            "metadata options, "
            "faults, credentials, the clock and the request log. Every change is atomic; a "
            "rejected request changes nothing and answers 400. Every route also answers for "
            "one instance of a fleet under /v1/instances/{name}/... or with ?instance=name; "
            "the scenario routes also for several (names separated by commas, or * for "
            "every instance)."
        ),
    },
    "paths": {},
    "components": {},
    "security": [{}, {"bearer": []}],
}
