"""ec2-metadata-mock's interface: every flag, alias, config key and AEMM_* variable."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from imdsmock.aemm import cli as aemm
from imdsmock.aemm.config import ENV_KEYS
from imdsmock.aemm.defaults import DEFAULTS, DOCUMENT, DYNAMIC, META, SCENARIO_PATHS, USER_DATA
from imdsmock.cli import aemm_main
from imdsmock.config.schema import Config
from support import EPOCH, offline_app

# -- the specification: AEMM v1.13.0 as /work/shared/reference/aemm-interface.md states it ---
# Written once here, independently of imdsmock.aemm.defaults, whose tables are checked
# against it below; the other tests take keys and paths from here.

AEMM_MAC = "0e:49:61:0f:c3:11"  # §4 (the macs/ listing)
MAC_DIR = f"meta-data/network/interfaces/macs/{AEMM_MAC}/"
# The 64 path keys and their default paths under /latest/ (§3.2 key list, §4 paths), in the
# brace groups §4 writes them in. {role}, {eia} and {public_ip} follow the values of
# iam-security-credentials-role, elastic-inference-associations and public-ipv4 (§3.2).
AEMM_PATHS: dict[str, str] = {
    **{
        k: f"meta-data/{k}"
        for k in [
            "ami-id",
            "ami-launch-index",
            "ami-manifest-path",
            "hostname",
            "instance-action",
            "instance-id",
            "instance-life-cycle",
            "instance-type",
            "kernel-id",
            "local-hostname",
            "local-ipv4",
            "mac",
            "product-codes",
            "public-hostname",
            "public-ipv4",
            "ramdisk-id",
            "reservation-id",
            "security-groups",
        ]
    },
    **{
        f"block-device-mapping-{k}": f"meta-data/block-device-mapping/{k}{n}"
        for k, n in (("ami", ""), ("ebs", "0"), ("ephemeral", "0"), ("root", ""), ("swap", ""))
    },
    **{
        f"mac-{k}": MAC_DIR + k
        for k in [
            "device-number",
            "local-hostname",
            "local-ipv4s",
            "mac",
            "owner-id",
            "public-hostname",
            "public-ipv4s",
            "security-group-ids",
            "security-groups",
            "subnet-id",
            "subnet-ipv4-cidr-block",
            "subnet-ipv6-cidr-blocks",
            "vpc-id",
            "vpc-ipv4-cidr-block",
            "vpc-ipv4-cidr-blocks",
            "vpc-ipv6-cidr-blocks",
        ]
    },
    **{
        f"placement-{k}": f"meta-data/placement/{k}"
        for k in [
            "availability-zone",
            "availability-zone-id",
            "group-name",
            "host-id",
            "partition-number",
            "region",
        ]
    },
    "mac-ipv4-associations": MAC_DIR + "ipv4-associations/{public_ip}",
    "mac-ipv6-associations": MAC_DIR + "ipv6s",
    "mac-network-interface-id": MAC_DIR + "interface-id",
    "mac-network-interface-card-index": MAC_DIR + "network-card-index",
    "elastic-inference-associations": "meta-data/elastic-inference/associations",
    "elastic-inference-accelerator": "meta-data/elastic-inference/associations/{eia}",
    "iam-info": "meta-data/iam/info",
    "iam-security-credentials-role": "meta-data/iam/security-credentials",
    "iam-security-credentials": "meta-data/iam/security-credentials/{role}",
    "public-key": "meta-data/public-keys/0/openssh-key",
    "services-domain": "meta-data/services/domain",
    "services-partition": "meta-data/services/partition",
    "tags-instance-name": "meta-data/tags/instance/Name",
    "tags-instance-test": "meta-data/tags/instance/Test",
    # Path-only keys (§3.2): where the scenario answers live.
    "events": "meta-data/events/maintenance/scheduled",
    "spot": "meta-data/spot/instance-action",
    "spot-termination-time": "meta-data/spot/termination-time",
    "rebalance-rec-time": "meta-data/events/recommendations/rebalance",
    "target-lifecycle-state": "meta-data/autoscaling/target-lifecycle-state",
}
SPOT, TERMINATION_TIME = AEMM_PATHS["spot"], AEMM_PATHS["spot-termination-time"]
REBALANCE, EVENTS = AEMM_PATHS["rebalance-rec-time"], AEMM_PATHS["events"]
LIFECYCLE = AEMM_PATHS["target-lifecycle-state"]
PATH_ONLY = {
    "events",
    "spot",
    "spot-termination-time",
    "rebalance-rec-time",
    "target-lifecycle-state",
}
VALUE_KEYS = sorted(set(AEMM_PATHS) - PATH_ONLY)  # + the value-only event-id
# Default values the document states (§3.2, §4, §8 for services-domain).
AEMM_VALUES: dict[str, str] = {
    "ami-id": "ami-0a887e401f7654935",
    "instance-action": "none",
    "instance-life-cycle": "on-demand",
    "instance-type": "m4.xlarge",
    "local-ipv4": "172.16.34.43",
    "mac": AEMM_MAC,
    "mac-owner-id": "515336597381",
    "placement-availability-zone": "us-east-1a",
    "services-domain": "amazonaws.com",
}
AEMM_DOCUMENT = {  # §3.2: the identity document disagrees with the meta-data defaults
    "accountId": "0123456789",
    "availabilityZone": "us-east-1f",
    "privateIp": "10.0.7.10",
    "imageId": "ami-0b69ea66ff7391e80",
}
AEMM_USER_DATA = "1234,john,reboot,true"  # §4, decoded
AEMM_FWS = "disabled"  # §4
# Root keys (§2 flag table, §3.2 schema), then spot/events defaults (§2 subcommands).
AEMM_ROOT: dict[str, Any] = {
    "server.hostname": "0.0.0.0",
    "server.port": "1338",
    "config-file": "",
    "save-config-to-file": False,
    "watch-config-file": False,
    "mock-delay-sec": 0,
    "mock-trigger-time": "",
    "mock-ip-count": 2,
    "imdsv2": False,
    "rebalance-delay-sec": 0,
    "rebalance-trigger-time": "",
    "asg-termination-delay-sec": 0,
    "asg-termination-trigger-time": "",
    "spot.action": "terminate",
    "spot.time": "",
    "spot.rebalance-rec-time": "",
    "events.code": "system-reboot",
    "events.state": "active",
    "events.not-before": "",
    "events.not-after": "",
    "events.not-before-deadline": "",
}
DYNAMIC_KEYS = [
    "instance-identity-document",
    "instance-identity-pkcs",
    "instance-identity-signature",
    "fws-instance-monitoring",
]
# Every key with a default has a variable: AEMM_ + key, upper case, - and . as _ (§0.7,
# §3.1). (pkcs7 and signature are served by imdsmock from real signatures: no defaults, so
# no dynamic.values variables for them.)
AEMM_KEYS = [
    *AEMM_ROOT,
    *(f"metadata.paths.{k}" for k in AEMM_PATHS),
    *(f"metadata.values.{k}" for k in [*VALUE_KEYS, "event-id"]),
    *(f"dynamic.paths.{k}" for k in DYNAMIC_KEYS),
    "dynamic.values.instance-identity-document",
    "dynamic.values.fws-instance-monitoring",
    "userdata.paths.userdata",
    "userdata.values.userdata",
]


def aemm_variable(key: str) -> str:
    """The AEMM_* variable of a dotted key, by the rule the document gives."""
    return "AEMM_" + key.upper().replace("-", "_").replace(".", "_")


def default_path(key: str) -> str:
    """The default path of a metadata key, its placeholders filled from the defaults."""
    values = DEFAULTS["metadata"]["values"]
    return AEMM_PATHS[key].format(
        role=values["iam-security-credentials-role"],
        eia=values["elastic-inference-associations"],
        public_ip=values["public-ipv4"],
    )


def test_default_key_set_and_paths_are_aemms() -> None:
    """The code's key table has AEMM's 64 path keys at AEMM's default paths, 60 value keys."""
    assert len(AEMM_PATHS) == 64
    code_paths = {k: p for k, (p, _v, _c) in META.items()} | dict(SCENARIO_PATHS)
    assert code_paths == {k: default_path(k) for k in AEMM_PATHS}
    assert sorted(DEFAULTS["metadata"]["values"]) == sorted([*VALUE_KEYS, "event-id"])
    assert len(DEFAULTS["metadata"]["values"]) == 60


def test_default_values_are_aemms() -> None:
    """The values the interface states: meta-data, identity document, user data, root keys."""
    assert {k: META[k][1] for k in AEMM_VALUES} == AEMM_VALUES
    assert {k: DOCUMENT[k] for k in AEMM_DOCUMENT} == AEMM_DOCUMENT
    assert base64.b64decode(USER_DATA).decode().rstrip("\n") == AEMM_USER_DATA
    assert DYNAMIC["fws-instance-monitoring"][1] == AEMM_FWS
    assert {key: lookup(DEFAULTS, key) for key in AEMM_ROOT} == AEMM_ROOT


def test_every_key_with_a_default_has_its_aemm_variable() -> None:
    """The AEMM_* variables are exactly those of the keys with defaults."""
    assert dict(ENV_KEYS) == {aemm_variable(k): k for k in AEMM_KEYS}


def lookup(node: Any, key: str) -> Any:
    """The value at a dotted key of a nested mapping."""
    for part in key.split("."):
        node = node[part]
    return node


def config_for(argv: list[str], env: dict[str, str] | None = None) -> Config:
    """Our configuration for an ec2-metadata-mock command line (nothing served)."""
    return aemm.parse(argv, env or {}).config()


def served(cfg: Config, path: str, after: float = 0.0) -> str | None:
    """The body the configured instance serves at ``path`` (relative to /latest/)."""
    entry = offline_app(cfg).state.compiled.lookup(path, EPOCH + after)
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
        assert lookup(inv.merged(), key) == value
        inv.config()


def test_root_flags_change_what_is_served() -> None:
    """-n/-p/-x/-I land in our configuration: listen address, gate and required tokens."""
    cfg = config_for(["-n", "127.0.0.1", "-p", "1999", "-x", "5", "-I"])
    assert (cfg.server.host, cfg.server.port) == ("127.0.0.1", 1999)
    assert cfg.server.mock_ip_count == 5
    assert cfg.options.http_tokens == "required"
    default = config_for([])
    assert (default.server.host, str(default.server.port), default.server.mock_ip_count) == (
        AEMM_ROOT["server.hostname"],
        AEMM_ROOT["server.port"],
        AEMM_ROOT["mock-ip-count"],
    )
    assert default.options.http_tokens == "optional"


def test_version_prints_a_bare_version(capsys: pytest.CaptureFixture[str]) -> None:
    """-v/--version prints the bare version string and exits 0."""
    for flag in ("-v", "--version"):
        with pytest.raises(SystemExit) as done:
            aemm_main([flag])
        assert done.value.code == 0
        assert capsys.readouterr().out.strip() == aemm.__version__


@pytest.mark.parametrize("argv", [["help"], ["--help"], ["-h"], ["help", "spot"], ["events", "-h"]])
def test_help_is_available_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """help, --help and -h print usage and exit 0, for the root and subcommands."""
    with pytest.raises(SystemExit) as done:
        aemm_main(argv)
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
    assert (served(cfg, SPOT) is not None) is spot
    assert (served(cfg, REBALANCE) is not None) is rebalance
    assert (served(cfg, EVENTS) != "[ ]") is events
    lifecycle = served(cfg, LIFECYCLE)
    assert lifecycle == ("Terminated" if asg else None)


@pytest.mark.parametrize("argv", [["spot", "-a", "stop"], ["spot", "--action", "stop"]])
def test_spot_action_flag(argv: list[str]) -> None:
    """spot -a/--action sets the notice's action."""
    notice = served(config_for(argv), SPOT)
    assert json.loads(notice or "")["action"] == "stop"


@pytest.mark.parametrize("flag", ["-t", "--time"])
def test_spot_time_flag_pins_the_termination_time(flag: str) -> None:
    """spot -t/--time pins the time in the notice and termination-time."""
    cfg = config_for(["spot", flag, "2030-01-02T03:04:05Z"])
    assert served(cfg, TERMINATION_TIME) == "2030-01-02T03:04:05Z"
    notice = served(cfg, SPOT)
    assert json.loads(notice or "")["time"] == "2030-01-02T03:04:05Z"


@pytest.mark.parametrize("flag", ["-r", "--rebalance-rec-time"])
def test_spot_rebalance_rec_time_flag(flag: str) -> None:
    """spot -r/--rebalance-rec-time pins the rebalance noticeTime."""
    cfg = config_for(["spot", flag, "2030-01-02T03:04:05Z"])
    text = served(cfg, REBALANCE)
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
    text = served(config_for(["events", *flags]), EVENTS)
    assert json.loads(text or "")[0][field] == expected


@pytest.mark.parametrize("flag", ["-t", "--state"])
def test_events_state_flag_moves_ended_events_to_history(flag: str) -> None:
    """events -t/--state completed serves the event in history, as real EC2 does."""
    cfg = config_for(["events", flag, "completed"])
    assert served(cfg, EVENTS) == "[ ]"
    history = json.loads(served(cfg, "meta-data/events/maintenance/history") or "")
    assert history[0]["State"] == "completed"


def test_delays_and_trigger_times_schedule_the_mocks() -> None:
    """-d, --rebalance-delay-sec and --asg-termination-delay-sec count from the start."""
    cfg = config_for(
        ["-d", "10", "--rebalance-delay-sec", "5", "--asg-termination-delay-sec", "20"]
    )
    assert served(cfg, SPOT, 9) is None
    assert served(cfg, SPOT, 10) is not None
    assert served(cfg, REBALANCE, 4) is None
    assert served(cfg, REBALANCE, 5) is not None
    assert served(cfg, LIFECYCLE, 19) == "InService"
    assert served(cfg, LIFECYCLE, 20) == "Terminated"
    trigger = config_for(["-d", "10", "--mock-trigger-time", "2026-01-01T00:00:03Z"])
    assert served(trigger, SPOT, 3) is not None  # the trigger time beats the delay


# -- config file and AEMM_* -----------------------------------------------------------------

VALUE_CASES: dict[str, tuple[Any, str]] = {
    # key: (new value, expected body at the key's default path); others serve "x-<key>".
    "ami-launch-index": ("3", "3"),
    "hostname": ("host.example", "host.example"),
    "instance-id": ("i-0123456789abcdef1", "i-0123456789abcdef1"),
    "instance-life-cycle": ("spot", "spot"),
    "local-ipv4": ("10.1.2.3", "10.1.2.3"),
    "mac": ("0a:bb:cc:dd:ee:ff", "0a:bb:cc:dd:ee:ff"),
    "mac-ipv6-associations": ("2001:db8::5", "2001:db8::5"),
    "mac-owner-id": ("111122223333", "111122223333"),
    "mac-subnet-ipv4-cidr-block": ("10.0.0.0/16", "10.0.0.0/16"),
    "mac-subnet-ipv6-cidr-blocks": ("2001:db8:1::/64", "2001:db8:1::/64"),
    "mac-vpc-ipv4-cidr-blocks": ("10.0.0.0/16", "10.0.0.0/16"),
    "mac-vpc-ipv6-cidr-blocks": ("2001:db8:1::/56", "2001:db8:1::/56"),
    "placement-availability-zone": ("us-east-1c", "us-east-1c"),
    "placement-partition-number": ("4", "4"),
    "placement-region": ("eu-west-1", "eu-west-1"),
    "public-ipv4": ("198.51.100.7", "198.51.100.7"),
    "iam-security-credentials-role": ("other-role", "other-role"),
    "iam-info": ({"Code": "Success"}, '{\n  "Code" : "Success"\n}'),
    "iam-security-credentials": (
        {"Code": "Success", "AccessKeyId": "AKIA"},
        '{\n  "Code" : "Success",\n  "AccessKeyId" : "AKIA"\n}',
    ),
    "elastic-inference-accelerator": ({"a": "b"}, '{\n  "a" : "b"\n}'),
}


@pytest.mark.parametrize("key", VALUE_KEYS)
def test_every_metadata_value_key_changes_what_is_served(key: str, tmp_path: Path) -> None:
    """metadata.values.<key> in the config file changes the value served at its path."""
    value, expected = VALUE_CASES.get(key, (f"x-{key}", f"x-{key}"))
    file = tmp_path / "aemm.json"
    file.write_text(json.dumps({"metadata": {"values": {key: value}}}))
    assert served(config_for(["-c", str(file)]), default_path(key)) == expected


@pytest.mark.parametrize("key", VALUE_KEYS)
def test_every_metadata_path_key_moves_its_leaf(key: str, tmp_path: Path) -> None:
    """metadata.paths.<key> moves the leaf: the new path serves it, the old one is 404."""
    old = default_path(key)
    new = "meta-data/moved/" + key
    file = tmp_path / "aemm.yaml"
    file.write_text(yaml.safe_dump({"metadata": {"paths": {key: "/latest/" + new}}}))
    cfg = config_for(["-c", str(file)])
    assert served(cfg, new) is not None
    if not any(default_path(k).startswith(old + "/") for k in AEMM_PATHS):
        assert served(cfg, old) is None  # (a directory that still has children stays)


def test_dynamic_and_userdata_keys(tmp_path: Path) -> None:
    """dynamic.values/paths and userdata.values/paths are read (document fields -> facts)."""
    file = tmp_path / "aemm.json"
    doc = dict(DOCUMENT, accountId="111122223333")
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
    assert served(cfg, MAC_DIR + "owner-id") == "111122223333"
    assert served(cfg, "dynamic/instance-identity/pkcs7") == "PKCS"
    assert served(cfg, "dynamic/instance-identity/signature") == "SIG"
    assert served(cfg, "dynamic/fws/monitoring") == "enabled"
    assert served(cfg, "dynamic/fws/instance-monitoring") is None
    assert served(cfg, "user-data") == "hello"
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps({"userdata": {"paths": {"userdata": "/latest/user-data/x"}}}))
    assert served(config_for(["-c", str(moved)]), "user-data/x") == AEMM_USER_DATA + "\n"


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
    assert served(cfg, SPOT, 29) is None
    notice = json.loads(served(cfg, SPOT, 30) or "")
    assert notice == {"action": "hibernate", "time": "2030-01-02T03:04:05Z"}
    event = json.loads(served(cfg, EVENTS, 30) or "")[0]
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


@pytest.mark.parametrize("key", AEMM_KEYS)
def test_every_aemm_variable_maps_to_its_key(key: str) -> None:
    """Each AEMM_<KEY> variable (prefix, upper case, - and . as _) sets its key."""
    assert lookup(aemm.parse([], {aemm_variable(key): "x-set"}).merged(), key) == "x-set"


@pytest.mark.parametrize(
    ("env", "check"),
    [
        ({"AEMM_SPOT_ACTION": "stop"}, (SPOT, '"stop"')),
        (
            {"AEMM_METADATA_VALUES_INSTANCE_ID": "i-0123456789abcdef9"},
            (AEMM_PATHS["instance-id"], "i-0123456789abcdef9"),
        ),
        (
            {"AEMM_EVENTS_CODE": "instance-stop"},
            (EVENTS, "instance-stop"),
        ),
        (
            {"AEMM_EVENTS_NOT_BEFORE_DEADLINE": "2030-03-02T03:04:05Z"},
            (EVENTS, "2 Mar 2030"),
        ),
        (
            {"AEMM_ASG_TERMINATION_TRIGGER_TIME": "2030-01-01T00:00:00Z"},
            (LIFECYCLE, "InService"),
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
    (
        ["-x", "2147483648"],
        "mock-ip-count is '2147483648'; expected an integer from -1 to 2147483647",
    ),
    (
        ["-d", "2147483648"],
        "mock-delay-sec is '2147483648'; expected an integer from 0 to 2147483647",
    ),
    (["-p", "70000"], "server.port is '70000'"),
    (["--mock-trigger-time", "2030-13-01T00:00:00Z"], "mock-trigger-time"),
    (["--asg-termination-trigger-time", "42"], "asg-termination-trigger-time is '42'"),
    (["--imdsv2=maybe"], "--imdsv2 is 'maybe'"),
    (["--no-such-flag"], "unrecognized arguments"),
    (
        ["--portt", "1", "spot"],
        "unknown option '--portt' before the command; did you mean '--port'?",
    ),
    (["spot", "--portt", "1"], "unrecognized arguments: --portt 1; did you mean '--port'?"),
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
        status = aemm_main(argv)
    except SystemExit as done:
        status = int(done.code or 0)
    err = capsys.readouterr().err
    assert status == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
