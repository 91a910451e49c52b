"""The fleet's template (config.template, core.fleet): instances made for the workloads a
resolver finds, derived from their keys, bounded, kept across reloads."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from imdsmock.config.template import TemplateFullError, derive
from imdsmock.core.fleet import Fleet
from imdsmock.core.recognize import Workload
from imdsmock.errors import ConfigError
from support import make_config, offline_app, serve
from test_fleet_serve import ID, ask


def _config(**template: Any) -> Any:
    return make_config(
        fleet={"recognize": ["docker"], "docker-socket": "/nowhere"},
        instances=[{"name": "web", "match": {"container": ["web"]}}],
        template={"ways": ["docker"], "instance": {"iam-role": "app-role"}, **template},
    )


def _fleet(config: Any) -> Fleet:
    fleet = offline_app(config).fleet
    assert fleet is not None
    return fleet


def _box(key: str, *names: str) -> Workload:
    return Workload("docker", f"id-{key}", key, (key, *names))


def test_an_unmatched_workload_gets_an_instance_once() -> None:
    fleet = _fleet(_config())
    assert fleet.found(_box("shop.web-1", "web")) is None  # web's: nothing made
    assert fleet.found(_box("job")) is None
    assert fleet.found(_box("job")) is None  # made once
    assert fleet.names() == ["default", "web", "job"]
    assert fleet.spawned() == {"job": "job"}
    assert fleet.template_key("job") == "job"
    assert fleet.template_key("web") is None
    job = fleet.state("job").snapshot.config.instance
    assert job.iam_role == "app-role"
    assert job.instance_id == derive(fleet.top, "docker", "job").instance["instance-id"]
    assert job.tags["Name"] == "job"
    # Another way's workloads are not the template's.
    assert fleet.found(Workload("kubernetes", "u1", "ns/pod", ("ns/pod",))) is None
    assert fleet.names() == ["default", "web", "job"]


def test_addresses_are_unique_and_a_full_subnet_is_said() -> None:
    small = {"instance": {"subnet-ipv4-cidr-block": "10.0.0.0/29", "public-ipv4": None}}
    fleet = _fleet(_config(**small))
    made = []
    for n in range(3):  # a /29 holds two (the first four and the last are AWS's)
        made.append(fleet.found(_box(f"c{n}")))
    assert made == [None, None, "template.instance.subnet-ipv4-cidr-block is '10.0.0.0/29'; "
                    "expected a subnet with a free address for one more instance (all 2 are "
                    "taken)"]  # fmt: skip
    addresses = {fleet.state(f"c{n}").snapshot.config.instance.local_ipv4 for n in range(2)}
    assert addresses == {"10.0.0.4", "10.0.0.5"}
    with pytest.raises(TemplateFullError):
        derive(fleet.top, "docker", "x", taken_addresses=addresses)


def test_the_limit_bounds_what_is_made() -> None:
    fleet = _fleet(_config(limit=2))
    assert [fleet.found(_box(f"c{n}")) for n in range(3)] == [
        None,
        None,
        "the template's limit of 2 instances is reached",
    ]


def test_a_reload_remakes_them_under_the_new_template_and_drops_them_without_it() -> None:
    config = _config()
    app = offline_app(config)
    fleet = app.fleet
    assert fleet is not None
    fleet.found(_box("job"))
    state = fleet.state("job")
    app.reconfigure(_config(instance={"iam-role": "new-role"}))
    assert fleet.state("job") is state  # the same instance (its tokens, scenarios)
    assert state.snapshot.config.instance.iam_role == "new-role"
    assert (
        state.snapshot.config.instance.instance_id
        == (derive(config, "docker", "job").instance["instance-id"])
    )
    app.reconfigure(_config(limit=1, instance={"iam-role": "x"}))
    assert fleet.names() == ["default", "web", "job"]
    without = make_config(
        fleet={"recognize": ["docker"]},
        instances=[{"name": "web", "match": {"container": ["web"]}}],
    )
    app.reconfigure(without)
    assert fleet.names() == ["default", "web"]
    assert fleet.spawned() == {}


def test_removed_or_reset_instances_are_forgotten() -> None:
    fleet = _fleet(_config())
    fleet.found(_box("job"))
    fleet.remove("job")
    assert fleet.spawned() == {}
    fleet.found(_box("job"))
    assert fleet.names() == ["default", "web", "job"]
    fleet.restart(fleet.top, fleet.origins())
    assert fleet.names() == ["default", "web"]


def test_derived_addresses_follow_the_top_level() -> None:
    config = _config()
    member = derive(config, "docker", "job")
    local = ipaddress.ip_address(member.instance["local-ipv4"])
    assert local in ipaddress.ip_network(config.instance.subnet_ipv4_cidr_block)
    assert member.instance["public-ipv4"].startswith("192.0.2.")
    assert member.instance["ipv6"].startswith("2001:db8:8:4:")
    none = make_config(
        instance={"public-ipv4": None, "ipv6": None},
        fleet={"recognize": ["docker"]},
        template={"ways": ["docker"]},
    )
    bare = derive(none, "docker", "job")
    assert "public-ipv4" not in bare.instance
    assert "ipv6" not in bare.instance
    assert derive(none, "docker", "job") == bare  # the same key, the same instance


def test_clients_by_address_get_their_own_instance_from_their_first_request() -> None:
    """template.ways naming source: each client of template.source that nothing else
    recognises is an instance of its own, keyed by its address; others the default's."""
    config = make_config(
        instance={"instance-id": "i-0d0d0d0d0d0d0d0d0"},
        instances=[{"name": "web", "match": {"source": ["127.0.0.2"]}}],
        template={"ways": ["source"], "source": ["127.0.0.2/31", "127.0.0.8"]},
    )
    with serve(config) as running:
        port = running.port
        three = derive(config, "source", "127.0.0.3").instance["instance-id"]
        eight = derive(config, "source", "127.0.0.8").instance["instance-id"]
        assert ask(port, ID, "127.0.0.3") == (200, three.encode())
        assert ask(port, ID, "127.0.0.8") == (200, eight.encode())
        assert ask(port, ID, "127.0.0.3") == (200, three.encode())
        assert ask(port, ID, "127.0.0.4") == (200, b"i-0d0d0d0d0d0d0d0d0")
        fleet = running.app.fleet
        assert fleet is not None
        assert fleet.names() == ["default", "web", "127.0.0.3", "127.0.0.8"]
        assert fleet.clients("127.0.0.3")[0].why == "source template 127.0.0.3"
        # A reload narrows the addresses: a new client outside them is the default's.
        running.app.reconfigure(
            make_config(
                instance={"instance-id": "i-0d0d0d0d0d0d0d0d0"},
                template={"ways": ["source"], "source": ["127.0.0.9"]},
            )
        )
        assert ask(port, ID, "127.0.0.10") == (200, b"i-0d0d0d0d0d0d0d0d0")
        assert ask(port, ID, "127.0.0.9")[1].startswith(b"i-0")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ({"source": ["10.0.0.0/8"]}, "template.source is ['10.0.0.0/8']; expected no "
         "addresses, or source in template.ways"),
        ({"ways": ["source"], "source": ["10.0.0.1/8"]}, "template.source[0] is '10.0.0.1/8'; "
         "expected a network without host bits set (10.0.0.0/8)"),
        ({"ways": ["sauce"]}, "template.ways[0] is 'sauce'; expected one of: docker, "
         "kubernetes, source; did you mean 'source'?"),
    ],
)  # fmt: skip
def test_a_bad_template_source_is_refused(template: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(template=template)
    assert str(caught.value) == message


def test_the_template_dumps_and_loads_back() -> None:
    """What `imdsmock config` prints of a template loads back to the same configuration."""
    from imdsmock.config.build import from_mapping
    from imdsmock.config.dump import to_mapping

    config = _config(source=["10.1.0.0/16"], ways=["docker", "source"], paths={"meta-data/x": "y"})
    dumped = to_mapping(config, secrets=True)
    assert dumped["template"]["ways"] == ["docker", "source"]
    assert from_mapping(dumped) == config
