"""``imdsmock route`` input handling, parsers of system output, and the layout rule."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from imdsmock.netsetup import cli, container, detect, state
from imdsmock.netsetup.errors import NetsetupError

NETSETUP = Path(__file__).resolve().parents[1] / "src/imdsmock/netsetup"

BAD_INPUT = [
    pytest.param(["bogus"], "invalid choice: 'bogus'", id="unknown-action"),
    pytest.param(["up", "--mock", "imds:1338"], "--mock host is 'imds'", id="host-needs-ip"),
    pytest.param(["up", "--mock", "[::1]:1338"], "expected an IPv4 address", id="host-v6"),
    pytest.param(["up", "--mock", "127.0.0.1:0"], "--mock port is '0'", id="port-zero"),
    pytest.param(["up", "--credentials-port", "x"], "--credentials-port is 'x'", id="cport"),
    pytest.param(["up", "--backend", "pf"], "invalid choice: 'pf'", id="backend"),
    pytest.param(["container", "--", "true"], "--mock is missing", id="no-mock"),
    pytest.param(["container", "--mock", "imds"], "no command given", id="no-command"),
    pytest.param(
        ["container", "--mock", "imds", "--timeout", "soon", "--", "true"],
        "--timeout is 'soon'",
        id="timeout",
    ),
    pytest.param(["sidecar", "--mock", ":80"], "--mock is ':80'", id="empty-host"),
    pytest.param(
        ["sidecar", "--mock", "0.0.0.0:1338"],
        "--mock is '0.0.0.0:1338', the listen-on-every-address value",
        id="any-address",
    ),
    pytest.param(["up", "--mock", "[::]:1338"], "--mock is '[::]:1338', the", id="up-any-v6"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT)
def test_bad_input_is_one_line_on_stderr_and_status_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bad input never gives a traceback: one line naming the value, exit status 2."""
    for name in (
        "IMDSMOCK_ROUTE_TO",
        "IMDSMOCK_HOST",
        "IMDSMOCK_PORT",
        "IMDSMOCK_CREDENTIALS_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("imdsmock route: error: ")
    assert message in err


@pytest.mark.parametrize("action", ["up", "down"])
def test_missing_privilege_names_cap_net_admin_and_how_to_get_it(action: str) -> None:
    """Without CAP_NET_ADMIN it stops before any change, saying which privilege and how."""
    argv = [sys.executable, "-m", "imdsmock.netsetup", action]
    if os.geteuid() == 0 or detect.has_net_admin():
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is needed to drop capabilities as root")
        argv = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", *argv]
    env = {**os.environ, "PYTHONPATH": str(NETSETUP.parents[1])}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert f"imdsmock route {action} needs CAP_NET_ADMIN" in done.stderr
    assert "sudo" in done.stderr
    assert "--cap-add NET_ADMIN" in done.stderr


def _proc_status(path: Path, capeff: str | None) -> str:
    """Write a /proc/PID/status-like file at ``path`` with that CapEff line (or none)."""
    cap = "" if capeff is None else f"CapEff:\t{capeff}\n"
    path.write_text(f"Name:\tx\n{cap}", encoding="ascii")
    return str(path)


def test_has_net_admin_reads_the_effective_capability_bit(tmp_path: Path) -> None:
    """CapEff bit 12 is CAP_NET_ADMIN."""
    assert detect.has_net_admin(_proc_status(tmp_path / "with", "0000000000001000"))
    assert not detect.has_net_admin(_proc_status(tmp_path / "without", "0000000000000400"))


def test_net_admin_is_read_from_capeff_or_assumed_for_root(tmp_path: Path) -> None:
    """CAP_NET_ADMIN comes from CapEff; with no status file root is assumed to hold it, and a
    status without CapEff means no."""
    status = tmp_path / "status"
    assert detect.has_net_admin(_proc_status(status, "0000000000001000")) is True
    assert detect.has_net_admin(_proc_status(status, "0000000000000000")) is False
    assert detect.has_net_admin(_proc_status(status, None)) is False
    assert detect.has_net_admin(str(tmp_path / "missing")) is (os.geteuid() == 0)


MOCKS = [
    pytest.param("imds", ("imds", 1338), id="name"),
    pytest.param("imds:8080", ("imds", 8080), id="name-port"),
    pytest.param("10.0.0.2:80", ("10.0.0.2", 80), id="ipv4-port"),
    pytest.param("[fd00::2]:1338", ("fd00::2", 1338), id="ipv6-port"),
    pytest.param("fd00::2", ("fd00::2", 1338), id="ipv6"),
]


@pytest.mark.parametrize(("value", "expected"), MOCKS)
def test_mock_option_splits_host_and_port(value: str, expected: tuple[str, int]) -> None:
    """``--mock`` takes HOST, HOST:PORT or [V6]:PORT; the port defaults to 1338."""
    assert container.parse_mock(value) == expected


TARGETS = [
    pytest.param("imds:9", {"IMDSMOCK_ROUTE_TO": "other"}, ("imds", 9), id="flag-first"),
    pytest.param(
        None,
        {"IMDSMOCK_ROUTE_TO": "imds:8080", "IMDSMOCK_HOST": "0.0.0.0"},
        ("imds", 8080),
        id="route-to-beats-the-bind-host",
    ),
    pytest.param(None, {"IMDSMOCK_HOST": "imds"}, ("imds", 1338), id="host-fallback"),
    pytest.param(
        None, {"IMDSMOCK_ROUTE_TO": "imds", "IMDSMOCK_PORT": "80"}, ("imds", 80), id="env-port"
    ),
]


@pytest.mark.parametrize(("flag", "env", "expected"), TARGETS)
def test_container_modes_find_the_mock_by_flag_then_route_to_then_host(
    flag: str | None, env: dict[str, str], expected: tuple[str, int]
) -> None:
    """``--mock`` wins, then IMDSMOCK_ROUTE_TO, then IMDSMOCK_HOST (older setups)."""
    assert container.mock_target(flag, env) == expected


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"IMDSMOCK_HOST": "0.0.0.0"}, "IMDSMOCK_HOST is '0.0.0.0'"),
        ({"IMDSMOCK_HOST": "::"}, "IMDSMOCK_HOST is '::'"),
        ({"IMDSMOCK_ROUTE_TO": "0.0.0.0:1338"}, "IMDSMOCK_ROUTE_TO is '0.0.0.0:1338'"),
    ],
    ids=["host-v4", "host-v6", "route-to"],
)
def test_a_bind_everywhere_address_is_never_a_route_target(
    env: dict[str, str],
    named: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """0.0.0.0 or :: from the environment (the image's bind host) is one line naming the
    variable and value, exit 2, in the Python command and in the shell entrypoint."""
    for name in ("IMDSMOCK_ROUTE_TO", "IMDSMOCK_HOST", "IMDSMOCK_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["sidecar", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"imdsmock route: error: {named}, the listen-on-every-address value")
    assert err.count("\n") == 1
    script = NETSETUP / cli.SCRIPT_NAME
    argv = ["sh", str(script), "--sidecar", "--dry-run"]
    shell_env = {"PATH": os.environ["PATH"], **env}
    done = subprocess.run(argv, capture_output=True, text=True, env=shell_env, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith(f"imdsmock-route: error: {named}, the listen-on-every")
    assert done.stderr.count("\n") == 1


def test_waiting_for_a_name_polls_until_it_resolves() -> None:
    """The name is looked up again every 0.2 s until it appears."""
    answers = iter([None, None, "10.0.0.2"])
    now = [0.0]
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        now[0] += seconds

    got = container.wait_for_address(
        "imds", 5, resolve=lambda _: next(answers), clock=lambda: now[0], sleep=sleep
    )
    assert got == "10.0.0.2"
    assert naps == [0.2, 0.2]


def test_waiting_for_a_name_gives_up_after_the_timeout() -> None:
    """After ``timeout`` seconds the error names the host and the option to wait longer."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(NetsetupError, match=r"timed out after 1 s .* 'imds'.*--timeout"):
        container.wait_for_address(
            "imds", 1, resolve=lambda _: None, clock=lambda: now[0], sleep=sleep
        )


VERSIONS = [
    pytest.param("iptables v1.8.9 (nf_tables)\n", "nf_tables", id="nf_tables"),
    pytest.param("iptables v1.8.9 (legacy)\n", "legacy", id="legacy"),
    pytest.param("iptables v1.6.1\n", "legacy", id="pre-1.8"),
]


@pytest.mark.parametrize(("text", "variant"), VERSIONS)
def test_iptables_backend_is_read_from_its_version_line(text: str, variant: str) -> None:
    """``iptables --version`` names the backend; before 1.8 it is always legacy."""
    assert detect.parse_iptables_variant(text) == variant


def _only(*programs: str) -> Callable[[str], str | None]:
    """A PATH lookup that finds exactly ``programs``."""
    return lambda name: f"/usr/sbin/{name}" if name in programs else None


def test_auto_backend_falls_back_to_nft_without_iptables() -> None:
    """With no iptables installed, ``--backend auto`` uses nft."""
    assert detect.detect_firewall("auto", which=_only("nft")) == detect.NFT


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ("auto", "no firewall tool found: iptables or nft is not on PATH"),
        ("iptables", "no firewall tool found: iptables is not on PATH"),
        ("nft", "--backend needs nft, which is not on PATH; install the nftables package"),
    ],
)
def test_missing_firewall_tool_is_one_line_naming_the_package(choice: str, message: str) -> None:
    """Without the firewall program the choice needs, route stops with one line saying what
    to install."""
    with pytest.raises(NetsetupError) as exc:
        detect.detect_firewall(choice, which=_only())  # type: ignore[arg-type]
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)


def test_iptables_listing_gives_our_chain_rules_and_jumps() -> None:
    """``-S`` output tells whether our chain exists, its rules and how many jumps reach it."""
    text = (
        "-P OUTPUT ACCEPT\n-N IMDSMOCK\n-N DOCKER\n-A OUTPUT -j IMDSMOCK\n"
        "-A OUTPUT -m addrtype --dst-type LOCAL -j DOCKER\n"
        "-A IMDSMOCK -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT "
        "--to-destination 127.0.0.1:1338\n"
    )
    state = detect.parse_iptables_rules(text)
    assert state.exists
    assert state.jumps == 1
    assert len(state.rules) == 1


def test_nft_listing_gives_rules_chain_by_chain() -> None:
    """Rules of our nft table are read back with their chain name, headers left out."""
    text = (
        "table inet imdsmock {\n\tchain output {\n"
        "\t\ttype nat hook output priority -100; policy accept;\n"
        "\t\tip daddr 169.254.169.254 tcp dport 80 dnat ip to 127.0.0.1:1338\n\t}\n}\n"
    )
    assert detect.parse_nft_table(text) == (
        "output: ip daddr 169.254.169.254 tcp dport 80 dnat ip to 127.0.0.1:1338",
    )


NAT_TABLES = [
    pytest.param(
        "table ip nat {\n\tchain OUTPUT {\n\t\ttype nat hook output priority -100;"
        " policy accept;\n\t\tcounter packets 0 bytes 0 jump IMDSMOCK\n\t}\n"
        "\tchain IMDSMOCK {\n\t\tip daddr 169.254.169.254 counter dnat to 127.0.0.1:1338\n"
        "\t}\n}\n",
        True,
        id="only-ours",
    ),
    pytest.param(
        "table ip nat {\n\tchain OUTPUT {\n\t\ttype nat hook output priority -100;"
        " policy accept;\n\t\tip daddr 10.99.0.0/16 counter return\n\t}\n}\n",
        False,
        id="foreign-rule",
    ),
    pytest.param("table ip nat {\n\tchain DOCKER {\n\t}\n}\n", False, id="foreign-chain"),
    pytest.param(
        "table ip nat {\n\tchain OUTPUT {\n\t\ttype nat hook output priority -100;"
        " policy drop;\n\t}\n}\n",
        False,
        id="foreign-policy",
    ),
]


@pytest.mark.parametrize(("text", "only_ours"), NAT_TABLES)
def test_nat_table_is_deletable_only_when_it_holds_nothing_but_ours(
    text: str, only_ours: bool
) -> None:
    """A foreign rule, chain or chain policy keeps an iptables-nft nat table alive on
    ``down``."""
    assert detect.nat_table_only_ours(text) is only_ours


ROUTES = [
    pytest.param("10.0.0.2 via 10.1.0.1 dev eth0 src 10.1.0.2 uid 0\n", ("eth0", "10.1.0.1")),
    pytest.param("10.0.0.2 dev eth0 src 10.0.0.3 uid 0\n    cache\n", ("eth0", None)),
    pytest.param("local 169.254.169.254 dev lo src 169.254.169.254 uid 0\n", None),
    pytest.param("", None),
]


@pytest.mark.parametrize(("text", "expected"), ROUTES)
def test_route_get_output_gives_device_and_gateway(
    text: str, expected: tuple[str, str | None] | None
) -> None:
    """``ip route get`` tells the device and gateway; local routes count as no route out."""
    got = detect.parse_route_get(text)
    assert (None if got is None else (got.dev, got.via)) == expected


def test_route_get_output_without_a_device_is_no_route() -> None:
    """An ``ip route get`` line with no ``dev`` is read as no usable route."""
    assert detect.parse_route_get("169.254.169.254 via 10.0.0.1\n") is None
    assert detect.parse_route_get("") is None


def test_loopback_addresses_are_read_from_ip_addr() -> None:
    """``ip -o addr show dev lo`` gives ADDRESS/PREFIX for both families."""
    text = (
        "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n"
        "1: lo    inet 169.254.169.254/32 scope global lo\\       valid_lft forever\n"
        "1: lo    inet6 ::1/128 scope host \\       valid_lft forever\n"
    )
    assert detect.parse_addresses(text) == {"127.0.0.1/8", "169.254.169.254/32", "::1/128"}


def test_script_action_prints_the_shell_entrypoint(capsys: pytest.CaptureFixture[str]) -> None:
    """``route script`` prints the POSIX entrypoint; ``--path`` prints where it is."""
    assert cli.main(["script"]) == 0
    assert capsys.readouterr().out.startswith("#!/bin/sh\n")
    assert cli.main(["script", "--path"]) == 0
    assert capsys.readouterr().out.strip().endswith("imdsmock-route.sh")


def test_shell_entrypoint_parses_under_dash() -> None:
    """The shell script is POSIX: ``dash -n`` accepts it."""
    dash = "/bin/dash" if Path("/bin/dash").exists() else None
    if dash is None:
        pytest.skip("dash is not installed")
    subprocess.run([dash, "-n", str(NETSETUP / "imdsmock-route.sh")], check=True)


def test_netsetup_never_imports_the_server_or_other_core_modules() -> None:
    """netsetup stands beside the server: it imports only itself and the standard library."""
    for path in sorted(NETSETUP.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            for name in names:
                inside = name.startswith(("imdsmock.netsetup", ".")) or not name.startswith(
                    "imdsmock"
                )
                assert inside, f"{path.name} imports {name}"
                assert not name.startswith(".."), f"{path.name} imports {name}"


# -- the route record ------------------------------------------------------------------


def test_unreadable_route_record_says_how_to_recover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corrupt record file is one line naming the file and saying to delete it."""
    monkeypatch.setenv(state.RUN_DIR_ENV, str(tmp_path))
    state.path().write_text("{not json")
    with pytest.raises(NetsetupError) as exc:
        state.load()
    assert str(state.path()) in str(exc.value)
    assert str(exc.value).endswith("delete it to start over")


def test_unwritable_route_record_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the run directory cannot be made (a file is in the way), saving the record fails
    with one line naming the file."""
    blocker = tmp_path / "run"
    blocker.write_text("a file, not a directory")
    monkeypatch.setenv(state.RUN_DIR_ENV, str(blocker))
    with pytest.raises(NetsetupError) as exc:
        state.save(state.Record(backend="nft", added=(), created=()))
    assert str(exc.value).startswith(f"cannot write {state.path()}: ")
