"""Fake role credentials that look and rotate like EC2's.

A set is a pure function of a secret seed and the rotation epoch, so every worker process
and every restart with the same seed serves the same keys, and nothing is stored. EC2
issues credentials that live about six hours and hands out a new set well before the old
one expires (at least five minutes; real-imds.md §A7), so SDKs refresh normally instead
of falling into their "extend expired credentials" paths (§A11).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from dataclasses import dataclass

from .config import CredentialsConfig

__all__ = ["CredentialSet", "FakeCredentials"]

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialSet:
    """One set of temporary credentials."""

    access_key_id: str
    secret_access_key: str
    token: str
    last_updated: float
    expiration: float


@dataclass(frozen=True, slots=True)
class FakeCredentials:
    """Deterministic rotating fake credentials.

    Epoch ``k`` starts at ``origin + k * rotate_every`` and its set expires ``lifetime``
    seconds after that.
    """

    config: CredentialsConfig
    origin: float
    seed: bytes

    def epoch(self, now: float) -> int:
        """The rotation epoch in force at ``now``."""
        return math.floor((now - self.origin) / self.config.rotate_every)

    def window(self, epoch: int) -> tuple[float, float]:
        """``[start, end)`` of an epoch."""
        start = self.origin + epoch * self.config.rotate_every
        return start, start + self.config.rotate_every

    def issue(self, epoch: int, role: str) -> CredentialSet:
        """The set for ``role`` in ``epoch``."""
        start, _ = self.window(epoch)
        stream = _stream(self.seed, f"{role}/{epoch}".encode(), 900)
        key_id = "ASIA" + "".join(_B32[b % 32] for b in stream[:16])
        secret = base64.b64encode(stream[16:46]).decode()[:40]
        # Session tokens are long base64 blobs; EC2's start with "IQoJb3JpZ2luX2Vj".
        token = "IQoJb3JpZ2luX2Vj" + base64.b64encode(stream[46:880]).decode()
        return CredentialSet(
            access_key_id=key_id,
            secret_access_key=secret,
            token=token,
            last_updated=start,
            expiration=start + self.config.lifetime,
        )


def _stream(seed: bytes, label: bytes, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hmac.new(seed, label + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        counter += 1
    return bytes(out[:size])
