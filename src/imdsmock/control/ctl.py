"""``imdsmock ctl``: drive a running mock through its control API.

Each subcommand is one control API call, made with urllib so the client needs nothing
beyond the standard library. Output is a readable table or ``key: value`` lines by default
and the API's JSON with ``--json``. A rejected request prints the API's one-line error and
exits 2; an unreachable mock exits 1. The instance metadata options and the fault kinds
come from the declarations the server validates with, so a bad option value is refused
here with the line the API and ``imdsmock --NAME`` give.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from imdsmock.config.argparsing import Parser
from imdsmock.config.options import OPTIONS
from imdsmock.control.ctlview import readable, request_line
from imdsmock.core.faults import KINDS, STATUSES
from imdsmock.errors import ConfigError
from imdsmock.errors import quote as quoted

__all__ = ["build_parser", "main"]

PROG = "imdsmock ctl"
DEFAULT_URL = "http://127.0.0.1:1339"


class _Failed(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def build_parser() -> argparse.ArgumentParser:
    """The ``imdsmock ctl`` parser (its subcommands are the control API's calls)."""
    p = Parser(prog=PROG, description="Drive a running imdsmock through its control API.")
    p.add_argument(
        "--url",
        type=_control_url,  # argparse applies it to the default (the variable) too
        default=os.environ.get("IMDSMOCK_CONTROL_URL", DEFAULT_URL),
        help=f"control API URL (default {DEFAULT_URL}, env IMDSMOCK_CONTROL_URL)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("IMDSMOCK_CONTROL_TOKEN"),
        help="bearer token (env IMDSMOCK_CONTROL_TOKEN)",
    )
    p.add_argument("--json", action="store_true", help="print the API's JSON")
    chosen = p.add_mutually_exclusive_group()
    chosen.add_argument(
        "--instance",
        metavar="NAME",
        help="act on this instance of a fleet (default: the top-level instance); the "
        "scenario commands also take several, NAME,NAME,..., or '*' for every instance",
    )
    chosen.add_argument(
        "--all-instances",
        dest="instance",
        action="store_const",
        const="*",
        help="the scenario commands act on every instance of the fleet (--instance '*')",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    sub.add_parser("state", help="configuration, options, scenarios, faults, clock")

    md = sub.add_parser("metadata", help="get, set or delete any IMDS path").add_subparsers(
        dest="action", required=True, parser_class=Parser
    )
    g = md.add_parser("get", help="the value served at PATH")
    g.add_argument("path")
    s = md.add_parser("set", help="serve VALUE at PATH (e.g. meta-data/tags/instance/Owner)")
    s.add_argument("path")
    s.add_argument("value")
    d = md.add_parser("delete", help="stop serving PATH (404)")
    d.add_argument("path")
    md.add_parser("list", help="the run-time edits")
    md.add_parser("reset", help="drop every run-time edit")

    ins = sub.add_parser(
        "instance", help="show or change the instance's facts (region, IDs, addresses ...)"
    ).add_subparsers(dest="action", required=True, parser_class=Parser)
    ins.add_parser("show", help="every instance key as served (derived and changed ones marked)")
    iset = ins.add_parser(
        "set",
        help="change instance keys as the configuration sets them, e.g. `instance set "
        "region=eu-west-1`; every path and document that shows them follows",
    )
    iset.add_argument(
        "changes",
        nargs="+",
        metavar="KEY=VALUE",
        help="an instance key (tags.NAME for one tag) and its value; null for none",
    )
    ins.add_parser("reset", help="undo every run-time instance change")

    fl = sub.add_parser(
        "instances", help="list, show, add, change or remove the instances of a fleet"
    ).add_subparsers(dest="action", required=False, parser_class=Parser)
    fl.add_parser("list", help="every instance (the default)")
    fs = fl.add_parser("show", help="one instance and the keys its entry sets")
    fs.add_argument("name")
    fc = fl.add_parser("clients", help="the clients an instance served, and why")
    fc.add_argument("name")
    fa = fl.add_parser(
        "add",
        help="serve a new instance, e.g. `instances add web --source 10.0.0.7 "
        "--set instance.iam-role=web-role --set options.http-tokens=required`",
    )
    fa.add_argument("name")
    fset = fl.add_parser("set", help="change an instance's entry keys (as add takes them)")
    fset.add_argument("name")
    for action in (fa, fset):
        action.add_argument("--source", action="append", help="a client address or network")
        action.add_argument("--listener", action="append", help="HOST:PORT or PORT connected to")
        action.add_argument("--host", action="append", help="a Host name asked for")
        action.add_argument(
            "--container", action="append", help="a Docker container or compose service name"
        )
        action.add_argument(
            "--pod",
            action="append",
            metavar="NAMESPACE/NAME[LABEL=V,...]",
            help="Kubernetes pods, as `instances` shows them (* for any): 'shop/*[app=web]'",
        )
        action.add_argument(
            "--set",
            dest="keys",
            action="append",
            default=[],
            metavar="SECTION.KEY=VALUE",
            help="instance.KEY, options.KEY or paths.PATH and its value (null for none)",
        )
    fr = fl.add_parser("remove", help="stop serving an instance")
    fr.add_argument("name")

    sc = sub.add_parser("scenario", help="start, list or cancel scenarios").add_subparsers(
        dest="action", required=True, parser_class=Parser
    )
    st = sc.add_parser(
        "start",
        help="start a scenario, e.g. `scenario start spot-interruption action=terminate at=+30s`",
    )
    st.add_argument(
        "type",
        help="spot-interruption | rebalance-recommendation | maintenance-event | asg-lifecycle",
    )
    st.add_argument("fields", nargs="*", metavar="KEY=VALUE", help="scenario fields")
    sc.add_parser("list")
    cc = sc.add_parser("cancel")
    cc.add_argument("id")

    o = sub.add_parser("options", help="show or change instance metadata options")
    for option in OPTIONS:  # checked in _run, as the server checks them
        metavar = "{" + ",".join(option.choices) + "}" if option.choices else None
        o.add_argument(f"--{option.name}", dest=option.field, metavar=metavar)

    f = sub.add_parser("fault", help="inject faults").add_subparsers(
        dest="action", required=True, parser_class=Parser
    )
    fa = f.add_parser("add", help="add a fault rule")
    fa.add_argument("kind", choices=KINDS)
    fa.add_argument("--path", help="path glob (default *)")
    fa.add_argument("--client", help="client address or network")
    fa.add_argument("--count", type=int, help="only the next N matching requests")
    fa.add_argument("--probability", type=float, help="fault this share of matches (0..1]")
    statuses = [str(s) for s in STATUSES]
    fa.add_argument(
        "--status",
        type=int,
        help=f"{', '.join(statuses[:-1])} or {statuses[-1]} (kind status)",
    )
    fa.add_argument("--latency-ms", type=int, help="added delay (kind latency)")
    f.add_parser("list")
    fr = f.add_parser("remove")
    fr.add_argument("id")
    f.add_parser("clear")

    c = sub.add_parser("credentials", help="rotate, expire or fail credentials").add_subparsers(
        dest="action", required=True, parser_class=Parser
    )
    c.add_parser("rotate", help="issue a new set now")
    ce = c.add_parser("expire", help="serve already-expired credentials")
    ce.add_argument("--off", action="store_true", help="serve normal credentials again")
    cf = c.add_parser("fail", help="fail the next N credential fetches")
    cf.add_argument("count", type=int, nargs="?", default=1)

    k = sub.add_parser("clock", help="show, advance or reset the (manual) clock").add_subparsers(
        dest="action", required=True, parser_class=Parser
    )
    k.add_parser("show")
    ka = k.add_parser("advance")
    ka.add_argument("seconds", type=float)
    k.add_parser("reset")

    r = sub.add_parser("requests", help="the request log")
    r.add_argument("--method")
    r.add_argument("--path", help="path prefix")
    r.add_argument("--status", type=int)
    r.add_argument("--client")
    r.add_argument("--imdsv1", action="store_true", help="only token-less data requests")
    r.add_argument("--limit", type=int, help="the newest N (per page with --all)")
    r.add_argument("--before", type=int, metavar="SEQ", help="only older than seq SEQ")
    r.add_argument("--after", type=int, metavar="SEQ", help="only newer than seq SEQ")
    r.add_argument("--all", action="store_true", help="follow every page, oldest first")
    r.add_argument("--clear", action="store_true", help="forget every entry")
    r.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="print the newest (--limit, default 10), then each new request as one line "
        "until interrupted",
    )

    rep = sub.add_parser("report", help="reports").add_subparsers(
        dest="action", required=True, parser_class=Parser
    )
    rep.add_parser("imdsv1", help="IMDSv1 use grouped by client and user agent")

    sub.add_parser("certificate", help="the identity-signing certificate (PEM)")
    return p


def _control_url(text: str) -> str:
    """The control API's base URL, checked: http(s), a host, a valid port, nothing else odd."""
    shown = quoted(text)
    expected = f"a URL like {DEFAULT_URL} (from --url or IMDSMOCK_CONTROL_URL)"
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # a port that is not a number from 0 to 65535, a bad IPv6 literal
        port_ok, parts = False, None
    if (
        parts is None
        or not port_ok
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or not text.isprintable()
        or " " in text
    ):
        raise argparse.ArgumentTypeError(f"{shown} is not {expected}")
    return text


# The content types the control API answers with; anything else is another server.
_JSON, _PEM = "application/json", "application/x-pem-file"


def _not_the_api(ns: argparse.Namespace, status: int, reason: str, kind: str) -> _Failed:
    what = kind.partition(";")[0].strip() or "no content type"
    return _Failed(
        status,  # a wrong URL is bad input: exit 2
        f"{ns.url} answered {status} {reason} ({what}), not the control API's JSON: "
        "is it the control API's URL?",
    )


def _call(ns: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    if ns.instance is not None and not path.startswith("/v1/instances"):
        # The same route, for that instance of the fleet (a URL the API gave has it already).
        path = "/v1/instances/" + quote(ns.instance, safe="") + path.removeprefix("/v1")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(ns.url.rstrip("/") + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if ns.token:
        req.add_header("Authorization", f"Bearer {ns.token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            kind = resp.headers.get("Content-Type", "")
            status, reason = resp.status, resp.reason
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            message = json.loads(raw)["error"]
        except (ValueError, KeyError, TypeError):
            kind = exc.headers.get("Content-Type", "")
            raise _not_the_api(ns, exc.code, exc.reason, kind) from None
        raise _Failed(exc.code, str(message)) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        # Nothing listening, a timeout, or something that does not speak HTTP.
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise _Failed(0, f"cannot reach the control API at {ns.url}: {reason}") from None
    if kind.startswith(_PEM):
        return raw.decode("utf-8", "replace")
    if kind.startswith(_JSON):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    raise _not_the_api(ns, status, reason, kind)


def _value(text: str) -> Any:
    """A KEY=VALUE value: JSON when it parses (numbers, true, null), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pod_rule(spec: str) -> dict[str, Any]:
    """A ``--pod`` rule, ``NAMESPACE/NAME[LABEL=VALUE,...]`` (``*`` or nothing: any), as
    ``match.pod`` spells it; the control API checks what it holds."""
    head, bracket, tail = spec.strip().partition("[")
    namespace, slash, name = head.partition("/")
    if not slash or (bracket and not tail.endswith("]")):
        raise _Failed(400, f"pod rule {quoted(spec)} is not NAMESPACE/NAME[LABEL=VALUE,...]")
    rule: dict[str, Any] = {}
    if namespace.strip() not in ("", "*"):
        rule["namespace"] = namespace.strip()
    if name.strip() not in ("", "*"):
        rule["name"] = name.strip()
    labels = {}
    for item in filter(None, (part.strip() for part in tail[:-1].split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise _Failed(400, f"pod label {quoted(item)} is not LABEL=VALUE")
        labels[key.strip()] = value.strip()
    if labels:
        rule["labels"] = labels
    return rule


def _entry(ns: argparse.Namespace) -> dict[str, Any]:
    """An instance entry from the options of ``instances add``/``set``."""
    entry: dict[str, Any] = {}
    match: dict[str, Any] = {
        k: getattr(ns, k) for k in ("source", "listener", "host", "container") if getattr(ns, k)
    }
    if ns.pod:
        match["pod"] = [_pod_rule(spec) for spec in ns.pod]
    if match:
        entry["match"] = match
    for item in ns.keys:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or not name or section not in ("instance", "options", "paths"):
            raise _Failed(
                400,
                f"instance key {quoted(item)} is not SECTION.KEY=VALUE "
                "(SECTION: instance, options or paths)",
            )
        entry.setdefault(section, {})[name] = None if value == "null" else _value(value)
    return entry


def _fleet(ns: argparse.Namespace) -> Any:
    """``ctl instances ...``: the fleet's own routes."""
    action = ns.action or "list"
    if action == "list":
        return _call(ns, "GET", "/v1/instances")
    where = "/v1/instances/" + quote(ns.name, safe="")
    if action == "show":
        return _call(ns, "GET", where)
    if action == "clients":
        return _call(ns, "GET", where + "/clients")
    if action == "add":
        return _call(ns, "POST", "/v1/instances", {"name": ns.name, **_entry(ns)})
    if action == "set":
        return _call(ns, "PATCH", where, _entry(ns))
    return _call(ns, "DELETE", where)


def _run(ns: argparse.Namespace) -> Any:
    cmd, action = ns.command, getattr(ns, "action", None)
    if cmd == "instances":
        return _fleet(ns)
    if cmd == "state":
        return _call(ns, "GET", "/v1/state")
    if cmd == "metadata":
        if action == "list":
            return _call(ns, "GET", "/v1/metadata")
        if action == "reset":
            return _call(ns, "DELETE", "/v1/metadata")
        path = "/v1/metadata/" + quote(ns.path.strip("/"), safe="/")
        if action == "get":
            return _call(ns, "GET", path)
        if action == "set":
            return _call(ns, "PUT", path, {"value": ns.value})
        return _call(ns, "DELETE", path)
    if cmd == "instance":
        if action == "set":
            changes: dict[str, Any] = {}
            for item in ns.changes:
                key, sep, value = item.partition("=")
                if not sep or not key:
                    raise _Failed(400, f"instance change {quoted(item)} is not KEY=VALUE")
                changes[key] = None if value == "null" else value
            return _call(ns, "PATCH", "/v1/instance", changes)
        if action == "reset":
            return _call(ns, "DELETE", "/v1/instance")
        return _call(ns, "GET", "/v1/instance")
    if cmd == "scenario":
        if action == "start":
            body: dict[str, Any] = {"type": ns.type}
            for item in ns.fields:
                key, sep, value = item.partition("=")
                if not sep:
                    raise _Failed(400, f"scenario field {quoted(item)} is not KEY=VALUE")
                body[key] = _value(value)
            return _call(ns, "POST", "/v1/scenarios", body)
        if action == "list":
            return _call(ns, "GET", "/v1/scenarios")
        return _call(ns, "DELETE", "/v1/scenarios/" + quote(ns.id, safe=""))
    if cmd == "options":
        try:
            changes = {
                option.name: option.check(value)
                for option in OPTIONS
                if (value := getattr(ns, option.field)) is not None
            }
        except ConfigError as exc:
            raise _Failed(400, str(exc)) from None
        if changes:
            return _call(ns, "PATCH", "/v1/options", changes)
        return _call(ns, "GET", "/v1/options")
    if cmd == "fault":
        if action == "add":
            rule: dict[str, Any] = {"kind": ns.kind}
            for name in ("path", "client", "count", "probability", "status", "latency_ms"):
                if getattr(ns, name) is not None:
                    rule[name.replace("_", "-")] = getattr(ns, name)
            return _call(ns, "POST", "/v1/faults", rule)
        if action == "list":
            return _call(ns, "GET", "/v1/faults")
        if action == "remove":
            return _call(ns, "DELETE", "/v1/faults/" + quote(ns.id, safe=""))
        return _call(ns, "DELETE", "/v1/faults")
    if cmd == "credentials":
        if action == "rotate":
            return _call(ns, "POST", "/v1/credentials/rotate")
        if action == "expire":
            return _call(ns, "POST", "/v1/credentials/expire", {"on": not ns.off})
        return _call(ns, "POST", "/v1/credentials/fail", {"count": ns.count})
    if cmd == "clock":
        if action == "advance":
            return _call(ns, "POST", "/v1/clock/advance", {"seconds": ns.seconds})
        if action == "reset":
            return _call(ns, "POST", "/v1/clock/reset")
        return _call(ns, "GET", "/v1/clock")
    if cmd == "requests":
        if ns.follow:
            return _follow(ns)
        if ns.clear:
            return _call(ns, "DELETE", "/v1/requests")
        return _requests(ns)
    if cmd == "report":
        return _call(ns, "GET", "/v1/reports/imdsv1")
    return _call(ns, "GET", "/v1/certificate")


def _filters(ns: argparse.Namespace) -> dict[str, Any]:
    """The request-log filters given on the command line, as query parameters."""
    given = (
        ("method", ns.method),
        ("path", ns.path),
        ("status", ns.status),
        ("client", ns.client),
        ("imdsv1", "true" if ns.imdsv1 else None),
    )
    return {k: v for k, v in given if v is not None}


def _pages(ns: argparse.Namespace, query: dict[str, Any], *, every: bool) -> tuple[list[Any], Any]:
    """The entries of one page of the log (with ``every``, of it and each older page it
    leads to), oldest first, and the URL of the next older page not read."""
    data = _call(ns, "GET", "/v1/requests" + ("?" + urlencode(query) if query else ""))
    pages = [data["requests"]]
    following = data.get("next")
    while every and following:
        data = _call(ns, "GET", following)
        pages.append(data["requests"])
        following = data.get("next")
    return [row for page in reversed(pages) for row in page], following


# How long the control API may hold one --follow request open when nothing new is logged
# (a long poll), in seconds; well under the client's timeout.
FOLLOW_WAIT = 5


def _follow(ns: argparse.Namespace) -> None:
    """``requests --follow``: the newest entries, then every new one as it is logged (a
    long poll with ``after`` the last seq seen), one line each (one JSON object with
    --json), until interrupted."""
    for flag, given in (("--all", ns.all), ("--before", ns.before), ("--clear", ns.clear)):
        if given:
            raise _Failed(400, f"--follow cannot be combined with {flag}")
    from imdsmock.core.requestlog import PAGE_MAX

    query = {**_filters(ns), "limit": 10 if ns.limit is None else ns.limit}
    if ns.after is not None:
        query["after"] = ns.after
    rows, _ = _pages(ns, query, every=False)
    last = ns.after or 0
    while True:
        for row in rows:
            print(json.dumps(row) if ns.json else request_line(row), flush=True)
            last = max(last, row["seq"])
        query = {**_filters(ns), "after": last, "limit": PAGE_MAX, "wait": FOLLOW_WAIT}
        rows, _ = _pages(ns, query, every=True)


def _requests(ns: argparse.Namespace) -> Any:
    """The request log: one page (and on stderr how to get the next), or with ``--all``
    every page, followed from the newest back and printed oldest first."""
    # Pages of the largest size when following them all (imported only then: start-up).
    page = ns.limit
    if ns.all and page is None:
        from imdsmock.core.requestlog import PAGE_MAX as page
    query = _filters(ns)
    for key, value in (("limit", page), ("before", ns.before), ("after", ns.after)):
        if value is not None:
            query[key] = value
    rows, following = _pages(ns, query, every=ns.all)
    if following:
        print(
            f"{PROG}: older requests not shown: add --before {rows[0]['seq']} "
            "for the next page, or --all",
            file=sys.stderr,
        )
    return {"requests": rows, "next": following} if ns.json else {"requests": rows}


def main(argv: list[str]) -> int:
    """Entry point of ``imdsmock ctl``; returns the exit status."""
    ns = build_parser().parse_args(argv)
    try:
        data = _run(ns)
    except _Failed as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1 if exc.status == 0 else 2
    if ns.json and not isinstance(data, str):
        print(json.dumps(data, indent=2))
    else:
        print(readable(ns.command, data))
    return 0
