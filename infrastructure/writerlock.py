"""One writer per ledger: exactly one trading process writes a ledger's orders, whatever API key it trades with.

A second trading process on the same store would race decisions (and, with the same key, nonces). The lock is per
ledger (store), not per key: two processes with different keys on one SQLite data dir or one PostgreSQL schema are
refused just the same.

SQLite: an exclusive ``flock`` on ``execledger-writer.lock`` in the data dir (released by the kernel if the
process dies); the file names the holder. PostgreSQL: a session-level advisory lock, named after the schema, held
on a dedicated connection (released when that session ends).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

from execledger.infrastructure.eventstore import parse_postgres_url
from execledger.infrastructure.settings import Settings

LOCK_NAME = "execledger-writer"


_HOLDER_QUERY = (
    "SELECT a.client_addr, a.pid, a.backend_start FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
    "WHERE l.locktype = 'advisory' AND l.granted "
    "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s::bigint & x'FFFFFFFFFFFFFFFF'::bigint"
)


class WriterLockHeld(RuntimeError):
    """Another trading process already writes this ledger; ``holder`` says which."""

    def __init__(self, message: str, holder: str):
        super().__init__(message)
        self.holder = holder


def holder_description() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"


class WriterLock:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._fd: int | None = None
        self._conn = None

    @property
    def where(self) -> str:
        if self.settings.database_url is None:
            return str(Path(self.settings.data_dir).resolve())
        return parse_postgres_url(self.settings.database_url.get_secret_value()).redacted()

    def acquire(self) -> WriterLock:
        """Take the lock or raise WriterLockHeld naming the holder."""
        if self.settings.database_url is None:
            self._acquire_file()
        else:
            self._acquire_postgres()
        return self

    def holder(self) -> str | None:
        """Who holds the lock now (None when nobody does), without taking it for longer than a probe: SQLite tries a
        shared lock for an instant (a trading process starting meanwhile retries briefly, see ``_acquire_file``);
        PostgreSQL reads ``pg_locks``."""
        if self.settings.database_url is None:
            path = self._file()
            if not path.exists():
                return None
            fd = os.open(path, os.O_RDONLY)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    return path.read_text().strip() or "another process"
                fcntl.flock(fd, fcntl.LOCK_UN)
                return None
            finally:
                os.close(fd)
        import psycopg

        t = parse_postgres_url(self.settings.database_url.get_secret_value())
        with psycopg.connect(
            host=t.host,
            port=t.port,
            dbname=t.dbname,
            user=t.user,
            password=t.password,
            autocommit=True,
            connect_timeout=5,
        ) as conn:
            row = conn.execute(_HOLDER_QUERY, (self._lock_id(t.schema),)).fetchone()
        return f"backend pid {row[1]} since {row[2]:%Y-%m-%dT%H:%M:%SZ}" if row else None

    @staticmethod
    def _lock_id(schema: str) -> int:
        return int.from_bytes(hashlib.sha256(f"{schema}:{LOCK_NAME}".encode()).digest()[:8], "big", signed=True)

    def _file(self) -> Path:
        return Path(self.settings.data_dir) / f"{LOCK_NAME}.lock"

    def _acquire_file(self) -> None:
        path = self._file()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            for attempt in range(20):  # a probe (``holder``) holds a shared lock for an instant: try again briefly
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt == 19:
                        raise
                    time.sleep(0.01)
        except BlockingIOError:
            other = path.read_text().strip() or "another process"
            os.close(fd)
            raise WriterLockHeld(
                f"another execledger trading process ({other}) writes the ledger in {self.where}; refusing to "
                f"start a second writer",
                other,
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, holder_description().encode())
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
            application_name=LOCK_NAME,
        )
        lock_id = self._lock_id(t.schema)
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_id,)).fetchone()[0]:
            holder = conn.execute(_HOLDER_QUERY, (lock_id,)).fetchone()
            conn.close()
            who = f"backend pid {holder[1]} since {holder[2]:%Y-%m-%dT%H:%M:%SZ}" if holder else "another session"
            raise WriterLockHeld(
                f"another execledger trading process ({who}) holds the writer lock of the ledger in {self.where}; "
                f"refusing to start a second writer",
                who,
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
