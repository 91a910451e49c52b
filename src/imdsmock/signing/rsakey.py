"""RSA in pure Python: a private key, PKCS#1 v1.5 signatures over SHA-256, key generation.

RSA is ``pow`` on integers (RFC 8017): signing uses the CRT (two half-size ``pow``s),
verifying one ``pow`` with the public exponent, and a new key is two random primes from
``secrets`` (a small-prime sieve, then Miller-Rabin). :mod:`signing` builds the identity
document's signatures, certificates and PKCS#7 on top of it.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass

from imdsmock.signing import der

__all__ = ["RSA_ENCRYPTION", "RSAKey", "generate_key", "verify"]

RSA_ENCRYPTION = "1.2.840.113549.1.1.1"

# DigestInfo { sha256, NULL } with the 32-byte digest to follow (RFC 8017 §9.2, note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


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

    def pem(self) -> str:
        """The key as unencrypted PKCS#8 PEM (``BEGIN PRIVATE KEY``)."""
        fields = (0, self.n, self.e, self.d, self.p, self.q, self.dp, self.dq, self.qinv)
        rsa = der.sequence(*map(der.integer, fields))
        info = der.sequence(der.integer(0), der.algorithm(RSA_ENCRYPTION), der.octet_string(rsa))
        return der.pem("PRIVATE KEY", info)


def _emsa(message: bytes, size: int) -> bytes:
    """EMSA-PKCS1-v1_5 encoding of SHA-256(``message``) in ``size`` bytes (RFC 8017 §9.2)."""
    digest_info = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    if size < len(digest_info) + 11:
        raise ValueError(f"an RSA modulus of {size} bytes is too short for SHA-256")
    return b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info


def verify(n: int, e: int, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is the RSASSA-PKCS1-v1_5 SHA-256 signature of ``message``."""
    size = (n.bit_length() + 7) // 8
    if len(signature) != size:
        return False
    s = int.from_bytes(signature, "big")
    return s < n and pow(s, e, n).to_bytes(size, "big") == _emsa(message, size)


def generate_key(bits: int = 2048, e: int = 65537) -> RSAKey:
    """An RSA key of ``bits`` bits with two random primes (``secrets``), exponent ``e``."""
    # Odd primes below 2000: a gcd with their product rejects ~85% of candidates before
    # any Miller-Rabin round (computed here, not at import: only generation needs it).
    sieve = math.prod(k for k in range(3, 2000, 2) if all(k % j for j in range(3, k, 2)))
    while True:
        p, q = _prime(bits - bits // 2, e, sieve), _prime(bits // 2, e, sieve)
        n = p * q
        if p != q and n.bit_length() == bits:
            break
    p, q = max(p, q), min(p, q)
    d = pow(e, -1, math.lcm(p - 1, q - 1))
    return RSAKey(n, e, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p))


def _prime(bits: int, e: int, sieve: int) -> int:
    """A random prime of exactly ``bits`` bits, top two bits set, with gcd(e, p - 1) == 1."""
    while True:
        candidate = secrets.randbits(bits) | (0b11 << (bits - 2)) | 1
        if (
            math.gcd(candidate, sieve) == 1
            and math.gcd(e, candidate - 1) == 1
            and _probably_prime(candidate)
        ):
            return candidate


def _probably_prime(n: int, rounds: int = 5) -> bool:
    """Miller-Rabin with random bases; five rounds for 1024-bit candidates (FIPS 186-5 B.3)."""
    r, s = n - 1, 0
    while r % 2 == 0:
        r, s = r // 2, s + 1
    for _ in range(rounds):
        x = pow(secrets.randbelow(n - 3) + 2, r, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True
