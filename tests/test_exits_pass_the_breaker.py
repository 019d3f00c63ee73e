"""While the circuit breaker is open (the venue seemed unavailable), the trading service defers entries but still
sends the protective legs of a position that filled: the venue that filled it is the one that can protect it, and
the adapter lets an exit's AddOrder through an open breaker as it lets cancels through (``CallKind.EXIT``). Break
test 2026-12-02: five slow add_order answers opened the breaker while the venue filled the entries, and their
stop-losses were deferred until it half-opened, 29-54 s without protection."""

from __future__ import annotations

from datetime import UTC, datetime

from execledger.application.engine import EngineConfig
from execledger.application.policies import PolicyConfig
from execledger.application.ports import EntryBlock, ErrorClass, PlaceResult, PlaceStatus
from execledger.domain.order import State
from execledger.domain.values import OrderRole
from tests.harness import Harness, limit_buy


async def test_an_open_breaker_defers_entries_but_not_the_legs_of_a_filled_position(ledger, clock):
    h = Harness(ledger, clock, EngineConfig(policy=PolicyConfig(resting_leg="both")))
    entry = await h.signal()  # a limit buy with stop-loss and take-profit, sent and resting
    waiting = h.engine.control.submit_signal(limit_buy("later")).order
    h.venue.block = EntryBlock(
        reason="the venue is unavailable (circuit breaker open)", since=datetime.now(UTC), retry_in_s=30
    )
    h.venue.fill(h.txid(entry), "1", "100")
    for report in h.venue.drain():
        await h.service.apply(report)
    await h.service.send_pending()
    at_venue = {r.client_order_id for r in h.venue.requests.values()}
    legs = h.legs(entry)
    assert {leg.role for leg in legs} == {OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT}
    assert all(leg.cl_ord_id in at_venue for leg in legs), [(leg.role, leg.state) for leg in legs]
    assert h.engine.orders[waiting.id].state is State.PENDING_SUBMIT and waiting.cl_ord_id not in at_venue


async def test_a_leg_not_sent_while_the_breaker_is_open_waits_for_the_venue_to_answer_again(ledger, clock):
    """CI 2026-12-02 (venue outage): a stop-loss that could not be sent through the open breaker was tried again on
    its backoff and recorded Submitted, NotSent three times in 5.4 s. It is tried once per outage: again when the
    breaker closes (a read succeeded), at once."""
    h = Harness(ledger, clock, EngineConfig(policy=PolicyConfig(resting_leg="both")))
    entry = await h.signal()
    h.venue.block = EntryBlock(
        reason="the venue is unavailable (circuit breaker open)", since=datetime.now(UTC), retry_in_s=30
    )
    h.venue.script = [PlaceResult(PlaceStatus.NOT_SENT, error="connection refused", error_class=ErrorClass.RETRYABLE)]
    h.venue.fill(h.txid(entry), "1", "100")
    for report in h.venue.drain():
        await h.service.apply(report)
    await h.service.send_pending()
    stop = next(leg for leg in h.legs(entry) if leg.role is OrderRole.STOP_LOSS)
    assert h.venue.add_order_calls[stop.cl_ord_id] == 1
    h.service._retry_at.clear()  # its backoff is over: only the open breaker holds it now
    for _ in range(3):
        await h.service.send_pending()
    assert h.venue.add_order_calls[stop.cl_ord_id] == 1, "tried again while the breaker stayed open"
    assert h.engine.orders[stop.id].state is State.PENDING_SUBMIT
    h.venue.block = None  # a read succeeded: the breaker closed
    await h.service.send_pending()
    assert h.venue.add_order_calls[stop.cl_ord_id] == 2
    assert h.engine.orders[stop.id].state is State.OPEN
