"""Watch IMDS for a spot interruption notice, as a node termination handler does.

Polls `meta-data/spot/instance-action` over IMDSv2 every second (AWS recommends every five)
and prints one line when the notice appears: 404 means no interruption is scheduled.
The endpoint is AWS_EC2_METADATA_SERVICE_ENDPOINT, else the real address 169.254.169.254.
"""

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

ENDPOINT = os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254").rstrip("/")


def fetch(path: str, token: str) -> tuple[int, str]:
    """GET one IMDS path with a session token; return the status and body."""
    request = urllib.request.Request(
        f"{ENDPOINT}/latest/{path}", headers={"X-aws-ec2-metadata-token": token}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def new_token() -> str:
    """Get an IMDSv2 session token (six hours, like the SDKs ask for)."""
    request = urllib.request.Request(
        f"{ENDPOINT}/latest/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
    )
    with urllib.request.urlopen(request, timeout=2) as response:
        return response.read().decode()


def main() -> None:
    """Poll until SIGTERM; report each change of the spot notice on stdout."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"spot-watcher: polling {ENDPOINT}/latest/meta-data/spot/instance-action", flush=True)
    seen = None
    token = ""
    while True:
        try:
            if not token:
                token = new_token()
            status, body = fetch("meta-data/spot/instance-action", token)
            if status == 401:
                token = ""
                continue
            if status == 200 and body != seen:
                notice = json.loads(body)
                print(
                    f"spot-watcher: interruption notice action={notice['action']} "
                    f"time={notice['time']}",
                    flush=True,
                )
            seen = body if status == 200 else None
        except (OSError, ValueError, KeyError) as exc:
            token = ""
            print(f"spot-watcher: IMDS not reachable yet: {exc}", flush=True)
        time.sleep(1)


if __name__ == "__main__":
    main()
