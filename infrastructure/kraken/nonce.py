"""A nonce that only grows per API key, even across restarts and between processes (REFERENCE.md section 1).

Kraken rejects a nonce that is not greater than the last one it accepted for the key, and a nonce too high
poisons the key for good. So: microsecond wall-clock time, but never less than the last issued value + 1, which is
persisted (fsync'd) in the data dir *before* the nonce is used. A restart with a clock set back therefore still
continues upwards. The file is held under an exclusive ``flock`` while a value is issued, so two processes
sharing a key never issue the same nonce; they can still *arrive* out of order at Kraken, which is why the REST
client also serialises its signed calls and why one key per process is the recommended deployment.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path


def nonce_path(data_dir: Path, api_key: str) -> Path:
    """Where the last nonce of ``api_key`` lives: named by a hash, so the key itself is not on disk."""
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    return Path(data_dir) / f"kraken-nonce-{digest}"


def _microseconds() -> int:
    return time.time_ns() // 1_000


class PersistentNonce:
    """Issues strictly increasing nonces for one API key. ``next()`` is synchronous and quick (no awaits inside),
    so within one event loop the issue order is the call order."""

    def __init__(self, path: Path, clock: Callable[[], int] = _microseconds):
        self.path = Path(path)
        self._clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def next(self) -> int:
        """Reserve and persist the next nonce: max(last + 1, now in microseconds)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.read(fd, 64).decode().strip()
            last = int(raw) if raw.isdigit() else 0
            value = max(last + 1, self._clock())
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, str(value).encode())
            os.fsync(fd)  # written before use: a crash right after sending cannot lead to reuse
            return value
        finally:
            os.close(fd)  # also releases the flock

    def __repr__(self) -> str:
        return f"PersistentNonce({str(self.path)!r})"
