"""imdsmock: a faithful EC2 Instance Metadata Service for laptops, compose stacks and CI."""

from __future__ import annotations

from imdsmock._version import __version__ as __version__

# Not typing.TYPE_CHECKING: the package is imported first by both commands, and importing
# typing would delay the moment they start ignoring SIGHUP (imdsmock.cli); mypy treats a
# name TYPE_CHECKING as true all the same.
TYPE_CHECKING = False

__all__ = [
    "Config",
    "ConfigError",
    "ImdsMockError",
    "ManualClock",
    "MockIMDS",
    "SystemClock",
    "load_config",
]

# Public name -> (module, attribute). Imported on first use: pytest imports this package
# (for the pytest11 plugin) in every session, and the server's imports are not free.
_LAZY = {
    "Config": ("imdsmock.config.schema", "Config"),
    "ConfigError": ("imdsmock.errors", "ConfigError"),
    "ImdsMockError": ("imdsmock.errors", "ImdsMockError"),
    "ManualClock": ("imdsmock.core.clock", "ManualClock"),
    "MockIMDS": ("imdsmock.api", "MockIMDS"),
    "SystemClock": ("imdsmock.core.clock", "SystemClock"),
    "load_config": ("imdsmock.config.load", "load"),
}

if TYPE_CHECKING:
    from typing import Any

    from imdsmock.api import MockIMDS
    from imdsmock.config.load import load as load_config
    from imdsmock.config.schema import Config
    from imdsmock.core.clock import ManualClock, SystemClock
    from imdsmock.errors import ConfigError, ImdsMockError


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'imdsmock' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
