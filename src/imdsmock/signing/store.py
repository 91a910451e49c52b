"""Where the signer comes from: the configured key files, or a pair cached for the user.

A generated pair is kept in the user's cache directory, so that ``imdsmock cert`` in
another process prints the certificate of the key a running server signs with. The cache
holds the key (PKCS#8 PEM, mode 0600) and its certificate (PEM) for people and other
tools, and beside them ``identity.json``: the same pair as hexadecimal numbers and base64,
with a digest of the two PEM files. A start that finds the digest matching reads only
that (``json``, ``base64``), so it parses no PEM or DER and never imports
``cryptography``. Anything else (no cache, PEM files changed by someone, a damaged
file) goes through ``keys``, which reads the PEM files with ``cryptography`` or makes a
new pair, and writes the numbers again.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from imdsmock.config.schema import SigningConfig
from imdsmock.errors import ConfigError
from imdsmock.signing.rsakey import RSAKey
from imdsmock.signing.signer import Certificate, Signer

__all__ = ["default_dir", "load_signer"]

KEY_FILE = "identity-key.pem"
CERT_FILE = "identity-cert.pem"
NUMBERS_FILE = "identity.json"


def default_dir() -> Path:
    """Where generated keys are kept: ``$XDG_CACHE_HOME/imdsmock`` or ``~/.cache/imdsmock``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imdsmock"


def load_signer(cfg: SigningConfig) -> Signer:
    """Load the configured key and certificate, or the cached generated pair."""
    if cfg.key_file or cfg.cert_file:
        if not (cfg.key_file and cfg.cert_file):
            missing = "signing.cert-file" if cfg.key_file else "signing.key-file"
            raise ConfigError(missing, None, "a file path (key-file and cert-file go together)")
        from imdsmock.signing import keys

        return keys.read_pair(Path(cfg.key_file), Path(cfg.cert_file))
    directory = default_dir()
    # Processes starting together (parallel test workers) would each generate and cache a
    # pair, and a running server could sign with a key whose certificate was overwritten:
    # one at a time, under a lock file, and the others then read the pair it cached.
    with _cache_lock(directory):
        return _cached_signer(directory)


@contextlib.contextmanager
def _cache_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock on the cache directory (none if it cannot be created)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / "identity.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError:
        yield  # read-only home: nothing is cached, so nothing to share
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _cached_signer(directory: Path) -> Signer:
    key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
    try:
        key_pem, cert_pem = key_path.read_bytes(), cert_path.read_bytes()
    except OSError:
        key_pem = cert_pem = b""  # nothing cached yet
    if key_pem:
        signer = _read_numbers(directory / NUMBERS_FILE, _digest(key_pem, cert_pem))
        if signer is not None:
            return signer

    from imdsmock.signing import keys

    try:
        signer = keys.read_pair(key_path, cert_path)
    except ConfigError:
        signer = keys.generate()  # none cached, or not a matching pair: a new one
        key_pem, cert_pem = keys.private_key_pem(signer.key), signer.certificate_pem().encode()
        if not _write(key_path, key_pem, private=True) or not _write(cert_path, cert_pem):
            return signer  # read-only home: the pair lives for this process only
    _write(directory / NUMBERS_FILE, _numbers(signer, _digest(key_pem, cert_pem)), private=True)
    return signer


def _digest(key_pem: bytes, cert_pem: bytes) -> str:
    return hashlib.sha256(key_pem + b"\0" + cert_pem).hexdigest()


def _numbers(signer: Signer, digest: str) -> bytes:
    cert = signer.certificate
    document = {
        "pem-sha256": digest,
        "key": {name: f"{value:x}" for name, value in dataclasses.asdict(signer.key).items()},
        "certificate": base64.b64encode(cert.der).decode(),
        "issuer": base64.b64encode(cert.issuer).decode(),
        "serial": f"{cert.serial:x}",
    }
    return json.dumps(document, indent=1).encode()


def _read_numbers(path: Path, digest: str) -> Signer | None:
    """The cached pair, if ``path`` holds it for PEM files of this ``digest``."""
    try:
        document = json.loads(path.read_bytes())
        if document["pem-sha256"] != digest:
            return None
        key = RSAKey(**{name: int(value, 16) for name, value in document["key"].items()})
        cert = Certificate(
            der=base64.b64decode(document["certificate"], validate=True),
            issuer=base64.b64decode(document["issuer"], validate=True),
            serial=int(document["serial"], 16),
            n=key.n,  # the pair was checked before it was cached
            e=key.e,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # damaged: read the PEM files again
    return Signer(key, cert)


def _write(path: Path, data: bytes, *, private: bool = False) -> bool:
    """Replace ``path`` with ``data`` in one step; ``False`` if the directory is read-only."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        # A private file is created 0600, so it is never readable by others, not even for a moment.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except OSError:
        return False
    return True
