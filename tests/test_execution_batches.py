"""Venue reports that arrive together share one commit (ExecutionHandler.one_commit, TradingService.apply_all):
what each reaction decides is the same as alone, nothing is handed out before the commit, and a report the ledger
cannot apply makes the block be applied again report by report."""

from dataclasses import replace
from decimal import Decimal as D

import pytest

from execledger.application.engine import EngineConfig
from execledger.application.execution import BatchConflict
from execledger.application.policies import PolicyConfig
from execledger.application.ports import FillReport
from execledger.domain.order import State
from execledger.domain.values import OrderRole
from tests.harness import Harness


@pytest.fixture
def h(ledger, clock):
    return Harness(ledger, clock, EngineConfig(policy=PolicyConfig(default_timeout_s=300, resting_leg="both")))


def names(h, order):
    return [e.name for e in h.engine.ledger.order_history(order.id)]


async def two_entries(h):
    a = await h.signal(signal_id="a")
    b = await h.signal(signal_id="b")
    assert h.venue.drain() == []
    return a, b


async def test_reports_that_arrive_together_are_committed_once_with_what_they_decided(h):
    a, b = await two_entries(h)
    h.venue.fill(h.txid(a), "1", "100")
    h.venue.fill(h.txid(b), "1", "101")
    reports = h.venue.drain()  # a trade and a filled status each
    commits = h.engine.uow.commits
    await h.service.apply_all(reports)
    assert h.engine.uow.commits == commits + 1
    for entry in (a, b):
        assert h.engine.orders[entry.id].state is State.FILLED
        legs = h.legs(entry)
        assert sorted(o.role.value for o in legs) == ["stop_loss", "take_profit"]
        assert all(names(h, o) == ["Placed", "Submitted"] for o in legs)  # decided and durable before the call
    await h.settle()
    for entry in (a, b):
        assert all(o.state is State.OPEN for o in h.legs(entry))
        h.assert_legs_match_position(entry)


async def test_inside_one_commit_nothing_is_recorded_or_handed_out_before_its_end(h):
    a, _ = await two_entries(h)
    trade = h.venue.fill(h.txid(a), "1", "100")
    h.venue.drain()
    execution = h.engine.execution
    with execution.one_commit():
        execution.on_fill_report(replace(trade, source="ws"))
        assert h.engine.orders[a.id].state is State.FILLED  # applied in memory, and decided on
        assert len(h.legs(a)) == 2
        assert "Filled" not in names(h, a)
        assert execution.take_ready() == {}
    assert "Filled" in names(h, a) and "BracketPlaced" in names(h, a)
    ready = execution.take_ready()
    assert set(ready) == {o.id for o in h.legs(a)}


async def test_a_report_that_cannot_be_applied_makes_the_block_apply_one_by_one(h):
    a, b = await two_entries(h)
    trade = h.venue.fill(h.txid(a), "1", "100")
    reports = h.venue.drain()
    overfill = replace(
        trade, trade_id="T-OVER", venue_order_id=h.txid(b), client_order_id=b.cl_ord_id, last_qty=D("5"), source="ws"
    )
    execution = h.engine.execution

    def apply_in_one_commit():
        with execution.one_commit():
            for report in [*reports, overfill]:
                if isinstance(report, FillReport):
                    execution.on_fill_report(report)
                else:
                    execution.on_status_report(report)

    with pytest.raises(BatchConflict):  # the block alone: everything it applied and decided is forgotten
        apply_in_one_commit()
    assert h.engine.orders[a.id].state is State.OPEN and h.legs(a) == [] and execution.take_ready() == {}
    assert names(h, a) == ["Placed", "Submitted", "Acknowledged"]
    await h.service.apply_all([*reports, overfill])  # the service applies them again one by one
    assert h.engine.orders[a.id].state is State.FILLED and len(h.legs(a)) == 2
    assert names(h, b)[-1] == "ConflictRecorded" and h.engine.orders[b.id].filled_quantity == 0
    await h.settle()
    assert all(o.state is State.OPEN for o in h.legs(a, OrderRole.STOP_LOSS))


def stream_of(h, arrived: list, end: Exception | None = None) -> list[int]:
    """Make the venue's execution stream yield ``arrived`` (then raise ``end``, if given); returns the list that
    records the size of each block the service applies."""
    batches: list[int] = []
    apply_all = h.service.apply_all

    async def recording(reports):
        batches.append(len(reports))
        await apply_all(reports)

    async def executions():
        for report in arrived:
            yield report
        if end is not None:
            raise end

    h.service.apply_all = recording
    h.venue.executions = executions
    return batches


async def test_the_stream_applies_what_arrived_together_and_stops_with_its_failure(h):
    a, b = await two_entries(h)
    h.venue.fill(h.txid(a), "1", "100")
    h.venue.fill(h.txid(b), "1", "101")
    arrived = h.venue.drain()
    batches = stream_of(h, arrived, ConnectionError("the stream broke"))
    with pytest.raises(ConnectionError, match="the stream broke"):
        await h.service._stream()
    assert sum(batches) == len(arrived) and len(batches) < len(arrived)
    assert all(h.engine.orders[e.id].state is State.FILLED for e in (a, b))


async def test_a_flood_of_reports_is_applied_in_bounded_blocks(h):
    """However many reports wait, a block holds at most REPORTS_A_COMMIT of them (one commit each block), so the
    event loop runs between blocks; the queue behind the socket holds no more than that either."""
    entries = [await h.signal(signal_id=f"s{i}") for i in range(3)]
    h.venue.drain()
    for i, entry in enumerate(entries):
        h.venue.fill(h.txid(entry), "1", str(100 + i))
    arrived = h.venue.drain()
    h.service.REPORTS_A_COMMIT = 2
    batches = stream_of(h, arrived)
    await h.service._stream()
    assert len(arrived) >= 6 and sum(batches) == len(arrived)
    assert max(batches) == 2
    assert all(h.engine.orders[e.id].state is State.FILLED for e in entries)


async def test_a_forgotten_block_keeps_the_acknowledgements_deferred_before_it(h):
    """A stop's acknowledgement waits for the next commit (deferred); a block that decides the stop's cancel (its
    take-profit filled) is forgotten for another report's conflict. Applied again one by one, the stop is still
    known open, so its cancel is decided at once instead of after a reconciliation finds it."""
    a, b = await two_entries(h)
    h.engine.execution.on_deferred = lambda: None  # the service's loop would flush ack_flush_s later
    h.venue.fill(h.txid(a), "1", "100")
    await h.service.apply_all(h.venue.drain())  # the legs decided, their Submitted committed
    assert await h.service.send_pending() == 2  # sent; the answers are deferred acknowledgements
    [stop] = h.legs(a, OrderRole.STOP_LOSS)
    [tp] = h.legs(a, OrderRole.TAKE_PROFIT)
    assert stop.state is State.OPEN and "Acknowledged" not in names(h, stop)  # deferred, not yet in the log
    trade = h.venue.fill(h.txid(tp), "1", "120")
    reports = h.venue.drain()
    overfill = replace(
        trade, trade_id="T-OVER", venue_order_id=h.txid(b), client_order_id=b.cl_ord_id, last_qty=D("5"), source="ws"
    )
    await h.service.apply_all([*reports, overfill])
    assert names(h, b)[-1] == "ConflictRecorded"
    assert h.engine.orders[tp.id].state is State.FILLED
    stop = h.engine.orders[stop.id]
    assert stop.cancel_requested and "Acknowledged" in names(h, stop)
