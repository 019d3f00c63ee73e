"""Read models: exactly once under re-delivery, rebuild equals live, realised PnL per signal."""

import signal
import subprocess
import sys
import uuid
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from execledger.application.engine import EngineConfig, ExecutionEngine
from execledger.application.policies import PolicyConfig
from execledger.domain.order import Order
from execledger.domain.values import OrderRole, OrderType, Side
from execledger.infrastructure.readmodels import tables as t
from execledger.infrastructure.readmodels.projection import EventDecodeError
from execledger.infrastructure.readmodels.projector import ProjectionConflict, ReadModelProjector, readmodel_engine
from tests.harness import Harness
from tests.test_rows import T0, R


@pytest.fixture
def projector(orders_app, settings):
    engine = readmodel_engine(settings)
    yield ReadModelProjector(orders_app, engine, batch_size=7)  # small batches: many transactions
    engine.dispose()


def snapshot(engine) -> dict:
    out = {}
    with engine.connect() as conn:
        for table in t.VIEW_TABLES:
            keys = list(table.primary_key.columns)
            out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*keys))]
    return out


async def trade_a_bracket(ledger, clock) -> Harness:
    h = Harness(ledger, clock, EngineConfig(policy=PolicyConfig(resting_leg="both")))
    entry = await h.signal(signal_id="p1", quantity="1", limit_price="100", sl_price="90", tp_price="120")
    h.venue.fill(h.txid(entry), "0.5", "100", fee="0.13")
    h.venue.fill(h.txid(entry), "0.5", "101", fee="0.13")
    await h.settle()
    tp = h.legs(entry, OrderRole.TAKE_PROFIT)
    h.venue.fill(h.txid(tp[0]), "0.5", "120", fee="0.1")
    await h.settle()
    await h.signal(
        signal_id="p2",
        side="sell",
        order_type="market",
        limit_price=None,
        quantity="0.1",
        sl_price="130",
        tp_price="80",
    )
    return h


async def test_projection_follows_the_log(ledger, clock, projector):
    h = await trade_a_bracket(ledger, clock)
    projector.catch_up()
    assert projector.lag() == 0
    snap = snapshot(projector.engine)
    orders = {r[0]: r for r in snap["orders"]}
    assert len(orders) == len(h.engine.orders)
    assert len(snap["fills"]) == 3
    assert len(snap["execution_reports"]) == len(h.reports)  # the same reports the engine published
    with projector.engine.connect() as conn:
        sig = conn.execute(select(t.signals).where(t.signals.c.signal_id == "p1")).mappings().one()
        # bought 0.5@100 + 0.5@101 (avg 100.5); sold 0.5@120 -> (120 - 100.5) * 0.5 = 9.75
        assert D(sig["realised_pnl"]) == D("9.75") and D(sig["position"]) == D("0.5") and D(sig["fees"]) == D("0.36")
        rules = {r.rule for r in conn.execute(select(t.decisions.c.rule))}
        assert {"approved_signal", "submit", "bracket_placed", "oco_shrink_amend"} <= rules


async def test_redelivered_batch_changes_nothing(ledger, clock, projector):
    await trade_a_bracket(ledger, clock)
    projector.catch_up()
    before, position = snapshot(projector.engine), projector.position()
    old = ledger.app.recorder.select_notifications(start=1, limit=20)
    with pytest.raises(ProjectionConflict):
        projector.process(old, expected_position=0)  # a stale projector re-delivering from the start
    projector.process(old, expected_position=position)  # events at or below the position are skipped
    assert snapshot(projector.engine) == before and projector.position() == position


async def test_rebuild_equals_live(ledger, clock, projector):
    h = await trade_a_bracket(ledger, clock)
    projector.catch_up()  # live: followed in small batches while trading went on ...
    clock.advance(400)
    await h.settle()  # ... timeouts and cancels happen after the first catch-up
    projector.catch_up()
    live = snapshot(projector.engine)
    assert projector.rebuild() == ledger.app.recorder.max_notification_id()
    assert snapshot(projector.engine) == live


async def test_the_projector_reads_the_stores_own_recorder_without_the_library_scan(ledger, clock, projector):
    # The Orders store's recorders derive from eventsourcing's (orderstore.py): the read models page through its
    # events table directly; select_notifications (a UUID and a Notification per row) is the fallback for others.
    await trade_a_bracket(ledger, clock)

    def refused(*args, **kwargs):
        raise AssertionError("the projector went through select_notifications")

    recorder = ledger.app.recorder
    recorder.select_notifications = refused
    try:
        assert projector.catch_up() == recorder.max_notification_id()
    finally:
        del recorder.select_notifications
    assert snapshot(projector.engine)["execution_reports"]


async def test_fresh_projector_process_resumes_from_tracking(ledger, clock, projector, orders_app):
    await trade_a_bracket(ledger, clock)
    projector.catch_up()
    live = snapshot(projector.engine)
    again = ReadModelProjector(orders_app, projector.engine)  # a restarted process: empty cache
    assert again.catch_up() == 0 and snapshot(projector.engine) == live


async def test_rebuild_swaps_a_shadow_in_while_the_live_tables_keep_serving(ledger, clock, projector, orders_app):
    await trade_a_bracket(ledger, clock)
    projector.catch_up()
    live = snapshot(projector.engine)
    seen_during_build = []
    original = ReadModelProjector.catch_up

    def spying_catch_up(self, progress=None):
        if self.t is not projector.t:  # the shadow builder: the live tables still answer meanwhile
            seen_during_build.append(snapshot(projector.engine)["orders"])
        return original(self, progress)

    ReadModelProjector.catch_up = spying_catch_up
    try:
        projector.rebuild()
    finally:
        ReadModelProjector.catch_up = original
    assert seen_during_build and all(rows == live["orders"] for rows in seen_during_build)
    assert snapshot(projector.engine) == live and projector.position() == ledger.app.recorder.max_notification_id()
    with projector.engine.connect() as conn:  # no shadow tables are left behind
        names = set(projector.engine.dialect.get_table_names(conn, schema=None))
    assert not any(name.endswith("__rebuild") for name in names)
    other = ReadModelProjector(orders_app, projector.engine)  # a second projector whose cache predates the swap
    ExecutionEngine(ledger).control.submit_signal(
        {"signal_id": "after", "pair": "XBT/USD", "side": "buy", "order_type": "market", "quantity": "0.01"}
    )
    assert other.catch_up() == 1 and projector.catch_up() == 0


async def test_restarted_projector_reading_a_sibling_does_not_run_ahead_of_the_log(
    ledger, clock, projector, orders_app
):
    # Found by the fault suite: after a restart, a batch touching a signal loaded its other orders at their latest
    # version into the cache; their next events then failed with OriginatorVersionError and the follower died.
    h = await trade_a_bracket(ledger, clock)
    projector.catch_up()
    entry = ledger.order_for_signal("p1")
    [sl] = h.legs(entry, OrderRole.STOP_LOSS, live_only=True)
    h.venue.fill(h.txid(sl), "0.5", "90")
    await h.settle()  # the stop fills; the take-profit is canceled (its events follow the stop's)
    again = ReadModelProjector(orders_app, projector.engine, batch_size=1)  # a restarted process: empty cache
    again.catch_up()
    live = snapshot(projector.engine)
    again.rebuild()
    assert snapshot(projector.engine) == live


async def test_live_with_a_tiny_cache_and_restarts_equals_a_rebuild(ledger, clock, orders_app, projector):
    # Views evicted after every batch and projectors restarted mid-log are read back from the tables themselves.
    h = await trade_a_bracket(ledger, clock)
    end = ledger.app.recorder.max_notification_id()
    while projector.position() < end:
        fresh = ReadModelProjector(orders_app, projector.engine, batch_size=3, max_cached_orders=1)
        start = projector.position()
        fresh.process(ledger.app.recorder.select_notifications(start=start + 1, limit=3), expected_position=start)
    clock.advance(400)
    await h.settle()
    ReadModelProjector(orders_app, projector.engine, batch_size=2, max_cached_orders=1).catch_up()
    live = snapshot(projector.engine)
    projector.rebuild()
    assert snapshot(projector.engine) == live


async def test_rebuild_twice_keeps_the_live_names(ledger, clock, projector):
    # PostgreSQL names indexes and primary keys schema-wide: a swapped-in shadow must take the live names back, or
    # the next rebuild cannot create its shadow.
    await trade_a_bracket(ledger, clock)
    projector.catch_up()
    live = snapshot(projector.engine)
    for _ in range(3):
        projector.rebuild()
        assert snapshot(projector.engine) == live
    with projector.engine.connect() as conn:
        for table in t.VIEW_TABLES:
            names = {i["name"] for i in projector.engine.dialect.get_indexes(conn, table.name)}
            assert names == {i.name for i in table.indexes}, names


async def test_a_corrupt_stored_event_stops_the_projection_naming_it_and_writes_nothing(ledger, clock, projector):
    await trade_a_bracket(ledger, clock)
    projector.catch_up()
    before, position = snapshot(projector.engine), projector.position()
    ExecutionEngine(ledger).control.submit_signal(
        {"signal_id": "next", "pair": "XBT/USD", "side": "buy", "order_type": "market", "quantity": "0.01"}
    )
    bad = position + 1
    recorder = ledger.app.recorder
    if settings_is_postgres(projector):
        with recorder.datastore.transaction(commit=True) as cur:
            table = f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'
            cur.execute(f"UPDATE {table} SET state = %s WHERE notification_id = %s", (b"{", bad))
    else:
        with recorder.datastore.transaction(commit=True) as cur:
            cur.execute(f"UPDATE {recorder.events_table_name} SET state = ? WHERE rowid = ?", (b"{", bad))
    with pytest.raises(EventDecodeError, match=f"stored event {bad} "):
        projector.catch_up()
    assert snapshot(projector.engine) == before and projector.position() == position


def settings_is_postgres(projector) -> bool:
    return projector.engine.dialect.name == "postgresql"


REBUILD_CHILD = """
import sys
from pathlib import Path
from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.settings import Settings
settings = Settings(data_dir=Path(sys.argv[1]), database_url=sys.argv[2] or None)
with open_ledger(settings) as lg:
    lg.projector.rebuild(progress=lambda n: print("batch", n, flush=True))
print("done", flush=True)
"""


def fill_log(app, signals: int) -> None:
    """``signals`` entries with a canceled stop, straight through the domain (10 events each), 50 orders a save."""
    batch = []
    for i in range(signals):
        entry = Order.place(
            order_id=uuid.uuid4(), signal_id=f"k{i}", role=OrderRole.ENTRY, pair="XXBTZUSD", side=Side.BUY,
            order_type=OrderType.LIMIT, quantity=D("0.02"), limit_price=D("60000"), cl_ord_id=str(uuid.uuid4()),
            reason=R,
        )  # fmt: skip
        entry.submit(at=T0, deadline=None, reason=R)
        entry.acknowledge(txid=f"OE{i}", at=T0, reason=R)
        entry.apply_fill(trade_id=f"TE{i}", quantity=D("0.02"), price=D("60000"), fee=D("0.1"), fee_asset="ZUSD")
        leg = Order.place(
            order_id=uuid.uuid4(), signal_id=f"k{i}", role=OrderRole.STOP_LOSS, pair="XXBTZUSD", side=Side.SELL,
            order_type=OrderType.STOP_LOSS, quantity=D("0.02"), trigger_price=D("59000"), cl_ord_id=str(uuid.uuid4()),
            parent_id=entry.id, reason=R,
        )  # fmt: skip
        leg.submit(at=T0, deadline=None, reason=R)
        leg.acknowledge(txid=f"OS{i}", at=T0, reason=R)
        leg.request_cancel(reason=R)
        leg.mark_canceled(reason=R)
        batch += [entry, leg]
        if len(batch) >= 50:
            app.save(*batch)
            batch = []
    if batch:
        app.save(*batch)


def test_a_rebuild_sigkilled_while_loading_leaves_the_live_tables_and_the_next_rebuild_cleans_up(
    ledger, clock, projector, settings
):
    fill_log(ledger.app, 1200)  # 12,000 events: three batches of the rebuild
    ReadModelProjector(ledger.app, projector.engine, batch_size=2000).catch_up()
    live = snapshot(projector.engine)
    url = settings.database_url.get_secret_value() if settings.database_url else ""
    child = subprocess.Popen(
        [sys.executable, "-c", REBUILD_CHILD, str(settings.data_dir), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = child.stdout.readline()  # blocks until the shadow holds its first committed batch
        assert first.startswith("batch"), first + child.stderr.read()
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(60)
    assert child.returncode == -signal.SIGKILL
    assert snapshot(projector.engine) == live  # readers never saw the half-built shadow
    with projector.engine.connect() as conn:
        names = set(projector.engine.dialect.get_table_names(conn))
    assert any(name.endswith("__rebuild") for name in names)  # what the killed rebuild left
    ExecutionEngine(ledger).control.submit_signal(
        {"signal_id": "during", "pair": "XBT/USD", "side": "buy", "order_type": "market", "quantity": "0.01"}
    )
    projector.catch_up()  # the live follower goes on meanwhile
    live = snapshot(projector.engine)
    assert projector.rebuild() == ledger.app.recorder.max_notification_id()
    assert snapshot(projector.engine) == live
    with projector.engine.connect() as conn:
        names = set(projector.engine.dialect.get_table_names(conn))
    assert not any(name.endswith(("__rebuild", "__load")) for name in names), names
