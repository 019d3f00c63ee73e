"""The Orders recorder's insert path (both backends): one transaction a save, notification ids in commit order, a
conflicting version or an already-recorded tracking position refused with nothing kept, and the store usable after."""

import sqlite3
import uuid
from decimal import Decimal as D

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent, Tracking
from eventsourcing.sqlite import SQLiteDatastore

from execledger.application.order_index import OrderIndex
from execledger.application.unit_of_work import ConcurrencyConflict, UnitOfWork
from execledger.domain.order import Order
from execledger.domain.reasons import reason
from execledger.domain.values import OrderRole, OrderType, Side
from execledger.infrastructure.orderstore import SQLiteOrdersRecorder


def _order(i: int) -> Order:
    return Order.place(
        order_id=uuid.uuid4(),
        signal_id=f"s{i}",
        role=OrderRole.ENTRY,
        pair="XXBTZUSD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D("0.01"),
        limit_price=D("60000.5"),
        cl_ord_id=f"c{i}",
        reason=reason("test", "insert"),
    )


def _log(app) -> list[tuple[int, uuid.UUID, int]]:
    return [(n.id, n.originator_id, n.originator_version) for n in app.recorder.select_notifications(1, 1000)]


def test_saves_get_increasing_ids_and_read_back_identically(orders_app):
    uow = UnitOfWork(orders_app, OrderIndex())
    # 1, 10 and 40 events a save (the PostgreSQL recorder sends up to 12 rows as scalars, more as arrays)
    batches = [[_order(0)], [_order(i) for i in range(1, 11)], [_order(11)], [_order(i) for i in range(12, 52)]]
    for batch in batches:
        uow.commit(*batch)
    ids = [n for n, _, _ in _log(orders_app)]
    assert len(ids) == 52 and ids == sorted(ids) and len(set(ids)) == 52
    assert [o for _, o, _ in _log(orders_app)] == [o.id for batch in batches for o in batch]
    for order in (batches[1][3], batches[3][37]):
        again = orders_app.get_order(order.id)
        assert (again.limit_price, again.cl_ord_id, again.version) == (D("60000.5"), order.cl_ord_id, 1)


def test_a_conflicting_version_is_refused_and_nothing_of_the_save_is_kept(orders_app):
    uow = UnitOfWork(orders_app, OrderIndex())
    first = _order(0)
    uow.commit(first)
    before = _log(orders_app)
    # Another writer's order with the same id: its first event has the version already stored.
    twin = _order(0)
    twin._id = first.id
    for e in twin.pending_events:
        object.__setattr__(e, "originator_id", first.id)
    with pytest.raises(ConcurrencyConflict):
        uow.commit(_order(1), twin)  # a new order and the conflicting one, in one transaction
    assert _log(orders_app) == before
    uow.commit(_order(2))  # the store (and its pooled connection) is usable again
    assert len(_log(orders_app)) == len(before) + 1


def test_a_tracking_position_already_recorded_is_refused_with_its_events(orders_app):
    orders_app.events.put(list(_order(0).collect_events()), tracking=Tracking("Commands", 5))
    before = _log(orders_app)
    with pytest.raises(IntegrityError):
        orders_app.events.put(list(_order(1).collect_events()), tracking=Tracking("Commands", 5))
    assert _log(orders_app) == before
    assert orders_app.recorder.max_tracking_id("Commands") == 5
    orders_app.events.put(list(_order(2).collect_events()), tracking=Tracking("Commands", 6))
    assert orders_app.recorder.max_tracking_id("Commands") == 6
    assert len(_log(orders_app)) == len(before) + 1


def test_the_notification_ids_a_save_returns_are_the_stored_ones(orders_app):
    """The recordings the store returns name exactly the rows it wrote (both backends, with and without tracking):
    what the listeners and the follower read by notification id is what was committed."""
    uow = UnitOfWork(orders_app, OrderIndex())
    uow.commit(_order(0))
    returned = []
    for k, batch in enumerate([[_order(i) for i in range(1, 4)], [_order(4)], [_order(i) for i in range(5, 45)]]):
        events = [e for o in batch for e in o.collect_events()]
        tracking = Tracking(notification_id=k + 1, application_name="Commands") if k == 2 else None
        returned += [
            (r.notification.id, r.notification.originator_id) for r in orders_app.events.put(events, tracking=tracking)
        ]
    assert returned == [(n, o) for n, o, _ in _log(orders_app)][1:]
    assert orders_app.recorder.max_tracking_id("Commands") == 3


# --- the recorder's insert_events itself (both backends; SQLite: ``SQLiteOrdersRecorder``'s multi-row INSERT) ---


def _stored(originator_id: uuid.UUID, version: int) -> StoredEvent:
    return StoredEvent(originator_id, version, "tests:Event", f'{{"v":{version}}}'.encode())


def _rows(app, start: int) -> list[tuple[int, uuid.UUID, int, bytes]]:
    return [
        (n.id, n.originator_id, n.originator_version, n.state) for n in app.recorder.select_notifications(start, 1000)
    ]


# 1 and 10 rows; 64 and 65 (SQLite: one statement in autocommit up to VALUES_MAX = 64, statements in a transaction
# beyond); 131 (SQLite: three statements; PostgreSQL: scalars up to 12 rows, arrays beyond).
@pytest.mark.parametrize("n", [1, 10, 64, 65, 131])
def test_a_mixed_save_gets_ids_in_its_order_contiguous_in_the_log(orders_app, n):
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    orders_app.recorder.insert_events([_stored(c, 1)])
    # Several aggregates, several versions of one, not sorted by id or version.
    pattern = [(b, 1), (a, 1), (a, 2), (c, 2), (a, 3), (b, 2)] if n >= 6 else []
    batch = [_stored(*key) for key in pattern] + [_stored(uuid.uuid4(), 1) for _ in range(n - len(pattern))]
    ids = orders_app.recorder.insert_events(batch)
    assert len(ids) == n and ids == sorted(ids) and len(set(ids)) == n
    # What the log reads from the first id on is exactly this save, in its order, under the returned ids.
    expected = [(i, s.originator_id, s.originator_version, s.state) for i, s in zip(ids, batch, strict=True)]
    assert _rows(orders_app, ids[0]) == expected
    assert orders_app.recorder.max_notification_id() == ids[-1]


@pytest.mark.parametrize("n", [3, 131])
def test_a_version_already_stored_refuses_the_whole_save(orders_app, n):
    a = uuid.uuid4()
    first = orders_app.recorder.insert_events([_stored(a, 1)])
    before = _rows(orders_app, 1)
    # New rows, then (last, so that earlier statements of a long save have run) a row whose version is stored.
    batch = [_stored(uuid.uuid4(), 1) for _ in range(n - 1)] + [_stored(a, 1)]
    with pytest.raises(IntegrityError):
        orders_app.recorder.insert_events(batch)
    assert _rows(orders_app, 1) == before
    assert orders_app.recorder.select_events(batch[0].originator_id) == []
    again = orders_app.recorder.insert_events([_stored(a, 2), _stored(uuid.uuid4(), 1)])  # usable, ids go on
    assert again[0] > first[0] and _rows(orders_app, again[0])[0][1:3] == (a, 2)


@pytest.mark.parametrize("n", [1, 131])
def test_a_save_with_tracking_records_both_or_neither(orders_app, n):
    batch = [_stored(uuid.uuid4(), 1) for _ in range(n)]
    ids = orders_app.recorder.insert_events(batch, tracking=Tracking("Commands", 7))
    assert orders_app.recorder.max_tracking_id("Commands") == 7
    assert [r[1] for r in _rows(orders_app, ids[0])] == [s.originator_id for s in batch]
    before = _rows(orders_app, 1)
    with pytest.raises(IntegrityError):  # position 7 again: already recorded
        orders_app.recorder.insert_events(
            [_stored(uuid.uuid4(), 1) for _ in range(n)], tracking=Tracking("Commands", 7)
        )
    assert _rows(orders_app, 1) == before and orders_app.recorder.max_tracking_id("Commands") == 7


def _save(recorder, via: str, batch: list[StoredEvent], tracking: Tracking | None = None) -> object:
    """A save without ids: ``insert_events(..., returning_ids=False)``, or ``insert_rows`` of the same values."""
    if via == "rows":
        rows = [x for s in batch for x in (s.originator_id, s.originator_version, s.topic, s.state)]
        return recorder.insert_rows(rows, tracking)
    return recorder.insert_events(batch, tracking=tracking, returning_ids=False)


@pytest.mark.parametrize("via", ["events", "rows"])
@pytest.mark.parametrize("n", [1, 10, 65, 131])
def test_a_save_without_ids_writes_the_same_rows_and_refuses_the_same_saves(orders_app, n, via):
    """``returning_ids=False`` (SQLite leaves out RETURNING, PostgreSQL ignores it) and ``insert_rows`` (the unit of
    work's saves: the same values as one flat list)."""
    recorder, a = orders_app.recorder, uuid.uuid4()
    last = recorder.insert_events([_stored(a, 1)])[-1]
    batch = [_stored(uuid.uuid4(), 1) for _ in range(n - 1)] + [_stored(a, 2)]
    returned = _save(recorder, via, batch)
    rows = _rows(orders_app, last + 1)
    assert [r[1:] for r in rows] == [(s.originator_id, s.originator_version, s.state) for s in batch]
    ids = [r[0] for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == n and returned in (None, ids)
    before = _rows(orders_app, 1)
    for tracking in (None, Tracking("Commands", 3)):  # version 2 of ``a`` again: refused, with or without tracking
        with pytest.raises(IntegrityError):
            _save(recorder, via, [_stored(uuid.uuid4(), 1), _stored(a, 2)], tracking)
        assert _rows(orders_app, 1) == before
    _save(recorder, via, [_stored(a, 3)], Tracking("Commands", 3))
    assert recorder.max_tracking_id("Commands") == 3 and _rows(orders_app, 1)[-1][1:3] == (a, 3)
    with pytest.raises(IntegrityError):  # position 3 again
        _save(recorder, via, [_stored(a, 4)], Tracking("Commands", 3))
    assert recorder.select_events(a)[-1].originator_version == 3
    _save(recorder, via, [], Tracking("Commands", 4))  # a tracking position alone
    assert recorder.max_tracking_id("Commands") == 4


def test_sqlite_errors_are_translated_as_the_library_translates_them(tmp_path):
    """A database locked by another writer beyond the lock timeout: eventsourcing's OperationalError, nothing kept,
    the recorder's pooled connection usable afterwards."""
    datastore = SQLiteDatastore(str(tmp_path / "orders.sqlite"), lock_timeout=0.2)  # type: ignore[arg-type]
    recorder = SQLiteOrdersRecorder(datastore)
    recorder.create_table()
    other = sqlite3.connect(tmp_path / "orders.sqlite", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        with pytest.raises(OperationalError, match="locked"):  # one statement in autocommit
            recorder.insert_events([_stored(uuid.uuid4(), 1)])
        with pytest.raises(OperationalError, match="locked"):  # statements in BEGIN ... COMMIT
            recorder.insert_events([_stored(uuid.uuid4(), 1) for _ in range(SQLiteOrdersRecorder.VALUES_MAX + 1)])
        with pytest.raises(OperationalError, match="locked"):
            recorder.insert_events([_stored(uuid.uuid4(), 1)], tracking=Tracking("Commands", 1))
        with pytest.raises(OperationalError, match="locked"):  # the unit of work's saves
            _save(recorder, "rows", [_stored(uuid.uuid4(), 1)])
        other.execute("ROLLBACK")
        assert recorder.max_notification_id() is None
        assert recorder.insert_events([_stored(uuid.uuid4(), 1), _stored(uuid.uuid4(), 1)]) == [1, 2]
    finally:
        other.close()
        datastore.close()


# --- SQLite: the saves' kept connection ------------------------------------------------------------------------


def _saves_beside_retires(recorder, save_plan: list[tuple[int, int]], retires: int) -> list:
    """Threads saving ``n`` batches of ``size`` events for each (n, size) of ``save_plan`` and one retiring
    ``retires`` orders, all at once through ``recorder``; returns the saves as (notification ids, batch) after
    checking that none failed and that each save's rows are contiguous in the log, in its order."""
    import threading

    saves: list[tuple[list[int], list[StoredEvent]]] = []
    errors: list[BaseException] = []

    def save(n: int, size: int) -> None:
        try:
            for _ in range(n):
                batch = [_stored(uuid.uuid4(), 1) for _ in range(size)]
                saves.append((list(recorder.insert_events(batch) or []), batch))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def retire(n: int) -> None:
        try:
            for i in range(n):
                recorder.retire_orders([(uuid.uuid4(), uuid.uuid4(), 1, f"c{i}", None)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=plan) for plan in save_plan]
    threads.append(threading.Thread(target=retire, args=(retires,)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    log = {n.id: n for n in recorder.select_notifications(1, 10_000)}
    assert len(log) == sum(n * size for n, size in save_plan) and len(saves) == sum(n for n, _ in save_plan)
    for ids, batch in saves:
        assert ids == list(range(ids[0], ids[0] + len(batch)))
        assert [(log[i].originator_id, log[i].state) for i in ids] == [(s.originator_id, s.state) for s in batch]
    return saves


def test_saves_from_threads_stay_whole_beside_the_pools_other_writers(tmp_path):
    """Saves of two threads on the recorder's kept connection (one statement, or three in a transaction) and, at
    the same time, the pool's writers (the retired-orders table in its own transactions): every save's rows are
    contiguous in the log, in its order, and every write is kept."""
    datastore = SQLiteDatastore(str(tmp_path / "orders.sqlite"), lock_timeout=10)  # type: ignore[arg-type]
    recorder = SQLiteOrdersRecorder(datastore)
    recorder.create_table()
    try:
        # 10 rows: one statement in autocommit; 130 rows: three statements in BEGIN ... COMMIT.
        _saves_beside_retires(recorder, [(50, 10), (20, 130)], 100)
        with datastore.transaction(commit=False) as c:
            c.execute(f"SELECT COUNT(*) FROM {recorder.RETIRED}")
            assert c.fetchone()[0] == 100
    finally:
        datastore.close()


def test_a_save_after_the_store_closed_is_refused(tmp_path):
    """The pool closes the kept connection with the others: a later save is refused, nothing written."""
    from eventsourcing.persistence import ConnectionPoolClosedError, PersistenceError

    datastore = SQLiteDatastore(str(tmp_path / "orders.sqlite"))  # type: ignore[arg-type]
    recorder = SQLiteOrdersRecorder(datastore)
    recorder.create_table()
    recorder.insert_events([_stored(uuid.uuid4(), 1)])
    datastore.close()
    with pytest.raises((ConnectionPoolClosedError, PersistenceError)):
        recorder.insert_events([_stored(uuid.uuid4(), 1)])
    again = SQLiteDatastore(str(tmp_path / "orders.sqlite"))  # type: ignore[arg-type]
    try:
        assert SQLiteOrdersRecorder(again).max_notification_id() == 1
    finally:
        again.close()


def test_has_events_answers_from_the_saves_at_once_without_the_readers(orders_app):
    """Intake's check whether a signal's entry was recorded before (``ExecutionLedger.find_recorded``): the
    recorder's ``has_events`` where it has one, else ``repository.get``; both answer the same."""
    from execledger.application.ledger import ExecutionLedger
    from execledger.infrastructure.pairs import load_default_pairs

    ledger = ExecutionLedger(orders_app, load_default_pairs())
    order, other = _order(0), _order(1)
    assert ledger.find_recorded(order.id) is None
    UnitOfWork(orders_app, OrderIndex()).commit(order)
    assert ledger.find_recorded(order.id).cl_ord_id == order.cl_ord_id
    assert ledger.find_recorded(other.id) is None
    has_events = getattr(orders_app.recorder, "has_events", None)
    if has_events is not None:
        assert has_events(order.id) and not has_events(other.id)


# --- PostgreSQL: the saves' function and kept connection ----------------------------------------------------------


postgres_only = pytest.mark.parametrize(
    "settings", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def _backend_pids(app) -> set[int]:
    """The server processes connected to the test database (this test's and any other's)."""
    with app.recorder.datastore.get_connection() as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()").fetchall()
    return {row["pid"] for row in rows}


@postgres_only
def test_pg_saves_from_threads_stay_whole_beside_the_pools_other_writers(orders_app):
    """Saves of two threads on the recorder's kept connection and, at the same time, the pool's writers (the
    retired-orders table): every save's rows are contiguous in the log, in its order, and every write is kept."""
    # 10 rows: scalars; 40 rows: arrays (beyond VALUES_MAX = 12).
    _saves_beside_retires(orders_app.recorder, [(40, 10), (20, 40)], 50)
    assert orders_app.recorder.retired_order_id("c49") is not None


@postgres_only
def test_pg_a_save_on_a_broken_kept_connection_is_made_on_a_fresh_one(orders_app):
    """The server ends the kept connection (a restart, an administrator): the next save is retried on a connection
    taken from the pool again, as the library retries a save, and is kept once."""
    recorder = orders_app.recorder
    first = recorder.insert_events([_stored(uuid.uuid4(), 1)])
    kept_pid = recorder._kept.connection.info.backend_pid
    with recorder.datastore.get_connection() as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (kept_pid,))
    batch = [_stored(uuid.uuid4(), 1), _stored(uuid.uuid4(), 1)]
    ids = recorder.insert_events(batch)
    assert [r[1] for r in _rows(orders_app, first[0] + 1)] == [s.originator_id for s in batch]
    assert len(ids) == 2 and recorder._kept.connection.info.backend_pid != kept_pid
    # A read finds the kept connection ended too: it is read on a pooled one, and the next save on a fresh one.
    kept_pid = recorder._kept.connection.info.backend_pid
    with recorder.datastore.get_connection() as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (kept_pid,))
    assert recorder.select_events(batch[0].originator_id) == [batch[0]]
    assert recorder.insert_events([_stored(batch[0].originator_id, 2)])
    assert [e.originator_version for e in recorder.select_events(batch[0].originator_id)] == [1, 2]


@postgres_only
def test_pg_the_kept_connection_closes_with_the_application(settings):
    """Closing the application closes the connection the saves kept (the pool closes only those it holds); a save
    afterwards is refused and writes nothing."""
    from eventsourcing.persistence import PersistenceError

    from execledger.infrastructure.eventstore import open_orders_app

    app = open_orders_app(settings)
    recorder = app.recorder
    recorder.insert_events([_stored(uuid.uuid4(), 1)])
    kept = recorder._kept.connection
    kept_pid = kept.info.backend_pid
    assert kept_pid in _backend_pids(app)
    app.close()
    assert kept.closed
    with pytest.raises(PersistenceError):  # the save without the library's retries (ten, 0.2 s apart)
        recorder.insert_events.__wrapped__(recorder, [_stored(uuid.uuid4(), 1)])
    again = open_orders_app(settings)
    try:
        assert kept_pid not in _backend_pids(again)
        assert again.recorder.max_notification_id() == 1
    finally:
        again.close()


@postgres_only
def test_pg_an_aggregates_events_read_back_as_the_library_reads_them(orders_app):
    """``select_events`` on the saves' kept connection, on a pooled one while a save holds it, and with the
    library's options: the same StoredEvents as eventsourcing's own read, bytes state included."""
    from eventsourcing.postgres import PostgresAggregateRecorder

    recorder, a = orders_app.recorder, uuid.uuid4()
    recorder.insert_events([_stored(a, 1), _stored(uuid.uuid4(), 1), _stored(a, 2)])
    recorder.insert_events([_stored(a, 3)])
    library = PostgresAggregateRecorder.select_events.__wrapped__(recorder, a)
    assert [e.originator_version for e in library] == [1, 2, 3]
    assert recorder.select_events(a) == library and isinstance(recorder.select_events(a)[0].state, bytes)
    assert recorder.select_events(uuid.uuid4()) == []
    with recorder._keeping:  # a save in progress: read on a pooled connection
        assert recorder.select_events(a) == library
    assert recorder.select_events(a, gt=1, desc=True, limit=1) == [library[2]]
    assert orders_app.repository.get(_save_order(orders_app)).version == 1


def _save_order(app) -> uuid.UUID:
    order = _order(99)
    UnitOfWork(app, OrderIndex()).commit(order)
    return order.id


def test_one_commit_stores_events_in_the_order_they_were_decided_across_orders(orders_app):
    """A group commit (reports applied together) stores what was decided in decision order, not order by order,
    as if each decision had been committed on its own: replay re-decides in log order. Break test of issue 18: a
    leg's amend decided after its entry's first fill was stored after that entry's later fill."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    a, b = _order(0), _order(1)  # decided: a placed, b placed, then b submitted, then a submitted
    b.submit(at=now, deadline=None, reason=reason("test", "submit"))
    a.submit(at=now, deadline=None, reason=reason("test", "submit"))
    UnitOfWork(orders_app, OrderIndex()).commit(a, b)
    assert [(o, v) for _, o, v in _log(orders_app)] == [(a.id, 1), (b.id, 1), (b.id, 2), (a.id, 2)]


def test_a_commit_sorts_by_decision_only_what_was_not_decided_in_the_order_given(orders_app):
    """Orders given in the order they were decided are stored as given (the unit of work skips the sort), orders
    given in another order still by decision, an order whose events have no decision numbers (the library's own
    path) in its place; the listeners get each order's committed events."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    a, b, c, d = _order(0), _order(1), _order(2), _order(3)  # decided: a, b, c, d placed, then d, then a submitted
    d.submit(at=now, deadline=None, reason=reason("test", "submit"))
    a.submit(at=now, deadline=None, reason=reason("test", "submit"))
    c.__dict__.pop("_decided")  # as if recorded by the library's own path: keeps its place
    seen: list = []
    uow = UnitOfWork(orders_app, OrderIndex(), [seen.append])
    uow.commit(b, c)  # decided in the order given
    uow.commit(d, a)  # a placed, d placed, d submitted, a submitted
    stored = [(o, v) for _, o, v in _log(orders_app)]
    assert stored == [(b.id, 1), (c.id, 1), (a.id, 1), (d.id, 1), (d.id, 2), (a.id, 2)]
    assert [[(o.id, [e.originator_version for e in events]) for o, events in s] for s in seen] == [
        [(b.id, [1]), (c.id, [1])],
        [(d.id, [1, 2]), (a.id, [1, 2])],
    ]
    assert not any(o.pending_events for o in (a, b, c, d))
