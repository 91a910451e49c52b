"""The control operations on a running mock, as Python methods.

One implementation, three skins: the HTTP control API (:mod:`imdsmock.control.routes`), the
``imdsmock ctl`` command (through that API) and the in-process Python API all call a
:class:`Controller`. It is built from the running parts of a mock (its state, clock, request
log, fault book and signer), not from the app that holds them. Every change builds a new
immutable snapshot and swaps it in with :meth:`imdsmock.core.state.State.swap`; a rejected
change raises an :class:`~imdsmock.errors.ImdsMockError` (usually a ``ConfigError`` naming
the field, the value and what is allowed) before anything is swapped, so it changes nothing.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from imdsmock.config.build import from_mapping
from imdsmock.config.dump import to_mapping
from imdsmock.config.fleet import DEFAULT_NAME
from imdsmock.config.inputs import check_text, imds_path
from imdsmock.config.options import OPTIONS, find
from imdsmock.config.schema import OptionsConfig
from imdsmock.control import instance as instance_ops
from imdsmock.core.clock import LATEST, Clock, ManualClock
from imdsmock.core.credentials import rotate_now, serve_expired
from imdsmock.core.faults import FaultBook
from imdsmock.core.requestlog import RequestLog
from imdsmock.core.snapshot import Snapshot, rebuild
from imdsmock.core.state import State
from imdsmock.errors import ConfigError, ImdsMockError, did_you_mean, quote
from imdsmock.signing.signer import Signer

if TYPE_CHECKING:
    from imdsmock.core.fleet import Fleet

__all__ = ["Controller", "UnknownIdError"]

MAX_VALUE_BYTES = 64 * 1024
MAX_EDITS = 1000
"""Metadata edits one call may make (send more calls for more): each call's work, on the
control listener and in the snapshot it builds, stays bounded."""
# A manual clock moves at most ten years per call, and never past LATEST (9999).
MAX_ADVANCE = 10 * 366 * 86400.0
MAX_FAIL_COUNT = 1000


class UnknownIdError(ImdsMockError):
    """A scenario or fault id that does not exist (the control API answers 404)."""

    def __init__(self, kind: str, ident: str) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"no {kind} with id {quote(ident)}")


def iso(when: float) -> str:
    """A POSIX time as an RFC 3339 UTC timestamp."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def options_dict(options: OptionsConfig) -> dict[str, Any]:
    """Instance metadata options as the control API spells them."""
    return {option.name: getattr(options, option.field) for option in OPTIONS}


def metadata_path(path: object) -> str:
    """Validate and normalise an IMDS path relative to the version root (the configuration's
    own rule for ``paths``: :func:`imdsmock.config.inputs.imds_path`)."""
    return imds_path(path, "path")


def merge_edits(
    current: Mapping[str, str | None], edits: Mapping[str, str | None]
) -> dict[str, str | None]:
    """``current`` with ``edits`` applied in order: an edit of a path replaces any earlier
    edit of the same path or below it.

    Edits below a path are found by binary search in the sorted paths, and each earlier
    edit is looked at once: the work grows as n log n, not as the product of the sizes.
    """
    merged = dict(current)
    # "/" sorts just before "0": the paths below "a" are those in ["a/", "a0").
    earlier = sorted(merged)
    added: list[str] = []
    for rel, value in edits.items():
        for paths in (earlier, added):
            low = bisect.bisect_left(paths, rel + "/")
            high = bisect.bisect_left(paths, rel + "0", low)
            for below in paths[low:high]:
                merged.pop(below, None)
            del paths[low:high]
        if rel not in merged:
            bisect.insort(added, rel)
        merged[rel] = value
    return merged


class Controller:
    """Operations on one running mock, given its parts; safe to call from any thread.

    ``started`` is the mock's start time (what a manual clock resets to); ``addresses``
    gives the URLs of the IMDS listeners as bound; ``fleet`` the mock's fleet (made on
    first use), ``made`` the fleet if there is one already (None: a single instance). A
    controller of one instance of the fleet (:meth:`for_instance`) names it as
    ``instance``: its request log and IMDSv1 report are that instance's; the clock, the
    fault rules and the log itself are the mock's.
    """

    def __init__(
        self,
        state: State,
        clock: Clock,
        *,
        started: float,
        requests: RequestLog,
        faults: FaultBook,
        signer: Signer,
        addresses: Callable[[], list[str]] = list,
        fleet: Callable[[], Fleet] | None = None,
        made: Callable[[], Fleet | None] = lambda: None,
        instance: str | None = None,
    ) -> None:
        self._addresses = addresses
        self._fleet = fleet
        self._made = made
        self._instance = instance
        self._state = state
        self._clock = clock
        self._started = started
        self._requests = requests
        self._faults = faults
        self._signer = signer

    # -- reading ------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot in force now."""
        return self._state.snapshot

    def now(self) -> float:
        """The mock's current time."""
        return self._clock.now()

    def state(self) -> dict[str, Any]:
        """The effective configuration, options, edits, scenarios, faults and clock; from a
        mock serving a fleet, ``instances`` names its instances (the default first)."""
        snap = self.snapshot
        out = {
            "config": to_mapping(snap.config),
            "options": options_dict(snap.config.options),
            "metadata": dict(snap.edits),
            "scenarios": self.scenarios(),
            "faults": self.faults(),
            "credentials": self._credentials_state(snap),
            "clock": self.clock(),
            "requests": len(self._requests),
            "imds-urls": self._addresses(),
        }
        fleet = self._made()
        if fleet is not None and fleet.active:
            out["instances"] = fleet.names()
        return out

    def clock(self) -> dict[str, Any]:
        """The clock: its kind, the current and start times."""
        now = self.now()
        clock = self._clock
        return {
            "kind": "manual" if isinstance(clock, ManualClock) else "system",
            "now": now,
            "now-iso": iso(now),
            "started": self._started,
            "elapsed": now - self._started,
        }

    # -- metadata -----------------------------------------------------------------------

    def get_metadata(self, path: str) -> str | None:
        """The value (or listing) served at ``path`` now; ``None`` when it would be 404."""
        rel = metadata_path(path)
        entry = self._state.compiled.lookup(rel, self.now())
        return None if entry is None else entry.get.body.decode("utf-8", "replace")

    def set_metadata(self, path: str, value: str) -> None:
        """Add or replace the value served at ``path`` (tags, user data, any leaf)."""
        self.edit_metadata({path: value})

    def delete_metadata(self, path: str) -> None:
        """Remove ``path`` (and anything under it) from what is served."""
        self.edit_metadata({path: None})

    def edit_metadata(self, edits: Mapping[str, str | None]) -> dict[str, str | None]:
        """Apply several path edits at once (``None`` deletes); all or nothing."""
        if not isinstance(edits, Mapping):
            raise ConfigError("metadata", edits, "an object of path -> value (or null)")
        if len(edits) > MAX_EDITS:
            raise ConfigError(
                "metadata",
                f"{len(edits)} edits",
                f"at most {MAX_EDITS} edits per request (send the rest in more requests)",
            )
        clean: dict[str, str | None] = {}
        facts: dict[str, Any] = {}
        for path, value in edits.items():
            rel = metadata_path(path)
            if value is not None:
                if not isinstance(value, str):
                    raise ConfigError(f"metadata.{rel}", value, "a string (or null to delete)")
                check_text(f"metadata.{rel}", value)
                if len(value.encode()) > MAX_VALUE_BYTES:
                    raise ConfigError(
                        f"metadata.{rel}", f"{len(value)} characters", "at most 65536 bytes"
                    )
            fact = instance_ops.fact_change(rel, value)
            if fact is None:
                clean[rel] = value
            else:
                facts[fact[0]] = fact[1]

        def change(snap: Snapshot) -> Snapshot:
            if facts:  # a fact of the instance: every place that shows it follows
                snap = instance_ops.changed(snap, facts)
            return snap.evolve(edits=merge_edits(snap.edits, clean))

        return dict(self._state.swap(change).edits)

    def reset_metadata(self) -> None:
        """Drop every run-time metadata edit and instance change (back to the configured
        instance)."""
        self._state.swap(lambda s: instance_ops.reset(s).evolve(edits={}))

    # -- instance -----------------------------------------------------------------------

    def instance(self) -> dict[str, Any]:
        """The instance's keys as served (derived values in place of nulls), which are
        derived and which were changed at run time."""
        return instance_ops.view(self.snapshot)

    def set_instance(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change instance keys (``{"region": "eu-west-1"}``) as the configuration would
        set them; every path and document that shows them follows. All or nothing."""
        swapped = self._state.swap(lambda s: instance_ops.changed(s, changes))
        return instance_ops.view(swapped)

    def reset_instance(self) -> dict[str, Any]:
        """Undo every run-time instance change (metadata edits stay)."""
        return instance_ops.view(self._state.swap(instance_ops.reset))

    # -- options ------------------------------------------------------------------------

    def options(self) -> dict[str, Any]:
        """The instance metadata options in force."""
        return options_dict(self.snapshot.config.options)

    def set_options(self, **opts: Any) -> dict[str, Any]:
        """Change instance metadata options as ``ModifyInstanceMetadataOptions`` does.

        Names and values are those of :data:`imdsmock.config.options.OPTIONS`
        (``http_tokens``: optional|required, ``hop_limit``: 1..64, ...); dashed and EC2 API
        spellings are accepted too.
        """
        changes: dict[str, Any] = {}
        for name, value in opts.items():
            option = find(name)
            if option is None:
                names = sorted(o.name for o in OPTIONS)
                hint = did_you_mean(name.replace("_", "-"), names)
                raise ConfigError(
                    f"options.{name}", value, "one of: " + ", ".join(names), hint=hint
                )
            if value is None or isinstance(value, Mapping | list):
                raise ConfigError(option.key, value, "a single value")
            changes[option.name] = value

        def change(snap: Snapshot) -> Snapshot:
            merged = {**options_dict(snap.config.options), **changes}
            options = from_mapping({"options": merged}).options  # validates, names the key
            return rebuild(snap, snap.config.replace(options=options))

        return options_dict(self._state.swap(change).config.options)

    # -- scenarios ----------------------------------------------------------------------

    def scenarios(self) -> list[dict[str, Any]]:
        """The scenarios started (at run time or by configuration)."""
        return [dict(s.describe()) for s in self.snapshot.scenarios]

    def start_scenario(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Start a scenario now or at a time (spot, rebalance, maintenance, Auto Scaling)."""
        # The scenario machinery is imported when the first scenario starts, not at
        # start-up (start-up time counts); a mock configured with scenarios has it already.
        from imdsmock.core.scenarios import started, with_scenarios

        if not isinstance(data, Mapping):
            raise ConfigError("scenario", data, "a JSON object with a type")
        scenario = started(data, self.now())

        def change(snap: Snapshot) -> Snapshot:
            return with_scenarios(snap, (*snap.scenarios, scenario))

        self._state.swap(change)
        return dict(scenario.describe())

    def cancel_scenario(self, scenario_id: str) -> None:
        """Cancel a scenario: what it changed is served as before it started."""
        from imdsmock.core.scenarios import with_scenarios  # on first use, as in start_scenario

        def change(snap: Snapshot) -> Snapshot:
            kept = tuple(s for s in snap.scenarios if s.id != scenario_id)
            if len(kept) == len(snap.scenarios):
                raise UnknownIdError("scenario", scenario_id)
            return with_scenarios(snap, kept)

        self._state.swap(change)

    def scenarios_of(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """The scenarios of each named instance of the fleet, each with its instance."""
        return [
            {"instance": name, **scenario}
            for name in names
            for scenario in self.for_instance(name).scenarios()
        ]

    def start_scenario_on(
        self, names: Sequence[str], data: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Start one scenario, with one id and one time, on each named instance of the
        fleet; a rejected scenario starts nowhere."""
        from imdsmock.core.scenarios import started, with_scenarios  # as in start_scenario

        scenario = started(data, self.now())
        states = [self.fleet().state(name) for name in names]
        for state in states:
            state.swap(lambda snap: with_scenarios(snap, (*snap.scenarios, scenario)))
        return [{"instance": name, **scenario.describe()} for name in names]

    def cancel_scenario_on(self, names: Sequence[str], scenario_id: str) -> list[str]:
        """Cancel a scenario on each named instance that runs it; the names of those."""
        cancelled = []
        for name in names:
            try:
                self.for_instance(name).cancel_scenario(scenario_id)
            except UnknownIdError:
                continue
            cancelled.append(name)
        if not cancelled:
            raise UnknownIdError("scenario", scenario_id)
        return cancelled

    # -- faults -------------------------------------------------------------------------

    def faults(self) -> list[dict[str, Any]]:
        """The fault rules in force (with what is left of their counts)."""
        return self._faults.describe()

    def add_fault(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Add a fault rule (kind status|latency|reset|hang; see :mod:`imdsmock.core.faults`)."""
        fault = self._faults.add(data)
        return fault.describe()

    def remove_fault(self, fault_id: str) -> None:
        """Remove one fault rule."""
        if not self._faults.remove(fault_id):
            raise UnknownIdError("fault", fault_id)

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._faults.clear()

    # -- credentials --------------------------------------------------------------------

    def rotate_credentials(self) -> dict[str, Any]:
        """Issue a new credential set now (LastUpdated = now)."""
        now = self.now()
        snap = self._state.swap(lambda s: rotate_now(s, now))
        return self._credentials_state(snap)

    def expire_credentials(self, on: bool = True) -> dict[str, Any]:
        """Serve credentials whose Expiration is already past (or stop doing so)."""
        if not isinstance(on, bool):
            raise ConfigError("on", on, "true or false")
        snap = self._state.swap(lambda s: serve_expired(s, on))
        return self._credentials_state(snap)

    def fail_credentials(self, count: int = 1) -> dict[str, Any]:
        """Make the next ``count`` fetches of the role credentials fail."""
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or not 0 <= count <= MAX_FAIL_COUNT
        ):
            raise ConfigError("count", count, f"an integer from 0 to {MAX_FAIL_COUNT}")
        snap = self.snapshot
        self._state.failures.arm(count, snap.config.instance.iam_role or "", self.now())
        return self._credentials_state(snap)

    def _credentials_state(self, snap: Snapshot) -> dict[str, Any]:
        creds = snap.credentials
        out: dict[str, Any] = {"role": snap.config.instance.iam_role}
        if creds is not None:
            out["rotate-every"] = creds.config.rotate_every
            out["lifetime"] = creds.config.lifetime
            out.update(creds.describe())
            out["failing"] = self._state.failures.remaining
        return out

    # -- clock --------------------------------------------------------------------------

    def _manual(self, field: str) -> ManualClock:
        clock = self._clock
        if not isinstance(clock, ManualClock):
            raise ConfigError(
                field, "system clock", "a mock started with --clock manual (or a ManualClock)"
            )
        return clock

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move a manual clock forward by ``seconds``."""
        clock = self._manual("clock")
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds <= MAX_ADVANCE  # NaN fails, a huge integer is not converted
        ):
            raise ConfigError("seconds", seconds, f"a number of seconds from 0 to {MAX_ADVANCE:g}")
        try:
            clock.advance(float(seconds))
        except ValueError:  # past LATEST: the clock did not move
            left = max(0.0, LATEST - clock.now())
            raise ConfigError(
                "seconds",
                seconds,
                f"at most {left:.0f} from now (the clock stops at 9999-12-31T23:59:59Z)",
            ) from None
        return self.clock()

    def reset_clock(self) -> dict[str, Any]:
        """Put a manual clock back to its start."""
        self._manual("clock").reset()
        return self.clock()

    # -- request log --------------------------------------------------------------------

    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        """Logged requests, oldest first (filters as :meth:`RequestLog.entries`)."""
        filters.setdefault("instance", self._instance)
        return [e.to_dict() for e in self._requests.entries(**filters)]

    def request_page(self, **filters: Any) -> tuple[list[dict[str, Any]], int | None]:
        """One page of logged requests and the ``before`` of the next (as
        :meth:`RequestLog.page`)."""
        filters.setdefault("instance", self._instance)
        entries, before = self._requests.page(**filters)
        return [e.to_dict() for e in entries], before

    def clear_requests(self) -> None:
        """Forget every logged request."""
        self._requests.clear()

    def imdsv1_report(self) -> list[dict[str, Any]]:
        """Token-less (IMDSv1) data requests grouped by client and user agent."""
        return self._requests.imdsv1_report(self._instance)

    # -- the fleet ----------------------------------------------------------------------

    @property
    def instance_name(self) -> str | None:
        """The fleet instance this controller operates on (None: the default, unnamed)."""
        return self._instance

    def fleet(self) -> Fleet:
        """The mock's fleet (made, without members, on first use)."""
        if self._fleet is None:
            raise ImdsMockError("this controller has no fleet")
        return self._fleet()

    def for_instance(self, name: str) -> Controller:
        """The controller of the fleet instance ``name`` (``default``: the top-level one)."""
        return Controller(
            self.fleet().state(name),
            self._clock,
            started=self._started,
            requests=self._requests,
            faults=self._faults,
            signer=self._signer,
            addresses=self._addresses,
            fleet=self._fleet,
            made=self._made,
            instance=name,
        )

    def select(self, selector: str) -> tuple[str, ...]:
        """The fleet instances a selector names: ``*`` every one (the default instance
        first), or names separated by commas (``web,api``)."""
        from imdsmock.control import fleet as fleet_ops

        return fleet_ops.selected(self.fleet(), selector)

    def instances(self) -> list[dict[str, Any]]:
        """Every instance of the fleet, the default one first: name, instance-id, role,
        match rules, scenarios, how many clients it served and how many requests the log
        holds of it."""
        from imdsmock.control import fleet as fleet_ops

        return fleet_ops.listing(self.fleet(), self._requests.counts())

    def instance_entry(self, name: str) -> dict[str, Any]:
        """One instance of the fleet, with the keys its entry sets."""
        from imdsmock.control import fleet as fleet_ops

        return fleet_ops.describe(self.fleet(), name, full=True)

    def add_instance(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Serve a new instance, given as an entry of the configuration's ``instances``."""
        from imdsmock.control import fleet as fleet_ops

        fleet = self.fleet()
        member = fleet_ops.added(fleet, data, self._bound())
        fleet.add(member)
        return fleet_ops.describe(fleet, member.name, full=True)

    def change_instance(self, name: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Change an instance's entry (``match`` kinds and ``scenarios`` replaced,
        ``instance``, ``options`` and ``paths`` keys merged); its tokens and run-time
        scenarios are kept."""
        from imdsmock.control import fleet as fleet_ops

        fleet = self.fleet()
        member = fleet_ops.changed(fleet, name, data, self._bound())
        fleet.change(member)
        return fleet_ops.describe(fleet, name, full=True)

    def remove_instance(self, name: str) -> None:
        """Stop serving an instance: its clients are the default instance's (or refused)
        from their next connection."""
        if name == DEFAULT_NAME:
            raise ConfigError("name", name, "a member's name (the default instance stays)")
        self.fleet().remove(name)

    def instance_clients(self, name: str) -> list[dict[str, Any]]:
        """The clients recognised as ``name``, most recent first, and why."""
        from imdsmock.control import fleet as fleet_ops

        return fleet_ops.clients(self.fleet(), name)

    def _bound(self) -> list[tuple[str, int]]:
        out = []
        for url in self._addresses():
            parts = urlsplit(url)
            if parts.hostname is not None and parts.port is not None:
                out.append((parts.hostname, parts.port))
        return out

    # -- identity -----------------------------------------------------------------------

    def certificate(self) -> str:
        """The PEM certificate that verifies the identity-document signatures."""
        return self._signer.certificate_pem()
