"""End to end on the real Docker engine: each compose recipe, started from its own file.

For every recipe the app container reads IMDS with curl, boto3 resolves credentials and
region through IMDS over IMDSv2, a spot interruption triggered from the host through the
control API reaches the watcher in the app container, the mock stops cleanly on SIGTERM,
and ``down -v`` leaves no container, network or volume behind.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import pytest

pytestmark = pytest.mark.docker

DEFAULT_ID = "i-1234567890abcdef0"
ECS_RELATIVE_URI = "/v2/credentials/6f1c2d9e-8a3b-4c5d-9e7f-0a1b2c3d4e5f"  # the mock's default


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipe:
    """What one recipe promises the app."""

    name: str
    imds: str  # the base URL the app reaches IMDS at
    tokens: str  # the mock's http-tokens mode in this recipe
    instance_id: str
    region: str
    ecs: bool = False  # the ECS credential endpoint at 169.254.170.2 too


RECIPES = [
    Recipe(
        name="dnat-entrypoint",
        imds="http://169.254.169.254",
        tokens="optional",
        instance_id=DEFAULT_ID,
        region="us-east-1",
    ),
    Recipe(
        name="link-local-network",
        imds="http://169.254.169.254",
        tokens="required",
        instance_id="i-0a1b2c3d4e5f60718",  # from the recipe's mounted imdsmock.yaml
        region="eu-west-1",
        ecs=True,
    ),
    Recipe(
        name="sidecar",
        imds="http://169.254.169.254",
        tokens="required",
        instance_id=DEFAULT_ID,
        region="us-east-1",
    ),
    Recipe(
        name="env-only",
        imds="http://imds:1338",  # AWS_EC2_METADATA_SERVICE_ENDPOINT; no routing
        tokens="optional",
        instance_id=DEFAULT_ID,
        region="us-east-1",
    ),
]

CURL = ["curl", "-sS", "--max-time", "3"]
TOKEN_PUT = [*CURL, "-f", "-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 60"]


def read_instance_id(stack: Any, recipe: Recipe) -> tuple[int, str]:
    """curl in the app container, with a token handshake when the recipe requires one."""
    url = f"{recipe.imds}/latest/meta-data/instance-id"
    if recipe.tokens == "optional":
        return stack.exec("app", *CURL, "-f", url)
    script = (
        f"t=$({' '.join(_quote(a) for a in TOKEN_PUT)} {recipe.imds}/latest/api/token) && "
        f'{" ".join(CURL)} -f -H "X-aws-ec2-metadata-token: $t" {url}'
    )
    return stack.exec("app", "sh", "-c", script)


def _quote(arg: str) -> str:
    return f"'{arg}'" if " " in arg else arg


def http_code(stack: Any, *curl_args: str) -> str:
    """The HTTP status curl sees from the app container ("000" when nothing answered)."""
    _, out = stack.exec("app", *CURL, "-o", "/dev/null", "-w", "%{http_code}", *curl_args)
    return out.strip()[-3:]


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_recipe_serves_the_app_imds_credentials_and_spot_notices(
    compose_stack: Any, record_property: Any, recipe: Recipe
) -> None:
    """The recipe's compose file gives the app IMDS, SDK credentials and spot notices, and
    ``down -v`` removes everything it made."""
    record_property("recipe", recipe.name)

    def prove(text: str) -> None:
        record_property("proof", text)

    stack = compose_stack(recipe.name)
    started = time.monotonic()
    stack.up()
    prove(f"up and healthy in {time.monotonic() - started:.1f}s")

    # 1. Plain HTTP from the app, as curl or a shell script would.
    status, out = stack.wait(lambda: _ok(read_instance_id(stack, recipe)), timeout=20)
    assert status == 0, f"curl {recipe.imds} from the app failed: {out}"
    assert out.strip() == recipe.instance_id
    via = "v2 token" if recipe.tokens == "required" else "v1 GET"
    prove(f"curl {recipe.imds}/latest/meta-data/instance-id ({via}) = {out.strip()}")
    if recipe.tokens == "required":
        code = http_code(stack, f"{recipe.imds}/latest/meta-data/instance-id")
        assert code == "401", f"token-less GET in required mode answered {code}"
        prove("token-less GET refused with 401 (http-tokens=required)")

    # 2. The AWS SDK for Python, with the v1 fallback forbidden so success means IMDSv2.
    status, out = stack.exec(
        "app", "python3", "/app/whoami.py", env={"AWS_EC2_METADATA_V1_DISABLED": "true"}
    )
    assert status == 0, out
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["credential_method"] == "iam-role", seen
    assert seen["access_key_id"].startswith("ASIA"), seen
    assert seen["has_token"], seen
    assert seen["region"] == recipe.region, seen
    prove(f"boto3 iam-role credentials and region {recipe.region} over IMDSv2 (v1 disabled)")
    if recipe.ecs:
        status, out = stack.exec(
            "app", "python3", "/app/whoami.py",
            env={"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": ECS_RELATIVE_URI},
        )  # fmt: skip
        assert status == 0, out
        seen = json.loads(out.strip().splitlines()[-1])
        assert seen["credential_method"] == "container-role", seen
        assert seen["access_key_id"].startswith("ASIA"), seen
        prove("boto3 container-role credentials from 169.254.170.2 (ECS endpoint)")

    # 3. The control API: published on the host's loopback only, and token-guarded.
    mock = stack.container_id("imds")
    published = stack.run("port", "imds", "1339").stdout.split()
    assert published == [f"127.0.0.1:{stack.control_port}"], published
    status_code, _ = stack.control("GET", "/v1/scenarios", token=None)
    assert status_code == 401, status_code
    code = http_code(stack, "-X", "POST", "http://imds:1339/v1/scenarios")
    assert code in {"401", "403"}, f"the app reached the control API without a token: {code}"
    prove(f"control API on host 127.0.0.1:{stack.control_port} only; app without token: {code}")

    # 4. A spot interruption triggered from the host reaches the watcher in the app.
    assert "interruption notice" not in stack.logs("app")
    status_code, body = stack.control(
        "POST", "/v1/scenarios", {"type": "spot-interruption", "action": "terminate"}
    )
    assert status_code == 201, body
    noticed = stack.wait(
        lambda: "interruption notice action=terminate" in stack.logs("app"), timeout=20
    )
    assert noticed, stack.logs("app")[-2000:]
    prove("spot interruption POSTed from the host; app watcher saw action=terminate")

    # 5. The mock stops cleanly on SIGTERM within a second (else the engine would SIGKILL).
    stopped = stack.run("stop", "--timeout", "1", "imds")
    assert stopped.returncode == 0, stopped.stderr
    exit_code = stack.inspect(mock, "{{.State.ExitCode}}")
    assert exit_code == "0", f"mock exit code after SIGTERM: {exit_code}"
    prove("mock exited 0 on SIGTERM within 1s")

    # 6. Nothing of ours is left behind.
    stack.down()
    assert stack.leftovers() == []
    prove("down -v left no container, network or volume")


def _ok(result: tuple[int, str]) -> tuple[int, str] | None:
    return result if result[0] == 0 else None


def test_images_run_unprivileged_and_report_health(
    images: dict[str, str], docker_inspect: Any
) -> None:
    """The mock and demo-app images run as non-root users; the mock carries a HEALTHCHECK and
    execs the server as PID 1 with its output on stdout."""
    mock = json.loads(docker_inspect(images["mock"], "{{json .Config}}"))
    app = json.loads(docker_inspect(images["app"], "{{json .Config}}"))
    assert mock["User"] == "imdsmock"
    assert app["User"] == "app"
    assert mock["Healthcheck"]["Test"][0] == "CMD"
    assert mock["Entrypoint"][:3] == ["/bin/sh", "-c", 'exec imdsmock "$@" 2>&1']


def test_health_probe_passes_only_while_imds_answers(
    images: dict[str, str], docker_run: Any
) -> None:
    """The image's health probe succeeds against a serving mock and fails when IMDS is off
    (``http-endpoint disabled`` answers 403) or nothing listens on the probed port."""
    probe = ["python3", "-I", "-S", "/opt/imdsmock/healthcheck.py"]
    listening = ["python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 1338))"]
    serving = docker_run(images["mock"])
    disabled = docker_run(images["mock"], "--http-endpoint", "disabled")
    assert serving.exec(*probe, wait=15) == 0
    assert disabled.exec(*listening, wait=15) == 0
    assert disabled.exec(*probe) == 1
    assert serving.exec(*probe, env={"IMDSMOCK_PORT": "1"}) == 1


# The fleet recipe: each app service is an instance of its own (examples/compose/fleet).
FLEET = {
    # service: (its static address, instance-id, role, availability zone)
    "web": ("169.254.169.201", "i-0f1ee70000000a001", "web-role", "eu-west-1a"),
    "api": ("169.254.169.202", "i-0f1ee70000000a002", "api-role", "eu-west-1b"),
    "worker": ("169.254.169.203", "i-0f1ee70000000a003", "worker-role", "eu-west-1c"),
}
INTERRUPTED = "worker"


# Reads several IMDS paths over IMDSv2 (one token) from inside an app container, with the
# Python standard library the demo image has: {path: [status, body]} as JSON on stdout.
READ_PATHS = """
import json, sys, urllib.error, urllib.request
base = "http://169.254.169.254/latest/"
put = urllib.request.Request(base + "api/token", method="PUT",
                             headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
token = urllib.request.urlopen(put, timeout=3).read().decode()
out = {}
for path in sys.argv[1:]:
    get = urllib.request.Request(base + path, headers={"X-aws-ec2-metadata-token": token})
    try:
        with urllib.request.urlopen(get, timeout=3) as answer:
            out[path] = [answer.status, answer.read().decode()]
    except urllib.error.HTTPError as exc:
        out[path] = [exc.code, exc.read().decode()]
print(json.dumps(out))
"""


def imds_v2(stack: Any, service: str, *paths: str) -> dict[str, tuple[int, str]] | None:
    """``paths`` read over IMDSv2 from ``service``'s container at 169.254.169.254: each
    one's status and body (None when the container could not ask)."""
    status, out = stack.exec(service, "python3", "-c", READ_PATHS, *paths)
    if status != 0:
        return None
    return {path: (code, body) for path, (code, body) in json.loads(out).items()}


def app_logs(stack: Any) -> dict[str, str]:
    """Each app service's log lines (one compose call for all). Compose v1 prefixes a line
    with ``worker_1  |``, v2 with ``worker-1  |`` (older v2: the container's name)."""
    found: dict[str, list[str]] = {service: [] for service in FLEET}
    for line in stack.run("logs", "--no-color", *FLEET).stdout.splitlines():
        prefix = line.partition("|")[0].strip()
        for service in FLEET:
            if prefix == f"{service}_1" or prefix.endswith(f"{service}-1"):
                found[service].append(line)
    return {service: "\n".join(lines) for service, lines in found.items()}


def test_fleet_recipe_gives_each_service_its_own_instance(
    compose_stack: Any, record_property: Any
) -> None:
    """Each app service of the fleet recipe, told apart by its static address alone, gets its
    own instance-id, tags, IAM role and (through boto3) that role's credentials; a spot
    interruption sent with `imdsmock ctl --instance worker` reaches the worker only."""
    record_property("recipe", "fleet")

    def prove(text: str) -> None:
        record_property("proof", text)

    stack = compose_stack("fleet")
    started = time.monotonic()
    stack.up()
    prove(f"up and healthy in {time.monotonic() - started:.1f}s")

    # 1. Each container's identity, tags and role, read at 169.254.169.254 over IMDSv2, and
    #    boto3's own resolution (IMDSv1 forbidden) finding that role's credentials.
    keys = {}
    for service, (_, instance_id, role, zone) in FLEET.items():
        creds = f"meta-data/iam/security-credentials/{role}"
        read = [
            "meta-data/instance-id",
            "dynamic/instance-identity/document",
            "meta-data/tags/instance/Service",
            "meta-data/iam/security-credentials/",
            creds,
        ]
        seen = stack.wait(lambda s=service, r=read: imds_v2(stack, s, *r), timeout=20)
        assert seen is not None, f"{service} could not read IMDS"
        assert all(status == 200 for status, _ in seen.values()), seen
        assert seen["meta-data/instance-id"][1] == instance_id
        document = json.loads(seen["dynamic/instance-identity/document"][1])
        assert (document["instanceId"], document["availabilityZone"]) == (instance_id, zone)
        assert seen["meta-data/tags/instance/Service"][1] == service
        assert seen["meta-data/iam/security-credentials/"][1] == role
        served = json.loads(seen[creds][1])["AccessKeyId"]

        status, out = stack.exec(
            service, "python3", "/app/whoami.py", env={"AWS_EC2_METADATA_V1_DISABLED": "true"}
        )
        assert status == 0, out
        sdk = json.loads(out.strip().splitlines()[-1])
        assert sdk["credential_method"] == "iam-role", sdk
        assert sdk["access_key_id"] == served, (service, sdk, served)
        assert sdk["region"] == "eu-west-1", sdk
        keys[service] = served
    assert len(set(keys.values())) == len(FLEET), keys
    prove(
        "web, api, worker: own instance-id, zone, Service tag, role; boto3 (v1 disabled) got "
        "each role's own credentials"
    )

    # 2. The mock recognised each by its source address, and logged which instance answered.
    for service, (address, *_) in FLEET.items():
        status, body = stack.control("GET", f"/v1/instances/{service}/clients")
        assert status == 200, body
        assert [(c["client"], c["why"]) for c in body["clients"]] == [
            (address, f"source {address}")
        ]
        status, body = stack.control("GET", f"/v1/requests?client={address}&limit=500")
        assert status == 200, body
        assert {r["instance"] for r in body["requests"]} == {service}
    prove("each app recognised by its static source address; its requests logged as its instance")

    # 3. A spot interruption for the worker only, with the real `imdsmock ctl` in the mock's
    #    container (it reads the control token from the container's environment).
    assert not any("interruption notice" in log for log in app_logs(stack).values())
    status, out = stack.exec(
        "imds", "imdsmock", "ctl", "--instance", INTERRUPTED, "scenario", "start",
        "spot-interruption",
    )  # fmt: skip
    assert status == 0, out
    assert "type: spot-interruption" in out, out
    noticed = stack.wait(
        lambda: "interruption notice action=terminate" in app_logs(stack)[INTERRUPTED],
        timeout=20,
    )
    assert noticed, app_logs(stack)[INTERRUPTED][-2000:]
    spot = "meta-data/spot/instance-action"
    for service in FLEET:
        seen = imds_v2(stack, service, spot)
        assert seen is not None
        if service == INTERRUPTED:
            assert seen[spot][0] == 200, seen
            assert json.loads(seen[spot][1])["action"] == "terminate", seen
        else:
            assert seen[spot][0] == 404, (service, seen)
    logs = app_logs(stack)
    assert [s for s in FLEET if "interruption notice" in logs[s]] == [INTERRUPTED], logs
    prove("imdsmock ctl --instance worker: the worker's watcher saw the notice; web and api 404")

    # 4. Nothing of ours is left behind.
    stack.down()
    assert stack.leftovers() == []
    prove("down -v left no container, network or volume")
