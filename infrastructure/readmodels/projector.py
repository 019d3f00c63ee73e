"""The read-model projection: follows the Orders log and writes report/order/fill/signal/decision rows.

Exactly once: each batch writes its rows *and* moves the tracking position in one transaction, guarded by the
position it started from; rows have deterministic keys and are inserted with "on conflict do nothing" (or
upserted, for current-state tables), so a re-delivered event changes nothing.

Whatever text the log holds is stored (``storable``): a NUL (PostgreSQL text cannot hold one) and a lone surrogate
(not encodable as UTF-8) are written escaped as ``\u0000``, and text longer than its column is cut to the column's
length, the same on both backends, so that an event written by an older version or another writer can never stop
the read models from following the log.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, create_engine, delete, event, insert, select, text, update
from sqlalchemy.engine import Connection

from execledger.application.orders_app import OrdersApp
from execledger.domain.events import EventKind, kind_of
from execledger.domain.order import Order
from execledger.domain.reasons import jsonable
from execledger.domain.reports import execution_report
from execledger.domain.values import ZERO, OrderRole, Side, plain
from execledger.infrastructure.eventstore import parse_postgres_url, prepare_database
from execledger.infrastructure.readmodels import tables as t
from execledger.infrastructure.settings import Settings

PROJECTION_NAME = "orders_read_model"
SHADOW_SUFFIX = "__rebuild"


class ProjectionConflict(RuntimeError):
    """Another projector moved the tracking position meanwhile; this batch was rolled back (nothing written)."""


def describe_failure(exc: BaseException) -> str:
    """One line naming a failure: the database's own message (not SQLAlchemy's SQL and parameters), at most 300
    characters."""
    cause = getattr(exc, "orig", None) or exc
    text = " ".join(str(cause).split()) or "no message"
    return f"{type(cause).__name__}: {text}"[:300]


def readmodel_engine(settings: Settings) -> Engine:
    """SQLAlchemy engine for the read models: a SQLite file beside the event store, or the same PostgreSQL."""
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{settings.data_dir / 'readmodels.sqlite'}")

        @event.listens_for(engine, "connect")
        def _wal(dbapi_conn, _record):  # readers keep reading while the projector writes
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA busy_timeout=10000")

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


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _d(value: Decimal | None) -> str | None:
    return None if value is None else plain(value)


_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_UNBOUNDED = 1 << 62
_text_columns: dict[str, list[tuple[str, int]]] = {}


def _escaped(match: re.Match) -> str:
    return f"\\u{ord(match.group()):04x}"


def storable(table, rows: list[dict]) -> list[dict]:
    """``rows`` with every text value made storable in ``table`` on either backend (in place): NUL and lone
    surrogates escaped as ``\u0000``/``\ud800``, text longer than a ``String(n)`` column cut to ``n`` characters.
    Ordinary text (all of it, in practice) is checked and left as it is (about 3 % of a rebuild's CPU time)."""
    columns = _text_columns.get(table.name)
    if columns is None:
        columns = _text_columns[table.name] = [
            (c.name, getattr(c.type, "length", None) or _UNBOUNDED) for c in table.columns if c.type.python_type is str
        ]
    for row in rows:
        for name, limit in columns:
            value = row.get(name)
            if value.__class__ is str and (len(value) > limit or not value.isascii() or "\x00" in value):
                row[name] = _UNSTORABLE.sub(_escaped, value)[:limit]
    return rows


def _insert_ignore(conn: Connection, table, rows: list[dict]) -> None:
    if not rows:
        return
    storable(table, rows)
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).on_conflict_do_nothing(), rows)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(table).on_conflict_do_nothing(), rows)


def _upsert(conn: Connection, table, rows: list[dict]) -> None:
    if not rows:
        return
    storable(table, rows)
    keys = [c.name for c in table.primary_key.columns]
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    stmt = dialect_insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    )
    conn.execute(stmt, rows)


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


class ReadModelProjector:
    """Catches the read models up with the Orders log; ``rebuild()`` drops them and replays from the start."""

    def __init__(
        self,
        app: OrdersApp,
        engine: Engine,
        *,
        batch_size: int = 500,
        tables: t.TableSet = t.LIVE,
        name: str = PROJECTION_NAME,
    ):
        self.app = app
        self.engine = engine
        self.batch_size = batch_size
        self.t = tables
        self.name = name
        self._orders: dict[UUID, Order] = {}
        self._failure_recorded: bool | None = None  # None: unknown (another process may have left one)
        create_tables(engine, t.metadata)  # the live tables and the tracking table; idempotent
        if tables is not t.LIVE:
            create_tables(engine, tables.metadata)

    # --- position -----------------------------------------------------------------------------------------

    def position(self) -> int:
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(self.t.projection_tracking.c.position).where(self.t.projection_tracking.c.name == self.name)
                ).scalar()
                or 0
            )

    def lag(self) -> int:
        """How many notifications of the log the read models have not processed yet."""
        return max(0, (self.app.recorder.max_notification_id() or 0) - self.position())

    def failure(self) -> dict[str, Any] | None:
        """The batch this projection could not apply (``position`` it stopped at, ``error``, ``failed_at`` naive
        UTC, ``attempts``), recorded by whichever process runs it; None while it applies its batches."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(t.projection_failures).where(t.projection_failures.c.name == self.name))
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def _record_failure(self, position: int, exc: BaseException) -> None:
        error = describe_failure(exc)
        try:
            with self.engine.begin() as conn:
                attempts = conn.execute(
                    select(t.projection_failures.c.attempts).where(
                        t.projection_failures.c.name == self.name, t.projection_failures.c.position == position
                    )
                ).scalar()
                row = {
                    "name": self.name,
                    "position": position,
                    "error": error,
                    "failed_at": _utc(datetime.now(UTC)),
                    "attempts": (attempts or 0) + 1,
                }
                _upsert(conn, t.projection_failures, [row])
            self._failure_recorded = True
        except Exception as again:  # the database itself is failing: the caller still gets the first error
            logging.getLogger(__name__).warning("could not record the projection failure (%s)", describe_failure(again))

    def _clear_failure(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(t.projection_failures).where(t.projection_failures.c.name == self.name))
        self._failure_recorded = False

    # --- processing -------------------------------------------------------------------------------------

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Process everything recorded so far; returns the number of notifications processed. A batch that cannot
        be applied is recorded in ``projection_failures`` (see ``failure``) before the error propagates."""
        done = 0
        while True:
            start = self.position()
            batch = self.app.recorder.select_notifications(start=start + 1, limit=self.batch_size)
            if not batch:
                return done
            try:
                self.process(batch, expected_position=start)
            except ProjectionConflict:
                # Someone else moved the position (another projector, or a rebuild swapped tables in):
                # forget our cache, which may be ahead of the new position, and go on from where the table is.
                self._orders.clear()
                continue
            except Exception as exc:
                self._record_failure(start, exc)
                raise
            if self._failure_recorded is not False:
                self._clear_failure()
            done += len(batch)
            if progress:
                progress(len(batch))

    def process(self, notifications: Iterable[Any], *, expected_position: int) -> None:
        """Project one batch and move the tracking position, in one transaction guarded by ``expected_position``."""
        notifications = [n for n in notifications if n.id > expected_position]
        if not notifications:
            return
        if self.position() != expected_position:  # cheap early check; the transaction below re-checks
            raise ProjectionConflict(f"tracking position is no longer {expected_position}: batch not applied")
        rows: dict[str, list[dict]] = defaultdict(list)
        touched_signals: set[str] = set()
        staged: dict[UUID, Order] = {}
        for n in notifications:
            domain_event = self.app.mapper.to_domain_event(n)
            if not isinstance(domain_event, Order.Event):
                continue
            order = self._mutate(staged, domain_event)
            self._rows(order, domain_event, rows)
            touched_signals.add(order.signal_id)
        try:
            self._write(rows, staged, touched_signals, expected_position, notifications[-1].id)
        except BaseException:
            # Cached orders were mutated for a batch that did not commit: forget them all, they reload lazily.
            self._orders.clear()
            raise
        self._orders.update(staged)

    def _write(self, rows, staged, touched_signals, expected_position: int, last_id: int) -> None:
        with self.engine.begin() as conn:
            moved = self._move_tracking(conn, expected_position, last_id)
            if not moved:
                raise ProjectionConflict(f"tracking position is no longer {expected_position}: batch not applied")
            _insert_ignore(conn, self.t.execution_reports, rows["reports"])
            _insert_ignore(conn, self.t.fills, rows["fills"])
            _insert_ignore(conn, self.t.decisions, rows["decisions"])
            _upsert(conn, self.t.orders, [self._order_row(o) for o in staged.values()])  # one row per order per batch
            members: dict[str, list[UUID]] = defaultdict(list)
            if touched_signals:  # the orders table (just upserted) knows every order of a signal
                for oid, sid in conn.execute(
                    select(self.t.orders.c.order_id, self.t.orders.c.signal_id).where(
                        self.t.orders.c.signal_id.in_(sorted(touched_signals))
                    )
                ):
                    members[sid].append(UUID(oid))
            _upsert(conn, self.t.signals, [self._signal_row(s, members[s], staged) for s in sorted(touched_signals)])

    def _move_tracking(self, conn: Connection, expected: int, new: int) -> bool:
        if expected == 0:
            exists = conn.execute(
                select(self.t.projection_tracking.c.position).where(self.t.projection_tracking.c.name == self.name)
            ).first()
            if exists is None:
                conn.execute(insert(self.t.projection_tracking).values(name=self.name, position=new))
                return True
        result = conn.execute(
            update(self.t.projection_tracking)
            .where(self.t.projection_tracking.c.name == self.name, self.t.projection_tracking.c.position == expected)
            .values(position=new)
        )
        return result.rowcount == 1

    def _mutate(self, staged: dict[UUID, Order], domain_event: Any) -> Order:
        oid = domain_event.originator_id
        if oid in staged:
            current = staged[oid]
        elif oid in self._orders:
            current = self._orders[oid]  # mutated in place: a failed batch drops the whole cache (see process)
        elif domain_event.originator_version > 1:
            current = self.app.repository.get(oid, version=domain_event.originator_version - 1)
        else:
            current = None
        order = domain_event.mutate(current)
        staged[oid] = order
        return order

    # --- rows -------------------------------------------------------------------------------------------

    def _rows(self, order: Order, ev: Any, rows: dict[str, list[dict]]) -> None:
        name = type(ev).__name__
        report = execution_report(order, ev)
        if report is not None:
            r = dict(vars(report))  # shallow: dataclasses.asdict deep-copies and cost 40% of a rebuild
            rows["reports"].append(
                {
                    **r,
                    "event_id": str(r["event_id"]),
                    "order_id": str(r["order_id"]),
                    "timestamp": _utc(r["timestamp"]),
                    "timestamp_exchange": _utc(r["timestamp_exchange"]),
                    **{
                        k: _d(r[k])
                        for k in (
                            "quantity_ordered",
                            "quantity_filled",
                            "limit_price",
                            "trigger_price",
                            "average_fill_price",
                            "commission",
                        )
                    },
                }
            )
        if name in ("PartiallyFilled", "Filled"):
            rows["fills"].append(
                {
                    "order_id": str(order.id),
                    "trade_id": ev.trade_id,
                    "signal_id": order.signal_id,
                    "role": order.role.value,
                    "pair": order.pair,
                    "side": order.side.value,
                    "quantity": _d(Decimal(ev.quantity)),
                    "price": _d(Decimal(ev.price)),
                    "fee": _d(Decimal(ev.fee)),
                    "fee_asset": ev.fee_asset or None,
                    "executed_at": _utc(ev.executed_at),
                    "recorded_at": _utc(ev.timestamp),
                    "source": ev.source,
                }
            )
        kind = kind_of(ev)
        why = getattr(ev, "reason", None)
        if kind is EventKind.DECISION or why:
            rows["decisions"].append(
                {
                    "order_id": str(order.id),
                    "version": ev.originator_version,
                    "signal_id": order.signal_id,
                    "event": name,
                    "kind": kind.value,
                    "rule": (why or {}).get("rule"),
                    "text": (why or {}).get("text"),
                    "reason_json": json.dumps(jsonable(why or {}), sort_keys=True),
                    "recorded_at": _utc(ev.timestamp),
                }
            )

    @staticmethod
    def _order_row(order: Order) -> dict:
        return {
            "order_id": str(order.id),
            "signal_id": order.signal_id,
            "role": order.role.value,
            "parent_id": str(order.parent_id) if order.parent_id else None,
            "pair": order.pair,
            "side": order.side.value,
            "order_type": order.order_type.value,
            "quantity": _d(order.quantity),
            "limit_price": _d(order.limit_price),
            "trigger_price": _d(order.trigger_price),
            "status": order.status.value,
            "filled_quantity": _d(order.filled_quantity),
            "average_fill_price": _d(order.average_fill_price),
            "fees": _d(order.fees),
            "fee_asset": order.fee_asset,
            "txid": order.txid,
            "cl_ord_id": order.cl_ord_id,
            "last_error": order.last_error,
            "created_at": _utc(order.created_on),
            "updated_at": _utc(order.modified_on),
            "version": order.version,
        }

    def _signal_row(self, signal_id: str, member_ids: list[UUID], staged: dict[UUID, Order]) -> dict:
        members = [self._member(i, staged) for i in member_ids]
        entry = next((o for o in members if o.role is OrderRole.ENTRY), None)
        exits = [o for o in members if o.role is not OrderRole.ENTRY]
        exit_qty = sum((o.filled_quantity for o in exits), ZERO)
        exit_cost = sum((o.filled_cost for o in exits), ZERO)
        fees = sum((o.fees for o in members), ZERO)
        pnl = None
        if entry is not None and entry.average_fill_price is not None and exit_qty > ZERO:
            sign = 1 if entry.side is Side.BUY else -1
            pnl = sign * (exit_cost - exit_qty * entry.average_fill_price)
        return {
            "signal_id": signal_id,
            "entry_order_id": str(entry.id) if entry else None,
            "pair": entry.pair if entry else None,
            "side": entry.side.value if entry else None,
            "entry_status": entry.status.value if entry else None,
            "entry_filled": _d(entry.filled_quantity) if entry else None,
            "entry_average_price": _d(entry.average_fill_price) if entry else None,
            "exit_filled": _d(exit_qty),
            "exit_average_price": _d(exit_cost / exit_qty) if exit_qty else None,
            "position": _d((entry.filled_quantity if entry else ZERO) - exit_qty),
            "realised_pnl": _d(pnl) if pnl is not None else None,
            "fees": _d(fees),
            "open_legs": sum(1 for o in exits if not o.is_terminal),
            "legs": len(exits),
            "updated_at": _utc(max((o.modified_on for o in members), default=None)),
        }

    def _member(self, order_id: UUID, staged: dict[UUID, Order]) -> Order:
        order = staged.get(order_id) or self._orders.get(order_id)
        if order is None:
            # Not followed by this process yet (a restart, or a failed batch): read it for the signal row, but do
            # not cache it, since the store may hold events past this batch that _mutate must still apply in order.
            order = self.app.repository.get(order_id)
        return order

    # --- rebuild ----------------------------------------------------------------------------------------

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild the read models from the whole log without downtime: a shadow set of tables is filled from the
        log while the live tables keep serving (and following), then swapped in within one transaction.
        Returns the number of notifications the shadow processed."""
        if self.t is not t.LIVE:
            raise ValueError("only the live read models are rebuilt (the shadow is the rebuild)")
        shadow = t.TableSet(suffix=SHADOW_SUFFIX)
        shadow_name = self.name + SHADOW_SUFFIX
        with self.engine.begin() as conn:  # leftovers of an interrupted rebuild
            for table in shadow.views:
                table.drop(conn, checkfirst=True)
            conn.execute(delete(t.projection_tracking).where(t.projection_tracking.c.name == shadow_name))
        builder = ReadModelProjector(
            self.app, self.engine, batch_size=max(self.batch_size, 1000), tables=shadow, name=shadow_name
        )
        processed = builder.catch_up(progress)
        processed += builder.catch_up(progress)  # what was written while building: a short second pass
        with self.engine.begin() as conn:
            for live, new in zip(t.LIVE.views, shadow.views, strict=True):
                live.drop(conn)
                conn.execute(text(f'ALTER TABLE "{new.name}" RENAME TO "{live.name}"'))
                for index in new.indexes:
                    conn.execute(text(f'DROP INDEX "{index.name}"'))
                for index in live.indexes:
                    index.create(conn)
            conn.execute(delete(t.projection_tracking).where(t.projection_tracking.c.name == self.name))
            conn.execute(
                update(t.projection_tracking).where(t.projection_tracking.c.name == shadow_name).values(name=self.name)
            )
        self._orders.clear()  # our cache may be ahead of the swapped-in position: reload lazily
        return processed
