"""Real signatures for the instance identity document.

EC2 signs ``dynamic/instance-identity/document`` three ways (real-imds.md §A8):
``signature`` (base64 RSA over SHA-256 of the document), ``pkcs7`` and ``rsa2048`` (PKCS#7
signed data, detached content, base64 without PEM armour). We sign with our own RSA-2048
key and publish the matching certificate (``imdsmock cert``), so a client can verify
exactly as it verifies AWS's signatures, with its own certificate configured.

The key and certificate come from configured files, or are generated once and kept in the
user's cache directory, so that ``imdsmock cert`` in another process prints the
certificate of the key a running server signs with.
"""

from __future__ import annotations

import base64
import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from .config import SigningConfig
from .errors import ConfigError

__all__ = ["Signer", "default_dir", "load_signer"]


@dataclass(frozen=True, slots=True)
class Signer:
    """An RSA key and its certificate."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    def certificate_pem(self) -> str:
        """The certificate in PEM form, as AWS publishes its region certificates."""
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def signature(self, document: bytes) -> str:
        """Base64 RSA PKCS#1 v1.5 signature over SHA-256 of ``document``."""
        raw = self.key.sign(document, padding.PKCS1v15(), hashes.SHA256())
        return _wrap(raw)

    def pkcs7(self, document: bytes) -> str:
        """PKCS#7 signed data (detached) over ``document``, base64 without armour."""
        der = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(document)
            .add_signer(self.certificate, self.key, hashes.SHA256())
            .sign(
                serialization.Encoding.DER,
                [
                    pkcs7.PKCS7Options.DetachedSignature,
                    pkcs7.PKCS7Options.NoCapabilities,
                    pkcs7.PKCS7Options.Binary,
                ],
            )
        )
        return _wrap(der, width=64)


def _wrap(raw: bytes, width: int = 76) -> str:
    text = base64.b64encode(raw).decode()
    return "\n".join(text[i : i + width] for i in range(0, len(text), width))


def default_dir() -> Path:
    """Where generated keys are kept: ``$XDG_CACHE_HOME/imdsmock`` or ``~/.cache/imdsmock``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imdsmock"


def load_signer(cfg: SigningConfig) -> Signer:
    """Load the configured key and certificate, or the cached generated pair."""
    if cfg.key_file or cfg.cert_file:
        if not (cfg.key_file and cfg.cert_file):
            missing = "signing.cert-file" if cfg.key_file else "signing.key-file"
            raise ConfigError(missing, None, "a file path (key-file and cert-file go together)")
        return Signer(
            _read_key(Path(cfg.key_file), "signing.key-file"),
            _read_cert(Path(cfg.cert_file), "signing.cert-file"),
        )
    directory = default_dir()
    key_path, cert_path = directory / "identity-key.pem", directory / "identity-cert.pem"
    if key_path.exists() and cert_path.exists():
        try:
            return Signer(
                _read_key(key_path, "signing key", ours=True), _read_cert(cert_path, "signing")
            )
        except ConfigError:
            pass  # a damaged cache is regenerated below
    signer = generate()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = key_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(
            signer.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        tmp.chmod(0o600)
        ctmp = cert_path.with_suffix(f".{os.getpid()}.tmp")
        ctmp.write_text(signer.certificate_pem())
        os.replace(tmp, key_path)
        os.replace(ctmp, cert_path)
    except OSError:
        pass  # read-only home: the pair lives for this process only
    return signer


def generate() -> Signer:
    """A fresh RSA-2048 key and a self-signed certificate for it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "imdsmock"),
            x509.NameAttribute(NameOID.COMMON_NAME, "imdsmock instance identity"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return Signer(key, cert)


def _read_key(path: Path, key: str, *, ours: bool = False) -> rsa.RSAPrivateKey:
    try:
        # Checking an RSA key's consistency costs ~50-100 ms of start-up (a benchmark
        # figure); the key cache holds keys we generated, so only users' keys are checked.
        loaded = serialization.load_pem_private_key(
            path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=ours
        )
    except OSError:
        raise ConfigError(key, str(path), "a readable PEM private key file") from None
    except (ValueError, TypeError):
        raise ConfigError(key, str(path), "an unencrypted PEM RSA private key") from None
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ConfigError(key, str(path), "an RSA private key")
    return loaded


def _read_cert(path: Path, key: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError:
        raise ConfigError(key, str(path), "a readable PEM certificate file") from None
    except ValueError:
        raise ConfigError(key, str(path), "a PEM X.509 certificate") from None
