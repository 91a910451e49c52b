"""The SDK environment: variables that point AWS SDKs at a mock and at nothing else.

A test that runs against the mock must not find the developer's own credentials, profile
or container endpoint first: the SDKs' credential chains try the environment, the shared
config files, the ECS/EKS container endpoints and web identity before IMDS. So besides
``AWS_EC2_METADATA_SERVICE_ENDPOINT`` (honoured by botocore, the AWS CLI and the Go, Java
and JavaScript SDKs), every other ``AWS_*`` variable is removed and the shared files are
pointed at an empty file.

The region is set too (``AWS_REGION`` and ``AWS_DEFAULT_REGION``) to the instance's
placement region: botocore never reads the region from IMDS (only the Go and Java SDKs
can), so without it ``boto3.client("s3")`` would fail with ``NoRegionError`` on an
"instance" that knows its region. Pass ``region=False`` to test region discovery code.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, MutableMapping

__all__ = ["cleared", "patched", "sdk_environ"]

# Short, so a test of a hang or a dropped hop-limited packet fails in a second, not five.
METADATA_TIMEOUT = "1"


def sdk_environ(url: str, region: str | None) -> dict[str, str]:
    """The variables to set for an SDK to use the IMDS at ``url`` and nothing else."""
    env = {
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": url.rstrip("/") + "/",
        "AWS_EC2_METADATA_DISABLED": "false",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_METADATA_SERVICE_TIMEOUT": METADATA_TIMEOUT,
        "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "1",
    }
    if region is not None:
        env["AWS_REGION"] = region
        env["AWS_DEFAULT_REGION"] = region
    return env


def cleared(environ: Mapping[str, str], keep: Mapping[str, str]) -> list[str]:
    """The ``AWS_*`` variables of ``environ`` to remove (all but those in ``keep``)."""
    return sorted(name for name in environ if name.startswith("AWS_") and name not in keep)


@contextlib.contextmanager
def patched(
    values: Mapping[str, str], environ: MutableMapping[str, str] | None = None
) -> Iterator[None]:
    """Set ``values`` and remove every other ``AWS_*`` variable; restore both on exit."""
    env = os.environ if environ is None else environ
    saved = {name: env[name] for name in env if name.startswith("AWS_") or name in values}
    try:
        for name in cleared(env, values):
            del env[name]
        env.update(values)
        yield
    finally:
        for name in [n for n in env if n.startswith("AWS_") or n in values]:
            del env[name]
        env.update(saved)
