"""One writer per ledger: exactly one trading process writes a ledger's orders, whatever API key it trades with.

A second trading process on the same store would race decisions (and, with the same key, nonces). The lock is per
ledger (store), not per key: two processes with different keys on one SQLite data dir or one PostgreSQL schema are
refused just the same.

SQLite: an exclusive ``flock`` on ``execledger-writer.lock`` in the data dir (released by the kernel if the
process dies); the file names the holder. PostgreSQL: a session-level advisory lock, named after the schema, held
on a dedicated connection (released when that session ends); the holder is named in the row of the schema's
``execledger_writer`` table that carries that session's backend pid (and in the session's ``application_name``).

Both leave a trace that outlives the process (the lock file; the ``execledger_writer`` row): ``has_been_held``
tells an operator command that a trading process has run on this ledger, so a command aimed at a ledger nobody
trades on (a mistyped data dir or schema) is refused instead of recorded where nothing will ever read it.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

from execledger.infrastructure.eventstore import parse_postgres_url
from execledger.infrastructure.settings import Settings

log = logging.getLogger("execledger.writerlock")

LOCK_NAME = "execledger-writer"
WRITER_TABLE = "execledger_writer"  # PostgreSQL: one row, the last holder of the lock (pid, host, since)


_HOLDER_QUERY = (
    "SELECT a.application_name, a.pid, a.backend_start FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
    "WHERE l.locktype = 'advisory' AND l.granted "
    "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s::bigint & x'FFFFFFFFFFFFFFFF'::bigint"
)


class WriterLockHeld(RuntimeError):
    """Another trading process already writes this ledger; ``holder`` says which."""

    def __init__(self, message: str, holder: str):
        super().__init__(message)
        self.holder = holder


def holder_description() -> str:
    """How the lock names its holder: the trading process itself (``pid 4242 on host-1 since 2026-...Z``)."""
    return f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"


class WriterLock:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._fd: int | None = None
        self._conn = None
        self._lock_key: int | None = None

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
        t = parse_postgres_url(self.settings.postgres_url())
        with self._connect(t) as conn:
            return self._pg_holder(conn, t)

    def has_been_held(self) -> bool:
        """Whether a trading process has ever taken this ledger's writer lock (it may not run now). Creates
        nothing: SQLite looks for the lock file, PostgreSQL for the ``execledger_writer`` row of the schema."""
        if self.settings.database_url is None:
            return self._file().is_file()
        t = parse_postgres_url(self.settings.postgres_url())
        with self._connect(t) as conn:
            if not self._writer_table_exists(conn, t.schema):
                return False
            return conn.execute(self._sql("SELECT 1 FROM {} LIMIT 1", t.schema)).fetchone() is not None

    @staticmethod
    def _connect(t, **extra):
        import psycopg

        return psycopg.connect(
            host=t.host,
            port=t.port,
            dbname=t.dbname,
            user=t.user,
            password=t.password,
            autocommit=True,
            connect_timeout=5,
            **extra,
        )

    @staticmethod
    def _sql(template: str, schema: str):
        from psycopg import sql

        name = sql.Identifier(schema, WRITER_TABLE) if schema else sql.Identifier(WRITER_TABLE)
        return sql.SQL(template).format(name)

    @staticmethod
    def _writer_table_exists(conn, schema: str) -> bool:
        qualified = f'"{schema}".{WRITER_TABLE}' if schema else WRITER_TABLE  # schema: letters, digits, _ only
        return conn.execute("SELECT to_regclass(%s)", (qualified,)).fetchone()[0] is not None

    def _pg_holder(self, conn, t) -> str | None:
        """The trading process holding the lock, as it named itself in ``execledger_writer``; a holder that wrote no
        row (an older version) by its session's application name and start."""
        row = conn.execute(_HOLDER_QUERY, (self._lock_id(t.schema),)).fetchone()
        if row is None:
            return None
        application_name, backend_pid, backend_start = row
        if self._writer_table_exists(conn, t.schema):
            query = self._sql("SELECT holder FROM {} WHERE backend_pid = %s", t.schema)
            named = conn.execute(query, (backend_pid,)).fetchone()
            if named is not None:
                return named[0]
        if application_name and application_name.startswith(f"{LOCK_NAME} "):
            return application_name.removeprefix(f"{LOCK_NAME} ")
        return f"a session of PostgreSQL (backend pid {backend_pid}) since {backend_start:%Y-%m-%dT%H:%M:%SZ}"

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
        from execledger.infrastructure.eventstore import prepare_database

        t = parse_postgres_url(self.settings.postgres_url())
        me = holder_description()
        # application_name: PostgreSQL keeps 63 bytes of it; the full description goes in the execledger_writer row.
        conn = self._connect(t, application_name=f"{LOCK_NAME} {me}".encode()[:63].decode(errors="ignore"))
        lock_id = self._lock_id(t.schema)
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_id,)).fetchone()[0]:
            try:
                who = self._pg_holder(conn, t) or "another session"
            finally:
                conn.close()
            raise WriterLockHeld(
                f"another execledger trading process ({who}) holds the writer lock of the ledger in {self.where}; "
                f"refusing to start a second writer",
                who,
            )
        try:
            prepare_database(t)  # the trading process creates the ledger's schema (nothing else may)
            conn.execute(
                self._sql(
                    "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, holder text NOT NULL, "
                    "backend_pid integer NOT NULL, since timestamptz NOT NULL)",
                    t.schema,
                )
            )
            conn.execute(
                self._sql(
                    "INSERT INTO {} (name, holder, backend_pid, since) VALUES ('writer', %s, pg_backend_pid(), now()) "
                    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, backend_pid = excluded.backend_pid, "
                    "since = excluded.since",
                    t.schema,
                ),
                (me,),
            )
        except BaseException:
            conn.close()
            raise
        self._conn, self._lock_key = conn, lock_id

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            try:  # released before the call returns: the session's end alone frees it only once its backend exits,
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._lock_key,))  # later under load
            except Exception:  # the connection is gone: its session's end releases the lock
                log.debug("could not release the writer lock explicitly", exc_info=True)
            finally:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
