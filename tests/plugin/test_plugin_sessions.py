"""The plugin in whole pytest sessions of a user's project, run in a subprocess."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

# The `user_project` fixture (tests/plugin/conftest.py).
RunPytest = Callable[..., subprocess.CompletedProcess[str]]

WORKER_TESTS = """
    import os
    import pytest

    @pytest.mark.parametrize("n", range(8))
    def test_each_worker_has_its_own_fresh_mock(imds, n):
        assert imds.get_metadata("meta-data/tags/instance/Run") is None
        imds.set_tag("Run", str(n))
        imds.clock.advance(60)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(f"url-{worker}-{n}", "w") as f:
            f.write(imds.url)
"""


def test_xdist_workers_each_run_their_own_mock(user_project: RunPytest, tmp_path: Path) -> None:
    """Under pytest-xdist every worker serves its own mock, and every test starts fresh."""
    result = user_project({"test_workers.py": WORKER_TESTS}, "-p", "xdist", "-n", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 passed" in result.stdout
    urls = {p.read_text() for p in tmp_path.glob("url-gw*")}
    workers = {p.name.split("-")[1] for p in tmp_path.glob("url-gw*")}
    assert len(workers) == 2
    assert len(urls) == 2


def test_bad_marker_values_fail_their_test_in_one_line(
    user_project: RunPytest, tmp_path: Path
) -> None:
    """A wrong option, scenario or parameter fails its test with one line, shown once, naming
    the keyword as written (account_id), the value, what is allowed and the close match."""
    tests = """
        import pytest

        @pytest.mark.imds(http_tokens="sometimes")
        def test_bad_option(imds):
            pass

        @pytest.mark.imds(scenario={"type": "meteor-strike"})
        def test_bad_scenario(imds):
            pass

        @pytest.mark.imds("required")
        def test_positional(imds):
            pass

        @pytest.mark.parametrize("imds", ["required"], indirect=True)
        def test_bad_param(imds):
            pass

        @pytest.mark.imds(account_id="12")
        def test_bad_account(imds):
            pass

        @pytest.mark.imds(regoin="eu-west-1")
        def test_misspelt(imds):
            pass

        def test_still_fine_afterwards(imds):
            assert imds.config.options.http_tokens == "optional"
    """
    result = user_project({"test_bad.py": tests})
    assert result.returncode == 1
    assert "6 errors" in result.stdout
    assert "1 passed" in result.stdout
    for line in (
        "imdsmock: http_tokens is 'sometimes'; expected one of: optional, required",
        "imdsmock: scenario.type is 'meteor-strike'; expected one of: spot-interruption",
        "imdsmock: @pytest.mark.imds takes keywords only, got ('required',)",
        "imdsmock: an indirect `imds` parameter is 'required'; expected a dict of options",
        "imdsmock: account_id is '12'; expected 12 digits\n",
        "imdsmock: regoin is 'eu-west-1'; expected a short option (account_id, ",
    ):
        assert result.stdout.count(line) == 1, line
    assert "a section or a field; did you mean 'region'?\n" in result.stdout
    assert "account-id" not in result.stdout
    assert "During handling" not in result.stdout
    assert "Traceback" not in result.stdout


def test_the_ini_option_names_the_session_instance_file(
    user_project: RunPytest, tmp_path: Path
) -> None:
    """`imdsmock_config` in the ini file configures the instance every test starts from."""
    files = {
        "pytest.ini": "[pytest]\nimdsmock_config = instance.yaml\n",
        "instance.yaml": "instance:\n  region: ap-southeast-2\n  instance-type: t4g.nano\n",
        "test_ini.py": """
            import boto3

            def test_region(imds):
                assert boto3.Session().region_name == "ap-southeast-2"
                assert imds.get_metadata("meta-data/instance-type") == "t4g.nano"
        """,
    }
    result = user_project(files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_entry_point_loads_the_plugin_and_nothing_more(
    user_project: RunPytest, tmp_path: Path
) -> None:
    """pytest finds the plugin by its pytest11 entry point; no server import until used."""
    tests = """
        import sys

        def test_nothing_loaded(request):
            assert request.config.pluginmanager.has_plugin("imdsmock")
            loaded = sorted(m for m in sys.modules if m.startswith("imdsmock"))
            assert loaded == ["imdsmock", "imdsmock._version", "imdsmock.pytest_plugin"], loaded
    """
    result = user_project({"test_lazy.py": tests}, autoload=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bad_session_instance_file_errors_each_test_in_one_line(user_project: RunPytest) -> None:
    """An `imdsmock_config` file with a bad value makes the tests using `imds` error with one
    line naming the key, instead of a traceback; tests without the fixture still run."""
    files = {
        "pytest.ini": "[pytest]\nimdsmock_config = instance.yaml\n",
        "instance.yaml": "options:\n  http-tokens: sometimes\n",
        "test_bad_file.py": """
            def test_uses_the_mock(imds):
                pass

            def test_does_not():
                pass
        """,
    }
    result = user_project(files)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed, 1 error" in result.stdout
    assert "imdsmock: options.http-tokens is 'sometimes'" in result.stdout
    assert "Traceback" not in result.stdout
