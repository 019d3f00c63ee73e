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
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.sqlite import SQLiteProcessRecorder

RetiredRow = tuple[UUID, UUID, int, str, str | None]  # order id, entry id, version, cl_ord_id, txid


class SQLiteOrdersRecorder(SQLiteProcessRecorder):
    RETIRED = "retired_orders"  # the Orders app has its own SQLite file

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
