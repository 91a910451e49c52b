"""boto3 (botocore's own IMDS code, unpatched) from different source addresses gets each
fleet instance's credentials and region.

An SDK cannot choose its source address, so the test makes the kernel choose it: in a
network namespace of its own, a local route to 127.0.0.12 carries the preferred source
127.0.0.2 (and 127.0.0.13 the source 127.0.0.3). The mock and boto3 both run in that
namespace; an SDK pointed at http://127.0.0.12:PORT connects from 127.0.0.2. Skipped
(saying why) where namespaces cannot be made.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mockprocess import clean_env

FLEET = """\
instance: {instance-id: i-0d0d0d0d0d0d0d0d0, iam-role: default-role, region: us-east-1}
instances:
  - name: web
    match: {source: [127.0.0.2]}
    instance: {instance-id: i-0aaaaaaaaaaaaaaa1, iam-role: web-role, region: eu-west-1}
  - name: worker
    match: {source: [127.0.0.3/32]}
    instance: {instance-id: i-0bbbbbbbbbbbbbbb2, iam-role: worker-role, region: ap-south-1}
    options: {http-tokens: required}
"""

# What botocore reads from IMDS: the role credentials (the default chain) and the region.
CLIENT = """\
import json
import botocore.session
from botocore.utils import IMDSRegionProvider, InstanceMetadataFetcher

session = botocore.session.get_session()
creds = session.get_credentials()
endpoint = session.get_config_variable("ec2_metadata_service_endpoint")
fetched = InstanceMetadataFetcher(
    timeout=2, num_attempts=2, config={"ec2_metadata_service_endpoint": endpoint}
).retrieve_iam_role_credentials()
print(json.dumps({
    "method": creds.method,
    "key": creds.get_frozen_credentials().access_key,
    "role": fetched["role_name"],
    "region": IMDSRegionProvider(session).provide(),
}))
"""

# Destination -> the source the namespace's route gives it.
SOURCES = {"127.0.0.1": "127.0.0.1", "127.0.0.12": "127.0.0.2", "127.0.0.13": "127.0.0.3"}


def _why_not() -> str | None:
    if sys.platform != "linux":
        return "network namespaces exist only on Linux"
    if os.geteuid() != 0:
        return "needs root to create a network namespace"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    return None


@pytest.fixture
def namespace() -> Iterator[str]:
    """A network namespace with loopback up and the source-choosing routes; removed after."""
    why = _why_not()
    if why is not None:
        pytest.skip(why)
    name = f"imfl{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", name], check=False, capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"ip netns add failed here: {made.stderr.strip()}")
    try:
        run = ["ip", "netns", "exec", name]
        subprocess.run([*run, "ip", "link", "set", "lo", "up"], check=True)
        for destination, source in SOURCES.items():
            if destination != source:
                route = ["ip", "route", "replace", "local", f"{destination}/32", "dev", "lo"]
                subprocess.run([*run, *route, "src", source, "table", "local"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_boto3_from_each_source_address_gets_its_instance(namespace: str, tmp_path: Path) -> None:
    """botocore's credential chain and region provider, connecting from 127.0.0.2, 127.0.0.3
    and 127.0.0.1, get web's, worker's (IMDSv2: tokens required) and the default
    instance's role, credentials and region."""
    config = tmp_path / "fleet.yaml"
    config.write_text(FLEET)
    run = ["ip", "netns", "exec", namespace]
    env = clean_env({"PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    listen = ["--host", "0.0.0.0", "--port", "1338", "--control-port", "1339"]
    server = subprocess.Popen(
        [*run, sys.executable, "-m", "imdsmock", "-c", str(config), *listen],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        deadline = time.monotonic() + 15
        while "serving IMDS on" not in server.stderr.readline():
            assert server.poll() is None, "the mock exited"
            assert time.monotonic() < deadline, "the mock did not start"
        seen = {}
        for destination, source in SOURCES.items():
            client_env = {
                **env,
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://{destination}:1338/",
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            }
            done = subprocess.run(
                [*run, sys.executable, "-c", CLIENT],
                check=False,
                env=client_env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            seen[source] = json.loads(done.stdout)
    finally:
        server.terminate()
        server.wait(10)
        if server.stderr is not None:
            server.stderr.close()
    assert {s: (d["method"], d["role"], d["region"]) for s, d in seen.items()} == {
        "127.0.0.1": ("iam-role", "default-role", "us-east-1"),
        "127.0.0.2": ("iam-role", "web-role", "eu-west-1"),
        "127.0.0.3": ("iam-role", "worker-role", "ap-south-1"),
    }
    assert len({d["key"] for d in seen.values()}) == 3
