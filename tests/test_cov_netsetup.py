"""netsetup edges that need no namespace: firewall choice, running plans, the record file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from imdsmock.netsetup import state
from imdsmock.netsetup.detect import NFT, detect_firewall, has_net_admin, parse_route_get
from imdsmock.netsetup.errors import NetsetupError
from imdsmock.netsetup.plan import apply, cmd, run


def _only(*programs: str) -> object:
    """A PATH lookup that finds exactly ``programs``."""
    return lambda name: f"/usr/sbin/{name}" if name in programs else None


def test_auto_backend_falls_back_to_nft_without_iptables() -> None:
    """With no iptables installed, ``--backend auto`` uses nft."""
    assert detect_firewall("auto", which=_only("nft")) == NFT  # type: ignore[arg-type]


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
        detect_firewall(choice, which=_only())  # type: ignore[arg-type]
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)


def test_a_missing_program_runs_as_exit_status_127() -> None:
    """Running a program that does not exist is exit status 127 with 'not found', like a shell."""
    result = run(cmd("imdsmock-no-such-program"))
    assert result.returncode == 127
    assert result.stderr == "imdsmock-no-such-program: not found"


def test_a_failing_step_stops_the_plan_naming_the_command_and_its_last_line(
    tmp_path: Path,
) -> None:
    """apply stops at the first failing command: the error names it and its last output line
    (or its exit status when it printed nothing); later steps do not run."""
    marker = tmp_path / "ran"
    failing = cmd(sys.executable, "-c", "import sys; print('first'); sys.exit('second')")
    with pytest.raises(NetsetupError) as exc:
        apply((failing, cmd("touch", str(marker))))
    assert str(exc.value).endswith(": second")
    assert str(exc.value).startswith("command failed: ")
    assert not marker.exists()
    with pytest.raises(NetsetupError, match=r"command failed: false: exit status 1$"):
        apply((cmd("false"),))


def test_route_get_output_without_a_device_is_no_route() -> None:
    """An ``ip route get`` line with no ``dev`` is read as no usable route."""
    assert parse_route_get("169.254.169.254 via 10.0.0.1\n") is None
    assert parse_route_get("") is None


def test_net_admin_is_read_from_capeff_or_assumed_for_root(tmp_path: Path) -> None:
    """CAP_NET_ADMIN comes from CapEff; with no status file root is assumed to hold it, and a
    status without CapEff means no."""
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t0000000000001000\n")
    assert has_net_admin(str(status)) is True
    status.write_text("Name:\tx\nCapEff:\t0000000000000000\n")
    assert has_net_admin(str(status)) is False
    status.write_text("Name:\tx\n")
    assert has_net_admin(str(status)) is False
    assert has_net_admin(str(tmp_path / "missing")) is (os.geteuid() == 0)


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


def test_macos_dry_run_prints_the_lo0_alias_and_pf_anchor(tmp_path: Path) -> None:
    """`route up/down --platform macos --dry-run` prints the ifconfig and pfctl commands and
    changes nothing (this runs anywhere; applying them needs macOS)."""
    env = {**os.environ, state.RUN_DIR_ENV: str(tmp_path)}

    def route(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "imdsmock", "route", *args, "--platform", "macos", "--dry-run"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    up = route("up")
    assert up.startswith("ifconfig lo0 alias 169.254.169.254 netmask 255.255.255.255\n")
    assert "rdr pass on lo0 inet proto tcp from any to 169.254.169.254 port 80" in up
    assert route("down") == "pfctl -a com.apple/imdsmock -F all\n"
    assert list(tmp_path.iterdir()) == []
