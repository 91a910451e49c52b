"""scripts/debian-mirror: the Debian mirror scripts/build-base-image takes from apt's sources."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "debian-mirror"
FALLBACK = "http://deb.debian.org/debian"

# (files under a fake /etc/apt, the mirror printed); "{tmp}" is the fake /etc/apt.
CASES: dict[str, tuple[dict[str, str], str]] = {
    "deb822-with-security": (
        {
            "sources.list.d/debian.sources": """
                Types: deb
                # http://snapshot.debian.org/archive/debian/20250520T000000Z
                URIs: http://mirror.corp.example/debian
                Suites: bookworm bookworm-updates
                Components: main
                Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

                Types: deb
                URIs: http://mirror.corp.example/debian-security
                Suites: bookworm-security
                Components: main
            """,
        },
        "http://mirror.corp.example/debian",
    ),
    "one-line-options-and-comments": (
        {
            "sources.list": """
                # deb http://commented.example/debian bookworm main
                deb-src http://source-only.example/debian bookworm main
                deb [arch=amd64 signed-by=/k.gpg] http://sec.example/debian-security bookworm-security main
                deb [ arch=amd64 ] http://mirror.example/debian/ bookworm main contrib  # ours
            """,
        },
        "http://mirror.example/debian",
    ),
    "third-party-repositories-first": (
        {
            "sources.list.d/a-docker.list": (
                "deb https://download.docker.com/linux/debian bookworm stable\n"
            ),
            "sources.list.d/b-postgres.list": (
                "deb http://apt.postgresql.org/pub/repos/apt bookworm-pgdg main\n"
            ),
            "sources.list.d/c-node.sources": """
                Types: deb
                URIs: https://deb.nodesource.com/node_20.x
                Suites: nodistro
                Components: main
            """,
            "sources.list.d/debian.sources": """
                Types: deb
                URIs: https://mirror.example/debian
                Suites: trixie
                Components: main
            """,
        },
        "https://mirror.example/debian",
    ),
    "disabled-stanza-and-inline-key": (
        {
            "sources.list.d/debian.sources": """
                Enabled: no
                Types: deb
                URIs: http://disabled.example/debian
                Suites: bookworm
                Components: main

                types: deb deb-src
                signed-by:
                 -----BEGIN PGP PUBLIC KEY BLOCK-----
                 .
                 URIs: http://inside-the-key.example/debian
                 -----END PGP PUBLIC KEY BLOCK-----
                uris: http://keyed.example/debian
                suites: stable stable-updates
                components: main non-free-firmware
            """,
        },
        "http://keyed.example/debian",
    ),
    "mirror-file": (
        {
            "mirrors/debian.list": "# the cloud's mirrors\nhttps://cloud.example/debian priority:1\n",
            "sources.list.d/debian.sources": """
                Types: deb
                URIs: mirror+file://{tmp}/mirrors/debian.list
                Suites: bookworm
                Components: main
            """,
        },
        "https://cloud.example/debian",
    ),
    "sources-list-before-the-directory": (
        {
            "sources.list": "deb http://first.example/debian bookworm main\n",
            "sources.list.d/debian.sources": """
                Types: deb
                URIs: http://second.example/debian
                Suites: bookworm
                Components: main
            """,
        },
        "http://first.example/debian",
    ),
    "other-file-names-ignored": (
        {
            "sources.list.d/debian.sources.disabled": """
                Types: deb
                URIs: http://disabled.example/debian
                Suites: bookworm
                Components: main
            """,
            "sources.list.d/debian.list.save": "deb http://saved.example/debian bookworm main\n",
        },
        FALLBACK,
    ),
    "ubuntu-host": (
        {"sources.list": "deb http://archive.ubuntu.com/ubuntu jammy main restricted\n"},
        FALLBACK,
    ),
    "no-sources": ({}, FALLBACK),
}


@pytest.mark.parametrize(("files", "mirror"), CASES.values(), ids=CASES.keys())
def test_mirror_is_the_first_debian_archive_entry_of_apts_sources(
    tmp_path: Path, files: dict[str, str], mirror: str
) -> None:
    """The mirror is the first enabled Debian archive entry (a Debian suite with main) in
    apt's reading order, in either format; deb.debian.org when there is none."""
    apt = tmp_path / "apt"
    for name, text in files.items():
        path = apt / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip().replace("{tmp}", str(apt)))
    apt.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(apt)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == mirror + "\n"


def _debootstrap_mirror(tmp_path: Path, env: dict[str, str]) -> str:
    """The mirror a copy of build-base-image hands to debootstrap, beside a stand-in
    scripts/debian-mirror that prints http://from-apt.example/debian. ``docker`` and
    ``debootstrap`` are stand-ins too (no image is built): the first says no image exists,
    the second prints its arguments and fails, which the script reports on stderr."""
    scripts, bin_dir = tmp_path / "repo" / "scripts", tmp_path / "bin"
    scripts.mkdir(parents=True)
    bin_dir.mkdir()
    (scripts / "build-base-image").write_text((ROOT / "scripts" / "build-base-image").read_text())
    (scripts / "debian-mirror").write_text('print("http://from-apt.example/debian")\n')
    for name, body in (("docker", "exit 1"), ("debootstrap", 'echo "ARGS $*"; exit 1')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    done = subprocess.run(
        ["bash", str(scripts / "build-base-image")],
        env={**os.environ, **env, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    (args,) = [line for line in done.stderr.splitlines() if line.startswith("ARGS ")]
    return args.split()[-1]


def test_build_base_image_takes_the_mirror_from_apt_unless_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build-base-image gives debootstrap IMDSMOCK_DEBIAN_MIRROR when set, else what
    scripts/debian-mirror reads from the machine's apt sources."""
    monkeypatch.delenv("IMDSMOCK_DEBIAN_MIRROR", raising=False)
    given = {"IMDSMOCK_DEBIAN_MIRROR": "http://given.example/debian"}
    assert _debootstrap_mirror(tmp_path / "given", given) == "http://given.example/debian"
    assert _debootstrap_mirror(tmp_path / "apt", {}) == "http://from-apt.example/debian"
