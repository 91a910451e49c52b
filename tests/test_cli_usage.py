"""How the command line is typed: option order, mistyped words, and shell completion."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mockprocess import mock_process, run_command


def test_serve_options_may_come_before_config() -> None:
    """`imdsmock --region X config` is `imdsmock config --region X`."""
    proc = run_command(["--region", "eu-west-1", "--hop-limit=2", "config", "--format", "json"])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["instance"]["region"] == "eu-west-1"
    assert data["options"]["hop-limit"] == 2


def test_serve_options_may_come_before_serve() -> None:
    """`imdsmock --log-requests serve` serves with the option given before the subcommand."""
    with mock_process(["--log-requests", "serve"]) as mp:
        assert mp.get("/latest/meta-data/instance-id")[0] == 200
        mp.wait_for_stderr("/latest/meta-data/instance-id")


def test_serve_options_before_a_subcommand_that_takes_none_are_refused() -> None:
    """A serve option before `ctl` (which does not take it) is one line and exit 2."""
    proc = run_command(["--region", "eu-west-1", "ctl", "state"])
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "imdsmock: error: --region is a serve option, which 'imdsmock ctl' does not take; "
        "give serve options to serve, config or cert"
    ]


MISTYPED = [
    ("imdsmock", ["cofnig"], "imdsmock: error: unknown command 'cofnig'; expected one of: serve, config, cert, route, ctl, capture, version, completion; did you mean 'config'?"),
    ("imdsmock-after-options", ["--region", "eu-west-1", "confg"], "did you mean 'config'?"),
    ("ctl", ["ctl", "stat"], "imdsmock ctl: error: argument command: invalid choice: 'stat' (choose from 'state', 'metadata', "),
    ("ctl-nested", ["ctl", "metadata", "sett", "x", "y"], "(choose from 'get', 'set', 'delete', 'list', 'reset'); did you mean 'set'?"),
    ("ctl-choice", ["ctl", "fault", "add", "hnag"], "invalid choice: 'hnag' (choose from 'status', 'latency', 'reset', 'hang'); did you mean 'hang'?"),
    ("completion-shell", ["completion", "bsh"], "did you mean 'bash'?"),
    # A mistyped option before a command is named (not its value taken for the command).
    ("ctl-option", ["ctl", "--tokn", "t", "state"], "imdsmock ctl: error: unknown option '--tokn' before the command; did you mean '--token'?"),
    ("ctl-option-attached", ["ctl", "--rul=http://127.0.0.1:1", "state"], "unknown option '--rul' before the command; did you mean '--url'?"),
    ("serve-option", ["serve", "--prot", "3"], "imdsmock: error: unrecognized arguments: --prot 3; did you mean '--port'?"),
]  # fmt: skip


def test_an_unknown_option_before_a_command_is_named_even_without_a_close_one() -> None:
    """`ctl --control-url X state` names the option; argparse said X was no command."""
    proc = run_command(["ctl", "--control-url", "http://127.0.0.1:1", "state"])
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "imdsmock ctl: error: unknown option '--control-url' before the command"
    ]


@pytest.mark.parametrize(
    ("args", "expected"), [m[1:] for m in MISTYPED], ids=[m[0] for m in MISTYPED]
)
def test_a_mistyped_subcommand_ends_with_the_close_match(args: list[str], expected: str) -> None:
    """A mistyped subcommand or choice is one line, exit 2, ending with the close match."""
    proc = run_command(args)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert expected in proc.stderr
    assert proc.stderr.rstrip().endswith("?")


def test_a_mistyped_scenario_type_ends_with_the_close_match() -> None:
    """`ctl scenario start spot` is refused by the server with the scenario type it abbreviates."""
    with mock_process() as mp:
        env = {"IMDSMOCK_CONTROL_URL": f"http://127.0.0.1:{mp.control_port}"}
        proc = run_command(["ctl", "scenario", "start", "spot"], env)
        assert proc.returncode == 2
        assert proc.stderr.splitlines() == [
            "imdsmock ctl: error: scenario.type is 'spot'; expected one of: spot-interruption, "
            "rebalance-recommendation, maintenance-event, asg-lifecycle; "
            "did you mean 'spot-interruption'?"
        ]
        proc = run_command(["ctl", "scenario", "start", "spot-interruption", "acton=stop"], env)
        assert proc.returncode == 2
        assert proc.stderr.rstrip().endswith("did you mean 'action'?")


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The script `imdsmock completion bash` prints, in a file."""
    proc = run_command(["completion", "bash"])
    assert proc.returncode == 0, proc.stderr
    path = tmp_path_factory.mktemp("completion") / "imdsmock.bash"
    path.write_text(proc.stdout)
    return path


def _bash(script: Path, code: str) -> str:
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", f"source {script}\n{code}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def test_the_bash_script_registers_the_completion(bash_script: Path) -> None:
    """Sourcing the bash script makes `complete -p imdsmock` name its function."""
    assert _bash(bash_script, "complete -p imdsmock").strip() == "complete -F _imdsmock imdsmock"


BASH_CASES = [
    ("subcommand", ["imdsmock", "co"], ["config", "completion"]),
    ("flag", ["imdsmock", "--reg"], ["--region"]),
    ("after-serve-options", ["imdsmock", "--region", "eu-west-1", "cer"], ["cert"]),
    ("option-value", ["imdsmock", "--http-tokens", ""], ["optional", "required"]),
    ("subcommand-flag", ["imdsmock", "config", "--for"], ["--format"]),
    ("nested", ["imdsmock", "ctl", "--url", "http://x", "metadata", "s"], ["set"]),
    ("ctl-option-value", ["imdsmock", "ctl", "options", "--http-tokens", "r"], ["required"]),
    ("positional-choice", ["imdsmock", "ctl", "fault", "add", "h"], ["hang"]),
    ("route", ["imdsmock", "route", "up", "--dry"], ["--dry-run"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("words", "expected"), [c[1:] for c in BASH_CASES], ids=[c[0] for c in BASH_CASES]
)
def test_bash_completes_subcommands_flags_and_values(
    bash_script: Path, words: list[str], expected: list[str]
) -> None:
    """Given COMP_WORDS and COMP_CWORD, the completion function offers what the parsers accept."""
    quoted = " ".join(f"'{w}'" for w in words)
    out = _bash(
        bash_script,
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _imdsmock; "
        'printf "%s\\n" "${COMPREPLY[@]}"',
    )
    assert out.split() == expected


def test_bash_completes_a_config_file_name(bash_script: Path, tmp_path: Path) -> None:
    """After -c, the completion offers file names."""
    (tmp_path / "instance.yaml").write_text("{}\n")
    out = _bash(
        bash_script,
        f"COMP_WORDS=(imdsmock -c '{tmp_path}/inst'); COMP_CWORD=2; _imdsmock; "
        'printf "%s\\n" "${COMPREPLY[@]}"',
    )
    assert out.split() == [f"{tmp_path}/instance.yaml"]


ZSH = shutil.which("zsh")
ZSH_CASES = [
    ("subcommands", ["imdsmock", ""], "serve config cert route ctl capture version completion"),
    ("after-serve-options", ["imdsmock", "--region", "eu-west-1", ""], "serve config cert route ctl capture version completion"),
    ("nested", ["imdsmock", "ctl", "metadata", ""], "get set delete list reset"),
    ("option-value", ["imdsmock", "ctl", "options", "--http-tokens", ""], "optional required"),
    ("files", ["imdsmock", "-c", ""], "FILES"),
]  # fmt: skip


@pytest.mark.skipif(ZSH is None, reason="zsh is not installed (apt-get install zsh)")
@pytest.mark.parametrize(
    ("words", "expected"), [c[1:] for c in ZSH_CASES], ids=[c[0] for c in ZSH_CASES]
)
def test_zsh_completes_subcommands_and_values(
    tmp_path: Path, words: list[str], expected: str
) -> None:
    """Under zsh, the script registers with compdef and its function offers the candidates
    (compadd and _files replaced by printers: zsh filters by the prefix itself)."""
    proc = run_command(["completion", "zsh"])
    assert proc.returncode == 0, proc.stderr
    script = tmp_path / "_imdsmock"
    script.write_text(proc.stdout)
    assert proc.stdout.startswith("#compdef imdsmock\n")
    quoted = " ".join(f"'{w}'" for w in words)
    code = f"""
        autoload -U compinit && compinit -u -D
        source {script}
        print -r -- "registered ${{_comps[imdsmock]}}"
        compadd() {{ shift; print -r -- "${{(j: :)@}}"; }}
        _files() {{ print -r -- FILES; }}
        words=({quoted}); CURRENT={len(words)}
        _imdsmock
    """
    assert ZSH is not None
    result = subprocess.run(
        [ZSH, "-f", "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["registered _imdsmock", expected]
