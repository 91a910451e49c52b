"""Docker HEALTHCHECK: exit 0 only when IMDS answers a token handshake and a metadata read.

Runs with `python3 -I -S` (no site, no env paths) so each probe costs a few milliseconds.
The URL is IMDSMOCK_HEALTHCHECK_URL, else 127.0.0.1 on IMDSMOCK_PORT (default 1338).
"""

import http.client
import os
import sys
import urllib.parse


def main() -> int:
    """Probe IMDS the way an IMDSv2 client does; return the process exit status."""
    port = os.environ.get("IMDSMOCK_PORT", "1338")
    url = os.environ.get("IMDSMOCK_HEALTHCHECK_URL", f"http://127.0.0.1:{port}")
    parts = urllib.parse.urlsplit(url)
    host, port_number = parts.hostname or "127.0.0.1", parts.port or 80
    try:
        conn = http.client.HTTPConnection(host, port_number, timeout=1.5)
        conn.request(
            "PUT", "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        )
        put = conn.getresponse()
        token = put.read().decode()
        conn.close()
        headers = {"X-aws-ec2-metadata-token": token} if put.status == 200 else {}
        conn = http.client.HTTPConnection(host, port_number, timeout=1.5)
        conn.request("GET", "/latest/meta-data/instance-id", headers=headers)
        get = conn.getresponse()
        body = get.read()
        conn.close()
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}")
        return 1
    if get.status != 200 or not body:
        print(f"unhealthy: {url}/latest/meta-data/instance-id answered {get.status}")
        return 1
    print(f"healthy: instance-id {body.decode(errors='replace')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
