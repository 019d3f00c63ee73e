"""The circuit breaker against the simulator: consecutive transport/5xx failures open it; while open AddOrder is
NOT_SENT without touching the wire and reads are refused locally, but cancels go through; its timer (simulator
time, injected) half-opens it and a successful probe closes it. The listener sees every state change."""

from dataclasses import replace

import pytest

from execledger.application.ports import PlaceStatus
from execledger.application.trading_control import EntriesBusy
from execledger.domain.order import State
from execledger.domain.values import OrderRole
from execledger.infrastructure.kraken.breaker import BreakerState
from execledger.infrastructure.kraken.errors import BreakerOpen
from execledger.infrastructure.simulator import FaultKind

from .conftest import BREAKER_RESET_S, BREAKER_THRESHOLD

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def changes(venue):
    return [(old, new) for old, new, _ in venue.transitions]


async def open_by_failed_reads(venue, fault=FaultKind.HTTP_502_BEFORE_EXECUTE):
    """Three consecutive failures of one retried read: the third opens the breaker, the next attempt is refused
    locally (the log shows three calls, not four)."""
    venue.sim.inject_fault("OpenOrders", fault, count=BREAKER_THRESHOLD)
    with pytest.raises(BreakerOpen):
        await venue.exchange.open_orders()
    assert len(venue.sim.requests("OpenOrders")) == BREAKER_THRESHOLD
    assert venue.breaker.state is OPEN and changes(venue) == [(CLOSED, OPEN)]
    return venue.transitions[-1][2]  # when it opened, in simulator time


async def assert_new_entry_not_sent(venue):
    block = venue.exchange.entry_block()  # what the trading service asks before it sends an AddOrder
    assert block is not None and block.retry_in_s > 0 and str(venue.breaker.state) in block.reason
    before = len(venue.sim.requests("AddOrder"))
    result = await venue.exchange.place(venue.limit_buy())
    assert result.status is PlaceStatus.NOT_SENT and result.venue_order_id is None
    assert len(venue.sim.requests("AddOrder")) == before  # nothing reached the wire


@pytest.mark.parametrize(
    "fault", [FaultKind.HTTP_502_BEFORE_EXECUTE, FaultKind.SERVICE_UNAVAILABLE, FaultKind.SERVICE_BUSY]
)
async def test_consecutive_failures_open_the_breaker_and_new_entries_are_not_sent(venue, fault):
    await open_by_failed_reads(venue, fault)
    await assert_new_entry_not_sent(venue)
    with pytest.raises(BreakerOpen):
        await venue.exchange.query_orders(["OAAAAA-BBBBB-CCCCCC"])
    assert venue.sim.requests("QueryOrders") == []


async def test_add_order_502s_open_the_breaker_too(venue):
    venue.sim.inject_fault("AddOrder", FaultKind.HTTP_502_BEFORE_EXECUTE, count=BREAKER_THRESHOLD)
    statuses = [(await venue.exchange.place(venue.limit_buy())).status for _ in range(BREAKER_THRESHOLD)]
    assert statuses == [PlaceStatus.UNKNOWN] * BREAKER_THRESHOLD
    assert changes(venue) == [(CLOSED, OPEN)]
    await assert_new_entry_not_sent(venue)
    assert len(venue.sim.requests("AddOrder")) == BREAKER_THRESHOLD


async def test_rate_limit_answers_are_not_failures_of_the_venue_and_do_not_open_it(venue):
    venue.sim.inject_fault("OpenOrders", FaultKind.API_RATE_LIMIT, count=BREAKER_THRESHOLD)
    await venue.exchange.open_orders()
    assert venue.breaker.state is CLOSED and venue.transitions == []


async def test_cancels_go_through_an_open_breaker(venue):
    placed = await venue.exchange.place(venue.limit_buy())
    await open_by_failed_reads(venue)
    result = await venue.exchange.cancel(venue_order_id=placed.venue_order_id)
    assert result.count == 1
    (call,) = venue.sim.requests("CancelOrder")
    assert call.params["txid"] == placed.venue_order_id and call.error is None
    assert venue.sim.orders()[0].status == "canceled"
    # The venue answered the cancel: the breaker counts that as proof it is up (and the listener saw it).
    assert venue.breaker.state is CLOSED and changes(venue) == [(CLOSED, OPEN), (OPEN, CLOSED)]


async def test_a_protective_legs_add_order_goes_through_an_open_breaker(venue):
    """A stop-loss (an exit) passes an open breaker as a cancel does: the venue that just filled the position is
    the one that can protect it (break test 2026-12-02: five slow add_order answers opened the breaker while the
    venue filled the entries, and their stops waited for it to half-open, 29-54 s naked). Entries still wait."""
    await open_by_failed_reads(venue)
    await assert_new_entry_not_sent(venue)
    stop = replace(venue.limit_buy(), role=OrderRole.STOP_LOSS)
    result = await venue.exchange.place(stop)
    assert result.status is PlaceStatus.ACKNOWLEDGED, result
    assert [r.params["cl_ord_id"] for r in venue.sim.requests("AddOrder")] == [stop.client_order_id]


async def test_the_breaker_half_opens_on_its_timer_and_a_successful_probe_closes_it(venue):
    placed = await venue.exchange.place(venue.limit_buy())
    opened_at = await open_by_failed_reads(venue)
    await venue.time.sleep(opened_at + BREAKER_RESET_S - 0.5 - venue.time.now())
    assert venue.breaker.state is OPEN
    await assert_new_entry_not_sent(venue)

    await venue.time.sleep(0.5)
    assert venue.breaker.state is HALF_OPEN and changes(venue) == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]
    await assert_new_entry_not_sent(venue)  # a probe is a read, never an order whose failure would be ambiguous

    assert [o.venue_order_id for o in await venue.exchange.open_orders()] == [placed.venue_order_id]  # the probe
    assert venue.breaker.state is CLOSED
    assert changes(venue) == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert [t for _, _, t in venue.transitions][1] == pytest.approx(opened_at + BREAKER_RESET_S)
    assert venue.exchange.entry_block() is None
    assert (await venue.exchange.place(venue.limit_buy())).status is PlaceStatus.ACKNOWLEDGED
    assert len(venue.sim.requests("AddOrder")) == 2  # the first order and this one; none while not closed


async def test_a_failed_probe_opens_it_again_for_another_full_timeout(venue):
    opened_at = await open_by_failed_reads(venue)
    await venue.time.sleep(opened_at + BREAKER_RESET_S - venue.time.now())
    assert venue.breaker.state is HALF_OPEN
    venue.sim.inject_fault("OpenOrders", FaultKind.HTTP_502_BEFORE_EXECUTE)
    calls = len(venue.sim.requests("OpenOrders"))
    with pytest.raises(BreakerOpen):
        await venue.exchange.open_orders()
    assert len(venue.sim.requests("OpenOrders")) == calls + 1  # one probe, then refused locally
    assert changes(venue) == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN)]
    reopened_at = venue.transitions[-1][2]
    await venue.time.sleep(reopened_at + BREAKER_RESET_S - 0.5 - venue.time.now())
    assert venue.breaker.state is OPEN
    await venue.time.sleep(0.5)
    assert venue.breaker.state is HALF_OPEN


async def test_the_service_defers_an_entry_while_the_breaker_is_open_and_sends_it_once_after_a_read_closes_it(
    venue, trading
):
    """The trading service on the real adapter, one worker pass at a time: while the breaker is open the entry is
    not sent (the decision is recorded once per outage), half-open still not (an order is never the probe); the
    service's REST poll is the probe that closes it, and then the entry goes out exactly once. (New entries are
    refused while the venue is unavailable; this one was accepted just before the breaker opened.)"""
    order_id = trading.buy()
    opened_at = await open_by_failed_reads(venue)
    with pytest.raises(EntriesBusy, match="venue is unavailable"):
        trading.buy()
    for _ in range(2):
        assert await trading.service.send_pending() == 0
    assert trading.history(order_id).count("Deferred") == 1
    assert trading.order(order_id).state is State.PENDING_SUBMIT and venue.sim.requests("AddOrder") == []

    await venue.time.sleep(opened_at + BREAKER_RESET_S - venue.time.now())
    assert venue.breaker.state is HALF_OPEN
    assert await trading.service.send_pending() == 0 and venue.sim.requests("AddOrder") == []
    await trading.service.poll_once()  # the poller's read (the sender wakes it while entries wait) is the probe
    assert venue.breaker.state is CLOSED

    assert await trading.service.send_pending() == 1
    order = trading.order(order_id)
    assert order.state is State.OPEN and order.txid is not None
    assert [r.params["cl_ord_id"] for r in venue.sim.requests("AddOrder")] == [order.cl_ord_id]
    assert trading.history(order_id).count("Deferred") == 1  # one outage, one recorded decision
