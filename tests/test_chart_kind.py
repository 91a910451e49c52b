"""The chart on a real cluster: deploy/helm/test-kind.sh, for machines with internet access.

It needs kind, kubectl, helm and a Docker engine that can pull (kind's node image, curl);
run it with ``IMDSMOCK_KIND=1``. Elsewhere the end-to-end test is skipped, saying why: it
is not counted as passing.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from chartkit import ROOT

SCRIPT = ROOT / "deploy" / "helm" / "test-kind.sh"
TOOLS = ("docker", "kind", "kubectl", "helm")


def test_kind_script_parses() -> None:
    """The script is valid bash (`bash -n`) and executable."""
    done = subprocess.run(
        ["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False, timeout=30
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert os.access(SCRIPT, os.X_OK)


def test_chart_end_to_end_on_kind() -> None:
    """Both modes on a kind cluster: helm test, pods reaching the mock by the Service and at
    169.254.169.254 with their own instances, no rule left after uninstall."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if os.environ.get("IMDSMOCK_KIND") != "1" or missing:
        pytest.skip(
            "needs a kind cluster with internet access (kind's node image and curl are pulled);"
            " run IMDSMOCK_KIND=1 with docker, kind, kubectl and helm installed"
            + (f" (missing here: {', '.join(missing)})" if missing else "")
        )
    done = subprocess.run(["bash", str(SCRIPT)], check=False, timeout=1800)
    assert done.returncode == 0
