"""Role credentials that look and rotate like EC2's, and the control operations on them.

Two credential sources sit behind one small interface (:class:`CredentialSource`), which
:class:`~imdsmock.state.Snapshot` reads once per time segment:

* :class:`FakeCredentials` (the default): a set is a pure function of a secret seed and
  the rotation epoch, so every worker process and every restart with the same seed serves
  the same keys, and nothing is stored. EC2 issues credentials that live about six hours
  and hands out a new set well before the old one expires (at least five minutes;
  real-imds.md §A7), so SDKs refresh normally instead of falling into their "extend
  expired credentials" paths (§A11).
* :class:`FixedCredentials`: one set fetched from somewhere real (a profile, an assumed
  role) by a background refresher (:mod:`imdsmock.serve.awscreds`), which swaps in a new
  snapshot holding the next set. Past its expiry, or before the first fetch, the role
  path answers EC2's "cannot get credentials" document.

The control operations (:func:`rotate_now`, :func:`serve_expired`, :func:`fail_refreshes`)
are pure snapshot -> snapshot functions, so the control API only wires routes to them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from imdsmock.config.schema import CredentialsConfig
from imdsmock.core.wire import Response, render
from imdsmock.errors import ConfigError
from imdsmock.instance.imdsjson import dumps, imds_time

if TYPE_CHECKING:
    from imdsmock.core.state import Snapshot

__all__ = [
    "UNAVAILABLE_CODE",
    "CredentialSet",
    "CredentialSource",
    "FakeCredentials",
    "FixedCredentials",
    "RefreshFaults",
    "current_set",
    "fail_refreshes",
    "initial_source",
    "role_arn",
    "rotate_now",
    "serve_expired",
]

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_INF = math.inf
# What EC2 answers (HTTP 200, Code != Success) when it cannot get the role's credentials,
# e.g. a role whose trust policy does not allow EC2 (real-imds.md §A7).
UNAVAILABLE_CODE = "AssumeRoleUnauthorizedAccess"
_UNAVAILABLE_MESSAGE = (
    "EC2 cannot assume the role {role}.  Please see documentation at "
    "http://docs.amazonwebservices.com/IAM/latest/UserGuide/RolesTroubleshooting.html."
)
_INSTANCE_ROLE = "\0ec2-instance"


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


class RefreshFaults:
    """A thread-safe count of credential fetches that must fail (``fail_refreshes``).

    The IMDS handler asks :meth:`answer` only while ``remaining`` is non-zero, so an unarmed
    counter costs one attribute read per request.
    """

    __slots__ = ("_get", "_head", "_lock", "_suffixes", "remaining")

    def __init__(self, count: int = 0, *, role: str = "", when: float = 0.0) -> None:
        self.remaining = count
        self._lock = threading.Lock()
        self._suffixes = (
            f"/meta-data/iam/security-credentials/{role}",
            f"/meta-data/iam/security-credentials-extended/{role}",
        )
        body = dumps(failure_document(unavailable(role, when))).encode()
        self._get = render(200, body)
        self._head = render(200, body, head_only=True)

    def take(self) -> bool:
        """Consume one failure; ``False`` when none is left."""
        with self._lock:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            return True

    def answer(self, path: str, response: Response, head: bool) -> Response:
        """The failure document instead of ``response`` if ``path`` is a role document."""
        if response.status != 200 or not path.rstrip("/").endswith(self._suffixes):
            return response
        if not self.take():
            return response
        return self._head if head else self._get


_NO_FAULTS = RefreshFaults()


class CredentialSource(Protocol):
    """What a snapshot needs from a credential source: sets per epoch, and its faults."""

    @property
    def config(self) -> CredentialsConfig:
        """The credential settings in force."""
        ...

    @property
    def faults(self) -> RefreshFaults:
        """The pending fetch failures."""
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
        """The same source under a new configuration (keys and faults kept)."""
        ...


@dataclass(frozen=True, slots=True)
class FakeCredentials:
    """Deterministic rotating fake credentials.

    Epoch ``k`` starts at ``origin + k * rotate_every`` and its set expires ``lifetime``
    seconds after that. ``generation`` counts forced rotations, so a set issued by
    :func:`rotate_now` differs from every earlier one.
    """

    config: CredentialsConfig
    origin: float
    seed: bytes = field(repr=False)
    generation: int = 0
    expired: bool = False
    faults: RefreshFaults = field(default=_NO_FAULTS, compare=False)

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
        """Source, forced rotations, the expired switch and pending failures (no keys)."""
        return {
            "source": "fake",
            "generation": self.generation,
            "expired": self.expired,
            "failing": self.faults.remaining,
        }

    def with_config(self, config: CredentialsConfig) -> FakeCredentials:
        """The same keys under a new lifetime / rotation period."""
        return dataclasses.replace(self, config=config)


@dataclass(frozen=True, slots=True)
class FixedCredentials:
    """One set fetched from a real source, served until it expires (then unavailable).

    ``current`` is ``None`` before the first successful fetch. ``wake`` is the refresher's
    event: setting it asks for a fetch now (see :func:`rotate_now`).
    """

    config: CredentialsConfig
    current: CredentialSet | None
    seed: bytes = field(repr=False)
    expired: bool = False
    faults: RefreshFaults = field(default=_NO_FAULTS, compare=False)
    wake: threading.Event | None = field(default=None, compare=False)

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
        if role == _INSTANCE_ROLE:
            # The instance-identity credentials stay fake, with the real set's timestamps.
            origin = cur.last_updated if cur is not None else 0.0
            fake = FakeCredentials(self.config, origin, self.seed).issue(0, role)
            if cur is None:
                return fake
            return dataclasses.replace(fake, expiration=cur.expiration)
        if cur is None or epoch != 0:
            return unavailable(role, cur.expiration if cur is not None else 0.0)
        if self.expired:
            return dataclasses.replace(
                cur, expiration=cur.last_updated - 60, last_updated=cur.last_updated - 3660
            )
        return cur

    def describe(self) -> dict[str, object]:
        """Source, whether a set is held and until when, switches (no keys)."""
        cur = self.current
        return {
            "source": self.config.source,
            "available": cur is not None,
            "expiration": imds_time(cur.expiration) if cur is not None else None,
            "expired": self.expired,
            "failing": self.faults.remaining,
        }

    def with_config(self, config: CredentialsConfig) -> FixedCredentials:
        """The same set under a new configuration."""
        return dataclasses.replace(self, config=config)


def initial_source(config: CredentialsConfig, started: float, seed: bytes) -> CredentialSource:
    """The source a new instance starts with: fake keys, or nothing yet from a profile."""
    if config.source == "profile":
        return FixedCredentials(config, None, seed)
    return FakeCredentials(config, started, seed)


def role_arn(account_id: str, role: str, partition: str = "aws") -> str:
    """The ARN of the instance profile's role."""
    return f"arn:{partition}:iam::{account_id}:role/{role}"


def current_set(snapshot: Snapshot, now: float) -> CredentialSet | None:
    """The role's set in force at ``now`` (``None`` when the instance has no role)."""
    source = snapshot.credentials
    role = snapshot.config.instance.iam_role
    if source is None or role is None:
        return None
    return source.issue(source.epoch(now), role)


# ---------------------------------------------------------------------------------------
# Control operations: snapshot -> snapshot, no I/O (the control API wires routes to them).


def rotate_now(snapshot: Snapshot, now: float) -> Snapshot:
    """Issue a new set at ``now`` (``LastUpdated`` = now), as EC2's early rotation does.

    For a real source this asks the refresher for a fetch now and changes nothing else.
    """
    source = snapshot.credentials
    if isinstance(source, FakeCredentials):
        rotated = dataclasses.replace(source, origin=now, generation=source.generation + 1)
        return snapshot.evolve(credentials=rotated)
    if isinstance(source, FixedCredentials) and source.wake is not None:
        source.wake.set()
    return snapshot


def serve_expired(snapshot: Snapshot, on: bool) -> Snapshot:
    """Serve documents whose ``Expiration`` is already past (``on``), or normal ones again."""
    source = snapshot.credentials
    if not isinstance(source, FakeCredentials | FixedCredentials) or source.expired == on:
        return snapshot
    return snapshot.evolve(credentials=dataclasses.replace(source, expired=on))


def fail_refreshes(snapshot: Snapshot, n: int, now: float | None = None) -> Snapshot:
    """Make the next ``n`` fetches of the role document fail as EC2 does (0 disarms).

    A failing fetch answers HTTP 200 with ``Code`` ``AssumeRoleUnauthorizedAccess`` and a
    ``Message`` (real-imds.md §A7); SDKs treat it as "no credentials from IMDS".
    """
    if n < 0:
        raise ConfigError("count", n, "an integer >= 0")
    source = snapshot.credentials
    if not isinstance(source, FakeCredentials | FixedCredentials):
        return snapshot
    role = snapshot.config.instance.iam_role or ""
    when = snapshot.started if now is None else now
    faults = RefreshFaults(n, role=role, when=when) if n else _NO_FAULTS
    return snapshot.evolve(credentials=dataclasses.replace(source, faults=faults))


def _stream(seed: bytes, label: bytes, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hmac.new(seed, label + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        counter += 1
    return bytes(out[:size])
