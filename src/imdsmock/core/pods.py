"""Kubernetes pods as the fleet sees them: which pod has an address, and which instance a
pod is.

Pure: the API's pod objects come in (a list, then watch events) and a :class:`PodIndex`
answers, from memory, which live pod an address belongs to; :class:`PodRules`, built from
the members' ``match.pod`` rules, say which instance a pod is. The watcher that feeds
the index from the API server is :mod:`imdsmock.serve.podwatch`.

A pod is *live* while it can send a request from its own address: it has a pod IP, is
``Pending`` or ``Running``, and is not on the host network (a host-network pod's address
is its node's, shared by every other host-network pod and the node itself). Kubernetes
hands a finished pod's address to a new pod at once, while the finished one may stay in
the API for a long time (completed Jobs): only live pods claim an address. When two live
pods claim one (the old one's status not updated yet), the one not being deleted wins,
then the newest; a deleted pod's claim is dropped at once.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from imdsmock.config.fleet import pod_pattern
from imdsmock.config.schema import MemberConfig
from imdsmock.core.gate import client_key

__all__ = ["ANNOTATION", "LIVE_PHASES", "Pod", "PodIndex", "PodRules", "pod_from"]

ANNOTATION = "imdsmock.io/instance"
"""The pod annotation naming the instance a pod is (over any ``match.pod`` rule)."""

LIVE_PHASES = frozenset({"Pending", "Running"})
"""Phases of a pod whose containers may still run (``Succeeded`` and ``Failed`` are done)."""

Labels = tuple[tuple[str, str], ...]
# (position, member, index in its match.pod, namespace, name pattern, labels): a rule filed.
_Rule = tuple[int, str, int, str | None, re.Pattern[str] | None, Labels]


class Pod(NamedTuple):
    """What the fleet needs of a pod object."""

    uid: str
    namespace: str
    name: str
    ips: tuple[str, ...]
    """Its pod IPs, canonical (:func:`~imdsmock.core.gate.client_key`)."""
    labels: Mapping[str, str]
    instance: str | None
    """The value of its :data:`ANNOTATION` annotation, if any."""
    phase: str
    host_network: bool
    node: str
    """The node it runs on (``spec.nodeName``; empty until it is scheduled)."""
    created: str
    """Its ``creationTimestamp`` (RFC 3339, UTC: compares as text)."""
    deleting: bool
    """Whether its deletion has begun (``deletionTimestamp`` set)."""
    version: str
    """Its ``resourceVersion``."""

    @property
    def key(self) -> str:
        """``namespace/name``, as the request log and the clients table name it."""
        return f"{self.namespace}/{self.name}"

    @property
    def live(self) -> bool:
        """Whether it claims its addresses (see the module's description)."""
        return bool(self.ips) and self.phase in LIVE_PHASES and not self.host_network


def pod_from(obj: Any) -> Pod | None:
    """A :class:`Pod` from a pod object of the Kubernetes API (JSON), None if it has no uid,
    namespace or name. Fields it lacks are empty (a pod just created has no IP yet)."""
    if not isinstance(obj, Mapping):
        return None
    meta, spec, status = (_mapping(obj.get(part)) for part in ("metadata", "spec", "status"))
    uid, namespace, name = meta.get("uid"), meta.get("namespace"), meta.get("name")
    if not (isinstance(uid, str) and isinstance(namespace, str) and isinstance(name, str)):
        return None
    ips: list[str] = []
    listed = status.get("podIPs")
    for entry in listed if isinstance(listed, list) else ():
        ip = _mapping(entry).get("ip")
        if isinstance(ip, str) and ip:
            ips.append(client_key(ip))
    first = status.get("podIP")
    if isinstance(first, str) and first and client_key(first) not in ips:
        ips.insert(0, client_key(first))
    labels = {str(k): str(v) for k, v in _mapping(meta.get("labels")).items()}
    instance = _mapping(meta.get("annotations")).get(ANNOTATION)
    return Pod(
        uid=uid,
        namespace=namespace,
        name=name,
        ips=tuple(ips),
        labels=labels,
        instance=instance.strip() if isinstance(instance, str) else None,
        phase=str(status.get("phase") or "Pending"),
        host_network=spec.get("hostNetwork") is True,
        node=str(spec.get("nodeName") or ""),
        created=str(meta.get("creationTimestamp") or ""),
        deleting=bool(meta.get("deletionTimestamp")),
        version=str(meta.get("resourceVersion") or ""),
    )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class PodIndex:
    """The pods known, and for each address the live pod it belongs to.

    Fed by :meth:`apply` (a watch event, or a list's :meth:`changes`); :meth:`get` is a
    dictionary lookup. Not thread-safe: one event loop feeds and asks it.
    """

    __slots__ = ("_claims", "_owner", "_pods", "_seq")

    def __init__(self) -> None:
        self._pods: dict[str, Pod] = {}
        # address -> uid -> (rank order, pod): every live pod claiming it.
        self._claims: dict[str, dict[str, tuple[tuple[bool, str, int], Pod]]] = {}
        self._owner: dict[str, Pod] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._pods)

    def get(self, address: str) -> Pod | None:
        """The live pod ``address`` (canonical) belongs to, or None."""
        return self._owner.get(address)

    def pod(self, uid: str) -> Pod | None:
        """The pod known by ``uid``, live or not."""
        return self._pods.get(uid)

    def pods(self) -> list[Pod]:
        """Every pod known, live or not."""
        return list(self._pods.values())

    def changes(self, pods: Iterable[Pod]) -> list[tuple[str, Pod]]:
        """The events that make the index know exactly ``pods`` (a fresh list): ``DELETED``
        for each pod it lacks, ``MODIFIED`` for each new or changed one."""
        fresh = {pod.uid: pod for pod in pods}
        gone = [("DELETED", self._pods[uid]) for uid in self._pods.keys() - fresh.keys()]
        known = self._pods
        return gone + [("MODIFIED", pod) for pod in fresh.values() if known.get(pod.uid) != pod]

    def apply(self, kind: str, pod: Pod) -> None:
        """A watch event: ``ADDED`` or ``MODIFIED`` (the pod as it is now), or ``DELETED``."""
        old = self._pods.pop(pod.uid, None)
        touched = set(old.ips) if old is not None and old.live else set()
        if kind != "DELETED":
            self._pods[pod.uid] = pod
            if pod.live:
                touched.update(pod.ips)
        for address in touched:
            claims = self._claims.setdefault(address, {})
            claims.pop(pod.uid, None)
            if kind != "DELETED" and pod.live and address in pod.ips:
                claims[pod.uid] = ((not pod.deleting, pod.created, next(self._seq)), pod)
            if claims:
                self._owner[address] = max(claims.values(), key=lambda c: c[0])[1]
            else:
                del self._claims[address]
                self._owner.pop(address, None)


class PodRules:
    """The members' ``match.pod`` rules, in order: which member a pod is, by its namespace,
    name and labels (every key a rule gives must match: the namespace, the name or its
    ``*`` pattern, each label's value).

    Rules are filed under one label they require (else their namespace), so a pod is
    tried only against the rules that can match it: with a thousand instances, each with
    its own ``app`` label, a pod is compared with one or two rules, not a thousand.
    """

    __slots__ = ("_by_label", "_by_namespace", "_count", "_rest")

    def __init__(self, members: Iterable[MemberConfig]) -> None:
        self._by_label: dict[tuple[str, str], list[_Rule]] = {}
        self._by_namespace: dict[str, list[_Rule]] = {}
        self._rest: list[_Rule] = []
        self._count = 0
        for member in members:
            for index, rule in enumerate(member.match.pod):
                pattern = None if rule.name is None else pod_pattern(rule.name)
                labels = tuple(rule.labels.items())
                entry = (self._count, member.name, index, rule.namespace, pattern, labels)
                self._count += 1
                if labels:
                    self._by_label.setdefault(labels[0], []).append(entry)
                elif rule.namespace is not None:
                    self._by_namespace.setdefault(rule.namespace, []).append(entry)
                else:
                    self._rest.append(entry)

    def __bool__(self) -> bool:
        return self._count > 0

    def match(self, namespace: str, name: str, labels: Mapping[str, str]) -> tuple[str, int] | None:
        """The first member (in order) with a rule the pod matches, and that rule's index in
        its ``match.pod``; None when no rule matches."""
        candidates = [*self._rest, *self._by_namespace.get(namespace, ())]
        by_label = self._by_label
        for pair in labels.items():
            candidates += by_label.get(pair, ())
        candidates.sort()
        for _, member, index, want_namespace, pattern, wanted in candidates:
            if want_namespace is not None and want_namespace != namespace:
                continue
            if pattern is not None and not pattern.fullmatch(name):
                continue
            if all(labels.get(k) == v for k, v in wanted):
                return member, index
        return None
