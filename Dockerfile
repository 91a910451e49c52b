# The imdsmock image: the IMDS server as a non-root user, configured by env and a mounted file,
# logging to stdout, healthy only while IMDS answers. It doubles as the routing sidecar
# (`imdsmock route sidecar`, run as root with NET_ADMIN) and as the node-mode agent's routing
# (`imdsmock route node`, as root with only NET_ADMIN and NET_RAW in the node's network
# namespace; `imdsmock route node --down` is its preStop), so it carries iptables (with the
# -restore tools) and iproute2.
#   docker build -t imdsmock .
#   docker run --rm -p 127.0.0.1:1338:1338 imdsmock
# Offline builds: when docker/wheels/ holds wheels (scripts/build-base-image puts them there),
# pip installs only from them; otherwise from PyPI.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
LABEL imdsmock.stage=build
COPY docker/wheels/ /wheels/
COPY pyproject.toml README.md /src/
COPY src/ /src/src/
RUN set -eu; \
    offline=""; if ls /wheels/*.whl >/dev/null 2>&1; then offline="--no-index"; fi; \
    python3 -m venv /opt/imdsmock; \
    /opt/imdsmock/bin/pip install --no-cache-dir --disable-pip-version-check -q \
        $offline --find-links /wheels /src; \
    /opt/imdsmock/bin/pip uninstall -y -q pip setuptools 2>/dev/null || true; \
    find /opt/imdsmock -name __pycache__ -prune -exec rm -rf {} +; \
    route=/src/src/imdsmock/netsetup/imdsmock-route.sh; \
    if [ -f "$route" ]; then install -m 0755 "$route" /opt/imdsmock/bin/imdsmock-route; fi

FROM ${BASE_IMAGE}
LABEL imdsmock.image=imdsmock
# iptables and ip for the sidecar role; the public slim image lacks them, the offline base
# has them.
RUN set -eu; \
    if ! command -v iptables >/dev/null || ! command -v ip >/dev/null; then \
        apt-get update -qq; \
        apt-get install -y -qq --no-install-recommends iptables iproute2 >/dev/null; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin imdsmock
COPY --from=build /opt/imdsmock /opt/imdsmock
COPY docker/healthcheck.py /opt/imdsmock/healthcheck.py
# /opt/imdsmock/bin/imdsmock-route is the POSIX shell routing wrapper, for app images
# without Python:  COPY --from=imdsmock /opt/imdsmock/bin/imdsmock-route /usr/local/bin/
ENV PATH=/opt/imdsmock/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    IMDSMOCK_HOST=0.0.0.0 \
    IMDSMOCK_PORT=1338
USER imdsmock
EXPOSE 1338 1339
# Healthy only when IMDS answers a token handshake and a metadata read (so it holds in
# required mode too). Docker 20.10 has no start-interval, so the interval sets time to healthy:
# one probe a second (a few milliseconds of CPU) makes `depends_on: service_healthy` quick.
HEALTHCHECK --interval=1s --timeout=2s --start-period=30s --retries=3 \
    CMD ["python3", "-I", "-S", "/opt/imdsmock/healthcheck.py"]
# Everything the server prints goes to stdout (it writes its log lines to stderr, as a CLI
# does); `exec` keeps the server as PID 1, so SIGTERM reaches it directly.
ENTRYPOINT ["/bin/sh", "-c", "exec imdsmock \"$@\" 2>&1", "imdsmock"]
