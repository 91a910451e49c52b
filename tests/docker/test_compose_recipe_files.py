"""The compose recipes as files: what a user copies must build from public images, expose
the control API to the host only, and grant privilege only where the recipe says so.

These read the files and need no Docker engine; the end-to-end runs are in
``test_docker_recipes.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RECIPES = ["dnat-entrypoint", "env-only", "fleet", "link-local-network", "sidecar"]
PUBLIC_BASE = "${IMDSMOCK_BASE_IMAGE:-python:3.12-slim}"


def load(recipe: str) -> dict[str, Any]:
    """The recipe's compose file, parsed."""
    with open(REPO / "examples" / "compose" / recipe / "compose.yaml") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


def test_recipe_folders_are_exactly_the_documented_ones() -> None:
    """Each recipe folder has a compose.yaml and a README; no other folder claims to be one."""
    found = sorted(p.parent.name for p in (REPO / "examples" / "compose").glob("*/compose.yaml"))
    assert found == RECIPES
    for recipe in RECIPES:
        assert (REPO / "examples" / "compose" / recipe / "README.md").is_file()


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_builds_from_the_public_slim_python_by_default(recipe: str) -> None:
    """Every build in a recipe uses the public python:3.12-slim unless IMDSMOCK_BASE_IMAGE says
    otherwise, so a user's `docker compose up` never depends on the test's offline base."""
    builds = [s["build"] for s in load(recipe)["services"].values() if "build" in s]
    assert builds
    for build in builds:
        assert build["args"]["BASE_IMAGE"] == PUBLIC_BASE
    for dockerfile in ("Dockerfile", "examples/compose/demo-app/Dockerfile"):
        text = (REPO / dockerfile).read_text()
        assert re.search(r"^ARG BASE_IMAGE=python:3\.12-slim$", text, re.M), dockerfile


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_publishes_only_the_control_api_on_host_loopback(recipe: str) -> None:
    """The only published port is the control API's, bound to 127.0.0.1, with a token set."""
    services = load(recipe)["services"]
    published = {name: s["ports"] for name, s in services.items() if "ports" in s}
    assert published == {"imds": ["127.0.0.1:${IMDSMOCK_CONTROL_PORT:-1339}:1339"]}
    env = services["imds"]["environment"]
    assert env["IMDSMOCK_CONTROL_HOST"] == "0.0.0.0"
    assert env["IMDSMOCK_CONTROL_TOKEN"].startswith("${IMDSMOCK_CONTROL_TOKEN")


@pytest.mark.parametrize(
    ("recipe", "privileged"),
    [
        ("dnat-entrypoint", {"app"}),
        ("env-only", set()),
        ("fleet", set()),
        ("link-local-network", set()),
        ("sidecar", {"route"}),
    ],
    ids=RECIPES,
)
def test_recipe_grants_net_admin_only_to_the_container_that_routes(
    recipe: str, privileged: set[str]
) -> None:
    """NET_ADMIN goes to the routing container alone, and never to the mock."""
    services = load(recipe)["services"]
    granted = {name for name, s in services.items() if "NET_ADMIN" in s.get("cap_add", [])}
    assert granted == privileged
    assert "user" not in services["imds"]  # the mock keeps the image's unprivileged user


@pytest.mark.parametrize("recipe", RECIPES)
def test_service_names_the_app_reaches_the_mock_by_are_allowed_hosts(recipe: str) -> None:
    """A URL in a recipe's environment that names the mock's service (http://imds:1338) has
    that name in the mock's IMDSMOCK_ALLOWED_HOSTS, so it keeps being answered with real
    credentials and on the control API."""
    services = load(recipe)["services"]
    allowed = services["imds"]["environment"].get("IMDSMOCK_ALLOWED_HOSTS", "")
    names = {n.strip() for n in allowed.split(",") if n.strip()}
    for service in services.values():
        for value in (service.get("environment") or {}).values():
            for host in re.findall(r"https?://([A-Za-z0-9_.-]+)", str(value)):
                if host in services:
                    assert host in names, (recipe, host)


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_readme_shows_both_compose_commands_and_the_offline_build(recipe: str) -> None:
    """A recipe's README works for Compose v2 (`docker compose`) and v1 (`docker-compose`) and
    says how to build without internet access: the base-image script and IMDSMOCK_BASE_IMAGE
    set to the tag that script builds."""
    text = (REPO / "examples" / "compose" / recipe / "README.md").read_text()
    assert "docker compose up -d --build" in text
    assert "docker-compose up -d --build" in text
    script = (REPO / "scripts" / "build-base-image").read_text()
    tag = re.search(r'tag="\$\{IMDSMOCK_BASE_IMAGE:-([^}]+)\}"', script)
    assert tag is not None
    assert "bash scripts/build-base-image" in text
    assert f"IMDSMOCK_BASE_IMAGE={tag[1]}" in text
