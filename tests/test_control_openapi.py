"""The control API's OpenAPI document is valid, and the live API survives a schema fuzzer."""

from __future__ import annotations

import json
import urllib.request

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate

from imdsmock.control.openapi import document
from imdsmock.control.routes import ROUTES
from imdsmock.core.clock import ManualClock
from support import make_config, serve


def test_openapi_document_validates() -> None:
    """The served description is a valid OpenAPI 3.0 document."""
    validate(document())


def test_openapi_document_describes_every_route() -> None:
    """Every route of the control route table appears in the document, and nothing else."""
    paths = document()["paths"]
    described = {
        (method.upper(), path)
        for path, ops in paths.items()
        for method in ops
        if method != "parameters"
    }
    routed = set()
    for method, pattern, _ in ROUTES:
        path = pattern.pattern.replace("([^/]+)", "{id}").replace("(.+)", "{path}")
        routed.add((method, path))
    assert routed | {("GET", "/v1/certificate")} == described


def test_live_control_api_serves_the_document_and_survives_fuzzing() -> None:
    """schemathesis drives every operation with generated input: no 5xx, answers as described.

    ``positive_data_acceptance`` is left out on purpose: the schema cannot express every
    rule (scenario times, IMDS path shapes), so some schema-valid input is rightly refused.
    """
    with serve(make_config(server={"control": True, "control-port": 0}), clock=ManualClock()) as r:
        url = r.app.control_url()
        assert url is not None
        with urllib.request.urlopen(url + "/openapi.json", timeout=5) as resp:
            assert json.loads(resp.read()) == document()
        schema = schemathesis.openapi.from_url(url + "/openapi.json")
        excluded = [schemathesis.checks.positive_data_acceptance]
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == len(ROUTES) + 1
        for operation in operations:

            @settings(
                max_examples=15,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(operation.as_strategy())
            def exercise(case: schemathesis.Case) -> None:
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
