"""The Python blocks of README.md, docs/ and the recipes' READMEs run as shown.

A block that defines ``test_`` functions is a test file and runs under the plugin, all of them
in one pytest session; any other block is a script and runs to its end in a fresh process.
A block written after ``<!-- doctest: skip REASON -->`` is reported skipped (see
tests/docblocks.py); the console blocks are run by tests/test_docs.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from docblocks import Block, all_blocks

RunPytest = Callable[..., subprocess.CompletedProcess[str]]

EXAMPLES = all_blocks("python")
TESTS = [b for b in EXAMPLES if "def test_" in b.text and b.skip_reason is None]
SCRIPTS = [b for b in EXAMPLES if "def test_" not in b.text]


def _file_name(block: Block) -> str:
    return f"test_{block.path.stem.lower().replace('-', '_')}_{block.line}.py"


def test_the_docs_have_examples() -> None:
    """Extraction finds the examples of every page that has some (an empty list would make
    the tests below vacuous)."""
    pages = {b.path.name for b in EXAMPLES}
    assert {"README.md", "python.md", "scenarios.md", "control-api.md"} <= pages
    assert sum(1 for b in EXAMPLES if b.path.name == "python.md") >= 5
    assert TESTS
    assert SCRIPTS


def test_the_test_examples_pass_under_the_plugin(user_project: RunPytest) -> None:
    """Every example that is a test file passes, all in one pytest session."""
    result = user_project({_file_name(b): b.text for b in TESTS})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout


@pytest.mark.parametrize("block", SCRIPTS, ids=[b.where for b in SCRIPTS])
def test_the_script_example_runs(block: Block, tmp_path: Path) -> None:
    """Examples that are scripts run to the end with a clean AWS environment."""
    if block.skip_reason is not None:
        pytest.skip(f"{block.where}: {block.skip_reason}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    script = subprocess.run(
        [sys.executable, "-c", block.text],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert script.returncode == 0, f"{block.where}:\n{script.stderr}"
