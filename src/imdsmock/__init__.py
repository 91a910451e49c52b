"""imdsmock: a faithful EC2 Instance Metadata Service for laptops, compose stacks and CI."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

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
    "Config": ("imdsmock.config", "Config"),
    "ConfigError": ("imdsmock.errors", "ConfigError"),
    "ImdsMockError": ("imdsmock.errors", "ImdsMockError"),
    "ManualClock": ("imdsmock.clock", "ManualClock"),
    "MockIMDS": ("imdsmock.api", "MockIMDS"),
    "SystemClock": ("imdsmock.clock", "SystemClock"),
    "load_config": ("imdsmock.configload", "load"),
}

if TYPE_CHECKING:
    from .api import MockIMDS
    from .clock import ManualClock, SystemClock
    from .config import Config
    from .configload import load as load_config
    from .errors import ConfigError, ImdsMockError


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'imdsmock' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
