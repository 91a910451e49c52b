"""An RSA private key that signs in pure Python: PKCS#1 v1.5 over SHA-256, with the CRT.

RSA signing is ``pow`` on integers (RFC 8017 §8.2): two half-size ``pow``s with the CRT.
The server signs the identity document with this at start, so that a start with a cached
key does not import ``cryptography`` and does not carry its memory while it serves.
``cryptography`` makes and reads the keys (``signing.keys``); the tests check that both
sign byte for byte alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["MIN_SIZE", "RSAKey"]

# DigestInfo { sha256, NULL } with the 32-byte digest to follow (RFC 8017 §9.2, note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
# The shortest modulus, in bytes, that holds the DigestInfo, the digest and 11 bytes of padding.
MIN_SIZE = len(_SHA256_DIGEST_INFO) + 32 + 11


@dataclass(frozen=True, slots=True)
class RSAKey:
    """An RSA private key as its PKCS#1 integers (RFC 8017 §3.2, second form)."""

    n: int
    e: int
    d: int
    p: int
    q: int
    dp: int
    dq: int
    qinv: int

    def sign(self, message: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 over SHA-256 of ``message``, computed with the CRT."""
        m = int.from_bytes(_emsa(message, self.size), "big")
        m1, m2 = pow(m, self.dp, self.p), pow(m, self.dq, self.q)
        s = m2 + (self.qinv * (m1 - m2) % self.p) * self.q
        return s.to_bytes(self.size, "big")

    @property
    def size(self) -> int:
        """The modulus length in bytes (256 for RSA-2048)."""
        return (self.n.bit_length() + 7) // 8


def _emsa(message: bytes, size: int) -> bytes:
    """EMSA-PKCS1-v1_5 encoding of SHA-256(``message``) in ``size`` bytes (RFC 8017 §9.2)."""
    digest_info = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    if size < MIN_SIZE:
        raise ValueError(f"an RSA modulus of {size} bytes is too short for SHA-256")
    return b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
