"""ec2-metadata-mock config files: value shapes AEMM accepts (lists, YAML times, yes/no) and
the one-line errors for files and shapes it does not."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from imdsmock.aemm import cli as aemm
from imdsmock.aemm.config import RELAXED
from imdsmock.cli import aemm_main
from imdsmock.config.rules import RULES
from imdsmock.config.scenarios import SpotInterruptionConfig, When
from imdsmock.config.schema import Config
from support import EPOCH, offline_app

DOC = "dynamic.values.instance-identity-document"


def _write(tmp_path: Path, content: str, name: str = "aemm.json") -> Path:
    file = tmp_path / name
    file.write_text(content)
    return file


def _config(tmp_path: Path, content: str, name: str = "aemm.json") -> Config:
    return aemm.parse(["-c", str(_write(tmp_path, content, name))], {}).config()


def _loaded(
    tmp_path: Path, content: str, env: dict[str, str] | None = None
) -> tuple[Config, list[str]]:
    """Our configuration for a config file holding ``content``, and the warning lines."""
    lines: list[str] = []
    inv = aemm.parse(["-c", str(_write(tmp_path, content))], env or {})
    return inv.load(warn=lines.append)[1], lines


def _served(cfg: Config, path: str) -> str | None:
    """The body served at ``path`` (relative to /latest/), or None for a 404."""
    entry = offline_app(cfg).state.compiled.lookup(path, EPOCH)
    return None if entry is None else entry.get.body.decode()


def _error_line(tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run ec2-metadata-mock on a config file holding ``content``; it must exit 2 with one
    line on stderr, which is returned."""
    assert aemm_main(["-c", str(_write(tmp_path, content))]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    return err


def test_list_value_in_the_config_file_is_served_one_item_a_line(tmp_path: Path) -> None:
    """A JSON list as a metadata value (security-groups) becomes one item per line."""
    cfg = _config(tmp_path, json.dumps({"metadata": {"values": {"security-groups": ["a", "b"]}}}))
    assert cfg.instance.security_groups == ("a", "b")


@pytest.mark.parametrize(
    "when",
    ["2030-01-01T00:00:00Z", "2030-01-01 00:00:00", "2030-01-01T02:00:00+02:00"],
    ids=["utc", "naive-is-utc", "offset"],
)
def test_yaml_timestamps_schedule_like_the_flag(tmp_path: Path, when: str) -> None:
    """An unquoted YAML timestamp (read as a datetime) triggers the mocks at that instant,
    as --mock-trigger-time with the same instant does; a naive one is UTC."""
    cfg = _config(tmp_path, f"mock-trigger-time: {when}\n", "aemm.yaml")
    spot = next(s for s in cfg.scenarios if isinstance(s, SpotInterruptionConfig))
    flag = aemm.parse(["--mock-trigger-time", "2030-01-01T00:00:00Z"], {}).config()
    flag_spot = next(s for s in flag.scenarios if isinstance(s, SpotInterruptionConfig))
    assert spot.at == flag_spot.at == When(1893456000.0)


@pytest.mark.parametrize(
    ("value", "tokens"),
    [('"no"', "optional"), ('"yes"', "required"), ('"0"', "optional"), ("true", "required")],
)
def test_imdsv2_key_takes_aemms_boolean_spellings(tmp_path: Path, value: str, tokens: str) -> None:
    """imdsv2 in a config file accepts true/false, yes/no and 1/0, as AEMM's viper does."""
    assert _config(tmp_path, f'{{"imdsv2": {value}}}').options.http_tokens == tokens


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"spot": {"action": "nap"}}', "spot.action is 'nap'"),
        ('{"spot": ', "valid json"),
        ('{"userdata": {"values": {"userdata": "%%%"}}}', "userdata.values.userdata"),
        ('{"metadata": {"paths": {"spot": "/latest/meta-data/x"}}}', "metadata.paths.spot"),
        ('{"metadata": {"paths": {"ami-id": "/elsewhere"}}}', "metadata.paths.ami-id"),
        (
            '{"metadata": {"paths": {"ami-id": "/latest/meta-data/two words"}}}',
            "paths.meta-data/two words",
        ),
    ],
    ids=["action", "malformed", "base64", "scenario-path", "path", "path-with-space"],
)
def test_bad_config_file_is_one_line_and_exit_2(
    content: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad config file ends with one line naming the key and exit 2."""
    assert message in _error_line(tmp_path, content, capsys)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"dynamic": {"values": {"instance-identity-document": "text"}}}',
            "dynamic.values.instance-identity-document is 'text'; expected an object",
        ),
        ('{"dynamic": {"values": 5}}', "dynamic.values is 5; expected a mapping"),
        ('{"imdsv2": "sometimes"}', "imdsv2 is 'sometimes'; expected true or false"),
        ('{"mock-delay-sec": [1]}', "mock-delay-sec is [1]; expected a string"),
    ],
    ids=["document-not-object", "values-not-mapping", "imdsv2-not-boolean", "delay-a-list"],
)
def test_badly_shaped_config_values_are_one_line_and_exit_2(
    content: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config value of the wrong shape ends with one line naming the key and exit 2."""
    assert message in _error_line(tmp_path, content, capsys)


@pytest.mark.parametrize("flag", ["-I=false", "--imdsv2=0", "-I=f"])
def test_boolean_flag_set_false_with_equals_is_off(flag: str) -> None:
    """pflag's ``-I=false`` spellings turn the boolean off: tokens stay optional."""
    assert aemm.parse([flag], {}).config().options.http_tokens == "optional"
    bare = flag.partition("=")[0]
    assert aemm.parse([bare], {}).config().options.http_tokens == "required"


UNKNOWN = [
    ({"spot": {"acton": "stop"}}, {}, "spot.acton", "action"),
    (
        {"metadata": {"values": {"instance-idd": "i-0"}}},
        {},
        "metadata.values.instance-idd",
        "instance-id",
    ),
    (
        {"metadata": {"paths": {"ipv4-associations": "/latest/meta-data/x"}}},
        {},
        "metadata.paths.ipv4-associations",
        "mac-ipv4-associations",
    ),
    (
        {"dynamic": {"values": {"instance-identity-documnt": {}}}},
        {},
        "dynamic.values.instance-identity-documnt",
        "instance-identity-document",
    ),
    ({"events": {"not-befor": "x"}}, {}, "events.not-befor", "not-before"),
    ({"mock-delay-se": 5}, {}, "mock-delay-se", "mock-delay-sec"),
    ({}, {"AEMM_SPOT_ACTON": "stop"}, "AEMM_SPOT_ACTON", "AEMM_SPOT_ACTION"),
]


@pytest.mark.parametrize(("content", "env", "key", "match"), UNKNOWN, ids=[u[2] for u in UNKNOWN])
def test_unknown_keys_are_ignored_with_one_warning_naming_the_close_match(
    tmp_path: Path, content: dict[str, object], env: dict[str, str], key: str, match: str
) -> None:
    """A key or AEMM_* variable the Go mock does not read is ignored, as there, with one
    warning line naming it and the closest known one."""
    cfg, lines = _loaded(tmp_path, json.dumps(content), env)
    assert lines == [
        f"unknown {'variable' if env else 'config key'} {key} ignored; did you mean {match!r}?"
    ]
    assert cfg.scenarios == _loaded(tmp_path, "{}")[0].scenarios


def test_an_unknown_key_with_no_close_match_names_none(tmp_path: Path) -> None:
    """An unknown key resembling no known one is still one line, without a guess."""
    assert _loaded(tmp_path, '{"spot": {"zzz": 1}}')[1] == ["unknown config key spot.zzz ignored"]


# (AEMM config, path served, body, the warning's words after "real EC2 would require")
AS_GIVEN = [
    ({"metadata": {"values": {"instance-id": "nope"}}}, "meta-data/instance-id", "nope",
     "metadata.values.instance-id is 'nope'; real EC2 would require i- followed by 8 or 17 hex digits"),
    ({"metadata": {"values": {"mac-owner-id": "9876543210"}}},
     "meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/owner-id", "9876543210",
     "metadata.values.mac-owner-id is '9876543210'; real EC2 would require 12 digits"),
    ({"metadata": {"values": {"placement-region": "moon-1"}}}, "meta-data/placement/region",
     "moon-1", "metadata.values.placement-region is 'moon-1'; real EC2 would require a known region"),
    ({"metadata": {"values": {"placement-availability-zone": "crater"}}},
     "meta-data/placement/availability-zone", "crater",
     "metadata.values.placement-availability-zone is 'crater'; real EC2 would require a known zone"),
    ({"metadata": {"values": {"placement-region": "eu-west-1",
                              "placement-availability-zone": "us-east-1c"}}},
     "meta-data/placement/availability-zone", "us-east-1c",
     "is 'us-east-1c'; real EC2 would require a zone of region eu-west-1"),
    ({"metadata": {"values": {"mac": "0E:49:61:0F:C3:22"}}}, "meta-data/mac", "0E:49:61:0F:C3:22",
     "metadata.values.mac is '0E:49:61:0F:C3:22'; real EC2 would require a lower-case MAC"),
    ({"metadata": {"values": {"local-ipv4": "ten.0.0.1"}}}, "meta-data/local-ipv4", "ten.0.0.1",
     "metadata.values.local-ipv4 is 'ten.0.0.1'; real EC2 would require an IPv4 address"),
    ({"metadata": {"values": {"public-ipv4": "public"}}}, "meta-data/public-ipv4", "public",
     "metadata.values.public-ipv4 is 'public'; real EC2 would require an IPv4 address"),
    ({"metadata": {"values": {"mac-ipv6-associations": "v6"}}}, "meta-data/ipv6", "v6",
     "metadata.values.mac-ipv6-associations is 'v6'; real EC2 would require an IPv6 address"),
    ({"metadata": {"values": {"iam-security-credentials-role": "role:x"}}},
     "meta-data/iam/security-credentials", "role:x",
     "metadata.values.iam-security-credentials-role is 'role:x'; real EC2 would require an IAM role"),
    ({"userdata": {"values": {"userdata": base64.b64encode(b"u" * 16385).decode()}}},
     "user-data", "u" * 16385,
     "userdata.values.userdata is '16385 bytes'; real EC2 would require at most 16384 bytes"),
    ({"metadata": {"values": {"instance-life-cycle": "weird"}}}, "meta-data/instance-life-cycle",
     "weird", "metadata.values.instance-life-cycle is 'weird'; real EC2 would require one of: on-demand"),
    ({"metadata": {"values": {"placement-partition-number": "9"}}},
     "meta-data/placement/partition-number", "9",
     "metadata.values.placement-partition-number is '9'; real EC2 would require an integer from 1 to 7"),
    ({"metadata": {"values": {"ami-launch-index": "first"}}}, "meta-data/ami-launch-index",
     "first", "metadata.values.ami-launch-index is 'first'; real EC2 would require an integer"),
    ({"metadata": {"values": {"mac": "a/b"}}}, "meta-data/mac", "a/b",
     "metadata.values.mac is 'a/b'; real EC2 would require a lower-case MAC"),
    ({"dynamic": {"values": {"fws-instance-monitoring": "on"}}}, "dynamic/fws/instance-monitoring",
     "on", "dynamic.values.fws-instance-monitoring is 'on'; real EC2 would require one of: enabled"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "path", "body", "warning"),
    AS_GIVEN,
    ids=[a[3].split(" is ")[0] + ":" + a[2][:12] for a in AS_GIVEN],
)
def test_values_the_go_mock_accepts_are_served_as_given_with_one_warning(
    tmp_path: Path, content: dict[str, object], path: str, body: str, warning: str
) -> None:
    """A value the Go mock serves but real EC2 would not is served as given, with one
    warning line saying what real EC2 would require."""
    cfg, lines = _loaded(tmp_path, json.dumps(content))
    assert _served(cfg, path) == body
    assert len(lines) == 1
    assert warning in lines[0]
    assert lines[0].endswith(" (served as given)")


def test_a_relaxed_fact_is_served_everywhere_it_shows(tmp_path: Path) -> None:
    """A relaxed value still changes its fact: a 10-digit account shows in owner-id, the
    identity document and the role ARN alike."""
    cfg, _ = _loaded(tmp_path, json.dumps({"dynamic": {"values": {
        "instance-identity-document": {"accountId": "9876543210"}}}}))  # fmt: skip
    assert json.loads(_served(cfg, "dynamic/instance-identity/document") or "")["accountId"] == (
        "9876543210"
    )
    assert _served(cfg, "meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/owner-id") == (
        "9876543210"
    )
    assert ":iam::9876543210:" in (_served(cfg, "meta-data/iam/info") or "")


def test_every_identity_document_field_given_is_served_as_given(tmp_path: Path) -> None:
    """Identity-document fields we do not map (product codes, billing products, version,
    any new field) and ones our facts cannot hold are served in the document as given."""
    given = {
        "marketplaceProductCodes": ["4i20ezfza3p7xx2kt2g8weu2u"],
        "billingProducts": ["bp-6ba54002"],
        "devpayProductCodes": ["dp-1"],
        "version": "2010-08-31",
        "newField": {"nested": [1, None]},
        "architecture": "sparc",
        "pendingTime": "yesterday",
        "instanceType": "t4g.nano",
    }
    cfg, lines = _loaded(
        tmp_path, json.dumps({"dynamic": {"values": {"instance-identity-document": given}}})
    )
    document = json.loads(_served(cfg, "dynamic/instance-identity/document") or "")
    assert {k: document[k] for k in given} == given
    assert _served(cfg, "meta-data/instance-type") == "t4g.nano"
    assert sorted(line.split(" is ")[0] for line in lines) == [
        f"{DOC}.architecture",
        f"{DOC}.pendingTime",
    ]


def test_imdsmock_itself_stays_strict_where_the_drop_in_relaxes(tmp_path: Path) -> None:
    """The relaxed rules hold for imdsmock's own config: the same value is an error there."""
    from imdsmock.config.load import load
    from imdsmock.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        load(env={}, base={"instance": {"account-id": "9876543210"}})
    assert str(refused.value) == "instance.account-id is '9876543210'; expected 12 digits"


def test_the_compatibility_doc_lists_every_rule_as_decided() -> None:
    """docs/aemm-compatibility.md has one row per configuration rule, saying whether
    ec2-metadata-mock serves a breaking value as given (relaxed) or refuses it."""
    doc = (Path(__file__).parent.parent / "docs" / "aemm-compatibility.md").read_text()
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            rows[cells[0].split("`")[1]] = cells[2]
    for rule in RULES:
        assert rule.name in rows, rule.name
        assert rows[rule.name].startswith(
            "served as given" if rule.name in RELAXED else "refused"
        ), rule.name
    assert set(RELAXED) <= {rule.name for rule in RULES}
