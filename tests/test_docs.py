"""The documentation says what the program does: its sessions run as shown, its links resolve.

Every ``console`` block of README.md, docs/ and the compose recipes' READMEs is run (the
conventions are in :mod:`docblocks`): each ``$`` command in bash, with the real ``imdsmock``
and ``ec2-metadata-mock`` of this tree first on PATH, and what it prints is compared with the
lines the block shows. A block that names the mock it needs gets one, started on free ports;
``localhost:1338`` and ``:1339`` in the commands are rewritten to those ports and written back
in the output, so the docs show the default ports. The Python blocks are run by
tests/plugin/test_docs_examples.py.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import imdsmock
from docblocks import (
    ROOT,
    Block,
    Step,
    all_blocks,
    anchors,
    blocks,
    documents,
    links,
    output_matches,
    prose,
    steps,
)
from mockprocess import clean_env, free_port

SRC = Path(imdsmock.__file__).resolve().parent.parent
DOC_PORT, DOC_CONTROL_PORT = 1338, 1339
CONSOLE = all_blocks("console")


# -- running a console block ---------------------------------------------------------------------


def _shims(where: Path) -> Path:
    """A directory of ``imdsmock``, ``ec2-metadata-mock`` and ``python`` that run this tree."""
    where.mkdir(exist_ok=True)
    entry = {
        "imdsmock": "from imdsmock.cli import main",
        "ec2-metadata-mock": "from imdsmock.cli import aemm_main as main",
    }
    for name, imports in entry.items():
        code = f"import sys; {imports}; sys.exit(main(sys.argv[1:]))"
        script = f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -c {shlex.quote(code)} "$@"\n'
        (where / name).write_text(script)
    (where / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    for shim in where.iterdir():
        shim.chmod(0o755)
    return where


@dataclass
class Session:
    """Where a block's commands run: a directory, an environment, the mock's ports, and the
    processes started in the background."""

    cwd: Path
    env: dict[str, str]
    port: int
    control_port: int
    background: list[tuple[str, subprocess.Popen[str], Path]] = field(default_factory=list)

    def rewrite(self, command: str) -> str:
        """The command with the documented ports turned into this session's."""
        command = re.sub(rf"(?<=:){DOC_PORT}\b", str(self.port), command)
        return re.sub(rf"(?<=:){DOC_CONTROL_PORT}\b", str(self.control_port), command)

    def unwrite(self, output: str) -> str:
        """The output with this session's ports written back as the documented ones."""
        output = re.sub(rf"\b{self.port}\b", str(DOC_PORT), output)
        return re.sub(rf"\b{self.control_port}\b", str(DOC_CONTROL_PORT), output)

    def run(self, command: str) -> str:
        """Run one command to its end; stdout and stderr as a terminal would show them."""
        done = subprocess.run(
            ["bash", "-c", self.rewrite(command)],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
            check=False,
        )
        return self.unwrite(done.stdout)

    def start(self, command: str) -> None:
        """Start a command in the background and wait until the mock's port answers."""
        log = self.cwd / f"background-{len(self.background)}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                ["bash", "-c", "exec " + self.rewrite(command)],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.background.append((command, proc, log))
        deadline = time.monotonic() + 20
        while not _listening(self.port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`{command}` did not serve on :{self.port}:\n{log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop what was started in the background (SIGTERM, then kill)."""
        for _, proc, _ in self.background:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def docs_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One HOME for every block: the signing key is made once and cached there."""
    return tmp_path_factory.mktemp("docs-home")


@contextlib.contextmanager
def session(tmp_path: Path, home: Path) -> Iterator[Session]:
    """A fresh session: its own directory and ports, PATH leading to this tree's commands."""
    bin_dir = _shims(tmp_path / "bin")
    work = tmp_path / "work"
    work.mkdir()
    port, control_port = free_port(), free_port()
    env = clean_env(
        {
            "HOME": str(home),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(SRC),
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "100",
            "IMDSMOCK_PORT": str(port),
            "IMDSMOCK_CONTROL_PORT": str(control_port),
            "IMDSMOCK_CONTROL_URL": f"http://127.0.0.1:{control_port}",
        }
    )
    env.pop("PYTEST_XDIST_WORKER", None)
    s = Session(work, env, port, control_port)
    try:
        yield s
    finally:
        s.stop()


def run_block(block: Block, tmp_path: Path, home: Path) -> list[str]:
    """Run a console block; one message per command whose output differs from the block's."""
    problems: list[str] = []
    with session(tmp_path, home) as s:
        if block.mock_args is not None:
            s.start(f"imdsmock {block.mock_args}".strip())
        for step in steps(block):
            if step.background:
                s.start(step.command[:-1].strip())
                continue
            printed = s.run(step.command)
            if not output_matches(step.expected, printed.splitlines()):
                problems.append(_mismatch(block, step, printed))
    return problems


def _mismatch(block: Block, step: Step, printed: str) -> str:
    shown = "\n".join(step.expected) or "(nothing)"
    return (
        f"{block.where}: `{step.command}` printed:\n{printed.rstrip() or '(nothing)'}\n"
        f"-- but the block shows:\n{shown}"
    )


@pytest.mark.parametrize("block", CONSOLE, ids=[b.where for b in CONSOLE])
def test_console_block_prints_what_it_shows(block: Block, tmp_path: Path, docs_home: Path) -> None:
    """Every command of a console block prints what the block shows under it."""
    if block.skip_reason is not None:
        pytest.skip(f"{block.where}: {block.skip_reason}")
    problems = run_block(block, tmp_path, docs_home)
    assert not problems, "\n\n".join(problems)


def test_the_docs_have_console_blocks_to_run() -> None:
    """Extraction finds runnable console blocks, with and without a mock (else the test above
    would pass on nothing)."""
    runnable = [b for b in CONSOLE if b.skip_reason is None]
    assert len(runnable) >= 5
    assert any(b.mock_args is not None for b in runnable)


def test_a_session_is_a_console_block() -> None:
    """A block that shows ``$`` commands is marked ``console``, so it is run (a plain block
    would be read but never checked)."""
    unmarked = [
        b.where
        for path in documents()
        for b in blocks(path)
        if b.language != "console" and b.text.lstrip().startswith("$ ")
    ]
    assert not unmarked, f"sessions not marked ```console: {unmarked}"


WRONG = """\
Text.

<!-- doctest: mock --region eu-west-1 -->

```console
$ curl -s localhost:1338/latest/meta-data/placement/region
eu-west-2
$ echo one; echo two; echo three
one
...
$ imdsmock ctl clock show
kind: ...
...
```
"""


def test_a_block_showing_other_output_fails(tmp_path: Path, docs_home: Path) -> None:
    """The runner reports a command whose output is not what the block shows, and accepts
    ``...`` lines and text; the mock a directive names serves the commands."""
    page = tmp_path / "page.md"
    page.write_text(WRONG)
    (block,) = blocks(page)
    problems = run_block(block, tmp_path, docs_home)
    assert len(problems) == 1, problems
    assert (
        "`curl -s localhost:1338/latest/meta-data/placement/region` printed:\neu-west-1"
        in (problems[0])
    )


# -- links and references -------------------------------------------------------------------------

DOCUMENTS = documents()
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


@pytest.mark.parametrize("page", DOCUMENTS, ids=[str(p.relative_to(ROOT)) for p in DOCUMENTS])
def test_links_resolve(page: Path) -> None:
    """Every link to a file of the repository names one that exists, and every ``#anchor`` a
    heading of its page."""
    broken = []
    for number, target in links(page):
        if _EXTERNAL.match(target):
            continue
        name, _, anchor = target.partition("#")
        where = (page.parent / name).resolve() if name else page
        if not where.exists():
            broken.append(f"{page.relative_to(ROOT)}:{number}: {target} (no such file)")
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            broken.append(f"{page.relative_to(ROOT)}:{number}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


_PAGE_NAME = re.compile(r"(?<![\w/.-])([\w-]+\.md)\b")
_REPO_PATH = re.compile(
    r"`((?:\.ci|bench|deploy|docker|docs|examples|scripts|src|tests)/[\w./-]*?)"
    r"(?:::(\w+))?(?:\s[^`]*)?`"
)


def _ignored(path: str) -> bool:
    """Whether git ignores ``path`` (a directory runs write, such as bench/results/)."""
    check = ["git", "-C", str(ROOT), "check-ignore", "-q", "--no-index", path]
    return subprocess.run(check, check=False).returncode == 0


@pytest.mark.parametrize("page", DOCUMENTS, ids=[str(p.relative_to(ROOT)) for p in DOCUMENTS])
def test_named_files_exist(page: Path) -> None:
    """A page named in the prose (``networking.md``) is one of the docs, and a repository
    path in backticks (``src/imdsmock/cli.py``, ``tests/test_x.py::test_name``) exists, with
    the test or function it names."""
    pages = {p.name for p in DOCUMENTS} | {"README.md"}
    missing = []
    for number, line in prose(page):
        for name in _PAGE_NAME.findall(line):
            if name not in pages:
                missing.append(f"{page.relative_to(ROOT)}:{number}: {name}")
        for path, function in _REPO_PATH.findall(line):
            target = ROOT / path.rstrip("/")
            if not target.exists() and not _ignored(path):
                missing.append(f"{page.relative_to(ROOT)}:{number}: {path}")
            elif function and f"def {function}(" not in target.read_text():
                missing.append(f"{page.relative_to(ROOT)}:{number}: {path}::{function}")
        for dotted in _PYTHON_NAME.findall(line):
            if not _resolves(dotted):
                missing.append(f"{page.relative_to(ROOT)}:{number}: {dotted}")
    assert not missing, "named but not in the repository:\n" + "\n".join(missing)


_PYTHON_NAME = re.compile(r"`(imdsmock(?:\.\w+)+)(?<!\.yaml)(?<!\.json)(?<!\.toml)(?<!\.pem)`")


def _resolves(dotted: str) -> bool:
    """Whether ``imdsmock.a.b.Name`` is a module of the package or a name in one."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            if not hasattr(found, attr):
                return False
            found = getattr(found, attr)
        return True
    return False


_MODULE_ROW = re.compile(r"^\| `([\w.]+)` \|")


def test_architecture_names_modules_that_exist() -> None:
    """Each row of architecture.md's module table names a module or subpackage of imdsmock."""
    page = ROOT / "docs" / "architecture.md"
    rows = [m[1] for _, line in prose(page) if (m := _MODULE_ROW.match(line))]
    assert len(rows) > 20
    missing = [name for name in rows if importlib.util.find_spec(f"imdsmock.{name}") is None]
    assert not missing, f"architecture.md names modules that do not exist: {missing}"


def test_directives_stack_above_a_block(tmp_path: Path) -> None:
    """Several directive comments above a block all apply (root and mock here); a comment
    that is not a known directive is refused, so a misspelt one cannot go unnoticed."""
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- doctest: root reads the rules -->\n<!-- doctest: mock --clock manual -->\n\n"
        "```console\n$ true\n```\n"
    )
    (block,) = blocks(page)
    assert block.directives == (("root", "reads the rules"), ("mock", "--clock manual"))
    assert block.mock_args == "--clock manual"
    assert block.skip_reason == (None if os.geteuid() == 0 else "reads the rules")
    page.write_text("<!-- doctest: skipp typo -->\n```console\n$ true\n```\n")
    with pytest.raises(ValueError, match="unknown doctest directive"):
        blocks(page)
