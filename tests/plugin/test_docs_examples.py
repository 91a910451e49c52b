"""The Python examples of docs/python.md and of the README's Python section run as shown."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RunPytest = Callable[..., subprocess.CompletedProcess[str]]
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def python_blocks(path: Path, section: str | None = None) -> list[str]:
    """The ```python blocks of a Markdown file (only those of ``section`` when given)."""
    text = path.read_text()
    if section is not None:
        text = text.split(section, 1)[1]
        text = re.split(r"\n## ", text, maxsplit=1)[0]
    return _BLOCK.findall(text)


EXAMPLES = [
    *(("python.md", i, b) for i, b in enumerate(python_blocks(ROOT / "docs" / "python.md"), 1)),
    *(
        ("README.md", i, b)
        for i, b in enumerate(
            python_blocks(ROOT / "README.md", "## Python API and pytest plugin"), 1
        )
    ),
]


def test_the_docs_have_examples() -> None:
    """Extraction finds the examples (an empty list would make the next test vacuous)."""
    assert sum(1 for doc, _, _ in EXAMPLES if doc == "python.md") >= 5
    assert any(doc == "README.md" for doc, _, _ in EXAMPLES)
    assert TEST_FILES
    assert SCRIPTS


TEST_FILES = {
    f"test_{Path(doc).stem.lower()}_{number}.py": code
    for doc, number, code in EXAMPLES
    if "def test_" in code
}
SCRIPTS = [(doc, number, code) for doc, number, code in EXAMPLES if "def test_" not in code]


def test_the_test_examples_pass_under_the_plugin(user_project: RunPytest) -> None:
    """Every example that is a test file passes, all in one pytest session."""
    result = user_project(TEST_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout


@pytest.mark.parametrize(
    ("doc", "number", "code"), SCRIPTS, ids=[f"{d}-{n}" for d, n, _ in SCRIPTS]
)
def test_the_script_example_runs(doc: str, number: int, code: str, tmp_path: Path) -> None:
    """Examples that are scripts run to the end with a clean AWS environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    script = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert script.returncode == 0, f"{doc} example {number}:\n{script.stderr}"
