"""The fleet: several instances in one mock, each served to the clients it recognises.

A :class:`Fleet` holds one :class:`~imdsmock.core.state.State` per member of
``instances`` beside the default (top-level) instance's: its own compiled snapshot, its own
token issuer (a token one instance issued is refused by every other), its own credential
source and rotation, forced failures, options and scenarios. Which instance a connection
is for is the :class:`~imdsmock.core.recognize.Recognizer`'s answer.

The members, their configurations and the recogniser form one immutable
:class:`Roster`, replaced whole when a member is added, changed or removed; a connection
takes the roster in force when it is made. A mock without members has no fleet at all, so
a single instance pays nothing for it.

The instances share what they answer alike: their trees' leaves and their tables' rendered
answers come from one :class:`~imdsmock.core.table.Pool`, so each member costs only what
differs from the others (about 33 KB each; see docs/performance.md).

The fleet also remembers which clients each instance served and why (the control API's
``/v1/instances/{name}/clients``), a bounded table updated once per connection.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

from imdsmock.config.fleet import DEFAULT_NAME
from imdsmock.config.schema import Config, MemberConfig
from imdsmock.core.gate import client_key
from imdsmock.core.recognize import Pending, Recognized, Recognizer, Resolver, Workload
from imdsmock.core.snapshot import Snapshot, build_snapshot
from imdsmock.core.state import State
from imdsmock.core.table import Pool
from imdsmock.core.templated import NONE, Made, make, remake
from imdsmock.errors import ImdsMockError, quote
from imdsmock.signing.signer import Signer

__all__ = ["CLIENTS_MAX", "OPENSSL_FROM", "Client", "Fleet", "Roster", "UnknownInstanceError"]

CLIENTS_MAX = 10_000
"""Client records kept (the oldest are dropped first)."""

OPENSSL_FROM = 8
"""Members from which the fleet signs their identity documents through OpenSSL: ~0.25 ms
a signature rather than ~6 ms in pure Python, for ~9 MB of ``cryptography`` imported
(see :mod:`imdsmock.signing.openssl`)."""

UNMATCHED = "no rule matched"
"""Why a client is the default instance's (or refused, with ``fleet.unknown: reject``)."""


class UnknownInstanceError(ImdsMockError):
    """An instance name the fleet does not have (the control API answers 404)."""

    def __init__(self, name: str, names: list[str]) -> None:
        self.name = name
        self.names = names
        super().__init__(f"no instance named {quote(name)}; instances: {', '.join(names)}")


class Roster(NamedTuple):
    """The members in force: their states and configurations, and the recogniser."""

    states: Mapping[str, State]
    members: Mapping[str, MemberConfig]
    recognizer: Recognizer


class Client(NamedTuple):
    """One client as an instance saw it: its address, why it was recognised, when first
    and last, and how many connections it made."""

    client: str
    why: str
    first: float
    last: float
    connections: int


class Fleet:
    """The default instance's state and one state per member, with the recogniser.

    ``top`` is the configuration the members are derived from (their unset keys are its);
    ``signer`` and ``started`` are the mock's; ``gated`` the paths behind the client gate.
    """

    def __init__(
        self,
        default: State,
        top: Config,
        *,
        signer: Signer,
        started: float,
        gated: frozenset[str] = frozenset(),
        resolvers: Mapping[str, Resolver] | None = None,
    ) -> None:
        self.default = default
        self.top = top
        self._signer = signer
        self._started = started
        self._gated = gated
        self._resolvers = dict(resolvers or {})
        self._lock = threading.Lock()
        # The leaves and answers the members have alike, stored once.
        self._pool = Pool()
        # Given to each member's credential documents once serving starts (see State).
        self.defer: Callable[[Callable[[], object]], object] | None = None
        self._seen: dict[tuple[str, str], Client] = {}
        # The instances the template made, and for which client key each.
        self._made: Made = NONE
        # Each member's snapshot as it was made (what reset_member goes back to).
        self._origin: dict[str, Snapshot] = {}
        self.roster = self._roster({m.name: m for m in top.instances}, {})

    # -- reading ------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether clients must be told apart: members exist, unknown ones are refused, or
        a resolver may recognise them."""
        return (
            bool(self.roster.states) or self.top.fleet.unknown == "reject" or bool(self._resolvers)
        )

    @property
    def resolving(self) -> bool:
        """Whether resolvers recognise clients (a first connection may wait for one)."""
        return bool(self._resolvers)

    @property
    def reject(self) -> bool:
        """Whether a client no member matches is refused (404) rather than served the
        default instance."""
        return self.top.fleet.unknown == "reject"

    def names(self) -> list[str]:
        """The default instance's name, then every member's, in configuration order."""
        return [DEFAULT_NAME, *self.roster.states]

    def state(self, name: str) -> State:
        """The state of the instance called ``name`` (``default``: the top-level one)."""
        if name == DEFAULT_NAME:
            return self.default
        found = self.roster.states.get(name)
        if found is None:
            raise UnknownInstanceError(name, self.names())
        return found

    def member(self, name: str) -> MemberConfig:
        """The configuration entry of the member called ``name``."""
        found = self.roster.members.get(name)
        if found is None:
            raise UnknownInstanceError(name, self.names())
        return found

    def states(self) -> Iterator[State]:
        """Every instance's state, the default one first."""
        yield self.default
        yield from self.roster.states.values()

    # -- recognising --------------------------------------------------------------------

    def seen(self, client: str, found: Recognized | None, now: float) -> str:
        """Remember that ``client`` connected and was recognised so (None: no rule);
        why, as the clients table and the request log say it."""
        name, why = (DEFAULT_NAME, UNMATCHED) if found is None else found
        key = (name, client_key(client))
        seen = self._seen
        known = seen.get(key)
        if known is None:
            if len(seen) >= CLIENTS_MAX:
                seen.pop(next(iter(seen)), None)
            seen[key] = Client(key[1], why, now, now, 1)
        else:
            seen[key] = Client(key[1], why, known.first, now, known.connections + 1)
        return why

    def clients(self, name: str) -> list[Client]:
        """The clients recognised as ``name`` (the default instance: those no rule
        matched), most recent first."""
        self.state(name)  # an unknown name is an error, not an empty list
        found = [c for (owner, _), c in list(self._seen.items()) if owner == name]
        return sorted(found, key=lambda c: -c.last)

    def pending(self, client: str) -> Pending | None:
        """A resolver's lookup of ``client`` under way (its first connection may wait for
        it), or None."""
        key = client_key(client)
        for resolver in self._resolvers.values():
            waiting = resolver.pending(key)
            if waiting is not None:
                return waiting
        return None

    def found(self, workload: Workload) -> str | None:
        """A resolver found ``workload`` (called in a worker thread, off the loop): when no
        instance is it and the template covers its way, make one from the template.

        Returns why none could be made (the template's limit reached, no address left), for
        the resolver to log once per client; None otherwise.
        """
        if workload.way not in self.top.template.ways or self.roster.recognizer.match(workload):
            return None
        with self._lock:
            roster = self.roster
            if roster.recognizer.match(workload) is not None:
                return None  # made meanwhile
            made = make(self.top, roster.members, self._made, workload)
            if isinstance(made, str):
                return made
            member, self._made = made
            members = {**roster.members, member.name: member}
            self.roster = self._roster(members, roster.states)
        return None

    def spawned(self) -> dict[str, str]:
        """The instances the template made: name -> the client key it was made for."""
        return dict(self._made.by_name)

    def template_key(self, name: str) -> str | None:
        """The client key the template made instance ``name`` for (None: not made so)."""
        return self._made.by_name.get(name)

    def client_counts(self) -> dict[str, int]:
        """How many clients each instance was recognised for (names without clients are
        left out), in one pass over the client records."""
        counts: dict[str, int] = {}
        for owner, _ in list(self._seen):
            counts[owner] = counts.get(owner, 0) + 1
        return counts

    # -- changing -----------------------------------------------------------------------

    def add(self, member: MemberConfig) -> State:
        """Serve a new member (validated by the caller against :attr:`top`)."""
        with self._lock:
            members = dict(self.roster.members)
            if member.name in members or member.name == DEFAULT_NAME:
                raise ImdsMockError(f"an instance named {quote(member.name)} exists already")
            members[member.name] = member
            self.roster = self._roster(members, self.roster.states)
            return self.roster.states[member.name]

    def change(self, member: MemberConfig) -> State:
        """Serve a member under a new configuration: its tokens, run-time scenarios and
        metadata edits are kept (as a config reload keeps them)."""
        with self._lock:
            members = dict(self.roster.members)
            if member.name not in members:
                raise UnknownInstanceError(member.name, self.names())
            members[member.name] = member
            self.roster = self._roster(members, self.roster.states, (member.name,))
            return self.roster.states[member.name]

    def remove(self, name: str) -> None:
        """Stop serving a member: its clients are unknown from their next connection."""
        with self._lock:
            members = dict(self.roster.members)
            if members.pop(name, None) is None:
                raise UnknownInstanceError(name, self.names())
            self._made = self._made.without(name)
            self.roster = self._roster(members, self.roster.states)

    def reconfigure(self, top: Config) -> None:
        """Serve ``top``'s members from now on (a config reload): members it keeps are
        reconfigured in place, new ones added, those it drops removed."""
        with self._lock:
            self.top = top
            members = {m.name: m for m in top.instances}
            if self._made.by_key:  # the template's, made again under the new one
                self._made = remake(top, members, self._made)
            self.roster = self._roster(members, self.roster.states, tuple(members))

    def origins(self) -> dict[str, Snapshot]:
        """Each member's snapshot as it was made (before run-time changes)."""
        return dict(self._origin)

    def reset_member(self, name: str) -> None:
        """Serve member ``name`` as it was made: run-time edits, option and instance changes,
        scenarios, forced failures and its tokens are forgotten."""
        state = self.state(name)
        origin = self._origin.get(name)
        if origin is None:
            raise UnknownInstanceError(name, self.names())
        state.swap(lambda _current: origin)
        state.tokens.revoke_all()
        state.failures.clear()

    def restart(self, top: Config, initial: Mapping[str, Snapshot]) -> None:
        """Serve ``top``'s members as new (the Python API's reset): fresh states, without
        tokens, forced failures or run-time changes; a member whose configuration is the
        one it had in ``initial`` starts again from that snapshot (the same keys)."""
        with self._lock:
            self.top = top
            self._seen.clear()
            self._made = NONE
            self._origin = {}
            states: dict[str, State] = {}
            self._sign_for(len(top.instances))
            for member in top.instances:
                config = member.config(top)
                snapshot = initial.get(member.name)
                if snapshot is None or snapshot.config != config:
                    snapshot = self._snapshot(member.name, config)
                self._origin[member.name] = snapshot
                state = states[member.name] = State(snapshot, pool=self._pool)
                state.documents.defer = self.defer
            self.roster = self._roster({m.name: m for m in top.instances}, states)

    def _roster(
        self,
        members: Mapping[str, MemberConfig],
        states: Mapping[str, State],
        rebuild: tuple[str, ...] = (),
    ) -> Roster:
        """A roster of ``members``: the state ``states`` has for a name (under its new
        configuration when named in ``rebuild``), a new state for a new name."""
        fresh: dict[str, State] = {}
        self._sign_for(len(members))
        for name, member in members.items():
            state = states.get(name)
            if state is None:
                snapshot = self._origin[name] = self._snapshot(name, member.config(self.top))
                state = State(snapshot, pool=self._pool)
                if self.defer is not None:
                    state.documents.defer = self.defer
            elif name in rebuild:
                _reconfigure(state, member.config(self.top), self._pool)
                self._origin[name] = state.snapshot
            fresh[name] = state
        for gone in self._origin.keys() - members.keys():
            del self._origin[gone]
        recognizer = Recognizer(
            members.values(), self.top.fleet.recognize, self._resolvers, self._made.by_key
        )
        return Roster(fresh, dict(members), recognizer)

    def _sign_for(self, members: int) -> None:
        """Sign through OpenSSL from now on once there are :data:`OPENSSL_FROM` members
        (the snapshots made before keep their signer: the same key and certificate)."""
        if members >= OPENSSL_FROM and self._signer.backend is None:
            from imdsmock.signing.openssl import accelerated

            self._signer = accelerated(self._signer)

    def _snapshot(self, name: str, config: Config) -> Snapshot:
        seed = config.credentials.seed
        # Each member has keys of its own, reproducible from the configured seed.
        derived = (
            hashlib.sha256(seed.encode() + b"\0" + name.encode()).digest()
            if seed
            else os.urandom(32)
        )
        snapshot = build_snapshot(
            config, signer=self._signer, started=self._started, gated=self._gated, seed=derived
        )
        snapshot = snapshot.evolve(base=self._pool.tree(snapshot.base))
        if config.scenarios:
            from imdsmock.core.scenarios import configured

            snapshot = configured(snapshot)
        return snapshot


def _reconfigure(state: State, config: Config, pool: Pool) -> None:
    """Serve ``state``'s instance under ``config``, keeping what a reload keeps."""
    from imdsmock.core.scenarios import reconfigured  # the scenario machinery, on first use

    def change(snapshot: Snapshot) -> Snapshot:
        new = reconfigured(snapshot, config)
        return new.evolve(base=pool.tree(new.base))

    state.swap(change)
