"""What is generated from the Helm chart stays in step with it: the README's value table
(from values.yaml's comments) and the plain manifests of deploy/kubernetes/, one per mode.

Regenerate both after an intended change with ``bash scripts/chart-sync``.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml

from chartkit import (
    CHART,
    MANIFESTS,
    MODES,
    README,
    ROOT,
    TOKEN_SECRET,
    documented_keys,
    leaf_keys,
    manifest,
    manifest_path,
    readme,
)

pytest.importorskip("helm_python", reason="helm-python-sdk is in the test extra")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is in the test extra"
)

STALE = "stale: run bash scripts/chart-sync"


def test_readme_value_table_is_current() -> None:
    """deploy/helm/imdsmock/README.md's table is what values.yaml's comments generate."""
    text = README.read_text(encoding="utf-8")
    assert text == readme(text), STALE


def test_every_value_is_documented() -> None:
    """Each key of values.yaml has a `# --` comment, on itself or on the key holding it."""
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    documented = {key for key, description in documented_keys(text) if description}
    missing = [
        leaf
        for leaf in leaf_keys(yaml.safe_load(text))
        if not any(leaf == key or leaf.startswith(key + ".") for key in documented)
    ]
    assert missing == []


def test_documented_keys_follow_nesting_and_continued_comments() -> None:
    """The README generator joins a comment's lines and names nested keys by their path."""
    text = "a:\n  # -- first line\n  # second line\n  b: 1\n  c: 2\n# -- top\nd: []\n"
    assert list(documented_keys(text)) == [("a.b", "first line second line"), ("d", "top")]


def test_manifests_are_one_file_per_mode() -> None:
    """deploy/kubernetes/ holds imdsmock-service.yaml and imdsmock-node.yaml and nothing else."""
    assert sorted(p.name for p in MANIFESTS.iterdir()) == sorted(
        f"imdsmock-{mode}.yaml" for mode in MODES
    )


@pytest.mark.parametrize("mode", MODES)
def test_manifest_is_current(mode: str) -> None:
    """Each plain manifest is the chart rendered with the defaults of its mode."""
    assert manifest_path(mode).read_text(encoding="utf-8") == manifest(mode), STALE


def _objects(mode: str) -> list[dict[str, Any]]:
    text = manifest_path(mode).read_text(encoding="utf-8")
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.parametrize("mode", MODES)
def test_manifest_holds_its_mode_without_helm_parts(mode: str) -> None:
    """A manifest has its mode's workload, no helm test pod, no Helm hook, and reads the
    token from the Secret its header says to make (a generated one would change on every
    render)."""
    objs = _objects(mode)
    kinds = [o["kind"] for o in objs]
    assert ("DaemonSet" if mode == "node" else "Deployment") in kinds
    assert "Pod" not in kinds
    assert "Secret" not in kinds
    assert all("helm.sh/hook" not in o["metadata"].get("annotations", {}) for o in objs)
    text = manifest_path(mode).read_text(encoding="utf-8")
    assert f"create secret generic {TOKEN_SECRET}" in text
    assert TOKEN_SECRET in {
        v["secret"]["secretName"]
        for o in objs
        if o["kind"] in ("Deployment", "DaemonSet")
        for v in o["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    }


@pytest.mark.parametrize("version", ["1.25.0", "1.31.0", "1.37.0"])
@pytest.mark.parametrize("mode", MODES)
def test_manifest_is_valid_kubernetes(mode: str, version: str) -> None:
    """Every object of a plain manifest passes kubernetes-validate --strict."""
    for obj in _objects(mode):
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("version", ["1.25.0", "1.31.0", "1.37.0"])
def test_manifests_pass_the_kubernetes_validate_command(version: str) -> None:
    """`kubernetes-validate --strict -k V` itself, on both files: every object passes, with
    no warning (a kind it has no schema for would be one)."""
    paths = [str(manifest_path(mode)) for mode in MODES]
    done = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, *paths],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    objects = sum(len(_objects(mode)) for mode in MODES)
    assert len(lines) == objects
    assert all(line.startswith("INFO ") and " passed for resource " in line for line in lines)


def test_sync_script_check_reports_nothing_stale() -> None:
    """`scripts/chart-sync --check` (its Python part, with this interpreter) exits 0 and
    prints nothing when everything is current."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "chartkit.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
