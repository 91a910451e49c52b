"""Keys and certificates through ``cryptography``: a new pair, and PEM files read.

Imported only when there is no usable cached pair (a first start, a damaged cache) or the
configuration names key files; signing itself needs none of it (``signer``).
"""

from __future__ import annotations

import contextlib
import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from imdsmock.errors import ConfigError
from imdsmock.signing.rsakey import MIN_SIZE, RSAKey
from imdsmock.signing.signer import Certificate, Signer

__all__ = ["generate", "private_key_pem", "read_pair"]

_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "imdsmock"),
        x509.NameAttribute(NameOID.COMMON_NAME, "imdsmock instance identity"),
    ]
)


def generate() -> Signer:
    """A fresh RSA-2048 key and a self-signed certificate for it (ten years, SHA-256)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_SUBJECT)
        .issuer_name(_SUBJECT)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return Signer(_rsa_key(key), _certificate(cert))


def private_key_pem(key: RSAKey) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM (``BEGIN PRIVATE KEY``)."""
    numbers = rsa.RSAPrivateNumbers(
        key.p, key.q, key.d, key.dp, key.dq, key.qinv, rsa.RSAPublicNumbers(key.e, key.n)
    )
    # The numbers come from a key cryptography made or loaded, and so checked, itself.
    loaded = numbers.private_key(unsafe_skip_rsa_key_validation=True)
    return loaded.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def read_pair(key_file: Path, cert_file: Path) -> Signer:
    """The key of ``signing.key-file`` and its certificate in ``signing.cert-file``."""
    key = _read_key(key_file)
    cert = _read_certificate(cert_file)
    if (cert.n, cert.e) != (key.n, key.e):
        raise ConfigError(
            "signing.cert-file",
            str(cert_file),
            "the certificate of the signing key (its public key differs)",
        )
    return Signer(key, cert)


def _read_key(path: Path) -> RSAKey:
    name = "signing.key-file"
    try:
        data = path.read_bytes()
    except OSError:
        raise ConfigError(name, str(path), "a readable PEM private key file") from None
    try:
        # Unencrypted PKCS#8 or PKCS#1; cryptography checks an RSA key's numbers agree.
        key = serialization.load_pem_private_key(data, password=None)
    except UnsupportedAlgorithm:
        raise ConfigError(name, str(path), "an RSA private key") from None
    except (TypeError, ValueError):  # TypeError: encrypted, and no password given
        raise ConfigError(name, str(path), "an unencrypted PEM RSA private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(name, str(path), "an RSA private key")  # EC, Ed25519, DSA, ...
    ours = _rsa_key(key)
    if ours.size < MIN_SIZE:  # too short to sign a SHA-256 digest
        raise ConfigError(name, str(path), "an unencrypted PEM RSA private key")
    return ours


def _read_certificate(path: Path) -> Certificate:
    name = "signing.cert-file"
    try:
        data = path.read_bytes()
    except OSError:
        raise ConfigError(name, str(path), "a readable PEM certificate file") from None
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ConfigError(name, str(path), "a PEM X.509 certificate") from None
    return _certificate(cert)


def _rsa_key(key: rsa.RSAPrivateKey) -> RSAKey:
    numbers = key.private_numbers()
    public = numbers.public_numbers
    return RSAKey(
        n=public.n, e=public.e, d=numbers.d, p=numbers.p, q=numbers.q,
        dp=numbers.dmp1, dq=numbers.dmq1, qinv=numbers.iqmp,
    )  # fmt: skip


def _certificate(cert: x509.Certificate) -> Certificate:
    n = e = 0
    with contextlib.suppress(UnsupportedAlgorithm, ValueError):  # a key type it cannot read
        public = cert.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            n, e = public.public_numbers().n, public.public_numbers().e
    return Certificate(
        der=cert.public_bytes(serialization.Encoding.DER),
        issuer=cert.issuer.public_bytes(),
        serial=cert.serial_number,
        n=n,
        e=e,
    )
