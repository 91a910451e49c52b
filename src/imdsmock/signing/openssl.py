"""The same signatures through OpenSSL (``cryptography``), for many instances at once.

``rsakey`` signs in pure Python, ~6 ms a signature on a quiet core: nothing for one
instance's two signatures, but a fleet of 1,000 members signs 2,000 at start (14 s) and a
member added at run time waits for its two. OpenSSL signs the same bytes (PKCS#1 v1.5 is
deterministic) in ~0.25 ms. Importing ``cryptography`` costs ~9 MB of RSS that one instance
does not pay, so only a fleet of more than a few members signs through here
(:func:`imdsmock.core.fleet.Fleet`).
"""

from __future__ import annotations

import dataclasses

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from imdsmock.signing.signer import Signer

__all__ = ["accelerated"]


def accelerated(signer: Signer) -> Signer:
    """``signer`` signing through OpenSSL: the same key, certificate and signatures."""
    if signer.backend is not None:
        return signer
    key = signer.key
    numbers = rsa.RSAPrivateNumbers(
        key.p, key.q, key.d, key.dp, key.dq, key.qinv, rsa.RSAPublicNumbers(key.e, key.n)
    )
    loaded = numbers.private_key()  # checked once: OpenSSL signs with these numbers from now
    scheme, digest = padding.PKCS1v15(), hashes.SHA256()

    def sign(message: bytes) -> bytes:
        return loaded.sign(message, scheme, digest)

    return dataclasses.replace(signer, backend=sign)
