"""Single writer per API key: a second trading process on the same key would race nonces and decisions.

SQLite: an exclusive ``flock`` on a lock file beside the event store (released by the kernel if the process dies).
PostgreSQL: a session-level advisory lock held on a dedicated connection (released when that session ends).
The key itself is never stored: locks are named by a hash of it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from execledger.infrastructure.eventstore import parse_postgres_url
from execledger.infrastructure.settings import Settings


class WriterLockHeld(RuntimeError):
    """Another process already trades with this API key on this ledger."""


def key_fingerprint(api_key: str | None) -> str:
    """A short, non-reversible name for the key (the built-in simulator has no key)."""
    return hashlib.sha256((api_key or "simulator").encode()).hexdigest()[:16]


class WriterLock:
    def __init__(self, settings: Settings, api_key: str | None):
        self.settings = settings
        self.name = f"execledger-writer-{key_fingerprint(api_key)}"
        self._fd: int | None = None
        self._conn = None

    def acquire(self) -> WriterLock:
        holder = f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
        if self.settings.database_url is None:
            self._acquire_file(holder)
        else:
            self._acquire_postgres()
        return self

    def _acquire_file(self, holder: str) -> None:
        path = Path(self.settings.data_dir) / f"{self.name}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = path.read_text().strip() or "another process"
            os.close(fd)
            raise WriterLockHeld(
                f"another execledger instance ({other}) is trading with this API key on "
                f"{self.settings.data_dir}; refusing to start a second writer"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, holder.encode())
        self._fd = fd

    def _acquire_postgres(self) -> None:
        import psycopg

        t = parse_postgres_url(self.settings.database_url.get_secret_value())
        conn = psycopg.connect(
            host=t.host,
            port=t.port,
            dbname=t.dbname,
            user=t.user,
            password=t.password,
            autocommit=True,
            connect_timeout=5,
            application_name=self.name,
        )
        lock_id = int.from_bytes(hashlib.sha256(f"{t.schema}:{self.name}".encode()).digest()[:8], "big", signed=True)
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_id,)).fetchone()[0]:
            holder = conn.execute(
                "SELECT a.client_addr, a.pid, a.backend_start FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' "
                "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s::bigint & x'FFFFFFFFFFFFFFFF'::bigint",
                (lock_id,),
            ).fetchone()
            conn.close()
            who = f"backend pid {holder[1]} since {holder[2]:%Y-%m-%dT%H:%M:%SZ}" if holder else "another session"
            raise WriterLockHeld(
                f"another execledger instance ({who}) holds the writer lock for this API key in "
                f"the database; refusing to start a second writer"
            )
        self._conn = conn

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            self._conn.close()  # ending the session releases the advisory lock
            self._conn = None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
