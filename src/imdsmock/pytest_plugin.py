"""pytest plugin: an EC2 instance inside a test (registered through ``pytest11``).

Importing this module must cost nothing: pytest loads it in every session of every
project that has imdsmock installed, so the server is only imported when a fixture runs.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``imds`` marker so ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers",
        "imds(**options): configure the mock EC2 instance the `imds` fixture serves "
        "(http_tokens, region, tags, user_data, scenario, ...)",
    )
