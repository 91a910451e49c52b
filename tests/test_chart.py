"""The Helm chart, rendered by the real Helm engine (helm-python-sdk: Helm's Go library in
a shared object, no helm binary): strict lint, the values schema, every values file of
deploy/helm/imdsmock/ci/ against three Kubernetes versions' schemas
(kubernetes-validate, strict), and the objects each mode makes."""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from chartkit import CHART, ci_values, documents, render

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is in the test extra")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is in the test extra"
)

from imdsmock.netsetup.nodeplan import DEFAULT_INTERFACES  # noqa: E402

# The oldest the chart allows (Chart.yaml kubeVersion), one between, the newest known.
KUBE_VERSIONS = ("1.25.0", "1.31.0", "1.37.0")
CI = ci_values()
NODE_CAPABILITIES = {"NET_ADMIN", "NET_RAW"}


@functools.cache
def _objects(name: str, tests: bool = True) -> tuple[dict[str, Any], ...]:
    return tuple(documents(render(CI[name]), tests=tests))


def objects(values: dict[str, Any] | str, *, tests: bool = True) -> list[dict[str, Any]]:
    """The objects of a render: of a ci/ file by name, or of values."""
    if isinstance(values, str):
        return list(_objects(values, tests))
    return documents(render(values), tests=tests)


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objs, kind)
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def pod_specs(objs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload and pod."""
    for o in objs:
        if o["kind"] == "Pod":
            yield f"Pod/{o['metadata']['name']}", o["spec"]
        elif o["kind"] in ("Deployment", "DaemonSet"):
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Its init containers and containers."""
    return [*spec.get("initContainers", []), *spec["containers"]]


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = (c for c in containers(spec) if c["name"] == name)
    return found


def env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def mode_of(name: str) -> str:
    return str(CI[name].get("mode", "service"))


SERVICE = [n for n in CI if mode_of(n) == "service"]
NODE = [n for n in CI if mode_of(n) == "node"]


def test_ci_holds_values_of_both_modes() -> None:
    """ci/ has several values files of each mode, the defaults of each among them."""
    assert len(SERVICE) >= 2
    assert len(NODE) >= 3
    assert {"service-default.yaml", "node-default.yaml"} <= set(CI)


# -- lint and schema -----------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("name", [None, *CI], ids=["defaults", *CI])
def test_lint_strict_finds_nothing(name: str | None, version: str) -> None:
    """`helm lint --strict --kube-version V` (warnings are errors) has no warning or error,
    with the defaults and with each ci/ values file, for each Kubernetes version."""
    values = CI[name] if name else None
    report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{version}")
    assert report["errors"] == []
    findings = [m for m in report["messages"] if m["severity"] >= 2]
    assert findings == []


BAD_VALUES = [
    ({"mode": "nodes"}, "at '/mode': value must be one of 'service', 'node'"),
    ({"mode": "Service"}, "at '/mode': value must be one of 'service', 'node'"),
    ({"mode": 1}, "at '/mode': got number, want string"),
    ({"modes": "node"}, "additional properties 'modes' not allowed"),
    ({"hopLimit": 0}, "at '/hopLimit': minimum: got 0, want 1"),
    ({"hopLimit": 65}, "at '/hopLimit': maximum: got 65, want 64"),
    ({"hopLimit": "2"}, "at '/hopLimit': got string, want null or integer"),
    ({"node": {"interfaces": []}}, "at '/node/interfaces': minItems: got 0, want 1"),
    ({"node": {"interfaces": ["eth0; reboot"]}}, "at '/node/interfaces/0'"),
    ({"node": {"dummyLink": "yes"}}, "at '/node/dummyLink': got string, want boolean"),
    ({"node": {"port": 70000}}, "at '/node/port': maximum: got 70,000, want 65,535"),
    ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy': value must be one of"),
    ({"service": {"replicas": -1}}, "at '/service/replicas': minimum: got -1, want 0"),
    ({"controlToken": {"existingSecret": "Not_A_Name"}}, "at '/controlToken/existingSecret'"),
    ({"rbac": {"create": "true"}}, "at '/rbac/create': got string, want boolean"),
]


@pytest.mark.parametrize(
    ("values", "message"),
    BAD_VALUES,
    ids=[json.dumps(values, separators=(",", ":")) for values, _ in BAD_VALUES],
)
def test_schema_refuses_bad_values_naming_them(values: dict[str, Any], message: str) -> None:
    """A bad value stops the install (validation, render, lint) with a line naming where it
    is and what is allowed."""
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmValuesError) as err:
        chart.validate_schema(values)
    assert message in str(err.value)
    with pytest.raises(helm.HelmValuesError) as rendered:
        render(values)
    assert message in str(rendered.value)
    assert any(message in e for e in helm.lint(str(CHART), values, strict=True)["errors"])


def test_every_default_and_ci_value_meets_the_schema() -> None:
    """The defaults and each ci/ file are valid (so the schema types every key: it refuses
    keys it does not know)."""
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(None)
        for values in CI.values():
            chart.validate_schema(values)


def test_a_mode_the_schema_would_refuse_fails_the_render_too(tmp_path: Path) -> None:
    """With the schema skipped (`helm --skip-schema-validation`), the templates refuse an
    unknown mode themselves, in one line."""
    bare = tmp_path / "imdsmock"
    shutil.copytree(CHART, bare)
    (bare / "values.schema.json").unlink()
    with helm.Chart.load(str(bare)) as chart, pytest.raises(helm.HelmRenderError) as err:
        chart.render({"mode": "daemonset"}, name="imdsmock", namespace="imdsmock")
    assert 'mode is "daemonset"; expected one of: service, node' in str(err.value)


# -- Kubernetes schemas --------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("name", list(CI))
def test_every_object_is_valid_kubernetes(name: str, version: str) -> None:
    """Every object rendered from each ci/ file passes `kubernetes-validate --strict` (no
    field the API does not know) for Kubernetes 1.25, 1.31 and 1.37."""
    objs = objects(name)
    assert objs
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:  # pragma: no cover - the message
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}")


# -- what each mode makes ------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CI))
def test_host_network_only_in_node_mode(name: str) -> None:
    """Only node mode's DaemonSet is on the host network; service mode has a Deployment and
    a ClusterIP Service, node mode neither."""
    objs = objects(name, tests=False)
    kinds = {o["kind"] for o in objs}
    on_host = [where for where, spec in pod_specs(objs) if spec.get("hostNetwork")]
    if mode_of(name) == "node":
        assert on_host == [f"DaemonSet/{one(objs, 'DaemonSet')['metadata']['name']}"]
        assert not kinds & {"Deployment", "Service"}
    else:
        assert on_host == []
        assert "DaemonSet" not in kinds
        assert one(objs, "Service")["spec"]["type"] == "ClusterIP"
        one(objs, "Deployment")
    test_pods = [spec for where, spec in pod_specs(objects(name)) if where.startswith("Pod/")]
    assert [spec.get("hostNetwork", False) for spec in test_pods] == [False]


@pytest.mark.parametrize("name", list(CI))
def test_no_container_is_privileged_and_only_routing_adds_capabilities(name: str) -> None:
    """Every container drops ALL capabilities, is not privileged, cannot escalate and has a
    read-only root. Node mode's routing containers (and the dummy link's init container)
    add NET_ADMIN and NET_RAW, nothing else; the mock adds none and runs as a user, except
    on the dummy link, where it binds 169.254.169.254:80: root with NET_BIND_SERVICE."""
    dummy = CI[name].get("node", {}).get("dummyLink", False) and mode_of(name) == "node"
    for where, spec in pod_specs(objects(name)):
        for c in containers(spec):
            sc = c["securityContext"]
            assert sc.get("privileged", False) is False, (where, c["name"])
            assert sc["allowPrivilegeEscalation"] is False, (where, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (where, c["name"])
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert sc["capabilities"]["drop"] == ["ALL"], (where, c["name"])
            added = set(sc["capabilities"].get("add", []))
            if c["name"] in ("route", "link"):
                assert where.startswith("DaemonSet/")
                assert added == NODE_CAPABILITIES
                assert sc["runAsUser"] == 0
            elif c["name"] == "imdsmock" and dummy:
                assert added == {"NET_BIND_SERVICE"}
                assert sc["runAsUser"] == 0
            else:
                assert added == set(), (where, c["name"])
                assert sc["runAsNonRoot"] is True, (where, c["name"])
                assert sc["runAsUser"] != 0


@pytest.mark.parametrize("name", list(CI))
def test_the_mock_has_probes_resources_and_its_config(name: str) -> None:
    """The mock container is ready when IMDS answers a token and a read (the image's health
    check, at its listen address), live while the IMDS port accepts, has resource requests,
    and reads the ConfigMap's file and the Secret's token file."""
    objs = objects(name, tests=False)
    ((_, spec),) = list(pod_specs(objs))
    mock = container(spec, "imdsmock")
    assert mock["readinessProbe"]["exec"]["command"] == [
        "python3",
        "-I",
        "-S",
        "/opt/imdsmock/healthcheck.py",
    ]
    assert mock["livenessProbe"]["tcpSocket"]["port"] == "imds"
    assert {"cpu", "memory"} <= set(mock["resources"]["requests"])
    assert "memory" in mock["resources"]["limits"]
    variables = env(mock)
    assert variables["IMDSMOCK_CONFIG"] == "/etc/imdsmock/imdsmock.yaml"
    token_dir, key = variables["IMDSMOCK_CONTROL_TOKEN_FILE"].rsplit("/", 1)
    mounts = {m["name"]: m for m in mock["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert mounts["control-token"]["mountPath"] == token_dir
    secret = volumes["control-token"]["secret"]
    assert secret["items"] == [{"key": key, "path": key}]
    assert volumes["config"]["configMap"]["name"] == one(objs, "ConfigMap")["metadata"]["name"]
    assert mounts["config"] == {"name": "config", "mountPath": "/etc/imdsmock", "readOnly": True}
    # A read-only root: the signing key cache goes to the emptyDir on /tmp.
    assert mounts["tmp"]["mountPath"] == "/tmp"
    assert variables["XDG_CACHE_HOME"].startswith("/tmp/")
    if mode_of(name) == "node":
        assert variables["IMDSMOCK_HEALTHCHECK_URL"] == "http://$(IMDSMOCK_HOST):$(IMDSMOCK_PORT)"


@pytest.mark.parametrize("name", list(CI))
def test_the_token_secret_is_generated_or_the_users(name: str) -> None:
    """Without `controlToken.existingSecret` the chart makes a Secret with a random token;
    with it, none, and the pods read the user's Secret."""
    objs = objects(name, tests=False)
    secrets = of_kind(objs, "Secret")
    ((_, spec),) = list(pod_specs(objs))
    used = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    existing = CI[name].get("controlToken", {}).get("existingSecret")
    if existing:
        assert secrets == []
        assert used == {existing}
    else:
        (secret,) = secrets
        assert used == {secret["metadata"]["name"]}
        token = base64.b64decode(secret["data"]["token"])
        assert len(token) == 40
        assert token.isalnum()


def test_generated_tokens_differ_between_installs() -> None:
    """Each fresh install draws its own token."""
    first = one(objects({}), "Secret")["data"]
    second = one(objects({}), "Secret")["data"]
    assert first != second


@pytest.mark.parametrize("name", list(CI))
def test_rbac_is_exactly_get_list_watch_on_pods(name: str) -> None:
    """Node mode with the pod lookup has one ClusterRole: get, list, watch on pods and
    nothing else, bound to the DaemonSet's ServiceAccount, whose token is mounted; any
    other render has no role, no binding and no API token in the pod."""
    objs = objects(name, tests=False)
    roles = of_kind(objs, "ClusterRole") + of_kind(objs, "Role")
    bindings = of_kind(objs, "ClusterRoleBinding") + of_kind(objs, "RoleBinding")
    account = one(objs, "ServiceAccount")
    ((_, spec),) = list(pod_specs(objs))
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    lookup = mode_of(name) == "node" and CI[name].get("node", {}).get("podLookup", True)
    if not lookup:
        assert roles == []
        assert bindings == []
        token = spec.get("automountServiceAccountToken", account["automountServiceAccountToken"])
        assert token is False
        return
    (role,) = roles
    assert role["kind"] == "ClusterRole"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]
    (binding,) = bindings
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]
    assert account["automountServiceAccountToken"] is True


# -- node mode -----------------------------------------------------------------------------


def _node(name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    objs = objects(name, tests=False)
    spec = one(objs, "DaemonSet")["spec"]["template"]["spec"]
    return spec, container(spec, "route"), container(spec, "imdsmock")


def flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


def test_node_defaults_route_the_common_cnis_interfaces() -> None:
    """By default the routing container DNATs on the pod interfaces `imdsmock route node`
    defaults to (the common CNIs'), to the mock on the node's IP, without the dummy link or
    the ECS address."""
    spec, route, mock = _node("node-default.yaml")
    args = route["args"]
    assert args[:2] == ["route", "node"]
    assert tuple(flag_values(args, "--interface")) == DEFAULT_INTERFACES
    assert flag_values(args, "--mock") == ["$(NODE_IP):1338"]
    assert "--dummy-link" not in args
    assert "--ecs" not in args
    assert "--backend" not in args  # auto: route node's own default
    assert "initContainers" not in spec
    assert env(route)["NODE_IP"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    variables = env(mock)
    assert variables["IMDSMOCK_HOST"] == "$(NODE_IP)"
    assert variables["IMDSMOCK_PORT"] == "1338"
    assert "IMDSMOCK_ECS_LISTEN" not in variables


def test_node_options_reach_the_route_command() -> None:
    """The interfaces, the listen address and `node.ecs` become flags of `imdsmock route
    node`, and the mock listens where the route sends (ECS credentials included)."""
    _, route, mock = _node("node-custom.yaml")
    args = route["args"]
    assert flag_values(args, "--interface") == ["cali+", "!cali-skip+"]
    assert flag_values(args, "--mock") == ["10.0.1.23:11338"]
    assert flag_values(args, "--ecs") == ["11340"]
    assert flag_values(args, "--backend") == ["iptables-legacy"]
    variables = env(mock)
    assert (variables["IMDSMOCK_HOST"], variables["IMDSMOCK_PORT"]) == ("10.0.1.23", "11338")
    assert variables["IMDSMOCK_ECS_LISTEN"] == "$(IMDSMOCK_HOST):11340"
    assert variables["IMDSMOCK_CONTROL_PORT"] == "11339"
    assert env(route)["IMDSMOCK_CONTROL_URL"] == "http://127.0.0.1:11339"
    assert mock["livenessProbe"]["tcpSocket"]["host"] == "10.0.1.23"


def test_node_dummy_link_puts_the_address_on_the_link_first() -> None:
    """With `node.dummyLink` the routing runs `route node --dummy-link` (no --mock, no
    --interface), an init container puts the link in place once before the mock binds
    169.254.169.254:80 (and 169.254.170.2:80 with `node.ecs`)."""
    spec, route, mock = _node("node-dummy-link.yaml")
    assert route["args"] == ["route", "node", "--dummy-link", "--ecs"]
    (init,) = spec["initContainers"]
    assert init["args"] == ["route", "node", "--dummy-link", "--ecs", "--once"]
    assert init["volumeMounts"] == route["volumeMounts"]
    variables = env(mock)
    assert (variables["IMDSMOCK_HOST"], variables["IMDSMOCK_PORT"]) == ("169.254.169.254", "80")
    assert variables["IMDSMOCK_ECS_LISTEN"] == "169.254.170.2:80"
    assert mock["livenessProbe"]["tcpSocket"]["host"] == "169.254.169.254"
    assert container(spec, "imdsmock")["ports"][0]["containerPort"] == 80


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (
            {"host": "127.0.0.1"},
            'node.host is "127.0.0.1"; expected an IPv4 address of the node that pods can reach, not loopback or 0.0.0.0',
        ),
        ({"host": "0.0.0.0"}, 'node.host is "0.0.0.0"; expected an IPv4 address'),
        (
            {"host": "10.0.1.23", "dummyLink": True},
            'node.host is "10.0.1.23" with node.dummyLink; the mock listens on 169.254.169.254:80 there',
        ),
    ],
    ids=["loopback", "unspecified", "dummy-link"],
)
def test_node_host_the_route_would_refuse_fails_the_install(
    node: dict[str, Any], message: str
) -> None:
    """A listen address `imdsmock route node` refuses is refused at install, in one line."""
    with pytest.raises(helm.HelmRenderError) as err:
        render({"mode": "node", "node": node})
    assert message in str(err.value)


@pytest.mark.parametrize("name", NODE)
def test_node_agent_removes_its_rules_when_stopped(name: str) -> None:
    """The routing container's preStop hook runs `imdsmock route node --down` (rules go even
    if the process was killed) while the mock's waits two seconds before it is stopped; the
    pod has a grace period to stop in; the xtables lock and the route record directory are
    the node's."""
    spec, route, mock = _node(name)
    # The mock outlives the hook: stopped after the rules are gone.
    assert mock["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "2"]
    assert route["lifecycle"]["preStop"]["exec"]["command"] == [
        "imdsmock",
        "route",
        "node",
        "--down",
    ]
    assert spec["terminationGracePeriodSeconds"] >= 10
    mounts = {m["mountPath"]: m["name"] for m in route["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    lock = volumes[mounts["/run/xtables.lock"]]["hostPath"]
    assert lock == {"path": "/run/xtables.lock", "type": "FileOrCreate"}
    state = volumes[mounts["/run/imdsmock"]]["hostPath"]
    assert state == {"path": "/run/imdsmock", "type": "DirectoryOrCreate"}
    assert route["securityContext"]["runAsUser"] == 0
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"


@pytest.mark.parametrize("name", NODE)
def test_node_agent_runs_on_every_node(name: str) -> None:
    """Without tolerations of the user's, the DaemonSet tolerates every taint."""
    spec, _, _ = _node(name)
    given = CI[name].get("tolerations")
    assert spec["tolerations"] == (given or [{"operator": "Exists"}])


def config_of(name_or_values: str | dict[str, Any]) -> dict[str, Any]:
    """The mock's configuration file, from the ConfigMap."""
    cm = one(objects(name_or_values, tests=False), "ConfigMap")
    loaded: dict[str, Any] = yaml.safe_load(cm["data"]["imdsmock.yaml"])
    return loaded


@pytest.mark.parametrize(
    ("values", "hop_limit"),
    [
        ({"mode": "node"}, 2),
        ({"mode": "service"}, 64),
        ({"mode": "node", "hopLimit": 1}, 1),
        ({"mode": "node", "config": {"options": {"hop-limit": 5}}}, 5),
    ],
    ids=["node", "service", "node-hopLimit-1", "node-config-wins"],
)
def test_hop_limit_by_mode(values: dict[str, Any], hop_limit: int) -> None:
    """Node mode's token responses carry hop limit 2 (a pod is one hop from its node),
    service mode's 64; `hopLimit` changes it, and the user's `config` wins over both."""
    assert config_of(values)["options"]["hop-limit"] == hop_limit


def test_node_mode_looks_pods_up_by_default() -> None:
    """Node mode recognises clients as pods of this node through the Kubernetes API
    (NODE_NAME from the downward API) and makes an instance for each pod no instance
    claims (`template.ways`), unless `node.instancePerPod` is false; `node.podLookup:
    false` leaves the fleet alone."""
    cfg = config_of("node-default.yaml")
    assert cfg["fleet"]["recognize"] == ["listener", "host", "source", "kubernetes"]
    assert cfg["template"] == {"ways": ["kubernetes"]}
    shared = config_of({"mode": "node", "node": {"instancePerPod": False}})
    assert "template" not in shared
    assert "kubernetes" in shared["fleet"]["recognize"]
    _, _, mock = _node("node-default.yaml")
    assert env(mock)["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert "fleet" not in config_of("node-no-lookup.yaml")


def test_service_mode_opens_the_control_api_to_the_service() -> None:
    """Service mode's control API listens beyond loopback (it has a token) and answers the
    Service's names."""
    server = config_of("service-default.yaml")["server"]
    assert server["control-host"] == "0.0.0.0"
    assert server["allowed-hosts"] == [
        "imdsmock",
        "imdsmock.imdsmock",
        "imdsmock.imdsmock.svc",
        "imdsmock.imdsmock.svc.cluster.local",
    ]


def test_the_users_config_is_merged_over_the_modes() -> None:
    """Keys of `config` are added to what the mode sets, and win where both set one."""
    cfg = config_of("service-custom.yaml")
    assert cfg["options"] == {"hop-limit": 64, "http-tokens": "required"}
    assert cfg["instance"] == {"region": "eu-west-1", "iam-role": "app-role"}
    assert cfg["server"]["control-host"] == "0.0.0.0"


# The variables the kubelet gives every pod, host-network ones included.
IN_A_POD = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def pod_variables(name: str, tmp_path: Path) -> dict[str, str]:
    """The mock container's variables as the pod has them: downward API fields filled in,
    $(VAR) expanded, the ConfigMap's file and the Secret's token written under tmp_path."""
    objs = objects(name, tests=False)
    config = tmp_path / "imdsmock.yaml"
    config.write_text(one(objs, "ConfigMap")["data"]["imdsmock.yaml"], encoding="utf-8")
    token = tmp_path / "token"
    token.write_text("t0ken\n", encoding="utf-8")
    ((_, spec),) = list(pod_specs(objs))
    fields = {"spec.nodeName": "node-1", "status.hostIP": "10.0.0.5"}
    variables: dict[str, str] = {}
    for item in container(spec, "imdsmock")["env"]:
        if "value" in item:
            variables[item["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: variables[m[1]], item["value"]
            )
        else:
            variables[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
    variables["IMDSMOCK_CONFIG"] = str(config)
    variables["IMDSMOCK_CONTROL_TOKEN_FILE"] = str(token)
    variables["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return variables


@pytest.mark.parametrize("name", list(CI))
def test_the_rendered_configuration_is_one_the_mock_takes(name: str, tmp_path: Path) -> None:
    """`imdsmock config`, which refuses what serving refuses short of binding, takes the
    ConfigMap's file with the variables the pod has (node mode's pod lookup finds the API
    server as in a pod, from the kubelet's KUBERNETES_SERVICE_HOST)."""
    variables = {
        k: v for k, v in pod_variables(name, tmp_path).items() if k != "IMDSMOCK_HEALTHCHECK_URL"
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith(("IMDSMOCK_", "KUBERNETES_"))}
    done = subprocess.run(
        [sys.executable, "-m", "imdsmock", "config"],
        env={**base, **IN_A_POD, **variables},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    dumped = yaml.safe_load(done.stdout)
    assert dumped["options"]["hop-limit"] == config_of(name)["options"]["hop-limit"]
    if mode_of(name) == "node":
        assert dumped["server"]["host"] == variables["IMDSMOCK_HOST"]
    if mode_of(name) == "node" and CI[name].get("node", {}).get("podLookup", True):
        assert "kubernetes" in dumped["fleet"]["recognize"]
        assert dumped["template"]["ways"] == ["kubernetes"]


def test_node_mode_lookup_needs_the_pod_environment(tmp_path: Path) -> None:
    """Outside a pod (no KUBERNETES_SERVICE_HOST) node mode's configuration is refused in
    one line: the lookup would not know where the API server is."""
    variables = pod_variables("node-default.yaml", tmp_path)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("IMDSMOCK_", "KUBERNETES_"))}
    done = subprocess.run(
        [sys.executable, "-m", "imdsmock", "config"],
        env={**base, **variables},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("imdsmock: error: fleet.kubernetes-api is ''")


# -- helm test -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CI))
def test_helm_test_pod_asks_the_mock_as_a_client_would(name: str) -> None:
    """The helm test pod runs the image's health check (an IMDSv2 token, then the instance
    ID) against the Service in service mode, at 169.254.169.254 in node mode (from the pod
    network, so it tests the node's routing); in service mode it also reads the control API
    with the Secret's token."""
    objs = objects(name)
    (pod,) = of_kind(objs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    imds = container(spec, "imds")
    assert imds["command"] == ["python3", "-I", "-S", "/opt/imdsmock/healthcheck.py"]
    url = env(imds)["IMDSMOCK_HEALTHCHECK_URL"]
    if mode_of(name) == "node":
        assert url == "http://169.254.169.254"
        assert [c["name"] for c in spec["containers"]] == ["imds"]
    else:
        service = one(objs, "Service")
        port = service["spec"]["ports"][0]["port"]
        assert url == f"http://{service['metadata']['name']}:{port}"
        control = container(spec, "control")
        assert control["args"] == ["ctl", "state"]
        assert "secretKeyRef" in env(control)["IMDSMOCK_CONTROL_TOKEN"]


def test_helm_test_pod_can_be_left_out() -> None:
    """`helmTest.enabled: false` renders no test pod."""
    assert of_kind(objects({"helmTest": {"enabled": False}}), "Pod") == []
