"""A stub Kubernetes API server for tests: pods in memory, served as the real API serves
them, on a real socket on loopback (plain HTTP, or HTTPS with a certificate of its own).

What the pod lookup uses, and no more: ``GET /api/v1/pods`` and
``/api/v1/namespaces/NS/pods`` with ``fieldSelector=spec.nodeName=NODE``, lists in pages
(``limit``, ``continue``) carrying the list's ``resourceVersion``, and ``watch=1`` streams
(chunked JSON lines) replaying the changes after the version asked for, then following
new ones, bookmarks on request. A version older than the last :meth:`KubeStub.compact`
is 410 Gone (as an ``ERROR`` event in the stream, as the API server answers a watch, or
as a 410 answer); :meth:`KubeStub.drop_watches` cuts every open watch mid-stream,
:meth:`KubeStub.end_watches` ends them cleanly (the server's watch timeout). A token
may be required. Every request is recorded.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import socket
import ssl
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

START = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Asked:
    """One request the stub received."""

    path: str
    query: dict[str, str]
    authorization: str | None

    @property
    def watch(self) -> bool:
        return self.query.get("watch") in ("1", "true")


class KubeStub:
    """The stub server: :meth:`start` it (or use it as a context manager), change its
    pods with :meth:`add`, :meth:`modify`, :meth:`delete`."""

    def __init__(self, *, token: str | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.token = token
        self.tls = tls
        self.gone_as = "event"
        """How a too old version is refused: ``event`` (an ERROR event, as the API server
        answers a watch) or ``status`` (a 410 answer)."""
        self.fail_lists = 0
        """Answer this many list requests with a 500 before answering again."""
        self.gone_lists = 0
        """Answer this many list requests with 410 Gone (an expired continue token)."""
        self.requests: list[Asked] = []
        self.pods: dict[str, dict[str, Any]] = {}
        self._history: list[tuple[int, str, dict[str, Any]]] = []
        self._version = 100
        self._compacted = 0
        self._created = 0
        self._cut = 0  # generation: watches opened before it are cut
        self._ended = 0  # generation: watches opened before it end cleanly
        self._lock = threading.Condition()
        self._watching = 0
        self._stopped = False
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> KubeStub:
        stub = self

        class Handler(_Handler):
            owner = stub

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._stopped = True  # a watch starting from now on is cut at once too
            self.drop_watches()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> KubeStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # -- the cluster ------------------------------------------------------------------

    def pod(
        self,
        name: str,
        ip: str | None,
        *,
        namespace: str = "default",
        node: str = "node-1",
        phase: str = "Running",
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        host_network: bool = False,
        ips: list[str] | None = None,
    ) -> dict[str, Any]:
        """A pod object as the API shows it (not yet in the cluster: :meth:`add` it)."""
        self._created += 1
        created = START + dt.timedelta(minutes=self._created)
        status: dict[str, Any] = {"phase": phase}
        if ip is not None:
            status["podIP"] = ip
            status["podIPs"] = [{"ip": a} for a in (ips or [ip])]
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "labels": dict(labels or {}),
                "annotations": dict(annotations or {}),
                "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "spec": {"nodeName": node, "hostNetwork": host_network, "containers": []},
            "status": status,
        }

    def add(self, pod: dict[str, Any]) -> dict[str, Any]:
        return self._event("ADDED", pod)

    def modify(self, pod: dict[str, Any], **changes: Any) -> dict[str, Any]:
        """The pod with ``changes``: ``labels``, ``annotations``, ``phase``, ``ip``,
        ``deleting`` (sets deletionTimestamp)."""
        pod = copy.deepcopy(self.pods[pod["metadata"]["uid"]])
        meta, status = pod["metadata"], pod["status"]
        for key, value in changes.items():
            if key in ("labels", "annotations"):
                meta[key] = value
            elif key == "phase":
                status["phase"] = value
            elif key == "ip":
                status["podIP"] = value
                status["podIPs"] = [{"ip": value}]
            elif key == "deleting":
                meta["deletionTimestamp"] = "2026-12-02T00:00:00Z"
            else:
                raise KeyError(key)
        return self._event("MODIFIED", pod)

    def delete(self, pod: dict[str, Any]) -> dict[str, Any]:
        return self._event("DELETED", self.pods[pod["metadata"]["uid"]])

    def _event(self, kind: str, pod: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._version += 1
            pod = copy.deepcopy(pod)
            pod["metadata"]["resourceVersion"] = str(self._version)
            uid = pod["metadata"]["uid"]
            if kind == "DELETED":
                self.pods.pop(uid, None)
            else:
                self.pods[uid] = pod
            self._history.append((self._version, kind, pod))
            self._lock.notify_all()
        return copy.deepcopy(pod)

    def bookmark(self) -> str:
        """Send every open watch a BOOKMARK at a new version (nothing changed); that version."""
        with self._lock:
            self._version += 1
            self._history.append((self._version, "BOOKMARK", {}))
            self._lock.notify_all()
            return str(self._version)

    def compact(self) -> None:
        """Forget the history so far: a watch or list continuing from before is 410 Gone."""
        with self._lock:
            self._compacted = self._version
            self._history.clear()

    def drop_watches(self) -> None:
        """Cut every open watch mid-stream (no final chunk), as a lost connection does."""
        with self._lock:
            self._cut += 1
            self._lock.notify_all()

    def end_watches(self) -> None:
        """End every open watch cleanly, as the server does at the watch's timeout."""
        with self._lock:
            self._ended += 1
            self._lock.notify_all()

    def watching(self) -> int:
        """How many watches are open."""
        with self._lock:
            return self._watching

    def lists(self) -> list[Asked]:
        return [r for r in self.requests if not r.watch]

    def watches(self) -> list[Asked]:
        return [r for r in self.requests if r.watch]

    # -- serving (in the handler's thread) --------------------------------------------

    def _selected(self, pod: dict[str, Any], namespace: str | None, node: str | None) -> bool:
        meta, spec = pod["metadata"], pod.get("spec", {})
        return (namespace is None or meta["namespace"] == namespace) and (
            node is None or spec.get("nodeName") == node
        )

    def _list(self, namespace: str | None, node: str | None, query: dict[str, str]) -> Any:
        with self._lock:
            if self.fail_lists:
                self.fail_lists -= 1
                return 500, _status(500, "InternalError", "etcdserver: request timed out")
            if self.gone_lists:
                self.gone_lists -= 1
                return 410, _status(410, "Expired", "The provided continue parameter is too old")
            token = query.get("continue", "")
            version, offset = self._version, 0
            if token:
                version, offset = (int(part) for part in token.split(":"))
                if version < self._compacted:
                    return 410, _status(
                        410, "Expired", "The provided continue parameter is too old"
                    )
            items = sorted(
                (p for p in self.pods.values() if self._selected(p, namespace, node)),
                key=lambda p: p["metadata"]["uid"],
            )
            limit = int(query.get("limit", "0") or 0) or len(items) or 1
            page = items[offset : offset + limit]
            meta: dict[str, Any] = {"resourceVersion": str(version)}
            if offset + limit < len(items):
                meta["continue"] = f"{version}:{offset + limit}"
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": page}

    def _watch(
        self, handler: _Handler, namespace: str | None, node: str | None, since: int
    ) -> None:
        with self._lock:
            too_old = since < self._compacted
            if too_old and self.gone_as == "status":
                handler.answer(410, _status(410, "Expired", f"too old resource version: {since}"))
                return
            self._watching += 1
            cut, ended = self._cut, self._ended
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            if too_old:
                gone = _status(410, "Expired", f"too old resource version: {since}")
                handler.chunk(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
                handler.chunk(b"")
                return
            sent = since
            while True:
                with self._lock:
                    while True:
                        if self._cut != cut or self._stopped:
                            handler.close_connection = True
                            handler.connection.shutdown(socket.SHUT_RDWR)
                            return
                        fresh = [e for e in self._history if e[0] > sent]
                        end = self._ended != ended
                        if fresh or end:
                            break
                        self._lock.wait(0.2)
                for version, kind, pod in fresh:
                    sent = version
                    if kind == "BOOKMARK":
                        obj: dict[str, Any] = {
                            "kind": "Pod",
                            "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(version)},
                        }
                    elif self._selected(pod, namespace, node):
                        obj = pod
                    else:
                        continue
                    line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
                    handler.chunk(line)
                if end:
                    handler.chunk(b"")
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._watching -= 1


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class _Handler(BaseHTTPRequestHandler):
    owner: KubeStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:
        stub = self.owner
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        stub.requests.append(Asked(parts.path, query, self.headers.get("Authorization")))
        if stub.token is not None and self.headers.get("Authorization") != f"Bearer {stub.token}":
            self.answer(401, _status(401, "Unauthorized", "Unauthorized"))
            return
        segments = parts.path.strip("/").split("/")
        if segments == ["api", "v1", "pods"]:
            namespace = None
        elif (
            len(segments) == 5
            and segments[:3] == ["api", "v1", "namespaces"]
            and segments[4] == "pods"
        ):
            namespace = segments[3]
        else:
            self.answer(404, _status(404, "NotFound", f"the server could not find {parts.path}"))
            return
        node = None
        selector = query.get("fieldSelector")
        if selector:
            field, _, value = selector.partition("=")
            if field != "spec.nodeName":
                self.answer(400, _status(400, "BadRequest", f"field label not supported: {field}"))
                return
            node = value
        if query.get("watch") in ("1", "true"):
            stub._watch(self, namespace, node, int(query.get("resourceVersion") or 0))
            return
        status, body = stub._list(namespace, node, query)
        self.answer(status, body)


def self_signed(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a new certificate for 127.0.0.1, and the CA file (the
    certificate itself) a client trusts it with."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "apiserver.crt", directory / "apiserver.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file
