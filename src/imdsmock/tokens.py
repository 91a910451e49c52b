"""IMDSv2 session tokens that need no store.

A token carries its own expiry and is authenticated with an HMAC under a per-process (or
shared, for workers) secret, so nothing grows with traffic, an expired token is simply
rejected, and a token issued by one worker is accepted by another. Verified tokens are
remembered in a small bounded cache to skip the HMAC on the hot path.

Layout (42 bytes, 56 base64 characters, starting ``AQAAA`` like EC2's):
``01 00 00 00 | expiry ms (8) | nonce (12) | HMAC-SHA256 truncated (18)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

__all__ = ["MAX_TTL", "MIN_TTL", "TokenIssuer"]

MIN_TTL = 1
MAX_TTL = 21600
_PREFIX = b"\x01\x00\x00\x00"
# Room for every live token of a busy CI host (10,000 tokens is a benchmark figure):
# about 2 MB when full; past it the cache is pruned and misses cost one HMAC each.
_CACHE_LIMIT = 16384


class TokenIssuer:
    """Issues and verifies tokens; thread-safe (the cache tolerates races)."""

    __slots__ = ("_base", "_base_generation", "_cache", "_secret", "generation")

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or os.urandom(32)
        self._cache: dict[str, float] = {}
        # Bumped by revoke_all(); part of the MAC so old tokens stop verifying.
        self.generation = 0
        # An HMAC keyed for the current generation; copying it skips the key set-up.
        self._base_generation = -1
        self._base = hmac.new(b"", digestmod=hashlib.sha256)

    def issue(self, ttl: int, now: float) -> str:
        """A new token valid for ``ttl`` seconds from ``now``."""
        expiry = int((now + ttl) * 1000)
        body = _PREFIX + struct.pack(">Q", expiry) + os.urandom(12)
        return base64.b64encode(body + self._mac(body)).decode()

    def remaining(self, token: str, now: float) -> float | None:
        """Seconds the token has left, or ``None`` when it is invalid or expired."""
        expiry = self._cache.get(token)
        if expiry is None:
            expiry = self._verify(token)
            if expiry is None:
                return None
            if len(self._cache) >= _CACHE_LIMIT:
                self._prune(now)
            self._cache[token] = expiry
        left = expiry - now
        return left if left > 0 else None

    def revoke_all(self) -> None:
        """Invalidate every token issued so far."""
        self.generation += 1
        self._cache = {}

    def _mac(self, body: bytes) -> bytes:
        if self._base_generation != self.generation:
            key = self._secret + self.generation.to_bytes(4, "big")
            self._base = hmac.new(key, digestmod=hashlib.sha256)
            self._base_generation = self.generation
        mac = self._base.copy()
        mac.update(body)
        return mac.digest()[:18]

    def _verify(self, token: str) -> float | None:
        if len(token) != 56:
            return None
        try:
            raw = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError):
            return None
        body, mac = raw[:24], raw[24:]
        if not raw.startswith(_PREFIX) or not hmac.compare_digest(mac, self._mac(body)):
            return None
        (expiry_ms,) = struct.unpack(">Q", body[4:12])
        return float(expiry_ms) / 1000.0

    def _prune(self, now: float) -> None:
        live = {t: e for t, e in self._cache.items() if e > now}
        if len(live) >= _CACHE_LIMIT:
            live = {}
        self._cache = live
