"""The control API's OpenAPI document is valid, and the live API survives a schema fuzzer."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate

from imdsmock.config.options import OPTIONS
from imdsmock.control import handlers
from imdsmock.control.openapi import Operation, document
from imdsmock.control.routes import ROUTES, Route
from imdsmock.core.clock import ManualClock
from imdsmock.core.faults import KINDS, MAX_LATENCY_MS, STATUSES
from support import control_config, make_config, serve

DOCUMENTED = [route for route in ROUTES if route.doc is not None]


def test_openapi_document_validates() -> None:
    """The served description is a valid OpenAPI 3.0 document."""
    validate(document(ROUTES))


def test_openapi_document_describes_every_route() -> None:
    """Every described route of the control route table appears in the document under its
    method and path template, and nothing else does (the document's own addresses not)."""
    paths = document(ROUTES)["paths"]
    described = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert described == {(route.method, route.path) for route in DOCUMENTED}
    assert "/openapi.json" not in paths
    assert ("GET", "/v1/certificate") in described


def test_a_route_added_to_the_table_appears_in_the_document() -> None:
    """The document is generated from the route table: a new route shows up, with the path
    parameter its template names and the body and answer its Operation gives."""
    extra = Route(
        "POST",
        "/v1/things/{id}",
        handlers.state,
        Operation(summary="Poke thing", status=202, body={"type": "object"}, not_found=True),
    )
    doc = document((*ROUTES, extra))
    validate(doc)
    op = doc["paths"]["/v1/things/{id}"]["post"]
    assert op["operationId"] == "poke_thing"
    assert [p["name"] for p in op["parameters"]] == ["id"]
    assert op["requestBody"]["content"]["application/json"]["schema"] == {"type": "object"}
    assert set(op["responses"]) == {"202", "400", "401", "404"}
    assert "/v1/things/{id}" not in document(ROUTES)["paths"]
    assert extra.pattern.fullmatch("/v1/things/t-1") is not None
    assert extra.pattern.fullmatch("/v1/things/a/b") is None


def test_openapi_schemas_carry_the_declared_options_and_fault_vocabulary() -> None:
    """The Options and Fault schemas hold the allowed values and ranges the server checks."""
    schemas = document(ROUTES)["components"]["schemas"]
    options = schemas["Options"]["properties"]
    assert list(options) == [option.name for option in OPTIONS]
    for option in OPTIONS:
        if option.bounds is None:
            assert options[option.name]["enum"] == list(option.choices)
        else:
            bounds = (options[option.name]["minimum"], options[option.name]["maximum"])
            assert bounds == option.bounds
    fault = schemas["Fault"]["properties"]
    assert fault["kind"]["enum"] == list(KINDS)
    assert fault["status"]["enum"] == list(STATUSES)
    assert fault["latency-ms"]["maximum"] == MAX_LATENCY_MS


def test_every_scenario_type_the_schema_lists_is_started_by_the_api_and_no_other() -> None:
    """The Scenario schema's types and actions are those the server takes: each listed type
    starts (201) on the live API, and a type or action not listed is a 400."""
    scenario = document(ROUTES)["components"]["schemas"]["Scenario"]["properties"]
    types, actions = scenario["type"]["enum"], scenario["action"]["enum"]
    assert {"spot-interruption", "maintenance-event"} <= set(types)
    with serve(control_config(), clock=ManualClock()) as r:
        url = f"{r.app.control_url()}/v1/scenarios"

        def post(body: dict[str, object]) -> int:
            req = urllib.request.Request(
                url, json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    return int(resp.status)
            except urllib.error.HTTPError as err:
                return int(err.code)

        needs = {"asg-lifecycle": {"state": "InService"}}  # the one type with a required field
        started = [post({"type": kind, "at": "+1h", **needs.get(kind, {})}) for kind in types]
        assert started == [201] * len(types)
        for action in actions:
            assert post({"type": "spot-interruption", "action": action, "at": "+1h"}) == 201
        assert post({"type": "meteor-strike"}) == 400
        assert post({"type": "spot-interruption", "action": "explode"}) == 400


def test_live_control_api_serves_the_document_and_survives_fuzzing() -> None:
    """schemathesis drives every operation with generated input: no 5xx, answers as described.

    ``positive_data_acceptance`` is left out on purpose: the schema cannot express every
    rule (scenario times, IMDS path shapes), so some schema-valid input is rightly refused.
    The request log is asked without a wait: holding an empty answer is tested on its own.
    """
    with serve(make_config(server={"control": True, "control-port": 0}), clock=ManualClock()) as r:
        url = r.app.control_url()
        assert url is not None
        with urllib.request.urlopen(url + "/openapi.json", timeout=5) as resp:
            assert json.loads(resp.read()) == document(ROUTES)
        schema = schemathesis.openapi.from_url(url + "/openapi.json")
        excluded = [schemathesis.checks.positive_data_acceptance]
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == len(DOCUMENTED)
        for operation in operations:

            @settings(
                max_examples=15,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(operation.as_strategy())
            def exercise(case: schemathesis.Case) -> None:
                if case.query and "wait" in case.query:
                    # A held long poll (test_control_dashboard.py) would only slow the fuzzer.
                    case.query["wait"] = 0
                case.call_and_validate(base_url=url, excluded_checks=excluded)

            exercise()
        # The IMDS listener still answers after whatever the fuzzer set.
        r.app.controller.clear_faults()
        r.app.controller.set_options(http_endpoint="enabled", http_tokens="optional")
        r.app.controller.reset_metadata()
        assert r.get("/latest/meta-data/instance-id") == (200, b"i-1234567890abcdef0")


@pytest.mark.parametrize("target", ["/openapi.json", "/v1/openapi.json"])
def test_openapi_document_is_served_at_both_addresses(target: str) -> None:
    """The document is served at /openapi.json and /v1/openapi.json."""
    cfg = make_config(server={"control": True, "control-port": 0})
    with serve(cfg, clock=ManualClock()) as r:
        url = f"{r.app.control_url()}{target}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert json.loads(resp.read())["openapi"].startswith("3.0")
