"""Dependencies point one way; the public API is pinned."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "imdsmock"


def imports_of(path: Path) -> set[str]:
    """Module names a file imports (relative imports resolved within imdsmock)."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = path.parent.relative_to(SRC.parent).parts
                base = base[: len(base) - node.level + 1]
                names.add(".".join([*base, node.module or ""]).rstrip("."))
            elif node.module:
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


RULES = [
    ("netsetup", "imdsmock.server"),
    ("netsetup", "imdsmock.app"),
    ("model", "imdsmock.table"),
    ("model", "imdsmock.server"),
    ("imds", "imdsmock.server"),
    ("config", "imdsmock.server"),
    ("config", "imdsmock.configload"),
    ("configload", "imdsmock.server"),
    ("configbuild", "imdsmock.model"),
    ("configcheck", "imdsmock.model"),
    ("table", "imdsmock.server"),
]


@pytest.mark.parametrize(("module", "forbidden"), RULES, ids=[f"{a}-{b}" for a, b in RULES])
def test_dependencies_point_one_way(module: str, forbidden: str) -> None:
    """Lower layers never import higher ones (netsetup never imports the server)."""
    target = SRC / module
    files = sorted(target.rglob("*.py")) if target.is_dir() else [SRC / f"{module}.py"]
    assert files
    for file in files:
        assert forbidden not in imports_of(file), f"{file.name} imports {forbidden}"


def test_imds_core_reads_no_clock() -> None:
    """The IMDS handler is pure: it never reads the time itself."""
    source = (SRC / "imds.py").read_text()
    assert "time.time" not in source
    assert "import time" not in source
