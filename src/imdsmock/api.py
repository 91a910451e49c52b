"""The Python API: an EC2 instance metadata service inside a test, in one line.

:class:`MockIMDS` runs the real server (the same :class:`~imdsmock.app.App` the CLI runs)
on a free port of 127.0.0.1 in a background thread::

    with MockIMDS(http_tokens="required", tags={"Team": "data"}) as imds:
        with imds.patched_environ():
            boto3.Session().client("sts")          # credentials and region from the mock
        imds.spot_interruption(action="terminate")
        imds.clock.advance(120)                    # no sleeping: time is a parameter
        imds.assert_no_imdsv1()

The control operations are methods that call the one
:class:`~imdsmock.control.operations.Controller` the control API and ``imdsmock ctl`` also
use; nothing is implemented twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from imdsmock.app import App, serve_in_thread
from imdsmock.config.dump import to_mapping
from imdsmock.config.fleet import DEFAULT_NAME, Port, listener
from imdsmock.config.fleet import source as source_network
from imdsmock.config.load import load
from imdsmock.config.schema import (
    SHORT_NAMES,
    Config,
    CredentialsConfig,
    InstanceConfig,
    OptionsConfig,
    ServerConfig,
)
from imdsmock.core.clock import Clock, ManualClock, SystemClock
from imdsmock.core.gate import client_key
from imdsmock.core.snapshot import Snapshot, rebuild
from imdsmock.errors import ConfigError, ImdsMockError, did_you_mean
from imdsmock.instance.model import facts
from imdsmock.sdkenv import patched, sdk_environ
from imdsmock.serve.listen import member_bindings, url

if TYPE_CHECKING:
    from imdsmock.control.operations import Controller
    from imdsmock.serve.client import Answer, Session

__all__ = ["InstanceControls", "MockIMDS", "MockInstance"]

ConfigSource = Config | Mapping[str, Any] | str | os.PathLike[str] | None

# An in-process mock listens where nothing else does: loopback, ports chosen by the kernel.
_LISTEN = {"server.host": "127.0.0.1", "server.port": 0, "server.control-port": 0}
_SECTIONS = {_f.name for _f in dataclasses.fields(Config)}
_FIELDS = {
    section: {f.name for f in dataclasses.fields(cls)}
    for section, cls in (
        ("instance", InstanceConfig),
        ("options", OptionsConfig),
        ("credentials", CredentialsConfig),
        ("server", ServerConfig),
    )
}


class InstanceControls:
    """The control operations on one instance, for the mock (its default instance) and for
    each instance of its fleet (:meth:`MockIMDS.instance`): the same methods on both.

    Every method calls the one :class:`~imdsmock.control.operations.Controller` the
    control API and ``imdsmock ctl`` also use; nothing is implemented twice. The fault
    rules, the clock and the request log are the mock's, whichever instance is asked.
    """

    @property
    def controller(self) -> Controller:
        """The :class:`~imdsmock.control.operations.Controller` of this instance."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        """Base URL of the IMDS listener this instance is reached at."""
        raise NotImplementedError

    @property
    def source(self) -> str | None:
        """The local address requests are made from by default (None: as the system
        chooses)."""
        return None

    @property
    def config(self) -> Config:
        """This instance's configuration in force."""
        raise NotImplementedError

    # -- the environment SDKs read ----------------------------------------------------

    def environ(self, *, region: bool = True) -> dict[str, str]:
        """Variables that point AWS SDKs at this mock (set them and remove other ``AWS_*``).

        With ``region`` (the default) ``AWS_REGION``/``AWS_DEFAULT_REGION`` carry the
        instance's placement region, because botocore does not read it from IMDS.
        """
        place = facts(self.config.instance, 0.0).region if region else None
        return sdk_environ(self.url, place)

    @contextlib.contextmanager
    def patched_environ(self, *, region: bool = True) -> Iterator[dict[str, str]]:
        """Apply :meth:`environ` to ``os.environ`` (every other ``AWS_*`` removed) until exit.

        SDKs read the environment when a session is created: make ``boto3.Session()``
        inside the block.
        """
        values = self.environ(region=region)
        with patched(values):
            yield values

    # -- requests as a client -----------------------------------------------------------

    def session(self, *, source: str | None = None, token: bool = True) -> Session:
        """A client of this instance's listener from ``source`` (default :attr:`source`),
        keeping one IMDSv2 token (``token=False``: IMDSv1): ``session().get(path)``."""
        from imdsmock.serve.client import Session  # only a test making requests needs it

        return Session(self.url, source or self.source, token=token)

    def get(self, path: str, *, source: str | None = None, token: bool = True) -> Answer:
        """GET ``path`` as a client at ``source`` would: a token first, unless ``token`` is
        false. ``source`` is a local address such as ``127.0.0.2`` (a fleet tells clients
        apart by it); the default is :attr:`source`."""
        return self.session(source=source, token=token).get(path)

    def get_metadata(self, path: str) -> str | None:
        """What ``path`` (e.g. ``meta-data/instance-id``) serves now; ``None`` when 404."""
        return self.controller.get_metadata(path)

    def set_metadata(self, path: str, value: str) -> None:
        """Serve ``value`` at ``path`` (any leaf: ``meta-data/tags/instance/Team``...)."""
        self.controller.set_metadata(path, value)

    def delete_metadata(self, path: str) -> None:
        """Stop serving ``path`` and anything under it (it answers 404)."""
        self.controller.delete_metadata(path)

    def set_tag(self, key: str, value: str) -> None:
        """Add or change an instance tag (served under ``meta-data/tags/instance/``)."""
        self.controller.set_metadata(f"meta-data/tags/instance/{key}", value)

    def delete_tag(self, key: str) -> None:
        """Remove an instance tag."""
        self.controller.delete_metadata(f"meta-data/tags/instance/{key}")

    def set_user_data(self, text: str) -> None:
        """Replace the user data."""
        self.controller.set_metadata("user-data", text)

    def set_options(self, **options: Any) -> dict[str, Any]:
        """Change instance metadata options as ``ModifyInstanceMetadataOptions`` does.

        ``http_tokens`` (optional|required), ``http_endpoint`` (enabled|disabled),
        ``hop_limit``, ``http_protocol_ipv6``, ``instance_metadata_tags``.
        """
        return self.controller.set_options(**options)

    def set_instance(self, **changes: Any) -> dict[str, Any]:
        """Change the instance's facts as the configuration would set them (``region``,
        ``instance_id``, ``account_id``...); every path and document that shows them
        follows (identity document and signatures, host names, ARNs). Undone by
        :meth:`reset`. Returns the instance as served (see ``GET /v1/instance``)."""
        return self.controller.set_instance(changes)

    def require_tokens(self) -> None:
        """Switch to IMDSv2 only (``http-tokens required``): token-less calls get 401."""
        self.controller.set_options(http_tokens="required")

    def start_scenario(self, scenario: Mapping[str, Any] | None = None, **fields: Any) -> str:
        """Start a scenario (a control-API mapping and/or keywords); returns its id.

        ``type`` is ``spot-interruption``, ``rebalance-recommendation``,
        ``maintenance-event`` or ``asg-lifecycle``; ``at`` is ``now`` (the default),
        ``+30s``, an RFC 3339 time or epoch seconds. See docs/scenarios.md.
        """
        described = self.controller.start_scenario({**(scenario or {}), **fields})
        return str(described["id"])

    def spot_interruption(
        self, action: str = "terminate", *, at: Any = "now", **fields: Any
    ) -> str:
        """Give the spot interruption notice at ``at`` (two minutes' warning by default)."""
        return self.start_scenario(type="spot-interruption", action=action, at=at, **fields)

    def rebalance_recommendation(self, *, at: Any = "now", **fields: Any) -> str:
        """Signal an EC2 instance rebalance recommendation at ``at``."""
        return self.start_scenario(type="rebalance-recommendation", at=at, **fields)

    def maintenance_event(
        self, code: str = "system-reboot", *, at: Any = "now", **fields: Any
    ) -> str:
        """Schedule a maintenance event (``events/maintenance/scheduled``) at ``at``."""
        return self.start_scenario(type="maintenance-event", code=code, at=at, **fields)

    def cancel_scenario(self, scenario_id: str) -> None:
        """Cancel a scenario; what it changed is served as before."""
        self.controller.cancel_scenario(scenario_id)

    @property
    def scenarios(self) -> list[dict[str, Any]]:
        """The scenarios started, as the control API describes them."""
        return self.controller.scenarios()

    def add_fault(self, fault: Mapping[str, Any] | None = None, **fields: Any) -> str:
        """Add a fault rule; returns its id.

        ``kind`` is ``status`` (with ``status`` 429, 500 or 503), ``latency`` (with
        ``latency_ms``), ``reset`` or ``hang``; ``path`` a glob, ``client`` an address,
        ``count`` and ``probability`` how often.
        """
        described = self.controller.add_fault({**(fault or {}), **_dashed(fields)})
        return str(described["id"])

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self.controller.clear_faults()

    def rotate_credentials(self) -> dict[str, Any]:
        """Issue a new role credential set now."""
        return self.controller.rotate_credentials()

    def expire_credentials(self, on: bool = True) -> dict[str, Any]:
        """Serve credentials whose ``Expiration`` is already past (``on=False`` undoes it)."""
        return self.controller.expire_credentials(on)

    def fail_credentials(self, count: int = 1) -> dict[str, Any]:
        """Make the next ``count`` credential fetches fail."""
        return self.controller.fail_credentials(count)

    def advance(self, seconds: float) -> float:
        """Move the manual clock forward; returns the new time (as ``clock.advance``)."""
        return float(self.controller.advance_clock(seconds)["now"])

    # -- the request log --------------------------------------------------------------

    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        """Logged requests, oldest first, as the control API shows them.

        Filters: ``method``, ``path`` (a prefix), ``status``, ``client``, ``token``
        (whether one was sent), ``imdsv1``, ``limit``.
        """
        return self.controller.requests(**filters)

    def clear_requests(self) -> None:
        """Forget every logged request."""
        self.controller.clear_requests()

    def imdsv1_report(self) -> list[dict[str, Any]]:
        """Token-less (IMDSv1) data requests grouped by client and user agent."""
        return self.controller.imdsv1_report()

    def assert_no_imdsv1(self) -> None:
        """Fail unless every data request carried an IMDSv2 token."""
        report = self.imdsv1_report()
        if report:
            lines = [
                f"  {g['requests']} from {g['client']} ({g['user-agent'] or 'no user agent'}): "
                + ", ".join(g["paths"])
                for g in report
            ]
            raise AssertionError("IMDSv1 (token-less) requests were made:\n" + "\n".join(lines))

    def assert_requested(self, path: str, **filters: Any) -> None:
        """Fail unless a request for ``path`` (a prefix) was logged (``filters`` as above)."""
        if not self.requests(path=path, **filters):
            seen = sorted({r["path"] for r in self.requests()})
            raise AssertionError(f"no request for {path} {filters or ''}; requested: {seen}")


class MockIMDS(InstanceControls):
    """A mock EC2 instance metadata service, served on 127.0.0.1 from a background thread.

    ``config`` is a :class:`~imdsmock.config.schema.Config`, a file-shaped mapping or a config
    file path; keyword ``overrides`` win over it and take the short names of the CLI
    (``http_tokens``, ``region``, ``user_data``, ``instance_id``...), any field of the
    ``instance``, ``options`` or ``credentials`` section (``tags``, ``iam_role``,
    ``hop_limit``...) or a whole section (``paths={...}``). The process environment is
    not read unless passed as ``env``. Time runs on a :class:`~imdsmock.core.clock.ManualClock`
    unless ``clock="system"`` (or any object with ``now()``) is given.
    """

    def __init__(
        self,
        config: ConfigSource = None,
        *,
        clock: Clock | Literal["manual", "system"] = "manual",
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> None:
        self._source = config
        self._env: Mapping[str, str] = {} if env is None else env
        self._overrides = overrides
        self._initial_config = self._load(overrides)
        if clock == "manual":
            self._clock: Clock = ManualClock()
        elif clock == "system":
            self._clock = SystemClock()
        elif isinstance(clock, str):
            raise ConfigError("clock", clock, "one of: manual, system (or a clock object)")
        else:
            self._clock = clock
        self._app: App | None = None
        self._thread: threading.Thread | None = None
        self._initial: Snapshot | None = None
        self._initial_members: dict[str, Snapshot] = {}
        # The default instance as last reset (what MockInstance.reset goes back to).
        self._current: Snapshot | None = None
        self._control_url: str | None = None
        self._url = ""

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> MockIMDS:
        """Bind a free port and serve from a daemon thread; returns ``self``."""
        if self._app is not None:
            raise ImdsMockError("this MockIMDS is already running; stop() it first")
        app = App(self._initial_config, clock=self._clock)
        thread = serve_in_thread(app, app.bind())
        self._app, self._thread = app, thread
        self._initial = self._current = app.state.snapshot
        fleet = app.fleet
        self._initial_members = {} if fleet is None else fleet.origins()
        self._url = app.addresses()[0]
        self._control_url = app.control_url()
        return self

    def stop(self) -> None:
        """Stop serving and wait for the server thread (idempotent)."""
        app, thread = self._app, self._thread
        self._app = self._thread = None
        if app is not None:
            app.shutdown()
        if thread is not None:
            thread.join(5)

    def __repr__(self) -> str:
        where = self._url if self._app is not None else "not running"
        return f"<MockIMDS {where}>"

    def __enter__(self) -> MockIMDS:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def app(self) -> App:
        """The running :class:`~imdsmock.app.App` (raises when not started)."""
        if self._app is None:
            raise ImdsMockError("this MockIMDS is not running; use `with MockIMDS() as imds:`")
        return self._app

    @property
    def url(self) -> str:
        """Base URL of the IMDS listener, e.g. ``http://127.0.0.1:40123``."""
        self.app  # noqa: B018 - raises a clear error when not started
        return self._url

    @property
    def control_url(self) -> str | None:
        """Base URL of the control API (for ``imdsmock ctl --url``), if it listens."""
        self.app  # noqa: B018 - raises a clear error when not started
        return self._control_url

    @property
    def config(self) -> Config:
        """The configuration in force (after :meth:`reset` overrides)."""
        if self._app is None:
            return self._initial_config
        return self._app.state.snapshot.config

    @property
    def clock(self) -> ManualClock:
        """The manual clock: ``imds.clock.advance(120)`` moves the instance two minutes on."""
        if not isinstance(self._clock, ManualClock):
            raise ImdsMockError(
                "this MockIMDS runs on the system clock; advancing time needs "
                "MockIMDS(clock='manual')"
            )
        return self._clock

    # -- state ------------------------------------------------------------------------

    def reset(self, **overrides: Any) -> None:
        """Go back to the instance as started (optionally reconfigured), at its start time.

        Run-time metadata edits, scenarios, faults, credential changes, tokens, the
        clients admitted past ``mock-ip-count`` and the request log are forgotten, and the
        manual clock returns to its start. ``overrides`` (as for the constructor)
        reconfigure the instance, but not the listeners.
        """
        app, initial = self.app, self._initial
        assert initial is not None
        snapshot = initial
        cfg = initial.config
        if overrides:
            cfg = self._load({**self._overrides, **overrides})
            if cfg.server != initial.config.server or not set(member_bindings(cfg)) <= set(
                member_bindings(initial.config)
            ):
                raise ConfigError(
                    "server",
                    ", ".join(sorted(overrides)),
                    "instance settings (listeners "
                    "cannot change on a running MockIMDS; give them to its constructor)",
                )
            snapshot = rebuild(initial, cfg)
        self._current = snapshot
        if app.fleet is not None or cfg.instances:
            app.ensure_fleet().restart(cfg, self._initial_members)
        app.state.swap(lambda _current: snapshot)
        app.state.tokens.revoke_all()
        app.state.failures.clear()
        controller = self.controller
        controller.clear_faults()
        controller.clear_requests()
        app.gate.reset()
        if isinstance(self._clock, ManualClock):
            self._clock.reset()

    # -- control operations (one implementation: imdsmock.control.operations) ----------------

    @property
    def controller(self) -> Controller:
        """The :class:`~imdsmock.control.operations.Controller` behind the control API."""
        return self.app.controller

    # -- the fleet --------------------------------------------------------------------

    def instance(self, name: str) -> MockInstance:
        """The instance of the fleet called ``name`` (``default``: the top-level one), with
        the control methods of this mock: ``imds.instance("web").spot_interruption()``."""
        self.controller.for_instance(name)  # an unknown name fails here, naming the others
        return MockInstance(self, name)

    @property
    def instances(self) -> list[dict[str, Any]]:
        """Every instance of the fleet (the default one first), as the control API lists
        them: name, instance-id, role, match rules, clients served."""
        return self.controller.instances()

    def add_instance(self, entry: Mapping[str, Any] | None = None, **fields: Any) -> MockInstance:
        """Serve one more instance, given as an entry of the configuration's ``instances``
        (``name``, ``match``, ``instance``, ``options``, ``paths``, ``scenarios``)."""
        described = self.controller.add_instance({**(entry or {}), **fields})
        return MockInstance(self, str(described["name"]))

    def remove_instance(self, name: str) -> None:
        """Stop serving an instance of the fleet."""
        self.controller.remove_instance(name)

    # -- configuration ----------------------------------------------------------------

    def _load(self, overrides: Mapping[str, Any]) -> Config:
        source = self._source
        base: Mapping[str, Any] | None = None
        file: str | os.PathLike[str] | None = None
        if isinstance(source, Config):
            base = to_mapping(source, secrets=True)
        elif isinstance(source, Mapping):
            base = source
        elif source is not None:
            file = source
        flags: dict[str, Any] = dict(_LISTEN)
        keywords: dict[str, str] = {}
        for name, value in overrides.items():
            key = _flag_key(name, value)
            flags[key] = value
            keywords[key] = name
        try:
            return load(file=file, env=self._env, flags=flags, base=base)
        except ConfigError as exc:
            raise _as_keyword(exc, keywords) from None


def _as_keyword(exc: ConfigError, keywords: Mapping[str, str]) -> ConfigError:
    """An error about a keyword override, naming the keyword (``account_id``), not its key."""
    for key, name in keywords.items():
        if exc.key == key:
            return exc.renamed(name)
        if exc.key.startswith((f"{key}.", f"{key}[")):
            return exc.renamed(name + exc.key[len(key) :])
    return exc


def _dashed(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {name.replace("_", "-"): value for name, value in fields.items()}


def _flag_key(name: str, value: object) -> str:
    """A keyword override's dotted config key (``tags`` -> ``instance.tags``)."""
    dashed = name.replace("_", "-")
    if dashed in SHORT_NAMES:
        return SHORT_NAMES[dashed]
    if name in _SECTIONS:
        return name
    for section, names in _FIELDS.items():
        if name in names:
            return f"{section}.{dashed}"
    shorts = sorted(short.replace("-", "_") for short in SHORT_NAMES)
    allowed = "a short option (" + ", ".join(shorts) + "), a section or a field"
    known = [*shorts, *_SECTIONS, *(field for names in _FIELDS.values() for field in names)]
    raise ConfigError(name, value, allowed, hint=did_you_mean(name, known))


class MockInstance(InstanceControls):
    """One instance of a running :class:`MockIMDS`'s fleet (:meth:`MockIMDS.instance`).

    It has the control methods of the mock itself, acting on this instance, and makes
    requests as its client: from the first loopback address its ``match.source`` names
    (``imds.instance("web").get("/latest/meta-data/instance-id")``), to the listener its
    ``match.listener`` names if any.
    """

    def __init__(self, mock: MockIMDS, name: str) -> None:
        self.mock = mock
        self.name = name

    def __repr__(self) -> str:
        return f"<MockInstance {self.name} of {self.mock!r}>"

    @property
    def controller(self) -> Controller:
        """The :class:`~imdsmock.control.operations.Controller` of this instance."""
        return self.mock.controller.for_instance(self.name)

    @property
    def config(self) -> Config:
        """This instance's configuration in force: the top level with its entry's keys."""
        return self.controller.snapshot.config

    @property
    def url(self) -> str:
        """The URL of the listener this instance's clients connect to: the one its
        ``match.listener`` names, else the mock's."""
        app = self.mock.app
        fleet = app.fleet
        if fleet is not None and self.name in fleet.roster.members:
            for spec in fleet.member(self.name).match.listener:
                rule = listener(spec, "match.listener")
                for address in app.server.addresses():
                    port_ok = address[1] == rule[-1]
                    if port_ok and (isinstance(rule, Port) or client_key(address[0]) == rule[0]):
                        return url(address)
        return self.mock.url

    @property
    def source(self) -> str | None:
        """The first loopback address this instance's ``match.source`` names (requests
        from it are this instance's), or None."""
        fleet = self.mock.app.fleet
        if fleet is None or self.name not in fleet.roster.members:
            return None
        for spec in fleet.member(self.name).match.source:
            network = source_network(spec, "match.source")
            if network.network_address.is_loopback and network.version == 4:
                # A network's first host; a single address is itself.
                return str(next(iter(network.hosts()), network.network_address))
        return None

    def reset(self) -> None:
        """Undo this instance's run-time changes: metadata edits, instance and option
        changes, scenarios, forced credential failures and its tokens (the mock's request
        log, faults and clock stay: :meth:`MockIMDS.reset` resets those)."""
        app = self.mock.app
        if self.name != DEFAULT_NAME:
            app.ensure_fleet().reset_member(self.name)
            return
        snapshot = self.mock._current
        assert snapshot is not None
        app.state.swap(lambda _current: snapshot)
        app.state.tokens.revoke_all()
        app.state.failures.clear()
