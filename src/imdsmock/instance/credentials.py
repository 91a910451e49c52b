"""Role credentials that look and rotate like EC2's: plain values, no clock and no I/O.

Two credential sources sit behind one small interface (:class:`CredentialSource`):

* :class:`FakeCredentials` (the default): a set is a pure function of a secret seed and
  the rotation epoch, so every worker process and every restart with the same seed serves
  the same keys, and nothing is stored. EC2 issues credentials that live about six hours
  and hands out a new set well before the old one expires (at least five minutes), so
  SDKs refresh normally instead of falling into their "extend expired credentials" paths.
* :class:`FixedCredentials`: one set fetched from somewhere real (a profile, an assumed
  role) by a background refresher (:mod:`imdsmock.serve.awscreds`), which swaps in a new
  snapshot holding the next set. Past its expiry, or before the first fetch, the role
  path answers EC2's "cannot get credentials" document.

What a running mock does with them (the set in force, the control operations, fetches
that must fail) is :mod:`imdsmock.core.credentials`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import math
from dataclasses import dataclass, field
from typing import Protocol

from imdsmock.config.schema import CredentialsConfig
from imdsmock.instance.imdsjson import imds_time

__all__ = [
    "INSTANCE_ROLE",
    "UNAVAILABLE_CODE",
    "CredentialSet",
    "CredentialSource",
    "FakeCredentials",
    "FixedCredentials",
    "failure_document",
    "initial_source",
    "role_arn",
    "unavailable",
]

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_INF = math.inf
# What EC2 answers (HTTP 200, Code != Success) when it cannot get the role's credentials,
# e.g. a role whose trust policy does not allow EC2.
UNAVAILABLE_CODE = "AssumeRoleUnauthorizedAccess"
_UNAVAILABLE_MESSAGE = (
    "EC2 cannot assume the role {role}.  Please see documentation at "
    "http://docs.amazonwebservices.com/IAM/latest/UserGuide/RolesTroubleshooting.html."
)
# The role name under which the instance-identity credentials are issued.
INSTANCE_ROLE = "\0ec2-instance"


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialSet:
    """One set of temporary credentials, or (``code`` != Success) EC2's failure answer."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    token: str = field(repr=False)
    last_updated: float
    expiration: float
    code: str = "Success"
    message: str | None = None
    # Known for real credentials (the assumed role, its account); derived when None.
    role_arn: str | None = None
    account_id: str | None = None


def unavailable(role: str, when: float) -> CredentialSet:
    """The set standing for "EC2 cannot get credentials for ``role``"."""
    return CredentialSet(
        access_key_id="",
        secret_access_key="",
        token="",
        last_updated=when,
        expiration=when,
        code=UNAVAILABLE_CODE,
        message=_UNAVAILABLE_MESSAGE.format(role=role),
    )


def failure_document(creds: CredentialSet) -> dict[str, object]:
    """EC2's answer when it cannot get credentials: ``Code``, ``Message``, ``LastUpdated``."""
    return {
        "Code": creds.code,
        "Message": creds.message,
        "LastUpdated": imds_time(creds.last_updated),
    }


class CredentialSource(Protocol):
    """What a snapshot needs from a credential source: the sets of each epoch."""

    @property
    def config(self) -> CredentialsConfig:
        """The credential settings in force."""
        ...

    def describe(self) -> dict[str, object]:
        """A secret-free summary for the control API."""
        ...

    def epoch(self, now: float) -> int:
        """The epoch (one credential set) in force at ``now``."""
        ...

    def window(self, epoch: int) -> tuple[float, float]:
        """``[start, end)`` of an epoch."""
        ...

    def issue(self, epoch: int, role: str) -> CredentialSet:
        """The set for ``role`` in ``epoch`` (``role`` ``"\\0ec2-instance"``: the instance's)."""
        ...

    def with_config(self, config: CredentialsConfig) -> CredentialSource:
        """The same source under a new configuration (keys kept)."""
        ...


@dataclass(frozen=True, slots=True)
class FakeCredentials:
    """Deterministic rotating fake credentials.

    Epoch ``k`` starts at ``origin + k * rotate_every`` and its set expires ``lifetime``
    seconds after that. ``generation`` counts forced rotations, so a set issued after one
    differs from every earlier one.
    """

    config: CredentialsConfig
    origin: float
    seed: bytes = field(repr=False)
    generation: int = 0
    expired: bool = False

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
        label = f"{role}/{epoch}" if not self.generation else f"{role}/{self.generation}/{epoch}"
        stream = _stream(self.seed, label.encode(), 900)
        key_id = "ASIA" + "".join(_B32[b % 32] for b in stream[:16])
        secret = base64.b64encode(stream[16:46]).decode()[:40]
        # Session tokens are long base64 blobs; EC2's start with "IQoJb3JpZ2luX2Vj".
        token = "IQoJb3JpZ2luX2Vj" + base64.b64encode(stream[46:880]).decode()
        last, expiration = start, start + self.config.lifetime
        if self.expired:
            # A set that expired a minute before this epoch began: stale for all of it.
            expiration = start - 60
            last = expiration - self.config.lifetime
        return CredentialSet(
            access_key_id=key_id,
            secret_access_key=secret,
            token=token,
            last_updated=last,
            expiration=expiration,
        )

    def describe(self) -> dict[str, object]:
        """Source, forced rotations and the expired switch (no keys)."""
        return {"source": "fake", "generation": self.generation, "expired": self.expired}

    def with_config(self, config: CredentialsConfig) -> FakeCredentials:
        """The same keys under a new lifetime / rotation period."""
        return dataclasses.replace(self, config=config)


@dataclass(frozen=True, slots=True)
class FixedCredentials:
    """One set fetched from a real source, served until it expires (then unavailable).

    ``current`` is ``None`` before the first successful fetch; until then the failure
    document's ``LastUpdated`` is ``since``, the start. ``generation`` counts rotations
    asked for: the refresher fetches a new set as soon as it differs from the generation
    of its last fetch.
    """

    config: CredentialsConfig
    current: CredentialSet | None
    seed: bytes = field(repr=False)
    since: float
    expired: bool = False
    generation: int = 0

    def epoch(self, now: float) -> int:
        """0 while the set is valid, 1 after it expired (or before there is one)."""
        if self.current is None or now >= self.current.expiration:
            return 1
        return 0

    def window(self, epoch: int) -> tuple[float, float]:
        """Epoch 0 ends when the set expires; epoch 1 lasts until the next swap."""
        if self.current is None:
            return -_INF, _INF
        if epoch == 0:
            return -_INF, self.current.expiration
        return self.current.expiration, _INF

    def issue(self, epoch: int, role: str) -> CredentialSet:
        """The fetched set (epoch 0), or EC2's failure document (epoch 1)."""
        cur = self.current
        if role == INSTANCE_ROLE:
            # The instance-identity credentials stay fake, with the real set's timestamps.
            origin = cur.last_updated if cur is not None else self.since
            fake = FakeCredentials(self.config, origin, self.seed).issue(0, role)
            if cur is None:
                return fake
            return dataclasses.replace(fake, expiration=cur.expiration)
        if cur is None or epoch != 0:
            return unavailable(role, cur.expiration if cur is not None else self.since)
        if self.expired:
            return dataclasses.replace(
                cur, expiration=cur.last_updated - 60, last_updated=cur.last_updated - 3660
            )
        return cur

    def describe(self) -> dict[str, object]:
        """Source, whether a set is held and until when, the expired switch (no keys)."""
        cur = self.current
        return {
            "source": self.config.source,
            "available": cur is not None,
            "expiration": imds_time(cur.expiration) if cur is not None else None,
            "expired": self.expired,
        }

    def with_config(self, config: CredentialsConfig) -> FixedCredentials:
        """The same set under a new configuration."""
        return dataclasses.replace(self, config=config)


def initial_source(config: CredentialsConfig, started: float, seed: bytes) -> CredentialSource:
    """The source a new instance starts with: fake keys, or nothing yet from a profile."""
    if config.source == "profile":
        return FixedCredentials(config, None, seed, started)
    return FakeCredentials(config, started, seed)


def role_arn(account_id: str, role: str, partition: str = "aws") -> str:
    """The ARN of the instance profile's role."""
    return f"arn:{partition}:iam::{account_id}:role/{role}"


def _stream(seed: bytes, label: bytes, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hmac.new(seed, label + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        counter += 1
    return bytes(out[:size])
