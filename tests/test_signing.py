"""Identity signing: keys and certificates from cryptography; the start-up signer agrees with it and openssl."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import math
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from imdsmock.config.schema import SigningConfig
from imdsmock.errors import ConfigError
from imdsmock.signing import der
from imdsmock.signing.keys import private_key_pem
from imdsmock.signing.openssl import accelerated
from imdsmock.signing.signer import Signer
from imdsmock.signing.store import default_dir, load_signer
from mockprocess import IMDSMOCK
from support import shared_signer

PEM_FORMATS = {
    "pkcs8": serialization.PrivateFormat.PKCS8,
    "pkcs1": serialization.PrivateFormat.TraditionalOpenSSL,
}


def _private_key(signer: Signer) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(private_key_pem(signer.key), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _openssl() -> str:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (scripts/test installs it)")
    return openssl


def _cryptography_pair(fmt: serialization.PrivateFormat) -> tuple[bytes, bytes, rsa.RSAPrivateKey]:
    """A key and self-signed certificate made by cryptography: (key PEM, cert PEM, key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone else's test key")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    return pem, cert.public_bytes(serialization.Encoding.PEM), key


def _load(tmp_path: Path, key_pem: bytes, cert_pem: bytes) -> Signer:
    key_file, cert_file = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_file.write_bytes(key_pem)
    cert_file.write_bytes(cert_pem)
    return load_signer(SigningConfig(key_file=str(key_file), cert_file=str(cert_file)))


@settings(max_examples=40, deadline=None)
@given(document=st.binary(max_size=2048))
def test_signatures_are_cryptographys_for_any_document(document: bytes) -> None:
    """signature() is byte for byte cryptography's PKCS#1 v1.5 SHA-256 signature, for any bytes."""
    signer = shared_signer()
    raw = base64.b64decode(signer.signature(document))
    assert raw == _private_key(signer).sign(document, padding.PKCS1v15(), hashes.SHA256())
    cert = x509.load_pem_x509_certificate(signer.certificate_pem().encode())
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(raw, document, padding.PKCS1v15(), hashes.SHA256())


@settings(max_examples=40, deadline=None)
@given(document=st.binary(max_size=2048))
def test_openssl_signs_byte_for_byte_as_the_pure_signer(document: bytes) -> None:
    """accelerated() signs through OpenSSL exactly what the pure-Python signer signs: the
    signature, and the PKCS#7 (both carry the signing time: retried across a second)."""
    signer = shared_signer()
    fast = accelerated(signer)
    assert fast.backend is not None
    assert signer.backend is None
    assert fast == signer
    assert accelerated(fast) is fast
    assert fast.signature(document) == signer.signature(document)
    while True:
        ours, theirs = signer.pkcs7(document), fast.pkcs7(document)
        if ours == signer.pkcs7(document):
            break
    assert theirs == ours


@pytest.mark.parametrize(
    "document",
    [b"", b'{\n  "accountId" : "123456789012"\n}', bytes(range(256)) * 40],
    ids=["empty", "json", "binary-10k"],
)
@pytest.mark.parametrize("command", ["smime", "cms"])
def test_pkcs7_verifies_with_openssl_detached(
    tmp_path: Path, document: bytes, command: str
) -> None:
    """pkcs7() verifies with `openssl smime|cms -verify -inform DER -binary -noverify`."""
    signer = shared_signer()
    (tmp_path / "doc").write_bytes(document)
    (tmp_path / "sig.der").write_bytes(base64.b64decode(signer.pkcs7(document)))
    result = subprocess.run(
        [
            _openssl(), command, "-verify", "-inform", "DER", "-binary", "-noverify",
            "-in", str(tmp_path / "sig.der"), "-content", str(tmp_path / "doc"),
        ],
        capture_output=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == document


def test_pkcs7_rejects_another_document(tmp_path: Path) -> None:
    """A PKCS#7 signature does not verify against a document it was not made for."""
    (tmp_path / "doc").write_bytes(b"tampered")
    (tmp_path / "sig.der").write_bytes(base64.b64decode(shared_signer().pkcs7(b"original")))
    result = subprocess.run(
        [
            _openssl(), "cms", "-verify", "-inform", "DER", "-binary", "-noverify",
            "-in", str(tmp_path / "sig.der"), "-content", str(tmp_path / "doc"),
        ],
        capture_output=True,
        check=False,
    )  # fmt: skip
    assert result.returncode != 0


def test_pkcs7_verifies_against_the_certificate_as_a_trust_anchor(tmp_path: Path) -> None:
    """With the published certificate as CA file, openssl verifies the chain too (no -noverify)."""
    signer = shared_signer()
    (tmp_path / "doc").write_bytes(b"document")
    (tmp_path / "sig.der").write_bytes(base64.b64decode(signer.pkcs7(b"document")))
    (tmp_path / "cert.pem").write_text(signer.certificate_pem())
    result = subprocess.run(
        [
            _openssl(), "smime", "-verify", "-inform", "DER", "-binary",
            "-in", str(tmp_path / "sig.der"), "-content", str(tmp_path / "doc"),
            "-CAfile", str(tmp_path / "cert.pem"),
        ],
        capture_output=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_pkcs7_is_what_cryptography_builds() -> None:
    """pkcs7() is byte for byte cryptography's detached, binary PKCS#7 without S/MIME capabilities."""
    signer = shared_signer()
    cert = x509.load_der_x509_certificate(signer.certificate.der)
    options = [
        pkcs7.PKCS7Options.DetachedSignature,
        pkcs7.PKCS7Options.NoCapabilities,
        pkcs7.PKCS7Options.Binary,
    ]
    for document in (b"", b"document", bytes(range(256)) * 40):
        while True:  # both carry the signing time: retry when a second boundary fell between
            ours = base64.b64decode(signer.pkcs7(document))
            builder = pkcs7.PKCS7SignatureBuilder().set_data(document)
            theirs = builder.add_signer(cert, _private_key(signer), hashes.SHA256()).sign(
                serialization.Encoding.DER, options
            )
            if ours == base64.b64decode(signer.pkcs7(document)):
                break
        assert ours == theirs


def test_generated_key_and_certificate_load_in_cryptography() -> None:
    """generate() writes a PKCS#8 RSA-2048 key and a v3 self-signed SHA-256 certificate."""
    signer = shared_signer()
    key = _private_key(signer)
    assert key.key_size == 2048
    assert key.public_key().public_numbers().e == 65537
    cert = x509.load_pem_x509_certificate(signer.certificate_pem().encode())
    assert cert.version == x509.Version.v3
    assert cert.public_key() == key.public_key()
    assert cert.subject == cert.issuer
    assert cert.subject.rfc4514_string() == "CN=imdsmock instance identity,O=imdsmock,C=US"
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"
    assert cert.serial_number > 0
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == datetime.timedelta(days=3651)
    cert.verify_directly_issued_by(cert)


def test_generated_key_passes_openssl_check(tmp_path: Path) -> None:
    """`openssl rsa -check` finds the generated key consistent (primes, exponents, CRT)."""
    (tmp_path / "key.pem").write_bytes(private_key_pem(shared_signer().key))
    result = subprocess.run(
        [_openssl(), "rsa", "-check", "-noout", "-in", str(tmp_path / "key.pem")],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert b"RSA key ok" in result.stdout


@pytest.mark.parametrize("fmt", PEM_FORMATS.values(), ids=PEM_FORMATS.keys())
def test_keys_from_cryptography_are_read_in_both_pem_forms(
    tmp_path: Path, fmt: serialization.PrivateFormat
) -> None:
    """A cryptography key (PKCS#8 or PKCS#1 PEM) and its certificate sign what cryptography verifies."""
    key_pem, cert_pem, key = _cryptography_pair(fmt)
    signer = _load(tmp_path, key_pem, cert_pem)
    assert signer.certificate_pem().encode() == cert_pem
    raw = base64.b64decode(signer.signature(b"document"))
    key.public_key().verify(raw, b"document", padding.PKCS1v15(), hashes.SHA256())


def _other_key_pems() -> dict[str, tuple[bytes, str]]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = serialization.Encoding.PEM
    p, q, e = 2**127 - 1, 2**89 - 1, 65537  # two Mersenne primes: a 216-bit modulus
    d = pow(e, -1, math.lcm(p - 1, q - 1))
    public = rsa.RSAPublicNumbers(e, p * q)
    short = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), public)
    locked = serialization.BestAvailableEncryption(b"secret")
    return {
        "encrypted-pkcs8": (
            rsa_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, locked),
            "an unencrypted PEM RSA private key",
        ),
        "encrypted-pkcs1": (
            rsa_key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, locked),
            "an unencrypted PEM RSA private key",
        ),
        "ec-sec1": (
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            ),
            "an RSA private key",
        ),
        "ed25519-pkcs8": (
            ed25519.Ed25519PrivateKey.generate().private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            "an RSA private key",
        ),
        "rsa-too-short-for-sha256": (
            short.private_key().private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            "an unencrypted PEM RSA private key",
        ),
        "unknown-algorithm-pkcs8": (
            der.pem(
                "PRIVATE KEY",
                der.sequence(der.integer(0), der.algorithm("1.2.3.4"), der.octet_string(b"")),
            ).encode(),
            "an RSA private key",
        ),
        "not-pem": (b"hello\n", "an unencrypted PEM RSA private key"),
        "bad-base64": (
            b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
            "an unencrypted PEM RSA private key",
        ),
    }


OTHER_KEYS = _other_key_pems()


@pytest.mark.parametrize("case", OTHER_KEYS.keys())
def test_unusable_keys_are_one_line_config_errors(tmp_path: Path, case: str) -> None:
    """Encrypted, non-RSA or malformed keys are a ConfigError naming signing.key-file."""
    key_pem, allowed = OTHER_KEYS[case]
    _, cert_pem, _ = _cryptography_pair(serialization.PrivateFormat.PKCS8)
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, key_pem, cert_pem)
    assert caught.value.key == "signing.key-file"
    assert caught.value.allowed == allowed
    assert "\n" not in str(caught.value)


def test_an_inconsistent_key_is_refused(tmp_path: Path) -> None:
    """A user's key whose CRT values do not match its modulus is refused, not used to sign."""
    key = shared_signer().key
    broken = dataclasses.replace(key, dp=key.dp + 2)
    with pytest.raises(ConfigError, match="an unencrypted PEM RSA private key"):
        _load(tmp_path, private_key_pem(broken), shared_signer().certificate_pem().encode())


def test_a_certificate_of_another_key_is_refused(tmp_path: Path) -> None:
    """signing.cert-file must hold the certificate of signing.key-file's key."""
    key_pem, _, _ = _cryptography_pair(serialization.PrivateFormat.PKCS8)
    _, cert_pem, _ = _cryptography_pair(serialization.PrivateFormat.PKCS8)
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, key_pem, cert_pem)
    assert caught.value.key == "signing.cert-file"
    assert "public key differs" in caught.value.allowed


@pytest.mark.parametrize(
    ("text", "allowed"),
    [
        (None, "a readable PEM certificate file"),
        (b"not a certificate\n", "a PEM X.509 certificate"),
    ],
    ids=["missing", "not-pem"],
)
def test_unusable_certificates_are_config_errors(
    tmp_path: Path, text: bytes | None, allowed: str
) -> None:
    """A missing or malformed certificate file is a ConfigError naming signing.cert-file."""
    key_file, cert_file = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_file.write_bytes(private_key_pem(shared_signer().key))
    if text is not None:
        cert_file.write_bytes(text)
    with pytest.raises(ConfigError) as caught:
        load_signer(SigningConfig(key_file=str(key_file), cert_file=str(cert_file)))
    assert (caught.value.key, caught.value.allowed) == ("signing.cert-file", allowed)


@pytest.mark.parametrize(
    ("given", "missing"),
    [({"key_file": "k.pem"}, "signing.cert-file"), ({"cert_file": "c.pem"}, "signing.key-file")],
    ids=["key-only", "cert-only"],
)
def test_key_and_certificate_files_go_together(given: dict[str, str], missing: str) -> None:
    """Configuring one of signing.key-file and signing.cert-file without the other is refused."""
    with pytest.raises(ConfigError) as caught:
        load_signer(SigningConfig(**given))
    assert (caught.value.key, caught.value.value) == (missing, None)
    assert "go together" in caught.value.allowed


def test_the_cache_is_pkcs8_private_to_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generated pair is cached as a 0600 PKCS#8 key, a PEM certificate and 0600 numbers, then reused."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = load_signer(SigningConfig())
    key_path = default_dir() / "identity-key.pem"
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert (default_dir() / "identity.json").stat().st_mode & 0o777 == 0o600
    assert key_path.read_bytes() == private_key_pem(first.key)
    assert key_path.read_text().startswith("-----BEGIN PRIVATE KEY-----\n")
    assert (default_dir() / "identity-cert.pem").read_text() == first.certificate_pem()
    assert load_signer(SigningConfig()) == first


def test_a_mismatched_cache_is_regenerated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached certificate that is not the cached key's is replaced by a fresh pair."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = load_signer(SigningConfig())
    _, other_cert, _ = _cryptography_pair(serialization.PrivateFormat.PKCS8)
    (default_dir() / "identity-cert.pem").write_bytes(other_cert)
    second = load_signer(SigningConfig())
    assert second.key != first.key
    assert (second.certificate.n, second.certificate.e) == (second.key.n, second.key.e)


def test_processes_started_together_share_one_cached_pair(tmp_path: Path) -> None:
    """Several `imdsmock cert` run at once on an empty cache all print the one cached certificate."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    command = [*IMDSMOCK.argv, "cert"]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE) for _ in range(3)]
    printed = {run.communicate(timeout=120)[0] for run in runs}
    assert all(run.returncode == 0 for run in runs)
    assert printed == {(tmp_path / "imdsmock" / "identity-cert.pem").read_bytes()}


def _edited(**fields: object) -> Callable[[Path], object]:
    """A change to the cached numbers: ``fields`` replaced."""
    return lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


@pytest.mark.parametrize(
    "damage",
    [
        Path.unlink,
        lambda path: path.write_text("{not json"),
        _edited(key=[]),
        _edited(**{"pem-sha256": ""}),
    ],
    ids=["missing", "not-json", "no-key", "stale-digest"],
)
def test_the_cache_keeps_its_pair_when_its_numbers_are_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: Callable[[Path], object]
) -> None:
    """Without usable cached numbers the PEM files are read again: same pair, numbers rewritten."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = load_signer(SigningConfig())
    numbers = default_dir() / "identity.json"
    written = numbers.read_bytes()
    damage(numbers)
    assert load_signer(SigningConfig()) == first
    assert numbers.read_bytes() == written


def test_an_unwritable_cache_still_signs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the cache directory cannot be made, a new pair signs for this process alone."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    first = load_signer(SigningConfig())
    assert load_signer(SigningConfig()).key != first.key
    public = x509.load_pem_x509_certificate(first.certificate_pem().encode()).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    raw = base64.b64decode(first.signature(b"document"))
    public.verify(raw, b"document", padding.PKCS1v15(), hashes.SHA256())


def test_a_pair_put_in_the_cache_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key and certificate written over the cached PEM files are the ones used next."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    load_signer(SigningConfig())
    key_pem, cert_pem, key = _cryptography_pair(serialization.PrivateFormat.TraditionalOpenSSL)
    (default_dir() / "identity-key.pem").write_bytes(key_pem)
    (default_dir() / "identity-cert.pem").write_bytes(cert_pem)
    for _ in range(2):  # read from the PEM files, then from the numbers cached from them
        signer = load_signer(SigningConfig())
        assert signer.certificate_pem().encode() == cert_pem
        assert signer.key.n == key.private_numbers().public_numbers.n


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        (der.integer(0), "020100"),
        (der.integer(127), "02017f"),
        (der.integer(128), "02020080"),
        (der.integer(-1), "0201ff"),
        (der.oid("1.2.840.113549.1.1.11"), "06092a864886f70d01010b"),
        (der.oid("2.5.4.3"), "0603550403"),
        (der.set_of(b"\x02\x01\x02", b"\x02\x01\x01"), "3106020101020102"),
        (
            der.time(datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)),
            "170d3439313233313233353935395a",
        ),
        (
            der.time(datetime.datetime(2050, 1, 1, tzinfo=datetime.UTC)),
            "180f32303530303130313030303030305a",
        ),
        (der.octet_string(b"\x00" * 200)[:3], "0481c8"),
        (der.octet_string(b"\x00" * 300)[:4], "0482012c"),
    ],
    ids=[
        "int-0",
        "int-127",
        "int-128",
        "int-minus-1",
        "oid-sha256rsa",
        "oid-cn",
        "set-sorted",
        "utctime-2049",
        "gentime-2050",
        "length-1-byte",
        "length-2-bytes",
    ],
)
def test_der_encodings_match_x690(encoded: bytes, expected: str) -> None:
    """The encoder writes X.690 DER: minimal integers, base-128 OIDs, sorted SET OF, long lengths."""
    assert encoded.hex() == expected
