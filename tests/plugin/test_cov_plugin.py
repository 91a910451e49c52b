"""The pytest plugin with a session instance file that is not valid."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

# The `user_project` fixture (tests/plugin/conftest.py).
RunPytest = Callable[..., subprocess.CompletedProcess[str]]


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
