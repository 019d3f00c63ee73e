"""The Orders store's process recorders: eventsourcing's own (SQLite, PostgreSQL) plus one small table, the retired
orders, that lets the trading process hold only the signals that can still matter.

A row says "this order (of this entry's signal, at this version) is no longer held in memory", with the ids the
venue knows it by. The trading process writes the rows of a whole signal once it is flat and every order of it is
terminal, *before* it drops the signal from memory, and reads them:

- at start, to leave the retired signals out of the one pass over the log (``select_live_order_events``); a signal
  that got an event after it was retired (a late fill) is loaded again (``revive_retired``);
- when the venue reports about an order it no longer holds (``retired_order_id`` by txid or cl_ord_id).

It lives beside the events (same SQLite file, same PostgreSQL schema) so the start-up query is one anti-join. The
read models could answer the txid lookup too, but they are another database, rebuilt at will and behind the log by
the projector's lag: an order dropped from memory before its row was projected would be unfindable, and a late fill
for it refused. This table is written by the one process that drops orders, before it drops them.

The PostgreSQL recorder is in ``orderstore_postgres`` so that a SQLite start does not import psycopg (2 s of a
start under load).

Both recorders have their own insert path (``insert_events``), with the library's semantics and fewer statements.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from typing import Any, NoReturn
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent, Tracking
from eventsourcing.sqlite import (
    SQLiteConnection,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteProcessRecorder,
    SQLiteTransaction,
)

RetiredRow = tuple[UUID, UUID, int, str, str | None]  # order id, entry id, version, cl_ord_id, txid


class _OneStatement(SQLiteTransaction):
    """The library's transaction context without its ``BEGIN``: one statement in autocommit mode (the library's
    connections are opened with ``isolation_level=None``) is its own transaction, kept whole or not at all. On an
    error the same rollback and the same translation of ``sqlite3`` errors into eventsourcing's (``IntegrityError``,
    ``OperationalError``, ...) as ``SQLiteTransaction``; on success its ``commit`` finds no transaction open."""

    def __enter__(self) -> SQLiteCursor:
        return self.connection.cursor()


def _raise_translated(conn: SQLiteConnection, exc: sqlite3.Error) -> NoReturn:
    """Raise ``exc``, an error of a statement run in autocommit mode on ``conn``, as the library's transaction
    context raises it: after its rollback, as eventsourcing's error (``IntegrityError``, ``OperationalError``...)."""
    with _OneStatement(conn, commit=False):
        raise exc
    raise exc  # not reached: the context raises the translated error


class SQLiteOrdersRecorder(SQLiteProcessRecorder):
    RETIRED = "retired_orders"  # the Orders app has its own SQLite file
    # Rows an INSERT statement: 4 parameters a row, far below SQLite's 32,766 (``SQLITE_MAX_VARIABLE_NUMBER``).
    VALUES_MAX = 64

    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any):
        super().__init__(datastore, **kwargs)
        self._insert_values: dict[tuple[int, bool], str] = {}  # (rows, returning) -> ``INSERT ... VALUES ...``
        self._inserter: SQLiteConnection | None = None  # the pool's connection ``insert_events`` keeps
        self._insert_cursor: sqlite3.Cursor | None = None  # a cursor of it, for the one-statement saves
        self._in_memory = datastore.pool.is_sqlite_memory_mode
        self._inserting = threading.Lock()  # one save at a time on it

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Insert ``stored_events`` (and ``tracking=``, if given) in one transaction; returns their notification ids
        (rowids), in the order of ``stored_events``, or None with ``returning_ids=False``.

        The library's ``SQLiteProcessRecorder.insert_events`` runs one ``execute`` a row through its cursor
        wrappers (to read each ``lastrowid``) between ``BEGIN`` and ``COMMIT``. Here the rows go in one
        ``INSERT ... VALUES (...),(...) RETURNING rowid, originator_id, originator_version`` (``VALUES_MAX`` rows
        a statement). A save of at most ``VALUES_MAX`` events without tracking is that one statement in autocommit
        mode, its own transaction: no ``BEGIN`` or ``COMMIT`` to compile (the library's connections cache one
        statement), and consecutive saves of the same size reuse the compiled ``INSERT``. With tracking, or more
        rows, the statements and the library's tracking upsert run in the library's ``BEGIN`` ... ``COMMIT``
        (``SQLiteTransaction``). SQLite returns RETURNING rows in an arbitrary order (sqlite.org/lang_returning),
        so the ids are matched to the events by their (originator_id, originator_version), the primary key.
        ``returning_ids=False`` (for a caller that reads no ids, ``UnitOfWork``) leaves out the ``RETURNING``
        clause: the same rows, transaction and errors, 2 us less an event (SQLite's ephemeral table of returned
        rows, their Python rows and the matching).

        The saves run on one connection of the library's pool (its WAL mode and lock timeout), taken from it at
        the first save and kept, one save at a time (a lock of this recorder's): taking and returning the pool's
        writer connection each save (its fairness semaphore, writer lock and conditions, all Python) was 12 us of
        wall time a save and 1.5-3 us of CPU an event at ten a save (issue 18). The pool's other writers (the
        retired-orders table, table creation) no longer wait for these saves on the pool's writer lock but on
        SQLite's own write lock, with the same lock timeout, as writers of two processes do; in-memory databases,
        whose readers and writers the pool keeps apart, still take the pool's writer connection each save. The
        pool closes the kept connection when the application closes; a save after that is refused as before.
        Errors: a version already stored (optimistic concurrency) or a tracking position already recorded raise
        eventsourcing's ``IntegrityError`` and nothing of the save is kept; other ``sqlite3`` errors are
        translated as the library translates them."""
        if not stored_events:
            return super().insert_events(stored_events, **kwargs)
        tracking: Tracking | None = kwargs.get("tracking")
        returning: bool = kwargs.get("returning_ids", True)
        params: list[Any] = []
        for s in stored_events:
            params += (s.originator_id, s.originator_version, s.topic, s.state)
        rows = self._insert_flat(params, tracking, returning)
        if not returning:
            return None
        notification_ids = {(row[1], row[2]): row[0] for row in rows}
        return [notification_ids[key] for key in zip(params[0::4], params[1::4], strict=True)]

    def insert_rows(self, rows: list[Any], tracking: Tracking | None = None) -> None:
        """``insert_events(stored_events, tracking=tracking, returning_ids=False)`` of the events whose values are
        ``rows``: four an event in turn, originator id, version, topic, state (``OrjsonMapper.flat_rows``), which
        become the INSERT's parameters as they are (the ids turned into their text in place: the list is the
        recorder's). The same one transaction, errors and rows as ``insert_events``, without a ``StoredEvent``
        an event and the pass that reads them into the parameters (issue 18)."""
        if rows:
            self._insert_flat(rows, tracking, False)
        else:
            super().insert_events([], tracking=tracking)

    def _insert_flat(self, params: list[Any], tracking: Tracking | None, returning: bool) -> list[sqlite3.Row]:
        """Insert the rows of ``params`` (four values a row; their ids turned into text here, in place). The text
        is ``UUID.hex``'s own expression, ``'%032x' % int``, without the property's Python call: 0.6 -> 0.3 us an
        event (timeit, issue 18)."""
        params[0::4] = ["%032x" % i.int if isinstance(i, UUID) else i for i in params[0::4]]  # noqa: UP031 (format: slower)
        if self._in_memory:
            with self.datastore.get_connection(commit=True) as conn:
                return self._insert(conn, params, tracking, returning)
        with self._inserting:
            conn = self._inserts_connection()
            if tracking is None and len(params) <= 4 * self.VALUES_MAX and self._insert_cursor is not None:
                # One statement in autocommit mode, its own transaction, on the cursor kept with the connection:
                # the library's transaction context and cursor wrappers a save (a cursor made and closed, its
                # wrapper, the commit call that finds nothing to commit) were 1.5 us an event at 10 a save.
                try:
                    return self._insert_rows(self._insert_cursor, params, returning)
                except sqlite3.Error as exc:
                    _raise_translated(conn, exc)
            return self._insert(conn, params, tracking, returning)

    def has_events(self, originator_id: UUID) -> bool:
        """Whether any event of ``originator_id`` is stored: one lookup by the primary key on the connection the
        saves run on (it sees every save of this process as soon as it is made), one statement in autocommit mode.
        ``repository.get`` of an id that has no events (a new signal's entry: intake asks whether the signal was
        recorded before) goes through the pool's reader connection and its ``BEGIN`` ... ``ROLLBACK``: 30-150 us
        against 5 (issue 18)."""
        statement = f"SELECT 1 FROM {self.events_table_name} WHERE originator_id=? LIMIT 1"
        params = (originator_id.hex,)
        if self.datastore.pool.is_sqlite_memory_mode:
            with self.datastore.transaction(commit=False) as c:
                c.execute(statement, params)
                return c.fetchone() is not None
        with self._inserting, _OneStatement(self._inserts_connection(), commit=False) as curs, curs as cursor:
            cursor.execute(statement, params)
            return cursor.fetchone() is not None

    def _inserts_connection(self) -> SQLiteConnection:
        """The connection the saves run on: taken from the pool once (outside its reader / writer interlock, which
        a file database's writers alone use), again if the pool closed it (then the pool refuses)."""
        conn = self._inserter
        if conn is None or conn.closed:
            self._insert_cursor = None
            conn = self._inserter = self.datastore.pool.get_connection()
            self._insert_cursor = conn.cursor().sqlite_cursor
        return conn

    def _insert(
        self, conn: SQLiteConnection, params: list[Any], tracking: Tracking | None, returning: bool
    ) -> list[sqlite3.Row]:
        if tracking is None and len(params) <= 4 * self.VALUES_MAX:
            with _OneStatement(conn, commit=True) as curs, curs:
                return self._insert_rows(curs.sqlite_cursor, params, returning)
        return self._insert_in_transaction(conn, params, tracking, returning)

    def _insert_in_transaction(
        self, conn: SQLiteConnection, params: list[Any], tracking: Tracking | None, returning: bool
    ) -> list[sqlite3.Row]:
        rows: list[sqlite3.Row] = []
        with SQLiteTransaction(conn, commit=True) as curs, curs:
            step = 4 * self.VALUES_MAX
            for start in range(0, len(params), step):
                rows += self._insert_rows(curs.sqlite_cursor, params[start : start + step], returning)
            if tracking is not None:
                self._insert_tracking(curs, tracking)
        return rows

    def _insert_rows(self, cursor: sqlite3.Cursor, params: list[Any], returning: bool) -> list[sqlite3.Row]:
        """Insert the rows of ``params`` (4 a row) in one statement; returns their (rowid, originator_id,
        originator_version)s if ``returning``, else nothing."""
        key = (len(params) // 4, returning)
        statement = self._insert_values.get(key)
        if statement is None:
            statement = self._insert_values[key] = (
                f"INSERT INTO {self.events_table_name} VALUES {','.join(['(?,?,?,?)'] * key[0])}"
                + (" RETURNING rowid, originator_id, originator_version" if returning else "")
            )
        cursor.execute(statement, params)
        return cursor.fetchall() if returning else []

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {self.RETIRED} (order_id TEXT PRIMARY KEY, entry_id TEXT NOT NULL, "
            "version INTEGER NOT NULL, cl_ord_id TEXT NOT NULL, txid TEXT)",
            f"CREATE INDEX IF NOT EXISTS {self.RETIRED}_cl_ord_id ON {self.RETIRED} (cl_ord_id)",
            f"CREATE INDEX IF NOT EXISTS {self.RETIRED}_txid ON {self.RETIRED} (txid)",
            f"CREATE INDEX IF NOT EXISTS {self.RETIRED}_entry_id ON {self.RETIRED} (entry_id)",
        ]

    def retire_orders(self, rows: Sequence[RetiredRow]) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.executemany(
                f"INSERT INTO {self.RETIRED} VALUES (?,?,?,?,?) ON CONFLICT (order_id) DO UPDATE SET "
                "entry_id=excluded.entry_id, version=excluded.version, cl_ord_id=excluded.cl_ord_id, "
                "txid=excluded.txid",
                [(o.hex, e.hex, v, cl, tx) for o, e, v, cl, tx in rows],
            )

    def retired_order_id(self, ref: str) -> UUID | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT order_id FROM {self.RETIRED} WHERE txid=? OR cl_ord_id=? LIMIT 1", (ref, ref))
            row = c.fetchone()
        return UUID(row["order_id"]) if row else None

    def revive_retired(self) -> int:
        """Forget the retirement of every signal that got an event after it was retired; returns how many."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                f"DELETE FROM {self.RETIRED} WHERE entry_id IN (SELECT r.entry_id FROM {self.RETIRED} r JOIN "
                f"{self.events_table_name} s ON s.originator_id = r.order_id AND s.originator_version > r.version)"
            )
            return c.sqlite_cursor.rowcount

    def select_live_order_events(self, start: int, limit: int, topics: Sequence[str]) -> list[Notification]:
        """``select_notifications`` of these topics without the events of retired orders."""
        statement = (
            f"SELECT rowid, * FROM {self.events_table_name} s WHERE rowid>=? "
            f"AND topic IN ({','.join('?' * len(topics))}) "
            f"AND NOT EXISTS (SELECT 1 FROM {self.RETIRED} r WHERE r.order_id = s.originator_id) "
            "ORDER BY rowid LIMIT ?"
        )
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, [start, *topics, limit])
            return [
                Notification(
                    id=row["rowid"],
                    originator_id=self.convert_originator_id(row["originator_id"]),
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=row["state"],
                )
                for row in c.fetchall()
            ]
