"""Fleet configuration: `instances` and `fleet` load, validate at load with one line, and
recognise clients by listener, Host name and source address in the configured order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imdsmock.config.build import from_mapping
from imdsmock.config.dump import to_mapping
from imdsmock.config.schema import MatchConfig, MemberConfig
from imdsmock.core.recognize import PER_REQUEST, Recognized, Recognizer, Workload, host_key
from imdsmock.errors import ConfigError
from mockprocess import run_command

FLEET_YAML = """\
instance:
  instance-id: i-0d0d0d0d0d0d0d0d0
  iam-role: default-role
instances:
  - name: web
    match:
      source: [127.0.0.2]
    instance:
      instance-id: i-0aaaaaaaaaaaaaaa1
      iam-role: web-role
  - name: worker
    match:
      source: [127.0.0.3/32]
    instance:
      instance-id: i-0bbbbbbbbbbbbbbb2
      iam-role: worker-role
    options:
      http-tokens: required
"""


def _member(name: str, **match: Any) -> MemberConfig:
    return MemberConfig(name=name, match=MatchConfig(**match))


def test_members_take_unset_keys_from_the_top_level() -> None:
    """A member's configuration is the top level with only the keys the entry gives over it."""
    cfg = from_mapping(
        {
            "instance": {"region": "eu-west-1", "iam-role": "top-role", "tags": {"A": "1"}},
            "options": {"hop-limit": 3},
            "paths": {"meta-data/a": "top", "meta-data/b": "top"},
            "instances": [
                {
                    "name": "web",
                    "instance": {"iam_role": "web-role"},
                    "options": {"http-tokens": "required"},
                    "paths": {"meta-data/b": "web"},
                }
            ],
        }
    )
    (web,) = cfg.instances
    assert web.instance == {"iam-role": "web-role"}
    effective = web.config(cfg)
    assert effective.instance.iam_role == "web-role"
    assert effective.instance.region == "eu-west-1"
    assert effective.instance.tags == {"A": "1"}
    assert effective.options.http_tokens == "required"
    assert effective.options.hop_limit == 3
    assert effective.paths == {"meta-data/a": "top", "meta-data/b": "web"}
    assert effective.instances == ()


def test_the_example_file_loads_and_dumps_as_written(tmp_path: Path) -> None:
    """`imdsmock config` prints the fleet with each member's own keys only, and what it
    prints loads back to the same configuration."""
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET_YAML)
    done = run_command(["config", "-c", str(path), "--format", "json"])
    assert done.returncode == 0, done.stderr
    cfg = from_mapping({"instances": [], **_yaml(FLEET_YAML)})
    assert from_mapping(to_mapping(cfg, secrets=True)) == cfg
    assert '"iam-role": "worker-role"' in done.stdout
    assert '"http-tokens": "required"' in done.stdout


def _yaml(text: str) -> dict[str, Any]:
    import yaml

    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


BAD = [
    pytest.param(
        "instances: [{name: web}, {name: web}]",
        "instances[1].name is 'web'; expected a name no other instance has",
        id="duplicate-name",
    ),
    pytest.param(
        "instances: [{name: web, match: {sorce: [127.0.0.2]}}]",
        "instances.web.match.sorce is ['127.0.0.2']; expected a known key (one of: container, "
        "host, listener, pod, source); did you mean 'source'?",
        id="unknown-match-key",
    ),
    pytest.param(
        "instances: [{name: web, match: {source: [127.0.0.300]}}]",
        "instances.web.match.source[0] is '127.0.0.300'; expected an IPv4 or IPv6 address or "
        "network (10.1.0.7, 10.1.0.0/24, fd00::/64)",
        id="bad-address",
    ),
    pytest.param(
        "instances: [{name: web, match: {source: [10.1.0.0/33]}}]",
        "instances.web.match.source[0] is '10.1.0.0/33'; expected an IPv4 or IPv6 address",
        id="bad-cidr",
    ),
    pytest.param(
        "instances: [{name: web, match: {source: [10.1.0.7/24]}}]",
        "instances.web.match.source[0] is '10.1.0.7/24'; expected a network without host "
        "bits set (10.1.0.0/24)",
        id="host-bits",
    ),
    pytest.param(
        "instances: [{name: web, match: {listener: ['127.0.0.1:99999']}}]",
        "instances.web.match.listener[0] is '127.0.0.1:99999'; expected HOST:PORT",
        id="bad-listener",
    ),
    pytest.param(
        "instances: [{name: web, match: {host: ['web:80']}}]",
        "instances.web.match.host[0] is 'web:80'; expected a host name",
        id="host-with-port",
    ),
    pytest.param(
        "instances: [{name: a, match: {source: [10.0.0.1]}}, "
        "{name: b, match: {source: [10.0.0.1/32]}}]",
        "instances.b.match.source[0] is '10.0.0.1/32'; expected an entry no other instance "
        "has (instances.a.match.source[0] has it already)",
        id="address-claimed-twice",
    ),
    pytest.param(
        "instances: [{name: web, match: {container: [web]}}]",
        "instances.web.match.container is ['web']; expected no container rules, or "
        "fleet.recognize naming docker (it names: listener, host, source)",
        id="container-without-docker",
    ),
    pytest.param(
        "fleet: {recognize: [docker]}\ninstances: [{name: web, match: {container: ['web app']}}]",
        "instances.web.match.container[0] is 'web app'; expected a container or compose "
        "service name",
        id="bad-container",
    ),
    pytest.param(
        "fleet: {recognize: [docker]}\n"
        "instances: [{name: a, match: {container: [web]}}, {name: b, match: {container: [web]}}]",
        "instances.b.match.container[0] is 'web'; expected an entry no other instance has",
        id="container-claimed-twice",
    ),
    pytest.param(
        "fleet: {recognize: [dockr]}",
        "fleet.recognize[0] is 'dockr'; expected one of: listener, host, source, docker, "
        "kubernetes; did you mean 'docker'?",
        id="unknown-way",
    ),
    pytest.param(
        "fleet: {recognize: [docker], docker-sockt: /run/docker.sock}",
        "fleet.docker-sockt is '/run/docker.sock'; expected a known key",
        id="docker-key-typo",
    ),
    pytest.param(
        "template: {ways: [docker]}",
        "template.ways[0] is 'docker'; expected source, or a way fleet.recognize names (it "
        "names: listener, host, source)",
        id="template-way-not-recognised",
    ),
    pytest.param(
        "fleet: {recognize: [docker]}\ntemplate: {ways: [docker], instance: {instance-id: i-0123456789abcdef0}}",
        "template.instance.instance-id is 'i-0123456789abcdef0'; expected no value: each "
        "client's is derived from its key",
        id="template-derived-key",
    ),
    pytest.param(
        "fleet: {recognize: [docker]}\ntemplate: {ways: [docker], instance: {public-ipv4: 192.0.2.9}}",
        "template.instance.public-ipv4 is '192.0.2.9'; expected no value: each client's is "
        "derived from its key (null: none)",
        id="template-derived-address",
    ),
    pytest.param(
        "fleet: {recognize: [docker]}\ntemplate: {ways: [docker], instance: {region: mars-1}}",
        "template.instance.region is 'mars-1'; expected a known region",
        id="template-instance-rule",
    ),
    pytest.param(
        "fleet: {recognize: [docker]}\n"
        "template: {ways: [docker], instance: {subnet-ipv4-cidr-block: 10.0.0.0/30}}",
        "template.instance.subnet-ipv4-cidr-block is '10.0.0.0/30'; expected a subnet of /29 "
        "or larger",
        id="template-subnet-too-small",
    ),
    pytest.param(
        "template: {ways: [docker], limt: 5}",
        "template.limt is 5; expected a known key (one of: instance, limit, options, paths, "
        "source, ways); did you mean 'limit'?",
        id="template-key-typo",
    ),
    pytest.param(
        "template: {limit: 0}",
        "template.limit is 0; expected an integer from 1 to 100000",
        id="template-limit",
    ),
    pytest.param(
        "instances: [{name: Web}]",
        "instances[0].name is 'Web'; expected a name of 1-63 of a-z",
        id="bad-name",
    ),
    pytest.param(
        "instances: [{name: default}]",
        "instances[0].name is 'default'; expected a name other than 'default'",
        id="reserved-name",
    ),
    pytest.param(
        "instances: [{match: {source: [10.0.0.1]}}]",
        "instances[0].name is None; expected a value (this key is required)",
        id="no-name",
    ),
    pytest.param(
        "instances: [{name: web, mach: {}}]",
        "instances[0].mach is {}; expected a known key (one of: name, match, instance, "
        "options, paths, scenarios); did you mean 'match'?",
        id="unknown-entry-key",
    ),
    pytest.param(
        "instances: [{name: web, options: {hop-limit: 99}}]",
        "instances.web.options.hop-limit is 99; expected an integer from 1 to 64",
        id="option-range",
    ),
    pytest.param(
        "instances: [{name: web, instance: {instance-id: nope}}]",
        "instances.web.instance.instance-id is 'nope'; expected i- followed by 8 or 17 hex",
        id="instance-rule",
    ),
    pytest.param(
        "instances: [{name: web, scenarios: [{type: spot-interuption}]}]",
        "instances.web.scenarios[0].type is 'spot-interuption'",
        id="scenario",
    ),
    pytest.param(
        "fleet: {unknown: refuse}",
        "fleet.unknown is 'refuse'; expected one of: default, reject",
        id="unknown-policy",
    ),
    pytest.param(
        "fleet: {recognize: [source, source]}",
        "fleet.recognize[1] is 'source'; expected each way named once",
        id="recognize-twice",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_imdsmock_config_refuses_a_bad_fleet_with_one_line(
    tmp_path: Path, text: str, message: str
) -> None:
    """`imdsmock config` refuses a bad fleet entry with exit 2 and one line naming the key,
    the value and what is allowed."""
    path = tmp_path / "fleet.yaml"
    path.write_text(text + "\n")
    done = run_command(["config", "-c", str(path)])
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"imdsmock: error: {message}"), done.stderr


def test_a_bad_fleet_is_refused_by_serving_too(tmp_path: Path) -> None:
    """Serving refuses the same file with the same line (exit 2)."""
    path = tmp_path / "fleet.yaml"
    path.write_text("instances: [{name: web, match: {source: [nowhere]}}]\n")
    done = run_command(["-c", str(path), "--port", "0", "--control-port", "0"])
    assert done.returncode == 2
    assert "instances.web.match.source[0] is 'nowhere'" in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_source_rules_are_exact_first_then_the_longest_prefix() -> None:
    """An exact address wins over networks, and a longer prefix over a shorter one,
    whatever their order in the file; IPv4-mapped IPv6 clients are their IPv4 address."""
    recognizer = Recognizer(
        [
            _member("wide", source=("10.0.0.0/8",)),
            _member("narrow", source=("10.1.0.0/16",)),
            _member("one", source=("10.1.2.3",)),
            _member("six", source=("fd00::/64",)),
        ]
    )
    assert recognizer.instance_for("10.1.2.3") == "one"
    assert recognizer.instance_for("::ffff:10.1.2.3") == "one"
    assert recognizer.instance_for("10.1.9.9") == "narrow"
    assert recognizer.instance_for("10.200.0.1") == "wide"
    assert recognizer.instance_for("fd00::7") == "six"
    assert recognizer.instance_for("192.0.2.1") is None
    assert recognizer.recognize("10.1.9.9") == Recognized("narrow", "source 10.1.0.0/16")


def test_the_configured_order_decides_between_ways() -> None:
    """The first way in `fleet.recognize` that matches wins."""
    members = [
        _member("by-listener", listener=("127.0.0.1:1401",)),
        _member("by-source", source=("127.0.0.2",)),
        _member("by-host", host=("Web.IMDS.internal",)),
    ]
    local = ("127.0.0.1", 1401)
    first_listener = Recognizer(members, ("listener", "host", "source"))
    assert first_listener.instance_for("127.0.0.2", local, "web.imds.internal") == "by-listener"
    first_source = Recognizer(members, ("source", "host", "listener"))
    assert first_source.instance_for("127.0.0.2", local, "web.imds.internal") == "by-source"
    first_host = Recognizer(members, ("host", "listener", "source"))
    assert first_host.instance_for("127.0.0.2", local, "WEB.imds.internal.:80") == "by-host"
    without_host = Recognizer(members, ("source",))
    assert without_host.instance_for("127.0.0.9", local, "web.imds.internal") is None


def test_a_connection_is_recognised_once_unless_host_rules_exist() -> None:
    """Without host rules a connection's answer is final; with them, a request's Host
    decides unless a way before `host` matched the connection."""
    plain = Recognizer([_member("web", source=("127.0.0.2",))])
    assert plain.connection("127.0.0.2") == Recognized("web", "source 127.0.0.2")
    assert not plain.has_host
    hosts = Recognizer([_member("web", listener=("1401",)), _member("api", host=("api.internal",))])
    assert hosts.connection("127.0.0.2", ("127.0.0.1", 1401)) == Recognized("web", "listener 1401")
    assert hosts.connection("127.0.0.2", ("127.0.0.1", 1338)) is PER_REQUEST


def test_listener_rules_match_the_address_and_port_connected_to() -> None:
    """`HOST:PORT` matches that local address and port; a port alone, or a wildcard address,
    any local address on that port."""
    recognizer = Recognizer(
        [
            _member("one", listener=("127.0.0.1:1401",)),
            _member("any", listener=("1402", "0.0.0.0:1403")),
        ]
    )
    assert recognizer.instance_for("10.0.0.1", ("127.0.0.1", 1401)) == "one"
    assert recognizer.instance_for("10.0.0.1", ("127.0.0.5", 1401)) is None
    assert recognizer.instance_for("10.0.0.1", ("172.17.0.1", 1402)) == "any"
    assert recognizer.instance_for("10.0.0.1", ("::ffff:172.17.0.1", 1403)) == "any"


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Web.Internal", "web.internal"),
        ("web.internal:8080", "web.internal"),
        ("web.internal.", "web.internal"),
        ("[fd00::1]:80", "[fd00::1]"),
        ("", None),
        (None, None),
    ],
)
def test_host_headers_compare_without_case_port_or_trailing_dot(
    header: str | None, key: str | None
) -> None:
    """A Host header is compared in lower case, without its port or a trailing dot."""
    assert host_key(header) == key


def test_a_resolver_is_asked_in_its_place_in_the_order() -> None:
    """A resolver named in the order answers there; one not named is never asked."""
    asked: list[str] = []

    class Table:
        def lookup(self, client: str) -> Workload | None:
            asked.append(client)
            if client == "10.0.0.5":
                return Workload("docker", "c0ffee", "proj-web-1", ("proj-web-1", "web"))
            return None

    members = [_member("api", source=("10.0.0.0/24",)), _member("web", container=("web",))]
    recognizer = Recognizer(members, ("docker", "source"), {"docker": Table()})
    assert recognizer.recognize("10.0.0.5") == ("web", "container web")
    assert recognizer.instance_for("10.0.0.6") == "api"
    assert asked == ["10.0.0.5", "10.0.0.6"]
    Recognizer(members, ("source",), {"docker": Table()}).instance_for("10.0.0.5")
    assert asked == ["10.0.0.5", "10.0.0.6"]


def test_from_mapping_names_the_member_in_a_rule_error() -> None:
    """A rule broken only in a member's effective configuration names the key under it."""
    with pytest.raises(ConfigError) as caught:
        from_mapping(
            {
                "instance": {"region": "eu-west-1"},
                "instances": [{"name": "web", "instance": {"availability-zone": "us-east-1a"}}],
            }
        )
    assert caught.value.key == "instances.web.instance.availability-zone"
