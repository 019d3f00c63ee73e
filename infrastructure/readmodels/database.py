"""The read models' database: the engine, the raw page scan of the event log, fast row writes, the tracking
position, loading views back from the tables, and the shadow-table swap of a rebuild. Everything that differs
between SQLite and PostgreSQL is here.

Writes go to the driver (``executemany`` of tuples on SQLite, ``COPY`` or ``executemany`` on PostgreSQL) inside the
SQLAlchemy transaction that also moves the tracking position, so a batch's rows and its position commit together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from operator import itemgetter
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Column, Engine, MetaData, Table, create_engine, event, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import DBAPIConnection

from execledger.domain.values import ZERO
from execledger.infrastructure.eventstore import parse_postgres_url, prepare_database
from execledger.infrastructure.readmodels import tables as t
from execledger.infrastructure.readmodels.projection import StoredRecord
from execledger.infrastructure.readmodels.rows import OrderView, db_time, uuid_text
from execledger.infrastructure.settings import Settings

if TYPE_CHECKING:
    import psycopg

SHADOW_SUFFIX = "__rebuild"
LOAD_SUFFIX = "__load"
# The two one-row-per-event tables: a rebuild loads them into key-less tables and moves the rows into the shadow
# in key order at the end, because inserting random report ids into a primary-key index cost more than everything
# else of the load (measured: 13.9 against 6.4 µs a row for execution_reports on SQLite).
KEYLESS_LOAD = ("execution_reports", "decisions")
# Created with the shadow tables (a rebuild looks signals' orders up while it loads); the rest after the load.
LOAD_INDEXES = frozenset({"ix_orders_signal"})


class ProjectionConflict(RuntimeError):
    """Another projector moved the tracking position meanwhile; this batch was rolled back (nothing written)."""


def readmodel_engine(settings: Settings) -> Engine:
    """SQLAlchemy engine for the read models: a SQLite file beside the event store, or the same PostgreSQL."""
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{settings.data_dir / 'readmodels.sqlite'}")

        @event.listens_for(engine, "connect")
        def _wal(dbapi_conn, _record):  # readers keep reading while the projector writes
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA busy_timeout=10000")
            # Debian's SQLite is built with SECURE_DELETE: every dropped table and replaced row was zeroed page by
            # page (the swap's DROP of the old tables was 1.1 s of a 100k-event rebuild). FAST zeroes only what
            # costs no extra I/O; every value here is derived from the event log beside it anyway.
            dbapi_conn.execute("PRAGMA secure_delete=FAST")

        return engine
    target = parse_postgres_url(settings.database_url.get_secret_value())
    prepare_database(target)
    connect_args = {"options": f"-csearch_path={target.schema}"} if target.schema else {}
    return create_engine(
        "postgresql+psycopg://",
        connect_args={
            "host": target.host,
            "port": target.port,
            "dbname": target.dbname,
            "user": target.user,
            "password": target.password,
            **connect_args,
        },
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
    )


def create_tables(engine: Engine, metadata, attempts: int = 10) -> None:
    """Create missing tables; several processes starting at once (the split deployment) may race to create the
    same table, and the loser sees "already exists": it waits a moment and checks again instead of failing."""
    import time

    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(attempts):
        try:
            metadata.create_all(engine)
            return
        except (OperationalError, ProgrammingError, IntegrityError) as exc:
            if ("already exists" not in str(exc) and "duplicate key" not in str(exc)) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


# --- the log ----------------------------------------------------------------------------------------------------


_dashed: dict[str, str] = {}  # stored hex originator id -> dashed text (an order's events share it)


def _store_module(recorder) -> str:
    """The eventsourcing module whose recorder ``recorder`` is or derives from (``orderstore``'s recorders add a
    table to the library's and keep its events table): ``eventsourcing.sqlite``, ``eventsourcing.postgres`` or
    another. Read from the class's bases, so that a SQLite process never imports psycopg to ask."""
    modules = {c.__module__ for c in type(recorder).__mro__}
    for module in ("eventsourcing.sqlite", "eventsourcing.postgres"):
        if module in modules:
            return module
    return type(recorder).__module__


def read_records(app, after: int, limit: int) -> list[StoredRecord]:
    """Up to ``limit`` stored events with notification id > ``after``, in id order, straight from the store's
    table (``eventsourcing.sqlite`` ``stored_events`` / ``eventsourcing.postgres`` ``<app>_events``): the
    library's ``select_notifications`` builds a UUID and a Notification per row, which cost more than the rest
    of the scan. Other recorders fall back to ``select_notifications``."""
    recorder = app.recorder
    module = _store_module(recorder)
    if module == "eventsourcing.sqlite":
        with recorder.datastore.transaction(commit=False) as c:
            cur = getattr(c, "sqlite_cursor", c)
            cur.row_factory = None  # plain tuples: the library's sqlite3.Row costs more than the scan
            cur.execute(
                f"SELECT rowid, originator_id, originator_version, topic, state FROM {recorder.events_table_name} "
                "WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (after, limit),
            )
            ids = _dashed
            out = []
            for nid, oid, version, topic, state in cur.fetchall():
                dashed = ids.get(oid)
                if dashed is None:
                    if len(ids) > 100_000:
                        ids.clear()
                    dashed = ids[oid] = uuid_text(oid)
                out.append(StoredRecord(nid, dashed, version, topic, state))
            return out
    if module == "eventsourcing.postgres":
        from psycopg import sql
        from psycopg.rows import tuple_row

        statement = sql.SQL(
            "SELECT notification_id, originator_id::text, originator_version, topic, state FROM {}.{} "
            "WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        ).format(sql.Identifier(recorder.datastore.schema), sql.Identifier(recorder.events_table_name))
        with recorder.datastore.get_connection() as conn, conn.transaction(force_rollback=True):
            cur = conn.cursor(row_factory=tuple_row)
            cur.execute(statement, (after, limit))
            return [StoredRecord._make(r) for r in cur.fetchall()]
    return [
        StoredRecord(n.id, str(n.originator_id), n.originator_version, n.topic, n.state)
        for n in recorder.select_notifications(start=after + 1, limit=limit)
    ]


# --- writing ----------------------------------------------------------------------------------------------------


def _columns(table: Table) -> str:
    return ", ".join(f'"{c.name}"' for c in table.columns)


def _marks(conn: Connection, n: int) -> str:
    return ", ".join(["?" if conn.dialect.name == "sqlite" else "%s"] * n)


def _copy(conn: Connection, table_name: str, table: Table, rows: Sequence[tuple]) -> None:
    dbapi = cast("psycopg.Connection[Any]", _dbapi(conn))  # COPY is PostgreSQL's: the driver is psycopg
    with dbapi.cursor() as cur, cur.copy(f'COPY "{table_name}" ({_columns(table)}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


def _pg_merge(conn: Connection, table: Table, rows: Sequence[tuple], on_conflict: str) -> None:
    """PostgreSQL: COPY ``rows`` into a per-session staging table, then one INSERT ... SELECT with ``on_conflict``
    (a statement per batch instead of one per row). The staging table empties itself at commit, so each table is
    merged at most once per transaction (the projector writes each table once per batch)."""
    stage = f"_stage_{table.name}"
    conn.exec_driver_sql(
        f'CREATE TEMP TABLE IF NOT EXISTS "{stage}" (LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
    )
    _copy(conn, stage, table, rows)
    conn.exec_driver_sql(f'INSERT INTO "{table.name}" SELECT * FROM "{stage}" {on_conflict}')


def _keys(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def describe_failure(exc: BaseException) -> str:
    """One line naming a failure: the database's own message (not SQLAlchemy's SQL and parameters), at most 300
    characters."""
    cause = getattr(exc, "orig", None) or exc
    text = " ".join(str(cause).split()) or "no message"
    return f"{type(cause).__name__}: {text}"[:300]


_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_UNBOUNDED = 1 << 62
_text_columns: dict[str, list[tuple[int, int]]] = {}


def _escaped(match: re.Match) -> str:
    return f"\\u{ord(match.group()):04x}"


def _text_columns_of(table: Table) -> list[tuple[int, int]]:
    columns = _text_columns.get(table.name)
    if columns is None:
        columns = _text_columns[table.name] = [
            (i, getattr(c.type, "length", None) or _UNBOUNDED)
            for i, c in enumerate(table.columns)
            if c.type.python_type is str
        ]
    return columns


def _all_storable(columns: list[tuple[int, int]], rows: Sequence[tuple]) -> bool:
    """Whether every text cell of ``rows`` is ASCII without NUL and within its column's length: a column at a
    time, with the loops in C (``map``/``join``), about a tenth of the cost of looking at each cell in Python."""
    try:
        for i, limit in columns:
            cells = list(filter(None, map(itemgetter(i), rows)))  # None and "" need nothing
            joined = "".join(cells)  # TypeError if a non-text value is in a text column: the careful path
            if not joined.isascii() or "\x00" in joined:
                return False
            if limit < len(joined) and max(map(len, cells)) > limit:
                return False
    except TypeError:
        return False
    return True


def storable(table: Table, rows: Sequence[tuple]) -> Sequence[tuple]:
    """``rows`` (tuples in column order) with every text value made storable in ``table`` on either backend: NUL
    and lone surrogates escaped as ``\\u0000``/``\\ud800``, text longer than a ``String(n)`` column cut to ``n``
    characters. Ordinary text (all of it, in practice) is checked a column at a time and left as it is; only when
    a column holds something else is each cell looked at, and only a row that needs it is copied
    (``bench/readmodel_text_cost.py`` measures the cost)."""
    columns = _text_columns_of(table)
    if _all_storable(columns, rows):
        return rows
    fixed: list[tuple] | None = None
    for n, row in enumerate(rows):
        for i, limit in columns:
            value = row[i]
            if value.__class__ is str and (len(value) > limit or not value.isascii() or "\x00" in value):
                if fixed is None:
                    fixed = list(rows)
                cells = list(fixed[n])
                cells[i] = _UNSTORABLE.sub(_escaped, value)[:limit]
                fixed[n] = row = tuple(cells)
    return rows if fixed is None else fixed


def append_rows(conn: Connection, table: Table, rows: Sequence[tuple], *, fresh: bool) -> None:
    """Insert ``rows`` (tuples in column order). ``fresh``: the table is a shadow being loaded and nothing can clash
    (its tracking position guards it); otherwise a row whose key exists is left as it is (a re-delivered event)."""
    if not rows:
        return
    rows = storable(table, rows)
    keys = ", ".join(f'"{k}"' for k in _keys(table))
    if conn.dialect.name == "postgresql":
        if fresh:
            _copy(conn, table.name, table, rows)
        else:
            _pg_merge(conn, table, rows, f"ON CONFLICT ({keys}) DO NOTHING")
        return
    conflict = "" if fresh else f" ON CONFLICT ({keys}) DO NOTHING"
    statement = f'INSERT INTO "{table.name}" ({_columns(table)}) VALUES ({_marks(conn, len(table.columns))}){conflict}'
    cur = _dbapi(conn).cursor()
    try:
        cur.executemany(statement, rows)
    finally:
        cur.close()


def upsert_rows(conn: Connection, table: Table, rows: Sequence[tuple]) -> None:
    """Insert or replace current-state rows (tuples in column order, one per key), keyed by the primary key."""
    if not rows:
        return
    rows = storable(table, rows)
    keys = _keys(table)
    sets = ", ".join(f'"{c.name}" = excluded."{c.name}"' for c in table.columns if c.name not in keys)
    conflict = f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    if conn.dialect.name == "postgresql":
        _pg_merge(conn, table, rows, conflict)
        return
    statement = f'INSERT INTO "{table.name}" ({_columns(table)}) VALUES ({_marks(conn, len(table.columns))}) {conflict}'
    cur = _dbapi(conn).cursor()
    try:
        cur.executemany(statement, rows)
    finally:
        cur.close()


# --- tracking ---------------------------------------------------------------------------------------------------


def read_position(conn: Connection, name: str) -> int:
    tracking = t.projection_tracking
    return conn.execute(select(tracking.c.position).where(tracking.c.name == name)).scalar() or 0


def move_position(conn: Connection, name: str, expected: int, new: int) -> None:
    """Move the tracking position from ``expected`` to ``new`` in the caller's transaction, or raise
    ProjectionConflict (someone else moved it: the caller's transaction must roll back)."""
    tracking = t.projection_tracking
    if expected == 0 and conn.execute(select(tracking.c.position).where(tracking.c.name == name)).first() is None:
        conn.execute(insert(tracking).values(name=name, position=new))
        return
    result = conn.execute(
        update(tracking).where(tracking.c.name == name, tracking.c.position == expected).values(position=new)
    )
    if result.rowcount != 1:
        raise ProjectionConflict(f"tracking position of {name} is no longer {expected}: batch not applied")


# --- reading views back ------------------------------------------------------------------------------------------


def _chunks(items: list[str], size: int = 500):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def load_views(engine: Engine, tables: t.TableSet, order_ids: list[str]) -> dict[str, OrderView]:
    """Views of orders as the tables hold them (the exact fill cost is summed from their fills)."""
    views: dict[str, OrderView] = {}
    o, f = tables.orders, tables.fills
    with engine.connect() as conn:
        for ids in _chunks(order_ids):
            cost: dict[str, Decimal] = {}
            for oid, qty, price in conn.execute(
                select(f.c.order_id, f.c.quantity, f.c.price).where(f.c.order_id.in_(ids))
            ):
                cost[oid] = cost.get(oid, ZERO) + Decimal(qty) * Decimal(price)
            for r in conn.execute(select(o).where(o.c.order_id.in_(ids))).mappings():
                views[r["order_id"]] = OrderView(
                    order_id=r["order_id"],
                    signal_id=r["signal_id"],
                    role=r["role"],
                    parent_id=r["parent_id"],
                    pair=r["pair"],
                    side=r["side"],
                    order_type=r["order_type"],
                    quantity=r["quantity"],
                    limit_price=r["limit_price"],
                    trigger_price=r["trigger_price"],
                    cl_ord_id=r["cl_ord_id"],
                    state="open" if r["status"] == "partially_filled" else r["status"],
                    txid=r["txid"],
                    filled_quantity=Decimal(r["filled_quantity"]),
                    filled_cost=cost.get(r["order_id"], ZERO),
                    fees=Decimal(r["fees"]),
                    fee_asset=r["fee_asset"],
                    last_error=r["last_error"],
                    created_at=db_time(r["created_at"]),
                    updated_at=db_time(r["updated_at"]),
                    version=r["version"],
                )
    return views


def load_members(engine: Engine, tables: t.TableSet, signal_ids: list[str]) -> dict[str, list[str]]:
    """Order ids of each signal, as the orders table holds them."""
    out: dict[str, list[str]] = {}
    o = tables.orders
    with engine.connect() as conn:
        for ids in _chunks(signal_ids):
            for oid, sid in conn.execute(select(o.c.order_id, o.c.signal_id).where(o.c.signal_id.in_(ids))):
                out.setdefault(sid, []).append(oid)
    return out


# --- shadow tables and the swap ----------------------------------------------------------------------------------


class LoadTables:
    """Where a rebuild's first pass writes: the shadow's tables, except that ``KEYLESS_LOAD`` ones have no primary
    key while they load. SQLite cannot add a primary key to a table, so there they are separate load tables whose
    rows move into the shadow in key order at the end; PostgreSQL loads the shadow tables themselves with their
    key dropped and adds it back (one sorted index build, and the same table definition as the live one)."""

    def __init__(self, engine: Engine, shadow: t.TableSet):
        self.postgres = engine.dialect.name == "postgresql"
        self.metadata = MetaData()
        for name in ("execution_reports", "fills", "decisions", "orders", "signals"):
            table = getattr(shadow, name)
            if name in KEYLESS_LOAD and not self.postgres:
                live = getattr(t.LIVE, name)
                table = Table(live.name + LOAD_SUFFIX, self.metadata, *[Column(c.name, c.type) for c in live.columns])
            setattr(self, name, table)
        self.keyless = [getattr(self, name) for name in KEYLESS_LOAD]
        self.targets = [getattr(shadow, name) for name in KEYLESS_LOAD]


def create_shadow(engine: Engine, shadow: t.TableSet, shadow_name: str) -> LoadTables:
    """Drop what an interrupted rebuild left, then create the shadow tables with only their load-time indexes
    (and without the keys of ``KEYLESS_LOAD``); returns the tables the first pass writes to."""
    load = LoadTables(engine, shadow)
    with engine.begin() as conn:
        leftovers = [] if load.postgres else load.keyless
        for table in (*shadow.views, *leftovers):
            table.drop(conn, checkfirst=True)
        conn.execute(t.projection_tracking.delete().where(t.projection_tracking.c.name == shadow_name))
        if load.postgres:
            for live in t.LIVE.views:  # a swap by an earlier version left the shadow's primary-key name on it
                conn.execute(
                    text(f'ALTER INDEX IF EXISTS "{live.name}{SHADOW_SUFFIX}_pkey" RENAME TO "{live.name}_pkey"')
                )
        for table in shadow.views:
            table.create(conn)  # creates the table's indexes too; the ones built after the load are dropped
            for index in table.indexes:
                if _live_index_name(index.name) not in LOAD_INDEXES:
                    conn.execute(text(f'DROP INDEX "{index.name}"'))
        if load.postgres:
            for table in load.keyless:
                conn.execute(text(f'ALTER TABLE "{table.name}" DROP CONSTRAINT "{table.name}_pkey"'))
        else:
            for table in load.keyless:
                table.create(conn)
    return load


def finish_load(engine: Engine, load: LoadTables) -> None:
    """Give the key-less tables their primary key back: PostgreSQL builds it in one pass; SQLite moves the rows
    into the shadow in key order (appending to the key's index instead of inserting at random places in it)."""
    with engine.begin() as conn:
        for table, target in zip(load.keyless, load.targets, strict=True):
            keys = ", ".join(f'"{c.name}"' for c in target.primary_key.columns)
            if load.postgres:
                conn.execute(
                    text(f'ALTER TABLE "{target.name}" ADD CONSTRAINT "{target.name}_pkey" PRIMARY KEY ({keys})')
                )
                continue
            conn.execute(
                text(
                    f'INSERT INTO "{target.name}" ({_columns(target)}) '
                    f'SELECT {_columns(target)} FROM "{table.name}" ORDER BY {keys}'
                )
            )
            table.drop(conn)


def _dbapi(conn: Connection) -> DBAPIConnection:
    dbapi = conn.connection.dbapi_connection
    if dbapi is None:  # only once the connection is closed or invalidated
        raise RuntimeError("the database connection is closed")
    return dbapi


def _live_index_name(name: str | None) -> str:
    return (name or "").removesuffix(SHADOW_SUFFIX)  # every index of the read models is named


def build_shadow_indexes(engine: Engine, shadow: t.TableSet) -> None:
    """PostgreSQL: build the shadow's remaining indexes before the swap (under shadow names, renamed at the swap),
    so the swap's lock is short. SQLite cannot rename an index: it builds them inside the swap instead, which
    blocks only writers (readers go on reading the old tables in WAL)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        for table in shadow.views:
            for index in table.indexes:
                if _live_index_name(index.name) not in LOAD_INDEXES:
                    index.create(conn)


def swap_in(engine: Engine, shadow: t.TableSet, shadow_name: str, live_name: str) -> None:
    """Replace the live tables by the shadow ones and hand the shadow's position to the live name, in one
    transaction: readers see the old tables or the new ones, never empty ones."""
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        for live, new in zip(t.LIVE.views, shadow.views, strict=True):
            live.drop(conn)
            conn.execute(text(f'ALTER TABLE "{new.name}" RENAME TO "{live.name}"'))
            if postgres:
                # Index and primary-key names are schema-wide and were made unique with the suffix: take the live
                # names back, or the next rebuild's shadow could not create its own.
                conn.execute(text(f'ALTER INDEX "{new.name}_pkey" RENAME TO "{live.name}_pkey"'))
                for index in new.indexes:
                    conn.execute(text(f'ALTER INDEX "{index.name}" RENAME TO "{_live_index_name(index.name)}"'))
            else:
                for index in new.indexes:
                    if _live_index_name(index.name) in LOAD_INDEXES:
                        conn.execute(text(f'DROP INDEX "{index.name}"'))
                for index in live.indexes:
                    index.create(conn)
        tracking = t.projection_tracking
        conn.execute(tracking.delete().where(tracking.c.name == live_name))
        conn.execute(update(tracking).where(tracking.c.name == shadow_name).values(name=live_name))
