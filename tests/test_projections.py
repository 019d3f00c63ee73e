"""Read models: exactly once under re-delivery, rebuild equals live, realised PnL per signal."""

from decimal import Decimal as D

import pytest
from sqlalchemy import select

from execledger.application.engine import EngineConfig, ExecutionEngine
from execledger.application.policies import PolicyConfig
from execledger.domain.values import OrderRole
from execledger.infrastructure.readmodels import tables as t
from execledger.infrastructure.readmodels.projector import ProjectionConflict, ReadModelProjector, readmodel_engine
from tests.harness import Harness


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
