"""ec2-metadata-mock's interface: every flag, alias, config key and AEMM_* variable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from imdsmock import aemm
from imdsmock.aemm_config import ENV_KEYS
from imdsmock.aemm_defaults import DEFAULTS, DYNAMIC, META
from imdsmock.app import App
from imdsmock.clock import ManualClock
from imdsmock.config import Config
from support import EPOCH, shared_signer

MAC_DIR = "meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/"


def config_for(argv: list[str], env: dict[str, str] | None = None) -> Config:
    """Our configuration for an ec2-metadata-mock command line (nothing served)."""
    return aemm.parse(argv, env or {}).config()


def served(cfg: Config, path: str, after: float = 0.0) -> str | None:
    """The body the configured instance serves at ``path`` (relative to /latest/)."""
    app = App(cfg, clock=ManualClock(EPOCH), signer=shared_signer())
    entry = app.state.snapshot.table(EPOCH + after).lookup(path)
    return None if entry is None else entry.get.body.decode()


# -- root flags -----------------------------------------------------------------------------

FLAGS = [
    (["-n", "127.0.0.1"], "server.hostname", "127.0.0.1"),
    (["--hostname", "127.0.0.1"], "server.hostname", "127.0.0.1"),
    (["-p", "1999"], "server.port", "1999"),
    (["--port=1999"], "server.port", "1999"),
    (["-c", "/nonexistent/aemm.json"], "config-file", "/nonexistent/aemm.json"),
    (["--config-file", "/nonexistent/aemm.json"], "config-file", "/nonexistent/aemm.json"),
    (["-s"], "save-config-to-file", True),
    (["--save-config-to-file"], "save-config-to-file", True),
    (["-w"], "watch-config-file", True),
    (["--watch-config-file"], "watch-config-file", True),
    (["-d", "5"], "mock-delay-sec", "5"),
    (["-d=5"], "mock-delay-sec", "5"),
    (["--mock-delay-sec", "5"], "mock-delay-sec", "5"),
    (["--mock-trigger-time", "2030-01-01T00:00:00Z"], "mock-trigger-time", "2030-01-01T00:00:00Z"),
    (["-x", "3"], "mock-ip-count", "3"),
    (["--mock-ip-count", "-1"], "mock-ip-count", "-1"),
    (["-I"], "imdsv2", True),
    (["--imdsv2"], "imdsv2", True),
    (["--imdsv2=true"], "imdsv2", True),
    (["--rebalance-delay-sec", "7"], "rebalance-delay-sec", "7"),
    (
        ["--rebalance-trigger-time", "2030-01-01T00:00:00Z"],
        "rebalance-trigger-time",
        "2030-01-01T00:00:00Z",
    ),
    (["--asg-termination-delay-sec", "9"], "asg-termination-delay-sec", "9"),
    (
        ["--asg-termination-trigger-time", "2030-01-01T00:00:00Z"],
        "asg-termination-trigger-time",
        "2030-01-01T00:00:00Z",
    ),
]


@pytest.mark.parametrize(("argv", "key", "value"), FLAGS, ids=[" ".join(f[0]) for f in FLAGS])
def test_every_root_flag_is_accepted_before_or_after_the_subcommand(
    argv: list[str], key: str, value: object
) -> None:
    """Each root flag sets its config key, before a subcommand or after it (cobra)."""
    for line in (argv, ["spot", *argv]):
        inv = aemm.parse(line, {})
        merged = inv.merged()
        node: Any = merged
        for part in key.split("."):
            node = node[part]
        assert node == value
        inv.config()


def test_root_flags_change_what_is_served() -> None:
    """-n/-p/-x/-I land in our configuration: listen address, gate and required tokens."""
    cfg = config_for(["-n", "127.0.0.1", "-p", "1999", "-x", "5", "-I"])
    assert (cfg.server.host, cfg.server.port) == ("127.0.0.1", 1999)
    assert cfg.server.mock_ip_count == 5
    assert cfg.options.http_tokens == "required"
    default = config_for([])
    assert (default.server.host, default.server.port, default.server.mock_ip_count) == (
        "0.0.0.0",
        1338,
        2,
    )
    assert default.options.http_tokens == "optional"


def test_version_prints_a_bare_version(capsys: pytest.CaptureFixture[str]) -> None:
    """-v/--version prints the bare version string and exits 0."""
    for flag in ("-v", "--version"):
        with pytest.raises(SystemExit) as done:
            aemm.main([flag])
        assert done.value.code == 0
        assert capsys.readouterr().out.strip() == aemm.__version__


@pytest.mark.parametrize("argv", [["help"], ["--help"], ["-h"], ["help", "spot"], ["events", "-h"]])
def test_help_is_available_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """help, --help and -h print usage and exit 0, for the root and subcommands."""
    with pytest.raises(SystemExit) as done:
        aemm.main(argv)
    assert done.value.code == 0
    assert "usage: ec2-metadata-mock" in capsys.readouterr().out


# -- subcommands and their flags ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("spot", "spot"),
        ("spotitn", "spot"),
        ("events", "events"),
        ("se", "events"),
        ("scheduledevents", "events"),
        ("asglifecycle", "asglifecycle"),
        ("autoscaling", "asglifecycle"),
        ("asg", "asglifecycle"),
    ],
)
def test_every_subcommand_alias_selects_its_mode(name: str, mode: str) -> None:
    """Subcommands and their aliases select the mode served."""
    assert aemm.parse([name], {}).mode == mode
    assert aemm.parse([], {}).mode == "root"


@pytest.mark.parametrize(
    ("argv", "spot", "rebalance", "events", "asg"),
    [
        ([], True, True, True, True),
        (["spot"], True, True, False, False),
        (["events"], False, False, True, False),
        (["asglifecycle"], False, False, False, True),
    ],
    ids=["root", "spot", "events", "asglifecycle"],
)
def test_each_mode_serves_its_own_mocks_interrupting_now(
    argv: list[str], spot: bool, rebalance: bool, events: bool, asg: bool
) -> None:
    """Root serves every mock from the first second; a subcommand only its own."""
    cfg = config_for(argv)
    assert (served(cfg, "meta-data/spot/instance-action") is not None) is spot
    assert (served(cfg, "meta-data/events/recommendations/rebalance") is not None) is rebalance
    assert (served(cfg, "meta-data/events/maintenance/scheduled") != "[ ]") is events
    lifecycle = served(cfg, "meta-data/autoscaling/target-lifecycle-state")
    assert lifecycle == ("Terminated" if asg else None)


@pytest.mark.parametrize("argv", [["spot", "-a", "stop"], ["spot", "--action", "stop"]])
def test_spot_action_flag(argv: list[str]) -> None:
    """spot -a/--action sets the notice's action."""
    notice = served(config_for(argv), "meta-data/spot/instance-action")
    assert json.loads(notice or "")["action"] == "stop"


@pytest.mark.parametrize("flag", ["-t", "--time"])
def test_spot_time_flag_pins_the_termination_time(flag: str) -> None:
    """spot -t/--time pins the time in the notice and termination-time."""
    cfg = config_for(["spot", flag, "2030-01-02T03:04:05Z"])
    assert served(cfg, "meta-data/spot/termination-time") == "2030-01-02T03:04:05Z"
    notice = served(cfg, "meta-data/spot/instance-action")
    assert json.loads(notice or "")["time"] == "2030-01-02T03:04:05Z"


@pytest.mark.parametrize("flag", ["-r", "--rebalance-rec-time"])
def test_spot_rebalance_rec_time_flag(flag: str) -> None:
    """spot -r/--rebalance-rec-time pins the rebalance noticeTime."""
    cfg = config_for(["spot", flag, "2030-01-02T03:04:05Z"])
    text = served(cfg, "meta-data/events/recommendations/rebalance")
    assert json.loads(text or "") == {"noticeTime": "2030-01-02T03:04:05Z"}


@pytest.mark.parametrize(
    ("flags", "field", "expected"),
    [
        (["-o", "instance-stop"], "Code", "instance-stop"),
        (["--code", "instance-retirement"], "Code", "instance-retirement"),
        (["-b", "2030-01-02T03:04:05Z"], "NotBefore", "2 Jan 2030 03:04:05 GMT"),
        (["--not-before", "2030-01-02T03:04:05Z"], "NotBefore", "2 Jan 2030 03:04:05 GMT"),
        (["-a", "2030-02-02T03:04:05Z"], "NotAfter", "2 Feb 2030 03:04:05 GMT"),
        (["--not-after", "2030-02-02T03:04:05Z"], "NotAfter", "2 Feb 2030 03:04:05 GMT"),
        (["-l", "2030-03-02T03:04:05Z"], "NotBeforeDeadline", "2 Mar 2030 03:04:05 GMT"),
        (
            ["--not-before-deadline", "2030-03-02T03:04:05Z"],
            "NotBeforeDeadline",
            "2 Mar 2030 03:04:05 GMT",
        ),
    ],
)
def test_events_flags_shape_the_event(flags: list[str], field: str, expected: str) -> None:
    """events -o/-b/-a/-l set the code and times of the scheduled event."""
    text = served(config_for(["events", *flags]), "meta-data/events/maintenance/scheduled")
    assert json.loads(text or "")[0][field] == expected


@pytest.mark.parametrize("flag", ["-t", "--state"])
def test_events_state_flag_moves_ended_events_to_history(flag: str) -> None:
    """events -t/--state completed serves the event in history, as real EC2 does."""
    cfg = config_for(["events", flag, "completed"])
    assert served(cfg, "meta-data/events/maintenance/scheduled") == "[ ]"
    history = json.loads(served(cfg, "meta-data/events/maintenance/history") or "")
    assert history[0]["State"] == "completed"


def test_delays_and_trigger_times_schedule_the_mocks() -> None:
    """-d, --rebalance-delay-sec and --asg-termination-delay-sec count from the start."""
    cfg = config_for(
        ["-d", "10", "--rebalance-delay-sec", "5", "--asg-termination-delay-sec", "20"]
    )
    spot, rebalance = "meta-data/spot/instance-action", "meta-data/events/recommendations/rebalance"
    asg = "meta-data/autoscaling/target-lifecycle-state"
    assert served(cfg, spot, 9) is None
    assert served(cfg, spot, 10) is not None
    assert served(cfg, rebalance, 4) is None
    assert served(cfg, rebalance, 5) is not None
    assert served(cfg, asg, 19) == "InService"
    assert served(cfg, asg, 20) == "Terminated"
    trigger = config_for(["-d", "10", "--mock-trigger-time", "2026-01-01T00:00:03Z"])
    assert served(trigger, spot, 3) is not None  # the trigger time beats the delay


# -- config file and AEMM_* -----------------------------------------------------------------

VALUE_CASES: dict[str, tuple[Any, str, str]] = {
    # key: (new value, path served, expected body); others use "x-<key>" at the default path.
    "ami-launch-index": ("3", "meta-data/ami-launch-index", "3"),
    "hostname": ("host.example", "meta-data/hostname", "host.example"),
    "instance-id": ("i-0123456789abcdef1", "meta-data/instance-id", "i-0123456789abcdef1"),
    "instance-life-cycle": ("spot", "meta-data/instance-life-cycle", "spot"),
    "local-ipv4": ("10.1.2.3", "meta-data/local-ipv4", "10.1.2.3"),
    "mac": ("0a:bb:cc:dd:ee:ff", "meta-data/mac", "0a:bb:cc:dd:ee:ff"),
    "mac-ipv6-associations": ("2001:db8::5", MAC_DIR + "ipv6s", "2001:db8::5"),
    "mac-owner-id": ("111122223333", MAC_DIR + "owner-id", "111122223333"),
    "mac-subnet-ipv4-cidr-block": (
        "10.0.0.0/16",
        MAC_DIR + "subnet-ipv4-cidr-block",
        "10.0.0.0/16",
    ),
    "mac-subnet-ipv6-cidr-blocks": (
        "2001:db8:1::/64",
        MAC_DIR + "subnet-ipv6-cidr-blocks",
        "2001:db8:1::/64",
    ),
    "mac-vpc-ipv4-cidr-blocks": ("10.0.0.0/16", MAC_DIR + "vpc-ipv4-cidr-blocks", "10.0.0.0/16"),
    "mac-vpc-ipv6-cidr-blocks": (
        "2001:db8:1::/56",
        MAC_DIR + "vpc-ipv6-cidr-blocks",
        "2001:db8:1::/56",
    ),
    "placement-availability-zone": (
        "us-east-1c",
        "meta-data/placement/availability-zone",
        "us-east-1c",
    ),
    "placement-partition-number": ("4", "meta-data/placement/partition-number", "4"),
    "placement-region": ("eu-west-1", "meta-data/placement/region", "eu-west-1"),
    "public-ipv4": ("198.51.100.7", "meta-data/public-ipv4", "198.51.100.7"),
    "iam-security-credentials-role": (
        "other-role",
        "meta-data/iam/security-credentials",
        "other-role",
    ),
    "iam-info": ({"Code": "Success"}, "meta-data/iam/info", '{\n  "Code" : "Success"\n}'),
    "iam-security-credentials": (
        {"Code": "Success", "AccessKeyId": "AKIA"},
        "meta-data/iam/security-credentials/baskinc-role",
        '{\n  "Code" : "Success",\n  "AccessKeyId" : "AKIA"\n}',
    ),
    "elastic-inference-accelerator": (
        {"a": "b"},
        "meta-data/elastic-inference/associations/eia-bfa21c7904f64a82a21b9f4540169ce1",
        '{\n  "a" : "b"\n}',
    ),
}


def _case(key: str) -> tuple[Any, str, str]:
    if key in VALUE_CASES:
        return VALUE_CASES[key]
    return f"x-{key}", META[key][0], f"x-{key}"


@pytest.mark.parametrize("key", sorted(META))
def test_every_metadata_value_key_changes_what_is_served(key: str, tmp_path: Path) -> None:
    """metadata.values.<key> in the config file changes the value served at its path."""
    value, path, expected = _case(key)
    file = tmp_path / "aemm.json"
    file.write_text(json.dumps({"metadata": {"values": {key: value}}}))
    assert served(config_for(["-c", str(file)]), path) == expected


@pytest.mark.parametrize("key", sorted(META))
def test_every_metadata_path_key_moves_its_leaf(key: str, tmp_path: Path) -> None:
    """metadata.paths.<key> moves the leaf: the new path serves it, the old one is 404."""
    old = META[key][0]
    new = "meta-data/moved/" + key
    file = tmp_path / "aemm.yaml"
    file.write_text(yaml.safe_dump({"metadata": {"paths": {key: "/latest/" + new}}}))
    cfg = config_for(["-c", str(file)])
    assert served(cfg, new) is not None
    if not any(p.startswith(old + "/") for p, _v, _c in META.values()):
        assert served(cfg, old) is None  # (a directory that still has children stays)


def test_dynamic_and_userdata_keys(tmp_path: Path) -> None:
    """dynamic.values/paths and userdata.values/paths are read (document fields -> facts)."""
    file = tmp_path / "aemm.json"
    doc = dict(DYNAMIC["instance-identity-document"][1], accountId="111122223333")
    file.write_text(
        json.dumps(
            {
                "dynamic": {
                    "values": {
                        "instance-identity-document": doc,
                        "instance-identity-pkcs": "PKCS",
                        "instance-identity-signature": "SIG",
                        "fws-instance-monitoring": "enabled",
                    },
                    "paths": {"fws-instance-monitoring": "/latest/dynamic/fws/monitoring"},
                },
                "userdata": {"values": {"userdata": "aGVsbG8="}},
            }
        )
    )
    cfg = config_for(["-c", str(file)])
    document = json.loads(served(cfg, "dynamic/instance-identity/document") or "")
    assert document["accountId"] == "111122223333"
    assert served(cfg, "meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/owner-id") == (
        "111122223333"
    )
    assert served(cfg, "dynamic/instance-identity/pkcs7") == "PKCS"
    assert served(cfg, "dynamic/instance-identity/signature") == "SIG"
    assert served(cfg, "dynamic/fws/monitoring") == "enabled"
    assert served(cfg, "dynamic/fws/instance-monitoring") is None
    assert served(cfg, "user-data") == "hello"
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps({"userdata": {"paths": {"userdata": "/latest/user-data/x"}}}))
    assert served(config_for(["-c", str(moved)]), "user-data/x") == "1234,john,reboot,true\n"


def test_spot_events_server_and_root_keys_in_a_yaml_file(tmp_path: Path) -> None:
    """The file's spot, events, server and root scenario keys are read (YAML too)."""
    file = tmp_path / "aemm-config.yaml"
    file.write_text(
        "spot: {action: hibernate, time: '2030-01-02T03:04:05Z'}\n"
        "events: {code: instance-stop, state: active}\n"
        "server: {hostname: 127.0.0.1, port: '2001'}\n"
        "imdsv2: true\nmock-ip-count: 4\nmock-delay-sec: 30\n"
        "metadata: {values: {event-id: instance-event-0000000000000000a}}\n"
    )
    cfg = config_for(["-c", str(file)])
    assert (cfg.server.host, cfg.server.port, cfg.server.mock_ip_count) == ("127.0.0.1", 2001, 4)
    assert cfg.options.http_tokens == "required"
    assert served(cfg, "meta-data/spot/instance-action", 29) is None
    notice = json.loads(served(cfg, "meta-data/spot/instance-action", 30) or "")
    assert notice == {"action": "hibernate", "time": "2030-01-02T03:04:05Z"}
    event = json.loads(served(cfg, "meta-data/events/maintenance/scheduled", 30) or "")[0]
    assert (event["Code"], event["EventId"]) == (
        "instance-stop",
        "instance-event-0000000000000000a",
    )


def test_home_config_file_is_found(tmp_path: Path) -> None:
    """Without -c or AEMM_CONFIG_FILE, $HOME/aemm-config.<ext> is read."""
    (tmp_path / "aemm-config.json").write_text(json.dumps({"spot": {"action": "stop"}}))
    inv = aemm.parse([], {"HOME": str(tmp_path)})
    assert inv.file == str(tmp_path / "aemm-config.json")
    assert inv.merged()["spot"]["action"] == "stop"


@pytest.mark.parametrize("var", sorted(ENV_KEYS))
def test_every_aemm_variable_maps_to_its_key(var: str) -> None:
    """Each AEMM_<KEY> variable (prefix, upper case, - and . as _) sets its key."""
    key = ENV_KEYS[var]
    node: Any = DEFAULTS
    for part in key.split("."):
        node = node[part]
    value = json.dumps(node) if isinstance(node, dict) else str(node)
    inv = aemm.parse([], {var: value})
    merged: Any = inv.merged()
    for part in key.split("."):
        merged = merged[part]
    assert merged == value


@pytest.mark.parametrize(
    ("env", "check"),
    [
        ({"AEMM_SPOT_ACTION": "stop"}, ("meta-data/spot/instance-action", '"stop"')),
        (
            {"AEMM_METADATA_VALUES_INSTANCE_ID": "i-0123456789abcdef9"},
            ("meta-data/instance-id", "i-0123456789abcdef9"),
        ),
        (
            {"AEMM_EVENTS_CODE": "instance-stop"},
            ("meta-data/events/maintenance/scheduled", "instance-stop"),
        ),
        (
            {"AEMM_EVENTS_NOT_BEFORE_DEADLINE": "2030-03-02T03:04:05Z"},
            ("meta-data/events/maintenance/scheduled", "2 Mar 2030"),
        ),
        (
            {"AEMM_ASG_TERMINATION_TRIGGER_TIME": "2030-01-01T00:00:00Z"},
            ("meta-data/autoscaling/target-lifecycle-state", "InService"),
        ),
        ({"AEMM_USERDATA_VALUES_USERDATA": "aGk="}, ("user-data", "hi")),
    ],
    ids=["spot-action", "instance-id", "events-code", "deadline", "asg-trigger", "userdata"],
)
def test_aemm_variables_change_what_is_served(env: dict[str, str], check: tuple[str, str]) -> None:
    """AEMM_* variables take effect like the keys they name."""
    path, fragment = check
    assert fragment in (served(config_for([], env), path) or "")


def test_server_port_imdsv2_and_ip_count_from_environment() -> None:
    """AEMM_SERVER_PORT, AEMM_IMDSV2 and AEMM_MOCK_IP_COUNT configure the server."""
    cfg = config_for(
        [], {"AEMM_SERVER_PORT": "2002", "AEMM_IMDSV2": "true", "AEMM_MOCK_IP_COUNT": "-1"}
    )
    assert (cfg.server.port, cfg.options.http_tokens, cfg.server.mock_ip_count) == (
        2002,
        "required",
        -1,
    )


def test_precedence_is_flag_then_env_then_file_then_default(tmp_path: Path) -> None:
    """A flag beats AEMM_*, which beats the config file, which beats the default."""
    file = tmp_path / "aemm.json"
    file.write_text(json.dumps({"spot": {"action": "hibernate"}, "server": {"port": "2003"}}))
    env = {"AEMM_CONFIG_FILE": str(file), "AEMM_SPOT_ACTION": "stop"}
    assert aemm.parse([], env).merged()["spot"]["action"] == "stop"
    assert aemm.parse(["spot", "-a", "terminate"], env).merged()["spot"]["action"] == "terminate"
    assert aemm.parse([], env).merged()["server"]["port"] == "2003"
    assert aemm.parse([], {}).merged()["spot"]["action"] == "terminate"
    assert aemm.parse(["-c", str(file)], {}).file == str(file)


def test_save_config_writes_the_merged_config_that_loads_back(tmp_path: Path) -> None:
    """-s writes $HOME/.ec2-metadata-mock/.aemm-config-used.json; it loads back unchanged."""
    env = {"HOME": str(tmp_path), "AEMM_SPOT_ACTION": "stop"}
    inv = aemm.parse(["-s", "-p", "2004"], env)
    aemm._save(inv, inv.merged())
    saved = tmp_path / ".ec2-metadata-mock" / ".aemm-config-used.json"
    data = json.loads(saved.read_text())
    assert data["spot"]["action"] == "stop"
    assert data["server"]["port"] == "2004"
    assert data["metadata"]["values"]["instance-id"] == "i-1234567890abcdef0"
    again = config_for(["-c", str(saved)])
    assert again.instance == config_for(["spot", "-a", "stop"]).instance
    assert again.server.port == 2004


# -- bad input: one line, exit 2 ------------------------------------------------------------

BAD = [
    (["spot", "-a", "reboot"], "spot.action is 'reboot'"),
    (["events", "-o", "nap"], "events.code is 'nap'"),
    (["events", "-t", "done"], "events.state is 'done'"),
    (["events", "-b", "tomorrow"], "events.not-before is 'tomorrow'"),
    (["spot", "-t", "soon"], "spot.time is 'soon'"),
    (["-d", "abc"], "mock-delay-sec is 'abc'"),
    (["-d", "-1"], "mock-delay-sec is '-1'"),
    (["-x", "-2"], "mock-ip-count is '-2'"),
    (["-p", "70000"], "server.port is '70000'"),
    (["--mock-trigger-time", "2030-13-01T00:00:00Z"], "mock-trigger-time"),
    (["--asg-termination-trigger-time", "42"], "asg-termination-trigger-time is '42'"),
    (["--imdsv2=maybe"], "--imdsv2 is 'maybe'"),
    (["--no-such-flag"], "unrecognized arguments"),
    (["spot", "-o", "x"], "unrecognized arguments"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Invalid flags and values print one line naming the key and exit 2, no traceback."""
    monkeypatch.setenv("HOME", str(tmp_path))
    try:
        status = aemm.main(argv)
    except SystemExit as done:
        status = int(done.code or 0)
    err = capsys.readouterr().err
    assert status == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


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
    file = tmp_path / "aemm.json"
    file.write_text(content)
    assert aemm.main(["-c", str(file)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
