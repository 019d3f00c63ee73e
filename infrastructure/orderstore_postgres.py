"""The Orders store's PostgreSQL process recorder with the retired-orders table (see ``orderstore``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresProcessRecorder
from psycopg.sql import SQL, Identifier

from execledger.infrastructure.orderstore import RetiredRow


class PostgresOrdersRecorder(PostgresProcessRecorder):
    def __init__(self, datastore: Any, **kwargs: Any):
        super().__init__(datastore, **kwargs)
        self.retired_table = self.events_table_name.removesuffix("_events") + "_retired"
        names = {
            "schema": Identifier(self.datastore.schema),
            "table": Identifier(self.retired_table),
            "id_type": Identifier(self.datastore.originator_id_type),
        }
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} (order_id {id_type} PRIMARY KEY, entry_id {id_type} "
                "NOT NULL, version bigint NOT NULL, cl_ord_id text NOT NULL, txid text)"
            ).format(**names),
            *(
                SQL("CREATE INDEX IF NOT EXISTS {index} ON {schema}.{table} ({column})").format(
                    index=Identifier(f"{self.retired_table}_{column}"), column=Identifier(column), **names
                )
                for column in ("cl_ord_id", "txid", "entry_id")
            ),
        ]
        self._names = {**names, "events": Identifier(self.events_table_name)}

    def retire_orders(self, rows: Sequence[RetiredRow]) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.executemany(
                SQL(
                    "INSERT INTO {schema}.{table} VALUES (%s,%s,%s,%s,%s) ON CONFLICT (order_id) DO UPDATE SET "
                    "entry_id=excluded.entry_id, version=excluded.version, cl_ord_id=excluded.cl_ord_id, "
                    "txid=excluded.txid"
                ).format(**self._names),
                list(rows),
            )

    def retired_order_id(self, ref: str) -> UUID | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT order_id FROM {schema}.{table} WHERE txid=%s OR cl_ord_id=%s LIMIT 1").format(
                    **self._names
                ),
                (ref, ref),
            )
            row = curs.fetchone()
        return UUID(str(row["order_id"])) if row else None

    def revive_retired(self) -> int:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "DELETE FROM {schema}.{table} WHERE entry_id IN (SELECT r.entry_id FROM {schema}.{table} r "
                    "JOIN {schema}.{events} s ON s.originator_id = r.order_id AND s.originator_version > r.version)"
                ).format(**self._names)
            )
            return curs.rowcount

    def select_live_order_events(self, start: int, limit: int, topics: Sequence[str]) -> list[Notification]:
        statement = SQL(
            "SELECT * FROM {schema}.{events} s WHERE notification_id>=%s AND topic = ANY(%s) AND NOT EXISTS "
            "(SELECT 1 FROM {schema}.{table} r WHERE r.order_id = s.originator_id) "
            "ORDER BY notification_id LIMIT %s"
        ).format(**self._names)
        # Binary results: the state comes as bytes, not hex text to decode (the scan at start: 0.34 -> 0.26 s for
        # 30,000 events).
        with self.datastore.get_connection() as conn, conn.cursor(binary=True) as curs:
            curs.execute(statement, [start, list(topics), limit], prepare=True)
            return [
                Notification(
                    id=row["notification_id"],
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]
