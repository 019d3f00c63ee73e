"""The read-model projector: follows the Orders log and keeps the read-model tables at a tracked position.

Exactly once: each batch writes its rows *and* moves the tracking position in one transaction, guarded by the
position it started from (``database.move_position``), so a re-delivered or concurrent batch writes nothing.
The live follower and ``rebuild()`` run the same code (``projection.OrdersProjection`` -> ``rows``); a rebuild
only differs in where it writes (a shadow set of tables, loaded without most indexes, then swapped in).

This is eventsourcing's ``Projection``/``ProjectionRunner``/tracking-recorder pattern, hand-rolled because those
runners need ``recorder.subscribe()``, which ``eventsourcing.sqlite`` (the embedded default) does not have
(eventsourcing-notes P4), and because the view's tracking row lives beside the read-model tables in their own
database (a SQLite file apart from the store's, or the same PostgreSQL).

Whatever text the log holds is stored (``database.storable``): a NUL (PostgreSQL text cannot hold one) and a lone
surrogate (not encodable as UTF-8) are written escaped as ``\u0000``, and text longer than its column is cut to the
column's length, the same on both backends, so that an event written by an older version or another writer can
never stop the read models from following the log. A batch the database still refuses is recorded in
``projection_failures`` (see ``failure``) before the error propagates; health reports it.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, select

from execledger.application.orders_app import OrdersApp
from execledger.infrastructure.readmodels import tables as t
from execledger.infrastructure.readmodels.database import (
    SHADOW_SUFFIX,
    ProjectionConflict,
    append_rows,
    build_shadow_indexes,
    create_shadow,
    create_tables,
    describe_failure,
    finish_load,
    load_members,
    load_views,
    move_position,
    read_position,
    read_records,
    readmodel_engine,
    swap_in,
    upsert_rows,
)
from execledger.infrastructure.readmodels.projection import (
    BatchRows,
    OrdersProjection,
    StoredRecord,
    record_from_notification,
)

__all__ = [
    "PROJECTION_NAME",
    "SHADOW_SUFFIX",
    "ProjectionConflict",
    "ReadModelProjector",
    "describe_failure",
    "readmodel_engine",
]
log = logging.getLogger(__name__)

PROJECTION_NAME = "orders_read_model"
REBUILD_BATCH = 5000  # events per transaction while a rebuild loads the shadow tables


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while one batch is staged and written: the batch allocates many small
    containers (decoded events, row tuples) that are freed by reference counting anyway, and every collection
    pass also walks the long-lived cache; collections took 40% of a rebuild. It resumes after the batch."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class ReadModelProjector:
    """Catches the read models up with the Orders log; ``rebuild()`` rebuilds them from the start of the log."""

    def __init__(
        self,
        app: OrdersApp,
        engine: Engine,
        *,
        batch_size: int = 500,
        tables: t.TableSet | Any = t.LIVE,
        name: str = PROJECTION_NAME,
        max_cached_orders: int = 20_000,
        _shadow: bool = False,
    ):
        self.app = app
        self.engine = engine
        self.batch_size = batch_size
        self.t = tables
        self.name = name
        self._shadow = _shadow  # a rebuild's shadow: fresh tables, appended to without conflict checks
        self.projection = OrdersProjection(
            lambda ids: load_views(engine, self.t, ids),
            lambda ids: load_members(engine, self.t, ids),
            max_cached=max_cached_orders,
        )
        self._failure_recorded: bool | None = None  # None: unknown (another process may have left one)
        create_tables(engine, t.metadata)  # the live tables and the tracking table; idempotent, race-tolerant

    # --- position -----------------------------------------------------------------------------------------------

    def position(self) -> int:
        with self.engine.connect() as conn:
            return read_position(conn, self.name)

    def lag(self) -> int:
        """How many notifications of the log the read models have not processed yet."""
        return max(0, (self.app.recorder.max_notification_id() or 0) - self.position())

    def failure(self) -> dict[str, Any] | None:
        """The batch this projection could not apply (``position`` it stopped at, ``error``, ``failed_at`` naive
        UTC, ``attempts``), recorded by whichever process runs it; None while it applies its batches."""
        table = t.projection_failures
        with self.engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.name == self.name)).mappings().first()
        return dict(row) if row else None

    def _record_failure(self, position: int, exc: BaseException) -> None:
        table = t.projection_failures
        try:
            with self.engine.begin() as conn:
                attempts = conn.execute(
                    select(table.c.attempts).where(table.c.name == self.name, table.c.position == position)
                ).scalar()
                conn.execute(delete(table).where(table.c.name == self.name))
                failed_at = datetime.now(UTC).replace(tzinfo=None)
                conn.execute(
                    table.insert().values(
                        name=self.name,
                        position=position,
                        error=describe_failure(exc),
                        failed_at=failed_at,
                        attempts=(attempts or 0) + 1,
                    )
                )
            self._failure_recorded = True
        except Exception as again:  # the database itself is failing: the caller still gets the first error
            log.warning("could not record the projection failure (%s)", describe_failure(again))

    def _clear_failure(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(t.projection_failures).where(t.projection_failures.c.name == self.name))
        self._failure_recorded = False

    # --- processing ---------------------------------------------------------------------------------------------

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Process everything recorded so far; returns the number of notifications processed. A batch that cannot
        be applied is recorded in ``projection_failures`` (see ``failure``) before the error propagates."""
        done = 0
        while True:
            start = self.position()
            records = read_records(self.app, start, self.batch_size)
            if not records:
                return done
            try:
                self._apply(records, start)
            except ProjectionConflict:
                # Someone else moved the position (another projector, or a rebuild swapped tables in): our cache
                # may be ahead of the new position, so forget it and go on from where the table is.
                continue
            except Exception as exc:
                self._record_failure(start, exc)
                raise
            if self._failure_recorded is not False and not self._shadow:
                self._clear_failure()
            done += len(records)
            if progress:
                progress(len(records))

    def process(self, notifications: Iterable[Any], *, expected_position: int) -> None:
        """Project one batch (eventsourcing notifications or ``StoredRecord``s) and move the tracking position, in
        one transaction guarded by ``expected_position``; raises ProjectionConflict (writing nothing) if the
        position is no longer that."""
        records = [n if isinstance(n, StoredRecord) else record_from_notification(n) for n in notifications]
        records = [r for r in records if r.id > expected_position]
        if records:
            self._apply(records, expected_position)

    def _apply(self, records: list[StoredRecord], expected: int) -> None:
        if self.position() != expected:  # cheap early check; the transaction below re-checks
            self.projection.forget()
            raise ProjectionConflict(f"tracking position is no longer {expected}: batch not applied")
        try:
            with _gc_paused():
                rows = self.projection.stage(records)
                self._write(rows, expected)
        except BaseException:
            self.projection.forget()  # staged views belong to a batch that did not commit
            raise
        self.projection.commit()

    def _write(self, rows: BatchRows, expected: int) -> None:
        fresh = self._shadow
        with self.engine.begin() as conn:
            move_position(conn, self.name, expected, rows.last_id)
            append_rows(conn, self.t.execution_reports, rows.reports, fresh=fresh)
            append_rows(conn, self.t.fills, rows.fills, fresh=fresh)
            append_rows(conn, self.t.decisions, rows.decisions, fresh=fresh)
            upsert_rows(conn, self.t.orders, rows.orders)
            upsert_rows(conn, self.t.signals, rows.signals)

    # --- rebuild ------------------------------------------------------------------------------------------------

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild the read models from the whole log without downtime: a shadow set of tables is filled from the
        log while the live tables keep serving (and following), then swapped in within one transaction.
        Returns the number of notifications the shadow processed."""
        if self.t is not t.LIVE:
            raise ValueError("only the live read models are rebuilt (the shadow is the rebuild)")
        shadow = t.TableSet(suffix=SHADOW_SUFFIX)
        shadow_name = self.name + SHADOW_SUFFIX
        load = create_shadow(self.engine, shadow, shadow_name)
        builder = ReadModelProjector(
            self.app,
            self.engine,
            batch_size=max(self.batch_size, REBUILD_BATCH),
            tables=load,  # first pass: per-event rows into key-less load tables
            name=shadow_name,
            max_cached_orders=self.projection.max_cached,
            _shadow=True,
        )
        processed = builder.catch_up(progress)
        finish_load(self.engine, load)
        builder.t = shadow
        build_shadow_indexes(self.engine, shadow)
        processed += builder.catch_up(progress)  # what was written while building: a short second pass
        swap_in(self.engine, shadow, shadow_name, self.name)
        self.projection.forget()  # our cache may be ahead of the swapped-in position: reload lazily
        return processed
