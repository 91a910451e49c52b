"""Real signatures for the instance identity document, in pure Python.

EC2 signs ``dynamic/instance-identity/document`` three ways (real-imds.md §A8):
``signature`` (base64 RSA over SHA-256 of the document), ``pkcs7`` and ``rsa2048`` (PKCS#7
signed data, detached content, base64 without PEM armour). We sign with our own RSA-2048
key and publish the matching certificate (``imdsmock cert``), so a client can verify
exactly as it verifies AWS's signatures, with its own certificate configured.

The key and certificate come from configured files, or are generated once and kept in the
user's cache directory, so that ``imdsmock cert`` in another process prints the
certificate of the key a running server signs with.

Everything here is the standard library, ``der`` and ``rsakey`` (RSA as ``pow`` on
integers, PKCS#1 v1.5, RFC 8017 §8.2); PKCS#7 and X.509 are a few DER structures
(RFC 5652, RFC 5280).
Importing ``cryptography`` instead cost the server ~25 ms of start-up and ~14 MB of memory
for two signatures at start. The test suite cross-checks every structure with
``cryptography`` and the ``openssl`` command.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from imdsmock.config.schema import SigningConfig
from imdsmock.errors import ConfigError
from imdsmock.signing import der
from imdsmock.signing.rsakey import RSA_ENCRYPTION, RSAKey, generate_key, verify

__all__ = ["Certificate", "RSAKey", "Signer", "default_dir", "generate", "load_signer"]

SHA256_WITH_RSA = "1.2.840.113549.1.1.11"
SHA256 = "2.16.840.1.101.3.4.2.1"
DATA = "1.2.840.113549.1.7.1"
SIGNED_DATA = "1.2.840.113549.1.7.2"
CONTENT_TYPE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
SIGNING_TIME = "1.2.840.113549.1.9.5"

_SUBJECT = (("2.5.4.6", "US"), ("2.5.4.10", "imdsmock"), ("2.5.4.3", "imdsmock instance identity"))


@dataclass(frozen=True, slots=True)
class Certificate:
    """An X.509 certificate: its DER bytes and the fields signing needs from it."""

    der: bytes
    issuer: bytes  # the issuer Name, DER, as IssuerAndSerialNumber copies it
    serial: int
    n: int  # the subject's RSA public key; 0 when the key is not RSA
    e: int

    def pem(self) -> str:
        """The certificate in PEM form, as AWS publishes its region certificates."""
        return der.pem("CERTIFICATE", self.der)


@dataclass(frozen=True, slots=True)
class Signer:
    """An RSA key and its certificate."""

    key: RSAKey
    certificate: Certificate

    def certificate_pem(self) -> str:
        """The certificate in PEM form, as AWS publishes its region certificates."""
        return self.certificate.pem()

    def signature(self, document: bytes) -> str:
        """Base64 RSA PKCS#1 v1.5 signature over SHA-256 of ``document``."""
        return der.base64_lines(self.key.sign(document), 76)

    def pkcs7(self, document: bytes) -> str:
        """PKCS#7 signed data (detached) over ``document``, base64 without armour.

        One signer (issuer and serial of our certificate), SHA-256, the signed attributes
        OpenSSL writes (content type, signing time, message digest), and the certificate
        itself, so ``openssl smime -verify -noverify`` needs nothing else (RFC 5652 §5).
        """
        now = datetime.datetime.now(datetime.UTC)
        attributes = (
            _attribute(CONTENT_TYPE, der.oid(DATA)),
            _attribute(SIGNING_TIME, der.time(now)),
            _attribute(MESSAGE_DIGEST, der.octet_string(hashlib.sha256(document).digest())),
        )
        # The signature covers the attributes tagged SET; they travel tagged [0] (§5.4).
        signature = self.key.sign(der.set_of(*attributes))
        cert = self.certificate
        signer_info = der.sequence(
            der.integer(1),
            der.sequence(cert.issuer, der.integer(cert.serial)),
            der.algorithm(SHA256),
            der.set_of(*attributes, tag=0xA0),
            der.algorithm(RSA_ENCRYPTION),
            der.octet_string(signature),
        )
        signed_data = der.sequence(
            der.integer(1),
            der.set_of(der.algorithm(SHA256)),
            der.sequence(der.oid(DATA)),  # detached: the content itself is left out
            der.context(0, cert.der),
            der.set_of(signer_info),
        )
        content = der.sequence(der.oid(SIGNED_DATA), der.context(0, signed_data))
        return der.base64_lines(content)


def _attribute(dotted: str, value: bytes) -> bytes:
    return der.sequence(der.oid(dotted), der.set_of(value))


# -- the cache and configured files -----------------------------------------------------


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
        key = _read_key(Path(cfg.key_file), "signing.key-file")
        cert = _read_cert(Path(cfg.cert_file), "signing.cert-file")
        return _pair(key, cert, "signing.cert-file", cfg.cert_file)
    directory = default_dir()
    # Processes starting together (parallel test workers) would each generate and cache a
    # pair, and a running server could sign with a key whose certificate was overwritten:
    # one at a time, under a lock file, and the others then read the pair it cached.
    with _cache_lock(directory):
        return _cached_signer(directory)


@contextlib.contextmanager
def _cache_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock on the cache directory (none if it cannot be created)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / "identity.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError:
        yield  # read-only home: nothing is cached, so nothing to share
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _cached_signer(directory: Path) -> Signer:
    key_path, cert_path = directory / "identity-key.pem", directory / "identity-cert.pem"
    if key_path.exists() and cert_path.exists():
        try:
            key = _read_key(key_path, "signing key", ours=True)
            return _pair(key, _read_cert(cert_path, "signing"), "signing", str(cert_path))
        except ConfigError:
            pass  # a damaged cache is regenerated below
    signer = generate()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = key_path.with_suffix(f".{os.getpid()}.tmp")
        # Created 0600, so the key is never readable by others, not even for a moment.
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            out.write(signer.key.pem())
        ctmp = cert_path.with_suffix(f".{os.getpid()}.tmp")
        ctmp.write_text(signer.certificate_pem())
        os.replace(tmp, key_path)
        os.replace(ctmp, cert_path)
    except OSError:
        pass  # read-only home: the pair lives for this process only
    return signer


def _pair(key: RSAKey, cert: Certificate, name: str, path: str) -> Signer:
    if (cert.n, cert.e) != (key.n, key.e):
        raise ConfigError(name, path, "the certificate of the signing key (its public key differs)")
    return Signer(key, cert)


_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """(label, body) of each PEM block; the body keeps any RFC 1421 headers."""
    return [(label.decode(), body) for label, body in _PEM.findall(data)]


def _unarmour(body: bytes) -> bytes:
    return base64.b64decode(b"".join(body.split()), validate=True)


def _read_key(path: Path, key: str, *, ours: bool = False) -> RSAKey:
    try:
        data = path.read_bytes()
    except OSError:
        raise ConfigError(key, str(path), "a readable PEM private key file") from None
    blocks = [(label, body) for label, body in _pem_blocks(data) if label.endswith("PRIVATE KEY")]
    if not blocks:
        raise ConfigError(key, str(path), "an unencrypted PEM RSA private key")
    label, body = blocks[0]
    if label not in ("PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"):
        raise ConfigError(key, str(path), "an RSA private key")  # EC, DSA, ...
    try:
        if label == "ENCRYPTED PRIVATE KEY" or b"Proc-Type:" in body:
            raise ValueError("encrypted")  # PKCS#8 encrypted, or PKCS#1 with RFC 1421 headers
        raw = _unarmour(body)
        if label == "PRIVATE KEY":
            version, algorithm, private = der.parse(raw).expect(der.SEQUENCE).children()[:3]
            if der.decode_integer(version) not in (0, 1):
                raise der.DERError("unknown PKCS#8 version")
            if algorithm.expect(der.SEQUENCE).children()[0].encoded != der.oid(RSA_ENCRYPTION):
                raise ConfigError(key, str(path), "an RSA private key")  # Ed25519, EC, ...
            raw = private.expect(der.OCTET_STRING).value
        fields = [der.decode_integer(item) for item in der.parse(raw).children()]
        if len(fields) < 9 or fields[0] != 0:
            raise der.DERError("not a two-prime RSAPrivateKey")
        loaded = RSAKey(*fields[1:9])
        # The key cache holds keys we generated, so only users' keys are checked: the
        # factors multiply to the modulus and a signature made with the CRT verifies.
        if not ours and not (
            loaded.n == loaded.p * loaded.q
            and verify(loaded.n, loaded.e, b"imdsmock", loaded.sign(b"imdsmock"))
        ):
            raise ValueError("inconsistent RSA key")
    except (ValueError, IndexError):  # DERError and binascii.Error are ValueErrors
        raise ConfigError(key, str(path), "an unencrypted PEM RSA private key") from None
    return loaded


def _read_cert(path: Path, key: str) -> Certificate:
    try:
        data = path.read_bytes()
    except OSError:
        raise ConfigError(key, str(path), "a readable PEM certificate file") from None
    try:
        body = next(body for label, body in _pem_blocks(data) if label == "CERTIFICATE")
        return parse_certificate(_unarmour(body))
    except (StopIteration, ValueError, IndexError):
        raise ConfigError(key, str(path), "a PEM X.509 certificate") from None


def parse_certificate(data: bytes) -> Certificate:
    """The fields signing needs from a DER certificate (RFC 5280 §4.1); ValueError if bad."""
    tbs, _, _ = der.parse(data).expect(der.SEQUENCE).children()
    fields = tbs.expect(der.SEQUENCE).children()
    if fields[0].tag == 0xA0:  # [0] EXPLICIT version, absent for v1
        fields = fields[1:]
    serial, _, issuer, _, _, spki = fields[:6]
    algorithm, public = spki.expect(der.SEQUENCE).children()
    n = e = 0
    if algorithm.children()[0].encoded == der.oid(RSA_ENCRYPTION):
        bits = public.expect(der.BIT_STRING).value
        if bits[:1] != b"\x00":
            raise der.DERError("an RSA public key is whole bytes")
        n, e = map(der.decode_integer, der.parse(bits[1:]).children()[:2])
    return Certificate(
        der=data, issuer=issuer.expect(der.SEQUENCE).encoded, serial=der.decode_integer(serial),
        n=n, e=e,
    )  # fmt: skip


# -- generation -----------------------------------------------------------------------


def generate() -> Signer:
    """A fresh RSA-2048 key and a self-signed certificate for it (ten years, SHA-256)."""
    key = generate_key(2048)
    name = der.sequence(
        *(
            der.set_of(
                der.sequence(
                    der.oid(attr),
                    der.printable_string(v) if attr == "2.5.4.6" else der.utf8_string(v),
                )
            )
            for attr, v in _SUBJECT
        )
    )
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    serial = secrets.randbits(159) | 1  # positive, at most 20 octets (RFC 5280 §4.1.2.2)
    public = der.sequence(der.integer(key.n), der.integer(key.e))
    tbs = der.sequence(
        der.context(0, der.integer(2)),  # v3
        der.integer(serial),
        der.algorithm(SHA256_WITH_RSA),
        name,
        der.sequence(
            der.time(now - datetime.timedelta(days=1)),
            der.time(now + datetime.timedelta(days=3650)),
        ),
        name,
        der.sequence(der.algorithm(RSA_ENCRYPTION), der.bit_string(public)),
    )
    cert = der.sequence(tbs, der.algorithm(SHA256_WITH_RSA), der.bit_string(key.sign(tbs)))
    return Signer(key, parse_certificate(cert))
