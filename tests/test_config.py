"""Configuration: sources and precedence, and one clear line for every bad input."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from imdsmock.cli import main
from imdsmock.config.load import load
from imdsmock.config.schema import env_name
from mockprocess import free_port, run_command


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process; returns status, stdout and stderr."""
    status = main(args)
    out, err = capsys.readouterr()
    return status, out, err


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    """A key set everywhere takes the flag's value; then env's; then the file's."""
    file = tmp_path / "c.yaml"
    file.write_text(
        "options:\n  hop-limit: 3\ninstance:\n  region: eu-west-1\n  instance-type: t3.micro\n"
    )
    env = {"IMDSMOCK_HOP_LIMIT": "4", "IMDSMOCK_INSTANCE_INSTANCE_TYPE": "c5.large"}
    cfg = load(file=file, env=env, flags={"hop-limit": "5"})
    assert cfg.options.hop_limit == 5
    assert cfg.instance.instance_type == "c5.large"
    assert cfg.instance.region == "eu-west-1"
    assert load(file=file, env=env).options.hop_limit == 4
    assert load(file=file, env={}).options.hop_limit == 3
    assert load(env={}).options.hop_limit == 1


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".toml"])
def test_file_formats(tmp_path: Path, suffix: str) -> None:
    """The config file may be YAML, JSON or TOML, chosen by extension."""
    data = {"instance": {"instance-id": "i-0123456789abcdef0", "tags": {"Team": "core"}}}
    file = tmp_path / f"c{suffix}"
    if suffix == ".json":
        file.write_text(json.dumps(data))
    elif suffix == ".toml":
        file.write_text(
            '[instance]\ninstance-id = "i-0123456789abcdef0"\n[instance.tags]\nTeam = "core"\n'
        )
    else:
        file.write_text("instance:\n  instance-id: i-0123456789abcdef0\n  tags: {Team: core}\n")
    cfg = load(file=file, env={})
    assert cfg.instance.instance_id == "i-0123456789abcdef0"
    assert dict(cfg.instance.tags) == {"Team": "core"}


def test_env_names_follow_the_key() -> None:
    """Every key has IMDSMOCK_ + the key upper-cased, and short flags have short names."""
    assert env_name("options.http-tokens") == "IMDSMOCK_OPTIONS_HTTP_TOKENS"
    assert load(env={"IMDSMOCK_OPTIONS_HTTP_TOKENS": "required"}).options.http_tokens == "required"
    assert load(env={"IMDSMOCK_HTTP_TOKENS": "required"}).options.http_tokens == "required"
    assert load(env={"IMDSMOCK_PORT": "9999"}).server.port == 9999


def test_config_command_prints_effective_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`imdsmock config` prints the merged configuration, secrets masked."""
    monkeypatch.setenv("IMDSMOCK_REGION", "ap-southeast-2")
    status, out, _ = run_cli(
        ["config", "--format", "json", "--hop-limit", "2", "--control-token", "s3cr3t"], capsys
    )
    assert status == 0
    data = json.loads(out)
    assert data["options"]["hop-limit"] == 2
    assert data["instance"]["region"] == "ap-southeast-2"
    assert data["server"]["control-token"] == "***"
    assert "s3cr3t" not in out


def test_config_command_prints_yaml_timestamps_as_json_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A scenario time written as an unquoted YAML timestamp is printed as RFC 3339 text by
    `imdsmock config --format json` (not a traceback)."""
    file = tmp_path / "c.yaml"
    file.write_text("scenarios:\n  - {type: spot-interruption, at: 2030-01-01T00:00:00Z}\n")
    status, out, _ = run_cli(["config", "--format", "json", "-c", str(file)], capsys)
    assert status == 0
    assert json.loads(out)["scenarios"] == [
        {"type": "spot-interruption", "at": "2030-01-01T00:00:00+00:00"}
    ]


def test_config_command_prints_derived_values_marked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`imdsmock config` prints the zone, zone ID and host names that will be served for
    keys left null, marked as derived (a YAML comment that loads back; a JSON list)."""
    status, out, _ = run_cli(["config", "--region", "eu-west-1"], capsys)
    assert status == 0
    lines = out.splitlines()
    assert "  region: eu-west-1" in lines
    assert "  availability-zone: eu-west-1a  # derived" in lines
    assert "  availability-zone-id: euw1-az1  # derived" in lines
    assert "  hostname: ip-172-16-34-43.eu-west-1.compute.internal  # derived" in lines
    assert "null  # derived" not in out
    file = tmp_path / "printed.yaml"
    file.write_text(out)
    assert load(file=file, env={}).instance.availability_zone == "eu-west-1a"
    status, out, err = run_cli(["config", "--format", "json"], capsys)
    data = json.loads(out)
    assert data["instance"]["availability-zone"] == "us-east-1a"
    assert "derived" not in data
    assert err == (
        "imdsmock: derived (left null, served as printed): instance.region, "
        "instance.availability-zone, instance.availability-zone-id, instance.hostname, "
        "instance.public-hostname\n"
    )
    # What JSON printed loads back, as the YAML does.
    file = tmp_path / "printed.json"
    file.write_text(out)
    assert load(file=file, env={}).instance.availability_zone == "us-east-1a"


def test_set_flag_reaches_any_key(capsys: pytest.CaptureFixture[str]) -> None:
    """--set KEY=VALUE sets any key, including map entries such as a tag."""
    status, out, _ = run_cli(
        ["config", "--format", "json", "--set", "instance.tags.Owner=alice", "--set",
         "credentials.lifetime=7200", "--set", "credentials.rotate-every=3600"],
        capsys,
    )  # fmt: skip
    data = json.loads(out)
    assert status == 0
    assert data["instance"]["tags"]["Owner"] == "alice"
    assert data["credentials"]["lifetime"] == 7200


def _busy_port() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


BAD = [
    ("unknown-key", ["--set", "options.http-token=required"], "options.http-token"),
    ("wrong-type", ["--hop-limit", "two"], "options.hop-limit is 'two'; expected an integer"),
    ("hop-limit-range", ["--hop-limit", "65"], "expected an integer from 1 to 64"),
    ("bad-enum", ["--http-tokens", "maybe"], "expected one of: optional, required"),
    ("bad-base64", ["--user-data-base64", "%%%notbase64"], "instance.user-data-base64"),
    ("bad-instance-id", ["--instance-id", "x-123"], "instance.instance-id is 'x-123'"),
    ("zone-region", ["--region", "eu-west-1", "--availability-zone", "us-east-1a"], "a zone of region eu-west-1"),
    ("bad-listen", ["--listen", "nowhere"], "server.listen is 'nowhere'; expected HOST:PORT"),
    ("bad-port", ["--port", "70000"], "server.port is '70000'; expected an integer from 0 to 65535"),
    ("int32-range", ["--set", "server.mock-ip-count=2147483648"], "server.mock-ip-count is '2147483648'; expected an integer from -1 to 2147483647"),
    ("bad-tag-key", ["--set", "instance.tags.bad key=x"], "instance.tags.bad key"),
    ("rotation", ["--set", "credentials.rotate-every=21500"], "credentials.rotate-every"),
    ("set-syntax", ["--set", "novalue"], "--set 'novalue' is not KEY=VALUE"),
    ("bad-account", ["--account-id", "12"], "instance.account-id is '12'; expected 12 digits"),
    ("bad-pending-time", ["--set", "instance.pending-time=2019-10-31T07:02:24.000Z"], "instance.pending-time is '2019-10-31T07:02:24.000Z'; expected an IMDS timestamp"),
    ("misspelt-region", ["--region", "eu-wst-1"], "instance.region is 'eu-wst-1'; expected a known region like us-east-1 (instance.allow-unknown-regions: true takes any); did you mean 'eu-west-1'?"),
    ("upper-case-region", ["--region", "EU-WEST-1"], "did you mean 'eu-west-1'?"),
    ("unknown-zone", ["--availability-zone", "eu-west-1q"], "instance.availability-zone is 'eu-west-1q'; expected a known zone like us-east-1a"),
    ("unknown-region-shape", ["--region", "Moon", "--set", "instance.allow-unknown-regions=true"], "instance.region is 'Moon'; expected a region name like us-east-1"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    """Each bad input ends with one line naming the key, the value and what is allowed."""
    status, _, err = run_cli(["config", *args], capsys)
    assert status == 2
    assert err.count("\n") == 1, err
    assert expected in err
    assert "Traceback" not in err


MISSPELT = [
    ("same-section", ["--set", "instance.regoin=eu-west-1"], "instance.regoin", "'region'"),
    ("underscores", ["--set", "instance.acount_id=1"], "instance.acount_id", "'account-id'"),
    ("option", ["--set", "options.http-token=required"], "options.http-token", "'http-tokens'"),
    ("other-section", ["--set", "server.region=eu-west-1"], "server.region", "'instance.region'"),
    ("top-level", ["--set", "regoin=eu-west-1"], "regoin", "'instance.region'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "key", "meant"), [m[1:] for m in MISSPELT], ids=[m[0] for m in MISSPELT]
)
def test_unknown_key_ends_with_the_close_match(
    capsys: pytest.CaptureFixture[str], args: list[str], key: str, meant: str
) -> None:
    """An unknown key lists the known ones and ends with the closest, in its section or another."""
    status, _, err = run_cli(["config", *args], capsys)
    assert status == 2
    assert err.startswith(f"imdsmock: error: {key} is ")
    assert err.endswith(f"; did you mean {meant}?\n")
    assert err.count("\n") == 1


def test_unknown_key_far_from_any_has_no_guess(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key close to no known one is refused without a guess."""
    file = tmp_path / "c.yaml"
    file.write_text("instance:\n  zzzz: 1\n")
    status, _, err = run_cli(["config", "-c", str(file)], capsys)
    assert status == 2
    assert "instance.zzzz is 1; expected a known key (one of: account-id," in err
    assert "did you mean" not in err


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("c.yaml", "options: [unclosed", "expected valid yaml (error near line 1)"),
        ("c.json", "{", "expected valid json"),
        ("c.toml", "a = ", "expected valid toml"),
        ("c.yaml", "- just\n- a list\n", "a mapping of sections at the top level"),
        ("c.ini", "[x]", "expected a .yaml, .yml, .json or .toml file"),
        ("c.yaml", "options:\n  hop-limit: true\n", "options.hop-limit is True; expected an integer"),
        ("c.yaml", "instance: 5\n", "instance is 5; expected a mapping"),
    ],
    ids=["yaml-syntax", "json-syntax", "toml-syntax", "not-a-mapping", "extension", "bool-for-int", "section-type"],
)  # fmt: skip
def test_bad_files_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str, expected: str
) -> None:
    """A malformed or mistyped config file is reported in one line with exit status 2."""
    file = tmp_path / name
    file.write_text(content)
    status, _, err = run_cli(["config", "-c", str(file)], capsys)
    assert status == 2
    assert expected in err
    assert err.count("\n") == 1


def test_unreadable_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing config file or a directory given as one is one line with exit status 2."""
    status, _, err = run_cli(["config", "-c", str(tmp_path / "missing.yaml")], capsys)
    assert status == 2
    assert "expected an existing, readable file" in err
    status, _, err = run_cli(["config", "-c", str(tmp_path)], capsys)
    assert status == 2
    assert "a file, not a directory" in err


def test_an_unknown_region_is_taken_when_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    """instance.allow-unknown-regions takes a region and zone missing from the known list."""
    args = ["--region", "xx-test-1", "--set", "instance.allow-unknown-regions=true"]
    status, out, err = run_cli(["config", "--format", "json", *args], capsys)
    assert status == 0, err
    assert json.loads(out)["instance"]["region"] == "xx-test-1"
    status, _, err = run_cli(["config", "--region", "xx-test-1"], capsys)
    assert status == 2
    assert "instance.allow-unknown-regions: true takes any" in err


# Listener -> (the arguments that put it on the taken PORT, the setting named in the error).
IN_USE = [
    ("imds", ["--port", "{taken}", "--control-port", "{free}"], {}, "--port or IMDSMOCK_PORT"),
    ("imds-env", ["--control-port", "{free}"], {"IMDSMOCK_PORT": "{taken}"}, "--port or IMDSMOCK_PORT"),
    ("control", ["--port", "{free}", "--control-port", "{taken}"], {}, "--control-port or IMDSMOCK_CONTROL_PORT"),
    ("control-env", ["--port", "{free}"], {"IMDSMOCK_CONTROL_PORT": "{taken}"}, "--control-port or IMDSMOCK_CONTROL_PORT"),
    ("listen", ["--port", "{free}", "--control-port", "{free2}", "--listen", "127.0.0.1:{taken}"], {}, "--listen or IMDSMOCK_LISTEN"),
    ("ecs", ["--port", "{free}", "--control-port", "{free2}", "--ecs-listen", "127.0.0.1:{taken}"], {}, "--ecs-listen or IMDSMOCK_ECS_LISTEN"),
    ("eks", ["--port", "{free}", "--control-port", "{free2}", "--eks-listen", "127.0.0.1:{taken}"], {}, "--eks-listen or IMDSMOCK_EKS_LISTEN"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "setting"), [u[1:] for u in IN_USE], ids=[u[0] for u in IN_USE]
)
def test_port_in_use_names_the_listeners_setting(
    args: list[str], env: dict[str, str], setting: str
) -> None:
    """A listener whose port is taken exits 2 with one line naming that listener's flag and
    variable (the control port's is --control-port, not --port)."""
    busy = _busy_port()
    try:
        ports = {"taken": busy.getsockname()[1], "free": free_port(), "free2": free_port()}
        result = run_command(
            [a.format(**ports) for a in args], {k: v.format(**ports) for k, v in env.items()}
        )
    finally:
        busy.close()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"imdsmock: error: listen address 127.0.0.1:{ports['taken']} is already in use; "
        f"choose another port ({setting})"
    ]


def test_unknown_flag_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown command-line flag is one usage error line (argparse) with exit 2."""
    with pytest.raises(SystemExit) as exc:
        main(["--no-such-flag"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --no-such-flag" in err
    assert "Traceback" not in err


def test_a_relaxed_rule_keeps_a_servable_value_and_reports_it() -> None:
    """A rule named in ``relaxed`` keeps a value that can still be served and passes the
    error it would have raised to ``warn``; a value that cannot be served is still refused."""
    from imdsmock.config.build import from_mapping
    from imdsmock.errors import ConfigError

    seen: list[ConfigError] = []
    relaxed = {"instance.account-id", "instance.mac"}
    raw = {"instance": {"account-id": "0123456789", "mac": "0E:49:61:0F:C3:11"}}
    cfg = from_mapping(raw, relaxed=relaxed, warn=seen.append)
    assert (cfg.instance.account_id, cfg.instance.mac) == ("0123456789", "0E:49:61:0F:C3:11")
    assert [str(e) for e in seen] == [
        "instance.account-id is '0123456789'; expected 12 digits",
        "instance.mac is '0E:49:61:0F:C3:11'; expected a lower-case MAC address like "
        "0e:49:61:0f:c3:11",
    ]
    with pytest.raises(ConfigError) as refused:
        from_mapping({"instance": {"mac": "0e/49"}}, relaxed=relaxed, warn=seen.append)
    assert refused.value.key == "instance.mac"
    with pytest.raises(ConfigError):
        from_mapping(raw)
