"""The layout: subpackages in layers along the data flow, imports pointing down, no loops.

Every import counts: at module level, inside functions and under ``TYPE_CHECKING``. A module
may import from its own layer or a lower one; within a layer, the module graph has no cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "imdsmock"

# Lowest first. A name is a subpackage (all of its modules) or a single top-level module.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("imdsmock._version", "imdsmock.errors"),  # foundations: imported by everything
    ("imdsmock.netsetup",),  # routing plans: beside the server, never importing it
    ("imdsmock.config",),  # schema, loading, rules, dump, defaults
    ("imdsmock.signing",),  # identity signatures and the certificate
    ("imdsmock.instance",),  # one instance as plain data
    ("imdsmock.core",),  # pure: table, state, the IMDS handler, tokens, gate, faults, log
    ("imdsmock.control",),  # operations, routes, OpenAPI, the ctl client
    ("imdsmock.serve",),  # asyncio listeners, binding, the real-credential refresher
    ("imdsmock.aemm",),  # the Go mock's interface mapped onto Config
    ("imdsmock.capture",),  # walking a running IMDS into a configuration that reproduces it
    ("imdsmock.sdkenv", "imdsmock.app"),  # assembly
    ("imdsmock.watch", "imdsmock.api"),  # reloads; the Python API
    ("imdsmock.completion",),  # shell completion scripts, from the parsers it is given
    ("imdsmock.cli", "imdsmock.pytest_plugin", "imdsmock.configdoc"),  # entry points
    ("imdsmock.__main__", "imdsmock"),  # the package itself (lazy public names)
)

MAX_TOP_LEVEL_MODULES = 12


def module_name(path: Path) -> str:
    """``src/imdsmock/core/state.py`` -> ``imdsmock.core.state`` (a package is its folder)."""
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def imports_of(path: Path, known: Iterable[str]) -> set[str]:
    """The imdsmock modules a file imports, wherever the import statement stands."""
    known = set(known)
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            targets = [
                f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                for a in node.names
            ]
        else:
            continue
        for name in targets:
            target = name
            while target and target not in known:  # `import imdsmock.core.state.x` -> module
                target = target.rpartition(".")[0]
            if target and target != here:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def layer_of(module: str) -> int:
    best: tuple[int, int] | None = None  # (length of the matching name, layer)
    for index, names in enumerate(LAYERS):
        for name in names:
            inside = module == name or (module.startswith(name + ".") and name != "imdsmock")
            if inside and (best is None or len(name) > best[0]):
                best = (len(name), index)
    if best is None:
        raise KeyError(module)
    return best[1]


def upward_imports(graph: Mapping[str, set[str]]) -> list[str]:
    """Each import from a lower layer to a higher one, as ``a -> b``."""
    return sorted(
        f"{a} -> {b}" for a, deps in graph.items() for b in deps if layer_of(b) > layer_of(a)
    )


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def subpackage_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def test_every_module_has_a_layer() -> None:
    """A new module or subpackage is placed in LAYERS before it can be imported."""
    unplaced = []
    for module in all_modules():
        try:
            layer_of(module)
        except KeyError:
            unplaced.append(module)
    assert not unplaced


def test_imports_point_down_the_layers() -> None:
    """A module imports only from its own layer or below (functions and TYPE_CHECKING too)."""
    assert upward_imports(import_graph()) == []


def test_no_import_loops_between_modules() -> None:
    """No module reaches itself through its imports."""
    assert cycles(import_graph()) == []


def test_no_import_loops_between_subpackages() -> None:
    """Folded to subpackages (and top-level modules), the graph is still a DAG."""
    folded: dict[str, set[str]] = {}
    for a, deps in import_graph().items():
        folded.setdefault(subpackage_of(a), set()).update(
            subpackage_of(b) for b in deps if subpackage_of(b) != subpackage_of(a)
        )
    assert cycles(folded) == []


def test_few_modules_stay_outside_subpackages() -> None:
    """Only the entry points and the assembly live at the top of the package."""
    top = [m for m, p in all_modules().items() if p.parent == SRC]
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


@pytest.mark.parametrize(
    ("edge", "problem"),
    [
        (("imdsmock.core.state", "imdsmock.serve.server"), "upward"),
        (("imdsmock.core.table", "imdsmock.core.state"), "cycle"),
    ],
    ids=["upward-import", "loop-within-a-layer"],
)
def test_the_checks_catch_an_added_import(edge: tuple[str, str], problem: str) -> None:
    """Adding one bad import to today's graph makes the checks above fail."""
    graph = {k: set(v) for k, v in import_graph().items()}
    a, b = edge
    assert b not in graph[a]
    graph[a].add(b)
    if problem == "upward":
        assert f"{a} -> {b}" in upward_imports(graph)
    else:
        assert any(a in c and b in c for c in cycles(graph))


def test_imds_core_reads_no_clock() -> None:
    """The IMDS handler is pure: it never reads the time itself."""
    source = (SRC / "core" / "imds.py").read_text()
    assert "time.time" not in source
    assert "import time" not in source


def _reaches_an_app(node: ast.expr) -> bool:
    """Whether an expression is ``app``, ``self.app``, ``x._app.server``... (a name ending in app)."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        if isinstance(node, ast.Attribute) and node.attr.lower().endswith("app"):
            return True
        node = node.value
    return isinstance(node, ast.Name) and node.id.lower().endswith("app")


def test_only_the_app_assigns_app_attributes() -> None:
    """Outside app.py nothing assigns an App's attributes (or theirs): a reload goes through
    App.reconfigure."""
    found = []
    for name, path in all_modules().items():
        if name == "imdsmock.app":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            else:
                continue
            for target in targets:
                if isinstance(target, ast.Attribute) and _reaches_an_app(target.value):
                    found.append(f"{name}:{node.lineno}")
    assert found == []
