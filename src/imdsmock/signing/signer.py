"""Real signatures for the instance identity document.

EC2 signs ``dynamic/instance-identity/document`` three ways, as AWS documents them:
``signature`` (base64 RSA over SHA-256 of the document), ``pkcs7`` and ``rsa2048`` (PKCS#7
signed data, detached content, base64 without PEM armour). We sign with our own RSA-2048
key and publish the matching certificate (``imdsmock cert``), so a client can verify
exactly as it verifies AWS's signatures, with its own certificate configured.

Signing is ``rsakey`` and ``der``, so a server that starts with a cached key does not
import ``cryptography``; ``keys`` makes and reads keys and certificates with it, and
``store`` keeps them. A fleet of more than a few members signs the same bytes through
OpenSSL instead (``openssl``: a ``backend``), ~25x sooner.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from imdsmock.signing import der
from imdsmock.signing.rsakey import RSAKey

__all__ = ["Certificate", "RSAKey", "Signer"]

RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
SHA256 = "2.16.840.1.101.3.4.2.1"
DATA = "1.2.840.113549.1.7.1"
SIGNED_DATA = "1.2.840.113549.1.7.2"
CONTENT_TYPE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
SIGNING_TIME = "1.2.840.113549.1.9.5"


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
    """An RSA key and its certificate.

    ``backend`` signs as ``key.sign`` does, sooner (``signing.openssl``); None: ``key.sign``.
    """

    key: RSAKey
    certificate: Certificate
    backend: Callable[[bytes], bytes] | None = field(default=None, compare=False, repr=False)

    def certificate_pem(self) -> str:
        """The certificate in PEM form, as AWS publishes its region certificates."""
        return self.certificate.pem()

    def signature(self, document: bytes) -> str:
        """Base64 RSA PKCS#1 v1.5 signature over SHA-256 of ``document``."""
        return der.base64_lines(self._sign(document), 76)

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
        signature = self._sign(der.set_of(*attributes))
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

    def _sign(self, message: bytes) -> bytes:
        backend = self.backend
        return self.key.sign(message) if backend is None else backend(message)


def _attribute(dotted: str, value: bytes) -> bytes:
    return der.sequence(der.oid(dotted), der.set_of(value))
