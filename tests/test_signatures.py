"""Identity document signatures are real and verify with the published certificate."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mockprocess import run_command
from support import Running, make_config, offline_app, serve


def test_signature_verifies_with_certificate(running: Running) -> None:
    """dynamic/instance-identity/signature is an RSA-SHA256 signature of the document."""
    document = running.get("/latest/dynamic/instance-identity/document")[1]
    signature = base64.b64decode(running.get("/latest/dynamic/instance-identity/signature")[1])
    cert = x509.load_pem_x509_certificate(running.app.signer.certificate_pem().encode())
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, document, padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("leaf", ["pkcs7", "rsa2048"])
def test_pkcs7_verifies_with_openssl(running: Running, tmp_path: Path, leaf: str) -> None:
    """pkcs7 and rsa2048 verify with `openssl smime -verify`, as AWS documents it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (scripts/test installs it)")
    document = running.get("/latest/dynamic/instance-identity/document")[1]
    body = running.get(f"/latest/dynamic/instance-identity/{leaf}")[1].decode()
    (tmp_path / "document").write_bytes(document)
    (tmp_path / "sig.pem").write_text(f"-----BEGIN PKCS7-----\n{body}\n-----END PKCS7-----\n")
    (tmp_path / "cert.pem").write_text(running.app.signer.certificate_pem())
    result = subprocess.run(
        [
            openssl, "smime", "-verify", "-in", str(tmp_path / "sig.pem"), "-inform", "PEM",
            "-content", str(tmp_path / "document"), "-certfile", str(tmp_path / "cert.pem"),
            "-noverify",
        ],
        capture_output=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert b"Verification successful" in result.stderr


def test_cert_command_prints_the_serving_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`imdsmock cert` prints the certificate of the key a server started alike signs with."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    done = run_command(["cert"])
    assert done.returncode == 0, done.stderr
    cert = x509.load_pem_x509_certificate(done.stdout.encode())
    with serve(make_config()) as r:
        assert r.app.signer.certificate.der == cert.public_bytes(serialization.Encoding.DER)
        document = r.get("/latest/dynamic/instance-identity/document")[1]
        signature = base64.b64decode(r.get("/latest/dynamic/instance-identity/signature")[1])
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, document, padding.PKCS1v15(), hashes.SHA256())


def test_configured_key_files_are_used(tmp_path: Path) -> None:
    """signing.key-file and signing.cert-file replace the generated pair."""
    from imdsmock.signing.keys import generate, private_key_pem

    pair = generate()
    key_file, cert_file = tmp_path / "k.pem", tmp_path / "c.pem"
    key_file.write_bytes(private_key_pem(pair.key))
    cert_file.write_text(pair.certificate_pem())
    app = offline_app(make_config(signing={"key-file": str(key_file), "cert-file": str(cert_file)}))
    assert app.signer.certificate == pair.certificate
