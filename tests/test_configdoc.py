"""docs/configuration.md: generated from the schema, current, and true of every key.

Regenerate the tables after an intended change with
``IMDSMOCK_UPDATE_DOCS=1 pytest tests/test_configdoc.py``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from imdsmock.cli import serve_parser
from imdsmock.config.load import load
from imdsmock.config.schema import Config, InterfaceConfig, dashed, leaf_keys
from imdsmock.configdoc import BEGIN, END, Row, main, rows, update
from imdsmock.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"
UPDATE = os.environ.get("IMDSMOCK_UPDATE_DOCS") == "1"


def test_configuration_doc_is_current() -> None:
    """The key tables in docs/configuration.md are what the schema generates today."""
    text = DOC.read_text(encoding="utf-8")
    fresh = update(text)
    if UPDATE and fresh != text:
        DOC.write_text(fresh, encoding="utf-8")
        text = fresh
    assert text == fresh, "stale: IMDSMOCK_UPDATE_DOCS=1 pytest tests/test_configdoc.py"


def test_every_key_has_a_row_with_a_description() -> None:
    """Each configuration key, and each key of an extra interface, is documented."""
    documented = {row.key: row for row in rows()}
    fields = dataclasses.fields(InterfaceConfig)
    interface_keys = [f"instance.interfaces[].{dashed(f.name)}" for f in fields]
    for key in [*leaf_keys(Config), *interface_keys]:
        assert key in documented, key
        assert documented[key].description.endswith("."), key
    text = DOC.read_text(encoding="utf-8")
    for key in documented:
        assert f"| `{key}` |" in text, key


@pytest.mark.parametrize("row", [r for r in rows() if r.env], ids=lambda r: r.key)
def test_every_documented_variable_sets_its_key(row: Row) -> None:
    """Each documented IMDSMOCK_* variable reaches its key: the value lands or is refused by name."""
    names = re.findall(r"IMDSMOCK_[A-Z0-9_]+", row.env)
    assert names
    for var in names:
        assert _reaches(var, row.key), var


def _reaches(var: str, key: str) -> bool:
    """Whether the variable changes the configuration, or is refused naming ``key``."""
    try:
        cfg = load(env={var: "@@"})
    except ConfigError as exc:
        return exc.key.startswith(key)
    return cfg != Config()


def test_every_documented_flag_exists() -> None:
    """Each short flag the tables name is an option of `imdsmock` (and `imdsmock config`)."""
    usage = serve_parser().format_help()
    flags = [f for row in rows() for f in re.findall(r"`(--[a-z0-9-]+)`", row.flag)]
    assert flags
    for flag in flags:
        assert re.search(rf"{flag}[ ,\n]", usage), flag


def test_check_reports_a_stale_doc_and_write_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m imdsmock.configdoc --check` fails on stale tables; --write regenerates them."""
    doc = tmp_path / "configuration.md"
    doc.write_text(f"# Configuration\n\n{BEGIN}\n| old | table |\n{END}\n\nMore prose.\n")
    assert main(["--check", str(doc)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert main(["--write", str(doc)]) == 0
    assert main(["--check", str(doc)]) == 0
    text = doc.read_text()
    assert "| `options.hop-limit` |" in text
    assert text.endswith(f"{END}\n\nMore prose.\n")


def test_readme_and_docs_link_the_configuration_reference() -> None:
    """The README and the docs that mention configuration docs link docs/configuration.md."""
    assert "(docs/configuration.md)" in (ROOT / "README.md").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        for line in page.read_text().splitlines():
            if "configuration docs" in line:
                assert "configuration.md" in line, f"{page.name}: {line}"
