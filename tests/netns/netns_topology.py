"""Topologies of network namespaces and veth pairs that tests build and always remove.

Every namespace, veth and ``/etc/netns/NAME`` file made here is named with a random
per-test prefix and deleted in teardown; nothing touches the machine's own interfaces,
addresses, routes or firewall rules.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from mockprocess import IMDSMOCK

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"

#: Run inside a namespace: print how boto3 resolved credentials, as JSON.
BOTO3_PROBE = """
import json, boto3
creds = boto3.session.Session().get_credentials()
print(json.dumps(None if creds is None else
                 {"method": creds.method, "access_key": creds.get_frozen_credentials().access_key}))
"""

#: Run inside a namespace: try the IMDSv2 token PUT with a 1 s timeout.
TOKEN_PROBE = """
import urllib.request
req = urllib.request.Request("http://169.254.169.254/latest/api/token", method="PUT",
                             headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
try:
    urllib.request.urlopen(req, timeout=1).read()
    print("token")
except TimeoutError:
    print("timeout")
"""


def why_not_netns() -> str | None:
    """Why namespaces cannot be made here, or ``None`` when they can."""
    if sys.platform != "linux":
        return "network namespaces exist only on Linux"
    if os.geteuid() != 0:
        return "needs root to create network namespaces (run the suite as root)"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    probe = f"imchk{secrets.token_hex(3)}"
    made = subprocess.run(
        ["ip", "netns", "add", probe], check=False, capture_output=True, text=True
    )
    if made.returncode != 0:
        return f"ip netns add failed here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return None


class Topology:
    """Namespaces, veths and processes of one test; :meth:`close` removes them all."""

    def __init__(self, tmp: Path) -> None:
        self.prefix = f"im{secrets.token_hex(3)}"
        self.tmp = tmp
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen[str]] = []
        self.links = 0
        self.env = client_env(tmp)

    def ns(self, role: str) -> str:
        """A fresh namespace named ``<prefix><role>`` with ``lo`` up."""
        name = f"{self.prefix}{role}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.namespaces.append(name)
        self.sh(name, "ip", "link", "set", "lo", "up")
        return name

    def link(self, a: str, a_addr: str | None, b: str, b_addr: str | None) -> tuple[str, str]:
        """A veth pair created directly inside namespaces ``a`` and ``b``, both ends up."""
        self.links += 1
        ifa, ifb = f"{self.prefix}{self.links}a", f"{self.prefix}{self.links}b"
        subprocess.run(
            ["ip", "link", "add", ifa, "netns", a, "type", "veth", "peer", ifb, "netns", b],
            check=True,
        )
        for ns, ifname, addr in ((a, ifa, a_addr), (b, ifb, b_addr)):
            if addr:
                self.sh(ns, "ip", "addr", "add", addr, "dev", ifname)
            self.sh(ns, "ip", "link", "set", ifname, "up")
        return ifa, ifb

    def etc(self, ns: str, name: str, text: str) -> None:
        """Write ``/etc/netns/NS/NAME``: ``ip netns exec`` bind-mounts it over ``/etc/NAME``."""
        folder = Path("/etc/netns") / ns
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="ascii")

    def sh(
        self, ns: str, *argv: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``ns`` and capture its output."""
        done = subprocess.run(
            ["ip", "netns", "exec", ns, *argv],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{argv} failed ({done.returncode}): {done.stderr}")
        return done

    def py(self, ns: str, *args: str, **kw: float | bool) -> subprocess.CompletedProcess[str]:
        """Run this interpreter inside ``ns`` (``-c CODE`` or ``-m MODULE ...``)."""
        return self.sh(ns, sys.executable, *args, **kw)  # type: ignore[arg-type]

    def route(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``imdsmock route ARGS`` inside ``ns``, through the real ``imdsmock`` CLI."""
        return self.sh(ns, *IMDSMOCK.argv, "route", *args, check=check)

    def spawn(self, ns: str, argv: Sequence[str]) -> subprocess.Popen[str]:
        """Start a background process in ``ns``; it is stopped in teardown."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        self.processes.append(proc)
        return proc

    def mock(self, ns: str, host: str, port: int, *extra: str) -> subprocess.Popen[str]:
        """Start the real mock (``python -m imdsmock``) in ``ns`` and wait until it answers."""
        proc = self.spawn(ns, [*IMDSMOCK.argv, "--host", host, "--port", str(port), *extra])
        url_host = f"[{host}]" if ":" in host else host
        url = f"http://{url_host}:{port}/latest/meta-data/instance-id"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"mock exited: {proc.communicate()[1]}")
            got = self.sh(ns, "curl", "-s", "-m", "1", url, check=False)
            if got.returncode == 0:
                return proc
            time.sleep(0.1)
        raise AssertionError(f"mock did not answer on {url}")

    def boto3_credentials(self, ns: str) -> dict[str, str] | None:
        """How boto3 in ``ns`` resolves credentials (``None``: it found none)."""
        out = self.py(ns, "-c", BOTO3_PROBE).stdout
        result: dict[str, str] | None = json.loads(out)
        return result

    def close(self) -> None:
        """Stop processes, delete namespaces (their veths go with them) and /etc/netns files."""
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.communicate(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
        for ns in reversed(self.namespaces):
            pids = subprocess.run(
                ["ip", "netns", "pids", ns], check=False, capture_output=True, text=True
            )
            for pid in pids.stdout.split():
                os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], check=False)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)


def client_env(tmp: Path) -> dict[str, str]:
    """Environment for processes in namespaces: no AWS config, so boto3 must ask IMDS.

    ``AWS_*`` variables are dropped, config and credential files point at empty files, the
    IMDS timeout is 1 s with one attempt (botocore's defaults), ``route up`` keeps its
    record in the test's temporary directory, and ``PYTHONPATH`` finds this checkout's
    ``src`` (after any inherited entries).
    """
    empty = tmp / "empty-aws-config"
    empty.write_text("", encoding="ascii")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IMDSMOCK_"))}
    env.update(
        AWS_CONFIG_FILE=str(empty),
        AWS_SHARED_CREDENTIALS_FILE=str(empty),
        AWS_METADATA_SERVICE_TIMEOUT="1",
        AWS_METADATA_SERVICE_NUM_ATTEMPTS="1",
        HOME=str(tmp),
        IMDSMOCK_RUN_DIR=str(tmp / "run"),
        PYTHONPATH=os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(SRC)) if p),
    )
    return env
