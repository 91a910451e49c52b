"""pytest plugin: an EC2 instance inside a test (registered through ``pytest11``).

Fixtures:

* ``imds`` -- the mock, reset to the instance as configured for this test (markers,
  indirect parameters), with the environment pointing AWS SDKs at it and at nothing else;
* ``imds_server`` -- the one :class:`~imdsmock.api.MockIMDS` of the session (of the
  worker, under pytest-xdist), on a free port of 127.0.0.1 and a manual clock.

Configure an instance per test with the ``imds`` marker or an indirect parameter::

    @pytest.mark.imds(http_tokens="required", region="eu-west-1", tags={"Team": "data"})
    def test_reads_tags(imds): ...

Importing this module must cost nothing: pytest loads it in every session of every
project that has imdsmock installed, so the server is imported only when a fixture runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from imdsmock.api import MockIMDS

__all__ = ["imds", "imds_server"]

_INI = "imdsmock_config"
_ENV_KEY = "environ"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the ini option naming a config file for the session's instance."""
    parser.addini(_INI, "imdsmock config file (YAML, JSON or TOML) for the `imds` fixture")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``imds`` marker so ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers",
        "imds(**options): configure the mock EC2 instance of the `imds` fixture for this "
        "test (http_tokens, region, tags, user_data, iam_role, scenario, environ=False, "
        "any MockIMDS override)",
    )


@pytest.fixture(scope="session")
def imds_server(pytestconfig: pytest.Config) -> Iterator[MockIMDS]:
    """The session's mock IMDS (one per xdist worker): started once, never reset here."""
    from imdsmock.api import MockIMDS
    from imdsmock.errors import ImdsMockError

    file = pytestconfig.getini(_INI) or None
    if file is not None:
        file = str(pytestconfig.rootpath / str(file))
    try:
        server = MockIMDS(file).start()
    except ImdsMockError as exc:
        _fail(exc)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def imds(
    imds_server: MockIMDS, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> MockIMDS:
    """The mock instance for this test, fresh: no state of an earlier test is visible.

    The environment points AWS SDKs at it (create ``boto3.Session()`` in the test) unless
    ``environ=False`` is given; scenarios given as ``scenario=`` or ``scenarios=`` start
    when the test does.
    """
    from imdsmock.errors import ImdsMockError
    from imdsmock.sdkenv import cleared

    options = _options(request)
    scenarios = _scenarios(options)
    apply_env = options.pop(_ENV_KEY, True)
    try:
        imds_server.reset(**options)
        for scenario in scenarios:
            imds_server.start_scenario(scenario)
    except ImdsMockError as exc:
        _fail(exc)
    if apply_env:
        values = imds_server.environ()
        for name in cleared(os.environ, values):
            monkeypatch.delenv(name)
        for name, value in values.items():
            monkeypatch.setenv(name, value)
    return imds_server


def _fail(exc: Exception) -> NoReturn:
    """Fail the test with the error's one line, shown once (not chained to the error)."""
    raise pytest.fail.Exception(f"imdsmock: {exc}", pytrace=False) from None


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Marker keywords (class and module ones first, the test's own last) then the param."""
    from imdsmock.errors import quote

    options: dict[str, Any] = {}
    for mark in reversed(list(request.node.iter_markers("imds"))):
        if mark.args:
            pytest.fail(
                f"imdsmock: @pytest.mark.imds takes keywords only, got {quote(mark.args)}",
                pytrace=False,
            )
        options.update(mark.kwargs)
    param = getattr(request, "param", None)
    if param is not None:
        if not isinstance(param, dict):
            pytest.fail(
                f"imdsmock: an indirect `imds` parameter is {quote(param)}; "
                "expected a dict of options",
                pytrace=False,
            )
        options.update(param)
    return options


def _scenarios(options: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    one = options.pop("scenario", None)
    if one is not None:
        out.append(one)
    out.extend(options.pop("scenarios", None) or ())
    return out
