"""Start-up imports only what is configured; what is switched on later still works."""

from __future__ import annotations

import json
import time
from pathlib import Path

from mockprocess import MockProcess, mock_process, run_command
from support import make_config, serve, status_from

# Parts a default start leaves unimported (issue 9: start-up time and memory).
OPTIONAL = (
    "imdsmock.instance.scenarios",
    "imdsmock.core.scenarios",
    "imdsmock.serve.awscreds",
    "imdsmock.serve.container",
    "imdsmock.control.operations",
    "imdsmock.control.routes",
    "imdsmock.control.openapi",
    "imdsmock.core.fleet",
    "imdsmock.core.recognize",
)
SPOT = "/latest/meta-data/spot/instance-action"


def _imported(mp: MockProcess) -> set[str]:
    # -X importtime lines: "import time: self | cumulative | <indent>module".
    return {
        line.rsplit("|", 1)[1].strip()
        for line in mp.stderr_lines
        if line.startswith("import time:") and line.count("|") == 2
    }


def _wait_imported(mp: MockProcess, module: str) -> set[str]:
    deadline = time.monotonic() + 10
    while module not in _imported(mp) and time.monotonic() < deadline:
        time.sleep(0.02)  # the stderr reader thread is behind the answer we already have
    return _imported(mp)


def test_default_start_imports_no_optional_part_and_control_api_switches_them_on() -> None:
    """A default start imports none of the optional parts; scenarios and faults started
    later through the control API are imported then and served."""
    with mock_process(env={"PYTHONPROFILEIMPORTTIME": "1"}) as mp:
        assert mp.get("/latest/meta-data/instance-id")[0] == 200
        assert "imdsmock.app" in _imported(mp)
        assert not set(OPTIONAL) & _imported(mp)
        assert mp.get(SPOT)[0] == 404

        body = json.dumps({"type": "spot-interruption", "action": "stop"}).encode()
        assert mp.control("POST", "/v1/scenarios", body)[0] == 201
        status, notice = mp.get(SPOT)
        assert status == 200
        assert json.loads(notice)["action"] == "stop"
        assert {"imdsmock.instance.scenarios", "imdsmock.control.routes"} <= _wait_imported(
            mp, "imdsmock.instance.scenarios"
        )

        fault = json.dumps({"kind": "status", "status": 503, "count": 1}).encode()
        assert mp.control("POST", "/v1/faults", fault)[0] == 201
        assert mp.get("/latest/meta-data/instance-id")[0] == 503
        assert mp.get("/latest/meta-data/instance-id")[0] == 200
        assert "imdsmock.serve.container" not in _imported(mp)
        assert "imdsmock.serve.awscreds" not in _imported(mp)


def test_a_start_with_a_cached_key_imports_no_cryptography(tmp_path: Path) -> None:
    """With the signing key cached, a start signs the identity document without cryptography."""
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    assert run_command(["cert"], env).returncode == 0
    with mock_process(env={**env, "PYTHONPROFILEIMPORTTIME": "1"}) as mp:
        assert mp.get("/latest/dynamic/instance-identity/pkcs7")[0] == 200
        assert "imdsmock.signing.signer" in _imported(mp)
        assert not {m for m in _imported(mp) if m.split(".")[0] == "cryptography"}


def test_configured_spot_path_is_gated_per_client_without_any_scenario() -> None:
    """With mock-ip-count 1 and no scenario, a spot path set by configuration is still
    shown only to the first client (gating does not depend on the scenario machinery)."""
    cfg = make_config(
        server={"mock-ip-count": 1},
        paths={"meta-data/spot/instance-action": '{"action": "stop"}'},
    )
    with serve(cfg) as r:
        assert r.app.state.snapshot.scenarios == ()
        assert status_from("127.0.0.1", r.port, SPOT) == 200
        assert status_from("127.0.0.1", r.port, SPOT, source="127.0.0.2") == 404
        assert (
            status_from("127.0.0.1", r.port, "/latest/meta-data/ami-id", source="127.0.0.2") == 200
        )
