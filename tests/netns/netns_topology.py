"""Topologies of network namespaces and veth pairs that tests build and always remove.

Every namespace, veth and ``/etc/netns/NAME`` file made here is named with a random
per-test prefix and deleted in teardown; nothing touches the machine's own interfaces,
addresses, routes or firewall rules.
"""

from __future__ import annotations

import json
import os
import re
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
#: ``ip`` by full path, so a PATH of wrapped tools never wraps ``ip netns exec`` itself.
IP = shutil.which("ip") or "ip"

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
        subprocess.run([IP, "netns", "add", name], check=True)
        self.namespaces.append(name)
        self.sh(name, "ip", "link", "set", "lo", "up")
        return name

    def link(self, a: str, a_addr: str | None, b: str, b_addr: str | None) -> tuple[str, str]:
        """A veth pair created directly inside namespaces ``a`` and ``b``, both ends up."""
        self.links += 1
        ifa, ifb = f"{self.prefix}{self.links}a", f"{self.prefix}{self.links}b"
        subprocess.run(
            [IP, "link", "add", ifa, "netns", a, "type", "veth", "peer", ifb, "netns", b],
            check=True,
        )
        for ns, ifname, addr in ((a, ifa, a_addr), (b, ifb, b_addr)):
            if addr:
                self.sh(ns, "ip", "addr", "add", addr, "dev", ifname)
            self.sh(ns, "ip", "link", "set", ifname, "up")
        return ifa, ifb

    def settle(self, ns: str, timeout: float = 10) -> None:
        """Wait until no IPv6 address of ``ns`` is still tentative (duplicate address
        detection adds addresses and local routes for a while after a link comes up)."""
        deadline = time.monotonic() + timeout
        while "tentative" in self.sh(ns, "ip", "-6", "addr").stdout:
            if time.monotonic() > deadline:
                raise AssertionError(f"addresses in {ns} still tentative after {timeout} s")
            time.sleep(0.1)

    def etc(self, ns: str, name: str, text: str) -> None:
        """Write ``/etc/netns/NS/NAME``: ``ip netns exec`` bind-mounts it over ``/etc/NAME``."""
        folder = Path("/etc/netns") / ns
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="ascii")

    def sh(
        self,
        ns: str,
        *argv: str,
        check: bool = True,
        timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``ns`` and capture its output (``env``: instead of ours)."""
        done = subprocess.run(
            [IP, "netns", "exec", ns, *argv],
            capture_output=True,
            text=True,
            env=self.env if env is None else env,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{argv} failed ({done.returncode}): {done.stderr}")
        return done

    def py(self, ns: str, *args: str, **kw: float | bool) -> subprocess.CompletedProcess[str]:
        """Run this interpreter inside ``ns`` (``-c CODE`` or ``-m MODULE ...``)."""
        return self.sh(ns, sys.executable, *args, **kw)  # type: ignore[arg-type]

    def route(
        self, ns: str, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``imdsmock route ARGS`` inside ``ns``, through the real ``imdsmock`` CLI."""
        return self.sh(ns, *IMDSMOCK.argv, "route", *args, check=check, env=env)

    def spawn(
        self, ns: str, argv: Sequence[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Start a background process in ``ns``; it is stopped in teardown.

        ``ip netns exec`` execs the command, so the process is the command itself.
        """
        proc = subprocess.Popen(
            [IP, "netns", "exec", ns, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env if env is None else env,
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
                [IP, "netns", "pids", ns], check=False, capture_output=True, text=True
            )
            for pid in pids.stdout.split():
                os.kill(int(pid), signal.SIGKILL)
            subprocess.run([IP, "netns", "del", ns], check=False)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)


def snapshot(topo: Topology, ns: str) -> str:
    """Everything routing could touch: addresses, routes, nftables (with iptables-nft) and
    the legacy nat rules of both families.

    Packet counters are dropped; they move with traffic, not with rule changes. Legacy
    tables are read with ``-S``, which loads an empty table if absent, so "absent" and
    "empty" compare equal there (the kernel cannot unload a legacy table per namespace).
    """
    parts = [
        topo.sh(ns, "ip", "-o", "addr", "show").stdout,
        topo.sh(ns, "ip", "route", "show", "table", "all").stdout,
        topo.sh(ns, "nft", "list", "ruleset").stdout,
        topo.sh(ns, "iptables-legacy", "-w", "-t", "nat", "-S").stdout,
        topo.sh(ns, "ip6tables-legacy", "-w", "-t", "nat", "-S").stdout,
    ]
    text = "\n".join(parts)
    text = re.sub(r"^#.*$", "", text, flags=re.MULTILINE)
    text = re.sub(r"\[\d+:\d+\]", "[counters]", text)
    return re.sub(r"counter packets \d+ bytes \d+", "counter", text)


def existing_rules(topo: Topology, ns: str, backend: str) -> None:
    """Rules and an alias a workstation already has (Docker-like), which must survive."""
    if backend == "nft":
        topo.sh(ns, "nft", "add", "table", "ip", "mine")
        topo.sh(
            ns, "nft", "add", "chain", "ip", "mine", "out", "{ type nat hook output priority 0; }"
        )
        topo.sh(ns, "nft", "add", "rule", "ip", "mine", "out", "ip daddr 10.99.0.0/16 return")
    else:
        program = "iptables-legacy" if backend == "iptables-legacy" else "iptables-nft"
        topo.sh(
            ns, program, "-w", "-t", "nat", "-A", "OUTPUT", "-d", "10.99.0.0/16", "-j", "RETURN"
        )
    topo.sh(ns, "ip", "addr", "add", "169.254.170.2/32", "dev", "lo")


#: Every tool a plan runs; :class:`FaultyTools` wraps each of them.
WRAPPED = (
    "ip",
    "iptables",
    "ip6tables",
    "iptables-nft",
    "ip6tables-nft",
    "iptables-legacy",
    "ip6tables-legacy",
    "iptables-restore",
    "iptables-nft-restore",
    "iptables-legacy-restore",
    "nft",
)

WRAPPER = """#!/bin/sh
# Counts every call of the wrapped tools; call FAIL fails, call AFTER runs and then fails,
# call SLEEP first sleeps (to be signalled); every other call runs the real tool.
d={folder}
n=$(( $(cat "$d/count") + 1 ))
echo "$n" > "$d/count"
echo "$n {name} $*" >> "$d/calls"
if [ "$n" = "$(cat "$d/fail")" ]; then
  echo "{name}: injected failure at call $n" >&2
  exit 1
fi
if [ "$n" = "$(cat "$d/sleep")" ]; then
  echo $$ > "$d/sleeping.tmp" && mv "$d/sleeping.tmp" "$d/sleeping"
  sleep 60
fi
if [ "$n" = "$(cat "$d/after")" ]; then
  {real} "$@"
  echo "{name}: injected failure after running call $n" >&2
  exit 1
fi
exec {real} "$@"
"""


class FaultyTools:
    """A directory of ``ip``, ``iptables``-family and ``nft`` wrappers to put first on PATH.

    Each call is counted across all of them; :meth:`arm` makes call N fail as a real tool
    fails (exit status 1, a line on stderr, nothing changed), run and then fail, or sleep so
    a test can signal the process mid-plan.
    """

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        folder.mkdir()
        self.folder = folder
        for name in WRAPPED:
            real = shutil.which(name)
            assert real is not None, f"{name} is needed for the routing tests"
            wrapper = folder / name
            wrapper.write_text(WRAPPER.format(folder=folder, name=name, real=real))
            wrapper.chmod(0o755)
        self.env = {**env, "PATH": f"{folder}{os.pathsep}{env['PATH']}"}
        self.arm()

    def arm(self, *, fail: int = 0, after: int = 0, sleep: int = 0) -> None:
        """Restart the count; call ``fail`` fails, ``after`` runs then fails, ``sleep``
        sleeps (0: none)."""
        for name, value in (("count", 0), ("fail", fail), ("after", after), ("sleep", sleep)):
            (self.folder / name).write_text(f"{value}\n")
        (self.folder / "calls").write_text("")
        (self.folder / "sleeping").unlink(missing_ok=True)

    @property
    def calls(self) -> list[str]:
        """The calls since :meth:`arm`, one ``N tool args`` line each."""
        return (self.folder / "calls").read_text().splitlines()

    def wait_until_sleeping(self, timeout: float = 15) -> int:
        """Wait until the armed call is asleep; its process id (that of its group too)."""
        deadline = time.monotonic() + timeout
        while not (self.folder / "sleeping").exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"no call slept; calls: {self.calls}")
            time.sleep(0.02)
        return int((self.folder / "sleeping").read_text())

    def changing_calls(self) -> list[int]:
        """The numbers of the calls since :meth:`arm` that change something (not reads)."""
        verbs = {"add", "del", "delete", "-N", "-A", "-I", "-D", "-F", "-X", "-f", "--noflush"}
        return [int(line.split()[0]) for line in self.calls if verbs & set(line.split()[2:])]


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
