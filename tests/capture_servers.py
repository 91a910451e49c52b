"""Servers and a walker for the capture tests: a stub answering as AWS's Go mock does, stubs
that misbehave, and an independent crawl of a tree to compare two servers by.

The stub is another system's server (AWS's amazon-ec2-metadata-mock, v1.13), so a small
``http.server`` in a thread stands in for it, with its wire quirks: JSON leaves served as
``application/json``, tab-indented with ``"k": "v"``; the top listings ending in a newline;
``public-keys/`` listing ``0/`` (not ``0=name``); ``iam/`` naming ``security-credentials``
twice; an identity document whose account, zone, address and AMI disagree with meta-data;
no ``rsa2048``; spot and event notices from the start; tokens handed out, never checked.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

JSON = "application/json"
TEXT = "text/plain"
OCTET = "application/octet-stream"


def tabbed(pairs: list[tuple[str, str | None]]) -> bytes:
    """A JSON object as the Go mock writes it: tab-indented, ``"k": "v"``."""
    rows = [f'\t"{k}": ' + ("null" if v is None else f'"{v}"') for k, v in pairs]
    return ("{\n" + ",\n".join(rows) + "\n}").encode()


MAC = "0e:49:61:0f:c3:11"
ENI = f"meta-data/network/interfaces/macs/{MAC}/"
AEMM_LEAVES: dict[str, tuple[bytes, str]] = {
    "meta-data/ami-id": (b"ami-0a887e401f7654935", TEXT),
    "meta-data/ami-launch-index": (b"0", TEXT),
    "meta-data/ami-manifest-path": (b"(unknown)", TEXT),
    "meta-data/block-device-mapping/ami": (b"/dev/xvda", TEXT),
    "meta-data/block-device-mapping/ebs0": (b"sdb", TEXT),
    "meta-data/block-device-mapping/root": (b"/dev/xvda", TEXT),
    "meta-data/elastic-inference/associations/eia-bfa21c7904f64a82a21b9f4540169ce1": (
        b'{"version_2018_04_12":{"elastic-inference-accelerator-id":"eia-bfa21c79"}}',
        TEXT,
    ),
    "meta-data/events/maintenance/scheduled": (
        b'[\n\t{\n\t\t"NotBefore": "1 Jan 2020 01:03:47 GMT",\n\t\t"Code": "system-reboot"\n\t}\n]',
        JSON,
    ),
    "meta-data/hostname": (b"ip-172-16-34-43.ec2.internal", TEXT),
    "meta-data/iam/info": (
        tabbed(
            [
                ("Code", "Success"),
                ("LastUpdated", "2020-04-02T18:50:40Z"),
                ("InstanceProfileArn", "arn:aws:iam::896453262835:instance-profile/baskinc-role"),
                ("InstanceProfileId", "AIPA5BOGHHXZELSK34VU4"),
            ]
        ),
        JSON,
    ),
    "meta-data/iam/security-credentials/baskinc-role": (
        tabbed([("Code", "Success"), ("AccessKeyId", "12345678901"), ("Token", "secret")]),
        JSON,
    ),
    "meta-data/instance-action": (b"none", TEXT),
    "meta-data/instance-id": (b"i-1234567890abcdef0", TEXT),
    "meta-data/instance-life-cycle": (b"on-demand", TEXT),
    "meta-data/instance-type": (b"m4.xlarge", TEXT),
    "meta-data/kernel-id": (b"aki-5c21674b", TEXT),
    "meta-data/local-hostname": (b"ip-172-16-34-43.ec2.internal", TEXT),
    "meta-data/local-ipv4": (b"172.16.34.43", TEXT),
    "meta-data/mac": (MAC.encode(), TEXT),
    ENI + "device-number": (b"0", TEXT),
    ENI + "interface-id": (b"eni-0f95d3625f5c521cc", TEXT),
    ENI + "ipv4-associations/192.0.2.54": (b"172.16.34.43", TEXT),
    ENI + "local-hostname": (b"ip-172-16-34-43.ec2.internal", TEXT),
    ENI + "local-ipv4s": (b"172.16.34.43", TEXT),
    ENI + "mac": (MAC.encode(), TEXT),
    ENI + "network-card-index": (b"0", TEXT),
    ENI + "owner-id": (b"515336597381", TEXT),
    ENI + "public-hostname": (b"ec2-192-0-2-54.compute-1.amazonaws.com", TEXT),
    ENI + "public-ipv4s": (b"192.0.2.54", TEXT),
    ENI + "security-group-ids": (b"sg-0b07f8f6cb485d4df", TEXT),
    ENI + "security-groups": (b"ura-launch-wizard-harry-1", TEXT),
    ENI + "subnet-id": (b"subnet-0ac62554", TEXT),
    ENI + "subnet-ipv4-cidr-block": (b"192.0.2.0/24", TEXT),
    ENI + "vpc-id": (b"vpc-d295a6a7", TEXT),
    ENI + "vpc-ipv4-cidr-block": (b"192.0.2.0/24", TEXT),
    ENI + "vpc-ipv4-cidr-blocks": (b"192.0.2.0/24", TEXT),
    "meta-data/placement/availability-zone": (b"us-east-1a", TEXT),
    "meta-data/placement/availability-zone-id": (b"use1-az4", TEXT),
    "meta-data/placement/region": (b"us-east-1", TEXT),
    "meta-data/product-codes": (b"3iplms73etrdhxdepv72l6ywj", TEXT),
    "meta-data/public-hostname": (b"ec2-192-0-2-54.compute-1.amazonaws.com", TEXT),
    "meta-data/public-ipv4": (b"192.0.2.54", TEXT),
    "meta-data/public-keys/0/openssh-key": (b"ssh-rsa AAAAB3NzaC1yc2E my-public-key", TEXT),
    "meta-data/ramdisk-id": (b"ari-01bb5768", TEXT),
    "meta-data/reservation-id": (b"r-046cb3eca3e201d2f", TEXT),
    "meta-data/security-groups": (b"ura-launch-wizard-harry-1", TEXT),
    "meta-data/services/domain": (b"amazonaws.com", TEXT),
    "meta-data/services/partition": (b"aws", TEXT),
    "meta-data/spot/instance-action": (tabbed([("action", "terminate")]), JSON),
    "meta-data/tags/instance/Name": (b"test-instance", TEXT),
    "meta-data/tags/instance/Test": (b"test-tag", TEXT),
    "dynamic/instance-identity/document": (
        tabbed(
            [
                ("accountId", "0123456789"),
                ("imageId", "ami-0b69ea66ff7391e80"),
                ("availabilityZone", "us-east-1f"),
                ("ramdiskId", None),
                ("kernelId", None),
                ("pendingTime", "2019-10-31T07:02:24Z"),
                ("architecture", "x86_64"),
                ("region", "us-east-1"),
                ("version", "2017-09-30"),
                ("privateIp", "10.0.7.10"),
                ("billingProducts", None),
                ("instanceId", "i-1234567890abcdef0"),
                ("devpayProductCodes", None),
                ("instanceType", "m4.xlarge"),
            ]
        ),
        JSON,
    ),
    "dynamic/instance-identity/pkcs7": (b"PKCS7", TEXT),
    "dynamic/instance-identity/signature": (b"SIGNATURE", TEXT),
    "dynamic/fws/instance-monitoring": (b"disabled", TEXT),
    "user-data": (b"1234,john,reboot,true", OCTET),
}
"""The Go mock's default tree, cut down but with each of its quirks."""

# Listings the Go mock writes otherwise than as derived from its leaves.
AEMM_LISTINGS = {
    "": b"dynamic\nmeta-data\nuser-data\n",  # the top listings end with a newline
    "meta-data/iam": b"info\nsecurity-credentials\nsecurity-credentials/",  # twice
    "meta-data/public-keys": b"0/",  # not 0=name
}
GATED_IN_AEMM = ("meta-data/spot/instance-action", "meta-data/events/maintenance/scheduled")


def derived_listings(leaves: Mapping[str, object]) -> dict[str, bytes]:
    """Each directory's entries, sub-directories with a trailing ``/``."""
    dirs: dict[str, set[str]] = {"": set()}
    for path in leaves:
        parts = path.split("/")
        for depth in range(len(parts)):
            parent = "/".join(parts[:depth])
            name = parts[depth] + ("/" if depth < len(parts) - 1 else "")
            dirs.setdefault(parent, set()).add(name)
    return {d: "\n".join(sorted(names)).encode() for d, names in dirs.items()}


@dataclass
class StubIMDS:
    """What a stub serves and how it answers the token request."""

    leaves: dict[str, tuple[bytes, str]] = field(default_factory=lambda: dict(AEMM_LEAVES))
    listings: dict[str, bytes] = field(default_factory=dict)
    token_status: int = 200
    """200: tokens handed out and never checked (the Go mock's default mode)."""
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    answer: Callable[[StubIMDS, str, str], tuple[int, bytes, str] | None] | None = None
    """A hook answering a request before the tree does (None: the tree answers)."""

    def respond(self, method: str, path: str) -> tuple[int, bytes, str]:
        if self.answer is not None:
            hooked = self.answer(self, method, path)
            if hooked is not None:
                return hooked
        if path == "/latest/api/token":
            if method != "PUT" or self.token_status != 200:
                return self.token_status, b"", TEXT
            return 200, b"dG9rZW4tb2YtdGhlLWdvLW1vY2stMzItYnl0ZXMtbG9uZw==", TEXT
        rel = path.removeprefix("/latest").strip("/")
        if rel in self.leaves:
            body, kind = self.leaves[rel]
            return 200, body, kind
        listings = {**derived_listings(self.leaves), **AEMM_LISTINGS, **self.listings}
        if rel in listings:
            body = listings[rel]
            if rel == "meta-data":
                body += b"\n"
            return 200, body, TEXT
        return 404, b"<?xml version='1.0' encoding='iso-8859-1'?>404 - Not Found", TEXT


@contextlib.contextmanager
def serve_stub(stub: StubIMDS) -> Iterator[str]:
    """Serve ``stub`` on 127.0.0.1 (a free port) in a thread; its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _any(self) -> None:
            stub.requests.append((self.command, self.path, dict(self.headers.items())))
            status, body, kind = stub.respond(self.command, self.path)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = _any

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A port that takes connections (the kernel's backlog) and never answers; its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@contextlib.contextmanager
def raw_server(answer: bytes, *, trickle: bool = False) -> Iterator[str]:
    """A server writing ``answer`` to each connection (then, with ``trickle``, a byte every
    0.2 s for two seconds) before closing it; its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(answer)
                for _ in range(10 if trickle else 0):
                    if done.wait(0.2):
                        break
                    conn.sendall(b"x")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        thread.join(5)
        listener.close()


Tree = dict[str, tuple[int, bytes, str]]


def crawl(port: int, *, source: str | None = None) -> Tree:
    """Every listing and leaf under ``/latest/`` of the IMDS on 127.0.0.1:``port``, with an
    IMDSv2 token: request path -> status, body, content type."""

    def request(method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes, str]:
        address = (source, 0) if source else None
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=address)
        try:
            conn.request(method, path, headers=headers)
            r = conn.getresponse()
            return r.status, r.read(), r.getheader("Content-Type") or ""
        finally:
            conn.close()

    status, token, _ = request(
        "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    )
    assert status == 200
    headers = {"X-aws-ec2-metadata-token": token.decode()}
    found: Tree = {}
    todo = ["/latest/"]
    while todo:
        path = todo.pop()
        found[path] = answer = request("GET", path, headers)
        if not path.endswith("/") or answer[0] != 200:
            continue
        for line in answer[1].decode().split("\n"):
            entry = line + "/" if path == "/latest/" and line in ("meta-data", "dynamic") else line
            if "=" in entry:
                entry = entry.split("=", 1)[0] + "/"  # "0=name" names the directory "0/"
            todo.append(path + entry)
    return found
