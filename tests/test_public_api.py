"""The public API: what ``import imdsmock`` promises, and what it costs."""

from __future__ import annotations

import subprocess
import sys

import imdsmock


def test_the_public_names_are_pinned() -> None:
    """__all__ changes only on purpose: adding or removing a name updates this test."""
    assert sorted(imdsmock.__all__) == [
        "Config",
        "ConfigError",
        "ImdsMockError",
        "ManualClock",
        "MockIMDS",
        "SystemClock",
        "load_config",
    ]
    for name in imdsmock.__all__:
        assert getattr(imdsmock, name).__name__ in (name, "load")


def test_importing_the_package_imports_no_server() -> None:
    """`import imdsmock` (done by pytest for the plugin) loads the server only on first use."""
    code = (
        "import sys, imdsmock, imdsmock.pytest_plugin\n"
        "assert not [m for m in sys.modules if m.startswith('imdsmock.') "
        "and m not in ('imdsmock.pytest_plugin', 'imdsmock._version')], sorted(sys.modules)\n"
        "assert 'httptools' not in sys.modules and 'cryptography' not in sys.modules\n"
        "imdsmock.MockIMDS\n"
        "assert 'imdsmock.app' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_package_dir_lists_the_lazy_public_names() -> None:
    """dir(imdsmock) shows the public names even before they are first imported."""
    assert set(imdsmock.__all__) <= set(dir(imdsmock))
