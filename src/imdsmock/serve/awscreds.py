"""Real credentials from a local AWS profile, optionally through sts:AssumeRole.

Opt-in (``credentials.source: profile``, ``pip install imdsmock[aws]``). A
:class:`CredentialRefresher` runs beside the servers: it fetches a set with boto3 in a
worker thread (never on the request path), swaps in a snapshot holding it
(:class:`~imdsmock.instance.credentials.FixedCredentials`), and fetches the next one
``refresh-ahead`` seconds before it expires. If a fetch fails it logs one line saying
why and keeps the last valid set, retrying every ``RETRY`` seconds; once that set has
expired, or before there is one, the role path answers what EC2 answers when it cannot get
credentials (its ``LastUpdated`` is the start, or when the set expired).

Secrets never reach a log line: only the profile, the role ARN, the key id's last four
characters and times are logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import re
from typing import Any

from imdsmock.config.schema import CredentialsConfig
from imdsmock.core.clock import Clock
from imdsmock.core.state import State
from imdsmock.errors import ImdsMockError, quote
from imdsmock.instance.credentials import CredentialSet, FixedCredentials
from imdsmock.instance.imdsjson import imds_time

__all__ = ["CredentialRefresher", "fetch"]

log = logging.getLogger("imdsmock.credentials")

# Seconds between attempts after a failed fetch, and between clock checks while waiting.
RETRY = 30.0
POLL = 1.0


def fetch(config: CredentialsConfig, now: float) -> CredentialSet:
    """One set from the profile (assuming ``role-arn`` when set); blocking network I/O.

    Raises :class:`~imdsmock.errors.ImdsMockError` with one line saying why it failed.
    """
    try:
        import boto3  # type: ignore[import-untyped]  # no stubs shipped
        import botocore.exceptions  # type: ignore[import-untyped]  # no stubs shipped
    except ImportError:  # pragma: no cover - boto3 is installed with the test extra
        raise ImdsMockError(
            "credentials.source is 'profile' but boto3 is not installed; "
            "install it with: pip install 'imdsmock[aws]'"
        ) from None
    try:
        session = boto3.Session(profile_name=config.profile)
        sts = session.client("sts", region_name=session.region_name or "us-east-1")
        if config.role_arn is not None:
            out = _ask_sts(
                sts,
                "assume_role",
                RoleArn=config.role_arn,
                RoleSessionName=config.role_session_name,
                DurationSeconds=config.duration_seconds,
            )
            return _from_sts(out, now, config.role_arn)
        creds = session.get_credentials()
        if creds is None:
            raise ImdsMockError(f"profile {_name(config)} has no credentials")
        expiry = getattr(creds, "_expiry_time", None)
        frozen = creds.get_frozen_credentials()
        if frozen.token and expiry is not None:
            # Already temporary (SSO, a role profile, credential_process): serve as is.
            return CredentialSet(
                access_key_id=frozen.access_key,
                secret_access_key=frozen.secret_key,
                token=frozen.token,
                last_updated=now,
                expiration=expiry.timestamp(),
            )
        # Long-term keys: IMDS only ever serves temporary ones, so get a session token.
        out = _ask_sts(sts, "get_session_token", DurationSeconds=config.duration_seconds)
        return _from_sts(out, now, None)
    except ImdsMockError:
        raise
    except (_NotSts, botocore.exceptions.BotoCoreError) as exc:
        # BotoCoreError includes what urllib3 raised (botocore wraps it: connection refused,
        # timeouts, a connection closed mid-answer).
        raise ImdsMockError(f"cannot get credentials from profile {_name(config)}: {exc}") from None
    except botocore.exceptions.ClientError as exc:
        err = exc.response.get("Error", {})
        raise ImdsMockError(
            f"cannot get credentials from profile {_name(config)}: "
            f"{err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": ")
        ) from None


class _NotSts(Exception):
    """STS's endpoint answered something that is not an STS answer (one line, no body)."""


_CREDENTIAL_FIELDS = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")


def _ask_sts(sts: Any, operation: str, **params: Any) -> dict[str, Any]:
    """One STS call whose answer holds a complete ``Credentials`` element, or :class:`_NotSts`.

    A proxy, a captive portal or a wrong ``AWS_ENDPOINT_URL_STS`` answers HTML, JSON or
    nothing; botocore then raises ``ResponseParserError`` (not XML), or, for XML of another
    shape, ``KeyError`` (no ``<OperationResult>``) or ``ValueError`` (a bad timestamp), or
    returns no credentials at all. None of these is a ``BotoCoreError``.
    """
    from botocore.parsers import ResponseParserError  # type: ignore[import-untyped]

    endpoint = sts.meta.endpoint_url
    try:
        out: dict[str, Any] = getattr(sts, operation)(**params)
    except ResponseParserError as exc:
        # Its message quotes the whole body, which is not for a log line; keep the reason.
        m = re.search(r"Unable to parse response \((.*?)\), invalid XML", str(exc))
        reason = m.group(1) if m else "unparsable answer"
        raise _NotSts(
            f"STS at {endpoint} answered something that is not STS XML ({reason})"
        ) from None
    except KeyError as exc:
        raise _NotSts(f"STS at {endpoint} answered XML without {exc.args[0]}") from None
    except ValueError as exc:
        first = str(exc).split("\n", 1)[0][:120]
        raise _NotSts(f"STS at {endpoint} answered XML botocore cannot read ({first})") from None
    creds = out.get("Credentials")
    if not (
        isinstance(creds, dict)
        and all(creds.get(field) for field in _CREDENTIAL_FIELDS)
        and isinstance(creds["Expiration"], datetime.datetime)
    ):
        raise _NotSts(f"STS at {endpoint} answered without complete Credentials")
    return out


def _name(config: CredentialsConfig) -> str:
    return quote(config.profile) if config.profile else "(default)"


def _from_sts(out: dict[str, Any], now: float, role_arn: str | None) -> CredentialSet:
    c = out["Credentials"]
    account = None
    if role_arn is not None:
        account = role_arn.split(":")[4]
    return CredentialSet(
        access_key_id=c["AccessKeyId"],
        secret_access_key=c["SecretAccessKey"],
        token=c["SessionToken"],
        last_updated=now,
        expiration=c["Expiration"].timestamp(),
        role_arn=role_arn,
        account_id=account,
    )


class CredentialRefresher:
    """Keeps a real credential set in the state, fetched ahead of expiry."""

    def __init__(self, state: State, clock: Clock, config: CredentialsConfig) -> None:
        self.state = state
        self.clock = clock
        self.config = config
        # The rotation generation of the last fetch: a snapshot whose source counts another
        # (imdsmock.core.credentials.rotate_now) asks for a fetch now.
        self._generation = 0
        self.fetches = 0
        self.last_error: str | None = None
        # botocore's DEBUG records carry STS response bodies (secret keys, tokens): keep
        # them out of our logs even under IMDSMOCK_LOG_LEVEL=DEBUG.
        for name in ("botocore", "boto3", "urllib3"):
            logger = logging.getLogger(name)
            if logger.getEffectiveLevel() < logging.INFO:
                logger.setLevel(logging.INFO)

    def refresh(self) -> CredentialSet:
        """Fetch now and swap in the new set (blocking; raises ImdsMockError on failure)."""
        creds = fetch(self.config, self.clock.now())
        self.fetches += 1

        def put(snapshot: Any) -> Any:
            source = snapshot.credentials
            if not isinstance(source, FixedCredentials):
                return snapshot
            return snapshot.evolve(credentials=dataclasses.replace(source, current=creds))

        self.state.swap(put)
        log.info(
            "credentials: new set from profile %s%s (key ...%s), expires %s",
            _name(self.config),
            f" as {self.config.role_arn}" if self.config.role_arn else "",
            creds.access_key_id[-4:],
            imds_time(creds.expiration),
        )
        return creds

    def _due(self) -> float:
        """When the next fetch is due (clock time)."""
        source = self.state.snapshot.credentials
        current = source.current if isinstance(source, FixedCredentials) else None
        if current is None:
            return -1.0
        return current.expiration - self.config.refresh_ahead

    def _asked(self) -> int:
        """The rotation generation the snapshot asks for."""
        source = self.state.snapshot.credentials
        return source.generation if isinstance(source, FixedCredentials) else 0

    def _meanwhile(self) -> str:
        """What the role path serves until a fetch succeeds, in words for the log."""
        source = self.state.snapshot.credentials
        current = source.current if isinstance(source, FixedCredentials) else None
        if current is not None and self.clock.now() < current.expiration:
            return f"serving the last valid set until it expires at {imds_time(current.expiration)}"
        return (
            f"the role answers EC2's failure document until a fetch succeeds (retry in {RETRY:g} s)"
        )

    async def run(self) -> None:
        """Fetch, then wait until due (or asked to rotate), forever; failures retry every
        RETRY s."""
        retry_at = -1.0
        while True:
            now = self.clock.now()
            asked = self._asked()
            if asked != self._generation or (now >= self._due() and now >= retry_at):
                self._generation = asked
                try:
                    await asyncio.to_thread(self.refresh)
                    self.last_error = None
                    retry_at = -1.0
                except ImdsMockError as exc:
                    self.last_error = str(exc)
                    log.warning("%s; %s", exc, self._meanwhile())
                    retry_at = self.clock.now() + RETRY
            await asyncio.sleep(POLL)
