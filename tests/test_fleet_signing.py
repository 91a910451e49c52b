"""A fleet of more than a few members signs its identity documents through OpenSSL (start
time: ~0.25 ms a signature rather than ~6 ms); what it serves verifies with the certificate
as before, and a smaller fleet, like one instance, signs in pure Python."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from imdsmock.core.fleet import OPENSSL_FROM
from imdsmock.signing.signer import Signer
from support import make_config, serve
from test_fleet_control import control
from test_fleet_serve import ask

DOC = "/latest/dynamic/instance-identity/"


def _members(count: int) -> list[dict[str, Any]]:
    """``count`` members m1, m2, ... recognised from 127.0.0.2, 127.0.0.3, ..."""
    return [
        {
            "name": f"m{i}",
            "match": {"source": [f"127.0.0.{i + 1}"]},
            "instance": {"instance-id": f"i-{i:017x}"},
        }
        for i in range(1, count + 1)
    ]


def _verify(port: int, source: str, signer: Signer, tmp_path: Path) -> bytes:
    """The document ``source`` is served, once its signature and PKCS#7 (both leaves)
    verified with the certificate (cryptography and ``openssl smime -verify``)."""
    status, document = ask(port, DOC + "document", source)
    assert status == 200
    cert = x509.load_pem_x509_certificate(signer.certificate_pem().encode())
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    signature = base64.b64decode(ask(port, DOC + "signature", source)[1])
    public.verify(signature, document, padding.PKCS1v15(), hashes.SHA256())
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (scripts/test installs it)")
    (tmp_path / "document").write_bytes(document)
    (tmp_path / "cert.pem").write_text(signer.certificate_pem())
    for leaf in ("pkcs7", "rsa2048"):
        body = ask(port, DOC + leaf, source)[1].decode()
        (tmp_path / "sig.pem").write_text(f"-----BEGIN PKCS7-----\n{body}\n-----END PKCS7-----\n")
        result = subprocess.run(
            [
                openssl, "smime", "-verify", "-in", str(tmp_path / "sig.pem"), "-inform", "PEM",
                "-content", str(tmp_path / "document"), "-certfile", str(tmp_path / "cert.pem"),
                "-noverify",
            ],
            capture_output=True,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, (leaf, result.stderr)
    return document


def test_a_fleet_of_many_members_signs_through_openssl_and_verifies(tmp_path: Path) -> None:
    """With OPENSSL_FROM members, every member's documents are signed through OpenSSL and
    verify with the published certificate; the default instance still signs in Python."""
    with serve(make_config(instances=_members(OPENSSL_FROM))) as running:
        fleet = running.app.fleet
        assert fleet is not None
        for state in fleet.roster.states.values():
            signer = state.snapshot.signer
            assert signer is not None
            assert signer.backend is not None
            assert signer == running.app.signer  # the same key and certificate
        assert running.app.state.snapshot.signer is running.app.signer
        assert running.app.signer.backend is None
        first = _verify(running.port, "127.0.0.2", running.app.signer, tmp_path)
        last = _verify(running.port, f"127.0.0.{OPENSSL_FROM + 1}", running.app.signer, tmp_path)
        assert first != last
        assert b'"instanceId" : "i-00000000000000001"' in first


def test_a_small_fleet_signs_in_python_until_a_member_added_makes_it_many(
    tmp_path: Path,
) -> None:
    """A fleet of fewer than OPENSSL_FROM members does not load OpenSSL's signer; the
    member that makes it OPENSSL_FROM, added through the control API, is signed through
    it, and its documents verify."""
    members = _members(OPENSSL_FROM)
    config = make_config(instances=members[:-1], server={"control": True, "control-port": 0})
    with serve(config) as running:
        fleet = running.app.fleet
        assert fleet is not None
        assert all(s.snapshot.signer is running.app.signer for s in fleet.roster.states.values())
        status, _ = control(running.imds, "POST", "/v1/instances", members[-1])
        assert status == 201
        added = fleet.state(members[-1]["name"]).snapshot.signer
        assert added is not None
        assert added.backend is not None
        assert fleet.state("m1").snapshot.signer is running.app.signer  # made before: kept
        _verify(running.port, f"127.0.0.{OPENSSL_FROM + 1}", running.app.signer, tmp_path)
        _verify(running.port, "127.0.0.2", running.app.signer, tmp_path)
