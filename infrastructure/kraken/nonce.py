"""A nonce that only grows per API key, even across restarts and between processes (REFERENCE.md section 1).

Kraken rejects a nonce that is not greater than the last one it accepted for the key, and a nonce too high
poisons the key for good. So: microsecond wall-clock time, but never less than the last issued value + 1, and a
*ceiling* persisted (fsync'd) in the data dir *before* any nonce below it is used. A process reserves a second of
nonces at a time (``reserve_us``): the ceiling on disk is one second ahead of what it issues, so a signed call
costs an fsync about once a second, not every time, and a restart (even with the clock set back) continues above
everything issued. The file is held under an exclusive ``flock`` while a ceiling is taken, so two processes sharing
a key take disjoint ranges and never issue the same nonce; their calls can still *arrive* out of order at Kraken
(then one is refused ``EAPI:Invalid nonce`` and the REST client calls ``invalidate`` so the next nonce is taken
above the other process's ceiling), which is why one key per process is the recommended deployment.
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


RESERVE_US = 1_000_000  # one second of microsecond nonces per fsync


def _microseconds() -> int:
    return time.time_ns() // 1_000


class PersistentNonce:
    """Issues strictly increasing nonces for one API key. ``next()`` is synchronous and quick (no awaits inside),
    so within one event loop the issue order is the call order."""

    def __init__(self, path: Path, clock: Callable[[], int] = _microseconds, reserve_us: int = RESERVE_US):
        self.path = Path(path)
        self._clock = clock
        self.reserve_us = reserve_us
        self._last = 0  # the last nonce issued here
        self._ceiling = 0  # every nonce up to this one is ours: the file says so
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def next(self) -> int:
        """The next nonce: max(last + 1, now in microseconds), within the reserved range (no I/O), else above the
        ceiling on disk, after persisting a new ceiling ``reserve_us`` ahead."""
        value = max(self._last + 1, self._clock())
        if value > self._ceiling:
            value = self._reserve(value)
        self._last = value
        return value

    def invalidate(self) -> None:
        """Kraken refused a nonce (another process on the key went ahead): take the next one above the file."""
        self._ceiling = 0

    def _reserve(self, wanted: int) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.read(fd, 64).decode().strip()
            on_disk = int(raw) if raw.isdigit() else 0
            value = max(wanted, on_disk + 1)
            ceiling = value + self.reserve_us
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, str(ceiling).encode())
            os.fsync(fd)  # written before use: a crash right after sending cannot lead to reuse
            self._ceiling = ceiling
            return value
        finally:
            os.close(fd)  # also releases the flock

    def __repr__(self) -> str:
        return f"PersistentNonce({str(self.path)!r})"
