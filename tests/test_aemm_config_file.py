"""ec2-metadata-mock config files: value shapes AEMM accepts (lists, YAML times, yes/no) and
the one-line errors for files and shapes it does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imdsmock.aemm import cli as aemm
from imdsmock.cli import aemm_main
from imdsmock.config.schema import Config


def _write(tmp_path: Path, content: str, name: str = "aemm.json") -> Path:
    file = tmp_path / name
    file.write_text(content)
    return file


def _config(tmp_path: Path, content: str, name: str = "aemm.json") -> Config:
    return aemm.parse(["-c", str(_write(tmp_path, content, name))], {}).config()


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
    spot = next(s for s in cfg.scenarios if s["type"] == "spot-interruption")
    flag = aemm.parse(["--mock-trigger-time", "2030-01-01T00:00:00Z"], {}).config()
    flag_spot = next(s for s in flag.scenarios if s["type"] == "spot-interruption")
    if when.endswith("+02:00"):
        assert spot["at"] == "2030-01-01T02:00:00+02:00"
    else:
        assert spot["at"] == flag_spot["at"]


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
        ('{"colour": "red"}', "colour is 'red'"),
        ('{"userdata": {"values": {"userdata": "%%%"}}}', "userdata.values.userdata"),
        ('{"metadata": {"paths": {"spot": "/latest/meta-data/x"}}}', "metadata.paths.spot"),
        ('{"metadata": {"paths": {"ami-id": "/elsewhere"}}}', "metadata.paths.ami-id"),
        ('{"metadata": {"values": {"instance-id": "nope"}}}', "instance.instance-id is 'nope'"),
    ],
    ids=["action", "malformed", "unknown-key", "base64", "scenario-path", "path", "instance-id"],
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
