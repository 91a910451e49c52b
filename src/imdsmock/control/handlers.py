"""What each control route does: one function per route, from a parsed call to a status and
JSON-ready data, by calling the :class:`~imdsmock.control.operations.Controller`.

The route table that maps methods and paths to these (and describes them in the OpenAPI
document) is :data:`imdsmock.control.routes.ROUTES`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple
from urllib.parse import urlencode

from imdsmock.config.inputs import MAX_DEPTH, check_tree
from imdsmock.control.dashboard import FILES, file, page
from imdsmock.control.operations import Controller
from imdsmock.core.requestlog import PAGE_DEFAULT, PAGE_MAX
from imdsmock.errors import ConfigError, did_you_mean

__all__ = ["MAX_WAIT", "REQUEST_FILTERS", "BadRequest", "Call", "Handler", "LongPoll"]


class BadRequest(Exception):
    """A malformed request (not a rejected value): bad JSON, wrong body shape."""

    def __init__(self, field: str, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.field = field
        self.allowed = allowed


class Call(NamedTuple):
    """One routed request: the controller, the path's parameters, the query and the body."""

    controller: Controller
    params: tuple[str, ...]
    query: Mapping[str, str]
    body: bytes
    prefix: str = "/v1"
    """Where the routes answered are: ``/v1``, or ``/v1/instances/NAME`` for a fleet
    instance's (the URLs an answer gives keep it)."""
    instances: tuple[str, ...] = ()
    """The fleet instances a call for several names (``?instance=web,api`` or ``*``);
    empty for a call on one instance."""


Handler = Callable[[Call], tuple[int, Any]]


class LongPoll(NamedTuple):
    """Data that is empty for now: the listener may hold the request up to ``wait`` seconds,
    asking the handler again, until there is something to send."""

    data: Any
    wait: float


def _object(call: Call, *, required: bool = True) -> dict[str, Any]:
    if not call.body.strip():
        if required:
            raise BadRequest("body", "a JSON object body is required", ["a JSON object"])
        return {}
    try:
        data = json.loads(call.body)
    except RecursionError:
        raise BadRequest(
            "body", f"the body is nested more than {MAX_DEPTH} levels deep", ["a JSON object"]
        ) from None
    except ValueError:  # not JSON, not UTF-8, or an integer longer than Python converts
        raise BadRequest("body", "the body is not valid JSON", ["a JSON object"]) from None
    if not isinstance(data, dict):
        raise BadRequest("body", "the body must be a JSON object", ["a JSON object"])
    check_tree(data, "body")
    return data


def _only(data: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    for key in data:
        if key not in keys:
            allowed = "one of the keys: " + ", ".join(keys)
            raise ConfigError(key, data[key], allowed, hint=did_you_mean(key, keys))


def state(call: Call) -> tuple[int, Any]:
    return 200, call.controller.state()


def metadata_edits(call: Call) -> tuple[int, Any]:
    return 200, {"metadata": dict(call.controller.snapshot.edits)}


def metadata_patch(call: Call) -> tuple[int, Any]:
    return 200, {"metadata": call.controller.edit_metadata(_object(call))}


def metadata_reset(call: Call) -> tuple[int, Any]:
    call.controller.reset_metadata()
    return 200, {"metadata": {}}


def metadata_get(call: Call) -> tuple[int, Any]:
    """The value served at the path now; 404 when nothing is."""
    value = call.controller.get_metadata(call.params[0])
    if value is None:
        return 404, {"error": "nothing is served at this path", "field": "path", "allowed": []}
    return 200, {"path": call.params[0], "value": value}


def metadata_put(call: Call) -> tuple[int, Any]:
    data = _object(call)
    _only(data, ("value",))
    if "value" not in data:
        raise ConfigError("value", None, "a string")
    call.controller.set_metadata(call.params[0], data["value"])
    return 200, {"path": call.params[0], "value": data["value"]}


def metadata_delete(call: Call) -> tuple[int, Any]:
    call.controller.delete_metadata(call.params[0])
    return 200, {"path": call.params[0], "value": None}


def instance(call: Call) -> tuple[int, Any]:
    return 200, call.controller.instance()


def instance_patch(call: Call) -> tuple[int, Any]:
    return 200, call.controller.set_instance(_object(call))


def instance_reset(call: Call) -> tuple[int, Any]:
    return 200, call.controller.reset_instance()


def scenarios(call: Call) -> tuple[int, Any]:
    return 200, {"scenarios": call.controller.scenarios()}


def scenario_start(call: Call) -> tuple[int, Any]:
    return 201, call.controller.start_scenario(_object(call))


def scenario_cancel(call: Call) -> tuple[int, Any]:
    call.controller.cancel_scenario(call.params[0])
    return 200, {"cancelled": call.params[0]}


def scenarios_of(call: Call) -> tuple[int, Any]:
    """The scenarios of several instances, each with its instance's name."""
    return 200, {"scenarios": call.controller.scenarios_of(call.instances)}


def scenario_start_on(call: Call) -> tuple[int, Any]:
    """One scenario (one id) started on several instances: one entry per instance."""
    return 201, {"scenarios": call.controller.start_scenario_on(call.instances, _object(call))}


def scenario_cancel_on(call: Call) -> tuple[int, Any]:
    """A scenario cancelled on each of several instances that runs it."""
    cancelled = call.controller.cancel_scenario_on(call.instances, call.params[0])
    return 200, {"cancelled": call.params[0], "instances": cancelled}


def options(call: Call) -> tuple[int, Any]:
    return 200, call.controller.options()


def options_patch(call: Call) -> tuple[int, Any]:
    return 200, call.controller.set_options(**_object(call))


def faults(call: Call) -> tuple[int, Any]:
    return 200, {"faults": call.controller.faults()}


def fault_add(call: Call) -> tuple[int, Any]:
    return 201, call.controller.add_fault(_object(call))


def faults_clear(call: Call) -> tuple[int, Any]:
    call.controller.clear_faults()
    return 200, {"faults": []}


def fault_remove(call: Call) -> tuple[int, Any]:
    call.controller.remove_fault(call.params[0])
    return 200, {"removed": call.params[0]}


def credentials_rotate(call: Call) -> tuple[int, Any]:
    _only(_object(call, required=False), ())
    return 200, call.controller.rotate_credentials()


def credentials_expire(call: Call) -> tuple[int, Any]:
    """Serve expired credentials (``on``, default true) or normal ones again."""
    data = _object(call, required=False)
    _only(data, ("on",))
    return 200, call.controller.expire_credentials(data.get("on", True))


def credentials_fail(call: Call) -> tuple[int, Any]:
    """Fail the next ``count`` (default 1) credential fetches."""
    data = _object(call, required=False)
    _only(data, ("count",))
    return 200, call.controller.fail_credentials(data.get("count", 1))


def clock(call: Call) -> tuple[int, Any]:
    return 200, call.controller.clock()


def clock_advance(call: Call) -> tuple[int, Any]:
    data = _object(call)
    _only(data, ("seconds",))
    if "seconds" not in data:
        raise ConfigError("seconds", None, "a number of seconds")
    return 200, call.controller.advance_clock(data["seconds"])


def clock_reset(call: Call) -> tuple[int, Any]:
    _only(_object(call, required=False), ())
    return 200, call.controller.reset_clock()


MAX_WAIT = 25
"""The longest a request-log poll is held, in seconds (under the listener's 30 s limit)."""

# The request log's filters: name -> (the value's type, what it keeps). "seconds" is a whole
# number of seconds up to MAX_WAIT.
FilterKind = Literal["string", "integer", "boolean", "seconds"]
REQUEST_FILTERS: Mapping[str, tuple[FilterKind, str]] = {
    "method": ("string", "Only this method."),
    "path": ("string", "Only paths starting with this."),
    "status": ("integer", "Only this status."),
    "client": ("string", "Only this client address."),
    "token": ("boolean", "Only with (true) or without a token."),
    "imdsv1": ("boolean", "Only IMDSv1 data requests (true)."),
    "limit": ("integer", f"Only the newest N (default {PAGE_DEFAULT}, at most {PAGE_MAX})."),
    "before": ("integer", "Only requests whose seq is below this (the next page: `next`)."),
    "after": ("integer", "Only requests whose seq is above this (those since a seq seen)."),
    "wait": (
        "seconds",
        "With no request to answer, wait up to this many seconds for one to be logged (a "
        "long poll, with `after`).",
    ),
}


def requests(call: Call) -> tuple[int, Any]:
    """One page of the request log, narrowed by the query's :data:`REQUEST_FILTERS`, and the
    URL of the next (older) page, or null; with ``wait``, an empty page is a
    :class:`LongPoll`."""
    filters: dict[str, Any] = {}
    for key, value in call.query.items():
        if key not in REQUEST_FILTERS:
            allowed = "one of the filters: " + ", ".join(REQUEST_FILTERS)
            raise ConfigError(key, value, allowed, hint=did_you_mean(key, REQUEST_FILTERS))
        kind = REQUEST_FILTERS[key][0]
        if kind == "integer":
            if not re.fullmatch(r"[0-9]{1,18}", value):
                raise ConfigError(key, value, "a whole number")
            filters[key] = int(value)
        elif kind == "seconds":
            if not re.fullmatch(r"[0-9]{1,2}", value) or int(value) > MAX_WAIT:
                raise ConfigError(key, value, f"a whole number of seconds from 0 to {MAX_WAIT}")
            filters[key] = int(value)
        elif kind == "boolean":
            if value not in ("true", "false"):
                raise ConfigError(key, value, "one of: true, false")
            filters[key] = value == "true"
        else:
            filters[key] = value
    if not 1 <= filters.get("limit", PAGE_DEFAULT) <= PAGE_MAX:
        raise ConfigError("limit", call.query["limit"], f"a whole number from 1 to {PAGE_MAX}")
    wait = filters.pop("wait", 0)
    entries, before = call.controller.request_page(**filters)
    following = None
    if before is not None:
        following = f"{call.prefix}/requests?" + urlencode({**call.query, "before": str(before)})
    if wait and not entries:
        return 200, LongPoll({"requests": entries, "next": following}, wait)
    return 200, {"requests": entries, "next": following}


def requests_clear(call: Call) -> tuple[int, Any]:
    call.controller.clear_requests()
    return 200, {"requests": []}


def report_imdsv1(call: Call) -> tuple[int, Any]:
    return 200, {"clients": call.controller.imdsv1_report()}


def instances(call: Call) -> tuple[int, Any]:
    return 200, {"instances": call.controller.instances()}


def instance_add(call: Call) -> tuple[int, Any]:
    return 201, call.controller.add_instance(_object(call))


def instance_entry(call: Call) -> tuple[int, Any]:
    return 200, call.controller.instance_entry(call.params[0])


def instance_change(call: Call) -> tuple[int, Any]:
    return 200, call.controller.change_instance(call.params[0], _object(call))


def instance_remove(call: Call) -> tuple[int, Any]:
    call.controller.remove_instance(call.params[0])
    return 200, {"removed": call.params[0]}


def instance_clients(call: Call) -> tuple[int, Any]:
    """The clients an instance served: address, why it was recognised, first and last
    seen, connections."""
    return 200, {"clients": call.controller.instance_clients(call.params[0])}


def dashboard_page(call: Call) -> tuple[int, Any]:
    """The dashboard page (:mod:`imdsmock.control.dashboard`)."""
    return 200, page()


def dashboard_file(call: Call) -> tuple[int, Any]:
    """One of the dashboard page's files; 404 for any other name."""
    found = file(call.params[0])
    if found is None:
        message = f"no such dashboard file: {call.params[0]}"
        return 404, {"error": message, "field": "file", "allowed": list(FILES)}
    return 200, found


def certificate(call: Call) -> tuple[int, Any]:
    """The identity-signing certificate, as PEM text."""
    return 200, call.controller.certificate()
