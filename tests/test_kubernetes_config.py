"""The Kubernetes lookup's configuration: `match.pod` rules and the `fleet.kubernetes-*`
keys load, dump and are refused with one line (exit 2) by `imdsmock config`."""

from __future__ import annotations

from pathlib import Path

import pytest

from imdsmock.config.build import from_mapping
from imdsmock.config.dump import to_mapping
from imdsmock.config.schema import SERVICE_ACCOUNT, PodRule
from mockprocess import run_command


def test_pod_rules_and_kubernetes_keys_load_from_a_file_and_the_environment(
    tmp_path: Path,
) -> None:
    """A file's pod rules and `fleet.kubernetes-*` keys load as written; a variable sets a
    key; the service account's files are the defaults."""
    cfg = from_mapping(
        {
            "fleet": {
                "recognize": ["source", "kubernetes"],
                "kubernetes-api": "http://127.0.0.1:8001",
                "kubernetes-node": "node-1",
            },
            "instances": [
                {
                    "name": "web",
                    "match": {
                        "pod": [
                            {"namespace": "shop", "labels": {"app": "web", "example.com/t": ""}},
                            {"name": "web-*"},
                        ]
                    },
                }
            ],
        }
    )
    assert cfg.instances[0].match.pod == (
        PodRule(namespace="shop", labels={"app": "web", "example.com/t": ""}),
        PodRule(name="web-*"),
    )
    assert cfg.fleet.kubernetes_api == "http://127.0.0.1:8001"
    assert cfg.fleet.kubernetes_node == "node-1"
    assert cfg.fleet.kubernetes_namespace == ""
    assert cfg.fleet.kubernetes_token_file == f"{SERVICE_ACCOUNT}/token"
    assert cfg.fleet.kubernetes_ca_file == f"{SERVICE_ACCOUNT}/ca.crt"
    dumped = to_mapping(cfg)
    assert dumped["fleet"]["kubernetes-node"] == "node-1"
    assert dumped["instances"][0]["match"]["pod"][1]["name"] == "web-*"
    path = tmp_path / "k.yaml"
    path.write_text("fleet: {recognize: [kubernetes]}\n")
    done = run_command(
        ["config", "-c", str(path)],
        {
            "IMDSMOCK_FLEET_KUBERNETES_NAMESPACE": "shop",
            "IMDSMOCK_FLEET_KUBERNETES_API": "http://k:1",
        },
    )
    assert done.returncode == 0, done.stderr
    assert "kubernetes-namespace: shop" in done.stdout


BAD = [
    pytest.param(
        "fleet: {recognize: [source, kubernets]}",
        "fleet.recognize[1] is 'kubernets'; expected one of: listener, host, source, docker, "
        "kubernetes",
        id="unknown-way",
    ),
    pytest.param(
        "instances: [{name: web, match: {pod: [{namespace: shop}]}}]",
        "instances.web.match.pod is [{'namespace': 'shop'}]; expected no pod rules, or "
        "fleet.recognize naming kubernetes (it names: listener, host, source)",
        id="pod-rules-without-the-way",
    ),
    pytest.param(
        "fleet: {recognize: [kubernetes]}\ninstances: [{name: web, match: {pod: [{}]}}]",
        "instances.web.match.pod[0] is {}; expected at least one of: namespace, name, labels",
        id="empty-pod-rule",
    ),
    pytest.param(
        "fleet: {recognize: [kubernetes]}\n"
        "instances: [{name: web, match: {pod: [{namespace: Shop}]}}]",
        "instances.web.match.pod[0].namespace is 'Shop'; expected a namespace: 1-63 of a-z",
        id="bad-namespace",
    ),
    pytest.param(
        "fleet: {recognize: [kubernetes]}\ninstances: [{name: web, match: {pod: [{name: web_1}]}}]",
        "instances.web.match.pod[0].name is 'web_1'; expected a pod name, '*' for any run",
        id="bad-pod-name",
    ),
    pytest.param(
        "fleet: {recognize: [kubernetes]}\n"
        "instances: [{name: web, match: {pod: [{labels: {'a b': x}}]}}]",
        "instances.web.match.pod[0].labels is 'a b'; expected label keys such as app",
        id="bad-label-key",
    ),
    pytest.param(
        "fleet: {recognize: [kubernetes]}\n"
        "instances: [{name: web, match: {pod: [{labels: {'-x.io/app': x}}]}}]",
        "instances.web.match.pod[0].labels is '-x.io/app'; expected label keys such as app",
        id="bad-label-prefix",
    ),
    pytest.param(
        "fleet: {recognize: [kubernetes]}\n"
        "instances: [{name: web, match: {pod: [{labels: {app: 'we b'}}]}}]",
        "instances.web.match.pod[0].labels.app is 'we b'; expected a label value",
        id="bad-label-value",
    ),
    pytest.param(
        "fleet: {recognize: [kubernetes]}\n"
        "instances: [{name: web, match: {pod: [{labels: {ready: true}}]}}]",
        "instances.web.match.pod[0].labels.ready is True; expected a string",
        id="label-value-not-a-string",
    ),
    pytest.param(
        "fleet: {recognize: [kubernetes]}\n"
        "instances: [{name: web, match: {pod: [{namespce: shop}]}}]",
        "instances.web.match.pod[0].namespce is 'shop'; expected a known key (one of: labels, "
        "name, namespace); did you mean 'namespace'?",
        id="unknown-pod-key",
    ),
    pytest.param(
        "fleet: {recognize: [kubernetes]}\n"
        "instances: [{name: a, match: {pod: [{namespace: shop}]}}, "
        "{name: b, match: {pod: [{namespace: shop}]}}]",
        "instances.b.match.pod[0] is {'namespace': 'shop'}; expected an entry no other "
        "instance has (instances.a.match.pod[0] has it already)",
        id="pod-rule-claimed-twice",
    ),
    pytest.param(
        "fleet: {kubernetes-api: 'ftp://10.0.0.1'}",
        "fleet.kubernetes-api is 'ftp://10.0.0.1'; expected an http:// or https:// URL",
        id="api-scheme",
    ),
    pytest.param(
        "fleet: {kubernetes-api: 'https://10.0.0.1:99999'}",
        "fleet.kubernetes-api is 'https://10.0.0.1:99999'; expected an http:// or https:// URL",
        id="api-port",
    ),
    pytest.param(
        "fleet: {kubernetes-api: 'https://10.0.0.1/?watch=1'}",
        "fleet.kubernetes-api is 'https://10.0.0.1/?watch=1'; expected an http:// or https://",
        id="api-query",
    ),
    pytest.param(
        "fleet: {kubernetes-node: Node_1}",
        "fleet.kubernetes-node is 'Node_1'; expected a node name",
        id="bad-node",
    ),
    pytest.param(
        "fleet: {kubernetes-namespace: 'x-'}",
        "fleet.kubernetes-namespace is 'x-'; expected a namespace: 1-63 of a-z",
        id="bad-watched-namespace",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_imdsmock_config_refuses_a_bad_kubernetes_setting_with_one_line(
    tmp_path: Path, text: str, message: str
) -> None:
    """`imdsmock config` refuses a bad pod rule or `fleet.kubernetes-*` key with exit 2 and
    one line naming the key, the value and what is allowed."""
    path = tmp_path / "fleet.yaml"
    path.write_text(text + "\n")
    done = run_command(["config", "-c", str(path)])
    assert done.returncode == 2, done.stdout
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"imdsmock: error: {message}"), done.stderr


def test_ctl_instances_shows_pod_rules_in_short() -> None:
    """`ctl instances` shows a pod rule as NAMESPACE/NAME[LABELS], `*` for what it leaves
    open, beside the other kinds of rule."""
    from imdsmock.control.ctlview import fleet

    rows = fleet(
        {
            "instances": [
                {
                    "name": "web",
                    "instance-id": "i-0aaaaaaaaaaaaaaa1",
                    "iam-role": "web-role",
                    "match": {
                        "source": ["10.0.0.7"],
                        "pod": [{"namespace": "shop", "labels": {"app": "web"}}, {"name": "w-*"}],
                    },
                    "clients": 0,
                }
            ]
        }
    )
    assert rows is not None
    assert "source=10.0.0.7 pod=shop/*[app=web],*/w-*" in rows[1]
