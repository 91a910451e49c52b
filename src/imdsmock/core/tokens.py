"""IMDSv2 session tokens that need no store.

A token carries its own expiry and is authenticated with an HMAC under a per-process (or
shared, for workers) secret, so nothing grows with traffic, an expired token is simply
rejected, and a token issued by one worker is accepted by another. Issued and verified
tokens are remembered in a bounded cache to skip the HMAC on the hot path.

The cache stores each key's hash beside it, so a lookup reads only the key whose hash
matches, not every key it probes on its way (10,000 live tokens are cold in the CPU
caches). Tokens are not interned: ``sys.intern`` per issued token cost 0.6 us (the
interned strings' dict grows with the live tokens), more than a lookup by identity saves.

Layout (42 bytes, 56 base64 characters, starting ``AQAAA`` like EC2's):
``01 00 00 00 | expiry ms (8) | nonce (12) | HMAC-SHA256 truncated (18)``.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import itertools
import os
import threading

__all__ = ["MAX_TTL", "MIN_TTL", "TokenIssuer"]

MIN_TTL = 1
MAX_TTL = 21600
_PREFIX = b"\x01\x00\x00\x00"
# Room for every live token of a busy CI host (10,000 tokens is a benchmark figure):
# about 2 MB when full; past it the cache is pruned and misses cost one HMAC each.
_CACHE_LIMIT = 16384
# Nonces: a counter from a random start, scrambled by an odd multiplier (a bijection mod
# 2**96, so never repeated within a process). Unpredictability is not needed (the HMAC
# authenticates a token), and os.urandom per token would be a system call on every PUT.
_NONCE_MOD = 1 << 96
_NONCE_MUL = 0x9E3779B97F4A7C15F39CC061  # odd
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class TokenIssuer:
    """Issues and verifies tokens; thread-safe (the cache tolerates races)."""

    __slots__ = (
        "_cache",
        "_keyed",
        "_lock",
        "_nonces",
        "_secret",
        "generation",
        "mark",
    )

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or os.urandom(32)
        self._cache = _with_hashes()
        self._lock = threading.Lock()
        self._nonces = itertools.count(int.from_bytes(os.urandom(12), "big"))
        # Bumped by revoke_all(); part of the MAC so old tokens stop verifying.
        self.generation = 0
        # Replaced by revoke_all(): an answer remembered for a verified token holds the
        # mark it was verified under (imdsmock.core.imds.Known), and is taken again only
        # while it is the same object.
        self.mark = object()
        # HMAC states keyed for the current generation; copying them skips the key set-up.
        self._keyed = (-1, hashlib.sha256(), hashlib.sha256())

    def issue(self, ttl: int, now: float) -> str:
        """A new token valid for ``ttl`` seconds from ``now``."""
        # The cache is taken before the MAC: a revoke_all() in between replaces it, so a
        # token of the old generation is never remembered as valid in the new one.
        cache = self._cache
        expiry_ms = int((now + ttl) * 1000)
        nonce = (next(self._nonces) * _NONCE_MUL) % _NONCE_MOD
        body = _PREFIX + expiry_ms.to_bytes(8, "big") + nonce.to_bytes(12, "big")
        token = binascii.b2a_base64(body + self._mac(body), newline=False).decode("ascii")
        # A token is used right after it is issued: remember it, so its first use skips
        # the HMAC (the same value _verify would compute).
        self._remember(cache, token, expiry_ms / 1000.0, now)
        return token

    def remaining(self, token: str, now: float) -> float | None:
        """Seconds the token has left, or ``None`` when it is invalid or expired."""
        expiry = self.expiry(token, now)
        return None if expiry is None else expiry - now

    def expiry(self, token: str, now: float) -> float | None:
        """When the token expires, or ``None`` when it is invalid or expired at ``now``."""
        cache = self._cache  # taken first, as in issue()
        expiry = cache.get(token)
        if expiry is None:
            expiry = self._verify(token)
            if expiry is None:
                return None
            self._remember(cache, token, expiry, now)
        return expiry if expiry > now else None

    def _remember(self, cache: dict[str, float], token: str, expiry: float, now: float) -> None:
        if len(cache) >= _CACHE_LIMIT:
            with self._lock:  # rare; only against a revoke_all() from another thread
                if cache is not self._cache:
                    return  # revoked meanwhile: remember nothing
                cache = self._cache = _pruned(cache, now)
        cache[token] = expiry

    def revoke_all(self) -> None:
        """Invalidate every token issued so far."""
        with self._lock:
            self.generation += 1
            self._cache = _with_hashes()
            self.mark = object()

    def _mac(self, body: bytes) -> bytes:
        # HMAC-SHA256 (RFC 2104) from two SHA-256 states keyed once per generation:
        # copying them is cheaper than a keyed hmac object's copy or hmac.digest(), and a
        # test checks the result is hmac's.
        # The generation and its two states are one tuple, read and replaced whole: a
        # revoke_all() from another thread never pairs a new generation with old keys.
        keyed = self._keyed
        generation = self.generation
        if keyed[0] != generation:
            key = (self._secret + generation.to_bytes(4, "big")).ljust(64, b"\0")
            keyed = (
                generation,
                hashlib.sha256(key.translate(_IPAD)),
                hashlib.sha256(key.translate(_OPAD)),
            )
            self._keyed = keyed
        inner = keyed[1].copy()
        inner.update(body)
        outer = keyed[2].copy()
        outer.update(inner.digest())
        return outer.digest()[:18]

    def _verify(self, token: str) -> float | None:
        if len(token) != 56:
            return None
        try:
            raw = binascii.a2b_base64(token, strict_mode=True)
        except (binascii.Error, ValueError):
            return None
        body, mac = raw[:24], raw[24:]
        if not raw.startswith(_PREFIX) or not hmac.compare_digest(mac, self._mac(body)):
            return None
        return int.from_bytes(body[4:12], "big") / 1000.0


def _with_hashes() -> dict[str, float]:
    """An empty dict that stores each key's hash beside it (CPython's layout for keys of
    any type, kept once a non-str key was in it; a dict of only str keys reads each key it
    probes to compare hashes)."""
    cache: dict[object, float] = {None: 0.0}
    del cache[None]
    return cache  # type: ignore[return-value]


def _pruned(cache: dict[str, float], now: float) -> dict[str, float]:
    """The cache without expired tokens, and at most half full (the newest kept)."""
    live = [(t, e) for t, e in cache.items() if e > now]
    # Mostly live tokens: keep the newest half (a dict keeps insertion order).
    kept = _with_hashes()
    kept.update(live[-(_CACHE_LIMIT // 2) :])  # from a list: the layout stays
    return kept
