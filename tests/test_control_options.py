"""The instance metadata options are one vocabulary: ``imdsmock`` flags, ``imdsmock ctl`` flags
and the control API accept the same values and refuse a bad one with the same line."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from imdsmock.cli import main as cli_main
from imdsmock.config.options import OPTIONS, MetadataOption
from imdsmock.control.ctl import main as ctl_main
from imdsmock.core.clock import ManualClock
from support import Running, control_config, serve


def _accepted(option: MetadataOption) -> list[str]:
    if option.bounds is None:
        return list(option.choices)
    return [str(b) for b in option.bounds]


def _refused(option: MetadataOption) -> list[str]:
    if option.bounds is None:
        return ["bogus", ""]
    low, high = option.bounds
    return [str(low - 1), str(high + 1), "two"]


@pytest.fixture(scope="module")
def mock() -> Iterator[Running]:
    """One mock with its control listener for the whole module."""
    with serve(control_config(), clock=ManualClock()) as r:
        yield r


def _api(r: Running, name: str, value: str) -> tuple[int, dict[str, object]]:
    parts = urlsplit(r.app.control_url() or "")
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        body, kind = json.dumps({name: value}), {"Content-Type": "application/json"}
        conn.request("PATCH", "/v1/options", body=body, headers=kind)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _cli(capsys: pytest.CaptureFixture[str], name: str, value: str) -> tuple[int, str, str]:
    status = cli_main(["config", "--format", "json", f"--{name}={value}"])
    out, err = capsys.readouterr()
    return status, out, err


def _ctl(
    r: Running, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> tuple[int, str, str]:
    url = r.app.control_url() or ""
    status = ctl_main(["--url", url, "--json", "options", f"--{name}={value}"])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("option", OPTIONS, ids=[o.name for o in OPTIONS])
def test_a_bad_option_value_gets_the_same_line_from_the_cli_ctl_and_the_api(
    mock: Running, capsys: pytest.CaptureFixture[str], option: MetadataOption
) -> None:
    """Each refused value gives one identical error line (exit 2 from both commands, 400 from
    the API) naming the key, the value and what is allowed; nothing changes."""
    before = mock.app.controller.options()
    for value in _refused(option):
        status, _, cli_err = _cli(capsys, option.name, value)
        assert status == 2
        message = cli_err.removeprefix("imdsmock: error: ")
        assert message != cli_err
        assert message.count("\n") == 1
        assert message.startswith(f"{option.key} is {value!r}; expected ")
        status, _, ctl_err = _ctl(mock, capsys, option.name, value)
        assert (status, ctl_err) == (2, f"imdsmock ctl: error: {message}")
        for name in (option.name, *option.aliases):
            status, body = _api(mock, name, value)
            assert (status, body["error"]) == (400, message.rstrip("\n"))
            assert body["field"] == option.key
    assert mock.app.controller.options() == before


@pytest.mark.parametrize("option", OPTIONS, ids=[o.name for o in OPTIONS])
def test_every_allowed_option_value_is_taken_by_the_cli_ctl_and_the_api(
    mock: Running, capsys: pytest.CaptureFixture[str], option: MetadataOption
) -> None:
    """The allowed values (each choice, or both ends of the range) are taken by all three
    surfaces and reach the configuration and the mock typed the same."""
    try:
        for value in _accepted(option):
            typed = option.check(value)
            status, out, _ = _cli(capsys, option.name, value)
            assert status == 0
            assert json.loads(out)["options"][option.name] == typed
            status, out, _ = _ctl(mock, capsys, option.name, value)
            assert status == 0
            assert json.loads(out)[option.name] == typed
            assert _api(mock, option.name, value) == (200, mock.app.controller.options())
            assert mock.app.controller.options()[option.name] == typed
    finally:
        mock.app.controller.set_options(**{option.name: option.default})


def test_serve_and_ctl_flags_show_the_declared_values(capsys: pytest.CaptureFixture[str]) -> None:
    """`imdsmock --help` and `imdsmock ctl options --help` give each option's choices (or its
    value's name) the same way, and the serve help its allowed values or range, as the
    declaration has them."""
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    serve_help = " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        ctl_main(["options", "--help"])
    ctl_help = capsys.readouterr().out
    for option in OPTIONS:
        assert option.flag_help() in serve_help
        assert option.allowed() in option.flag_help()
        if option.choices:
            usage = f"--{option.name} {{{','.join(option.choices)}}}"
        else:
            usage = f"--{option.name} {option.name.upper().replace('-', '_')}"
        assert usage in serve_help
        assert usage in ctl_help
