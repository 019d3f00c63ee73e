"""AddOrder's ambiguous outcomes against the simulator, through the trading service on the real adapter: ``place``
says UNKNOWN, the service never resends, and the engine resolves the outcome by evidence (the order found by
cl_ord_id, or "never placed" once its AddOrder deadline and the grace are past). Each test runs the service's own
worker passes (``send_pending``, ``resolve_unknowns``) in simulator time. The simulator's request log proves one
AddOrder per cl_ord_id in every case."""

import asyncio
from collections import Counter
from dataclasses import replace

import pytest

from execledger.application.ports import ErrorClass, PlaceStatus, VenueOrderStatus
from execledger.domain.order import State
from execledger.domain.values import OrderRole
from execledger.infrastructure.simulator import FaultKind

from .conftest import DEADLINE_S, GRACE_S, PAIR


def assert_one_add_order_per_cl_ord_id(venue):
    counts = Counter(r.params.get("cl_ord_id") for r in venue.sim.requests("AddOrder"))
    assert counts and set(counts.values()) == {1}, counts


def assert_sent_once(venue, order, status, fault):
    """The one AddOrder of this order, and no cl_ord_id sent twice in the whole log."""
    (call,) = venue.add_orders(order.cl_ord_id)
    assert (call.status, call.fault) == (status, str(fault))
    assert_one_add_order_per_cl_ord_id(venue)


async def send_unknown(trading, fault, seconds=0.0):
    """Record a limit-buy signal, inject ``fault`` on the next AddOrder and run the sender: the outcome is unknown,
    recorded as such (never as a rejection), and the order has no venue id yet."""
    order_id = trading.buy()
    trading.venue.sim.inject_fault("AddOrder", fault, seconds=seconds)
    assert await trading.service.send_pending() == 1
    order = trading.order(order_id)
    assert (order.state, order.txid) == (State.OUTCOME_UNKNOWN, None)
    unknown = trading.ledger.ledger.order_history(order_id)[-1]
    assert unknown.name == "SubmissionOutcomeUnknown"
    assert unknown.data["reason"]["error_class"] == ErrorClass.AMBIGUOUS.value
    return order


async def resolve(trading, order):
    """One pass of the service's unknown-outcome worker; the order as it is afterwards."""
    await trading.service.resolve_unknowns()
    return trading.order(order.id)


async def test_place_reports_an_ambiguous_outcome_as_unknown_without_a_venue_id(venue):
    venue.sim.inject_fault("AddOrder", FaultKind.HTTP_502_AFTER_EXECUTE)
    result = await venue.exchange.place(venue.limit_buy())
    assert (result.status, result.venue_order_id, result.error_class) == (
        PlaceStatus.UNKNOWN,
        None,
        ErrorClass.AMBIGUOUS,
    )
    assert_one_add_order_per_cl_ord_id(venue)


@pytest.mark.parametrize(
    ("fault", "seconds", "venue_options"),
    [
        # The simulator executes, then holds its reply 0.3 s of wall time; the client gives up after 0.1 s. Both are
        # real time because aiohttp's request timeout is; this is the only real wait in these tests.
        (FaultKind.DELAY_REPLY, 0.3, {"timeout_s": 0.1}),
        (FaultKind.HTTP_502_AFTER_EXECUTE, 0.0, {}),
    ],
    ids=["delay_reply", "http_502_after_execute"],
)
async def test_an_add_order_that_executed_behind_a_failed_reply_resolves_to_its_order(venue, trading, fault, seconds):
    order = await send_unknown(trading, fault, seconds)
    (placed,) = venue.sim.orders()
    assert (placed.request.cl_ord_id, placed.status) == (order.cl_ord_id, "open")

    found = await venue.exchange.find_by_client_order_id(order.cl_ord_id)  # the evidence the engine is given
    assert (found.venue_order_id, found.status, found.quantity) == (placed.txid, VenueOrderStatus.OPEN, order.quantity)
    resolved = await resolve(trading, order)
    assert (resolved.state, resolved.txid) == (State.OPEN, placed.txid)
    assert await trading.service.send_pending() == 0  # nothing left to send: resolved, not resent
    assert_sent_once(venue, order, 502 if fault is FaultKind.HTTP_502_AFTER_EXECUTE else 200, fault)


async def test_an_add_order_that_executed_then_filled_is_found_among_closed_orders_with_its_fill(venue, trading):
    order = await send_unknown(trading, FaultKind.HTTP_502_AFTER_EXECUTE)
    venue.sim.set_mark_price(PAIR, "59000")  # fills it: no longer open
    resolved = await resolve(trading, order)
    (placed,) = venue.sim.orders()
    (trade,) = venue.sim.trades()
    assert placed.status == "closed"
    assert (resolved.state, resolved.txid, resolved.filled_quantity) == (State.FILLED, placed.txid, trade.vol)
    (fill,) = trading.fills(order.id)
    assert (fill.data["trade_id"], fill.data["source"]) == (trade.txid, "reconciliation")
    assert [r.method for r in venue.sim.requests()] == ["AddOrder", "OpenOrders", "ClosedOrders", "TradesHistory"]
    assert_one_add_order_per_cl_ord_id(venue)


async def test_an_add_order_refused_by_a_502_before_the_engine_is_proven_not_placed_after_its_deadline(venue, trading):
    order = await send_unknown(trading, FaultKind.HTTP_502_BEFORE_EXECUTE)
    assert venue.sim.orders() == []
    assert order.deadline == venue.at(DEADLINE_S)  # the AddOrder deadline, in simulator time

    early = await resolve(trading, order)
    assert early.state is State.OUTCOME_UNKNOWN  # not found yet is no proof before the deadline
    await venue.time.sleep(DEADLINE_S + GRACE_S - 0.5)
    assert (await resolve(trading, order)).state is State.OUTCOME_UNKNOWN  # nor within the grace after it
    await venue.time.sleep(1.0)
    late = await resolve(trading, order)
    assert late.state is State.REJECTED
    assert trading.ledger.ledger.order_history(order.id)[-1].data["reason"]["rule"] == "unknown_resolved_not_placed"
    assert await trading.service.send_pending() == 0
    assert venue.sim.orders() == []
    assert_sent_once(venue, order, 502, FaultKind.HTTP_502_BEFORE_EXECUTE)


async def test_a_delayed_acceptance_resolves_once_the_order_enters_the_book(venue, trading):
    order = await send_unknown(trading, FaultKind.DELAYED_ACCEPTANCE, seconds=5)
    assert (await resolve(trading, order)).state is State.OUTCOME_UNKNOWN
    assert venue.sim.orders() == []

    venue.sim.advance_time(5)
    resolved = await resolve(trading, order)
    (placed,) = venue.sim.orders()
    assert (resolved.state, resolved.txid) == (State.OPEN, placed.txid)
    assert_sent_once(venue, order, 502, FaultKind.DELAYED_ACCEPTANCE)


async def test_a_delayed_acceptance_past_the_deadline_is_proven_not_placed(venue, trading):
    order = await send_unknown(trading, FaultKind.DELAYED_ACCEPTANCE, seconds=60)
    venue.sim.advance_time(60)  # the engine gets it only now, after its deadline: dropped
    assert [r.cl_ord_id for r in venue.sim.engine.dropped_late] == [order.cl_ord_id]
    resolved = await resolve(trading, order)
    assert resolved.state is State.REJECTED
    assert venue.sim.orders() == []
    assert_sent_once(venue, order, 502, FaultKind.DELAYED_ACCEPTANCE)


async def test_ambiguous_outcomes_in_one_session_never_resend(venue, trading):
    """Three ambiguous outcomes one after another (the lookups after each keep the breaker closed): three
    cl_ord_ids, three AddOrders, and the evidence tells the placed ones from the one that never reached the engine."""
    orders = {}
    for fault in (FaultKind.HTTP_502_AFTER_EXECUTE, FaultKind.HTTP_502_BEFORE_EXECUTE, FaultKind.DELAYED_ACCEPTANCE):
        orders[fault] = await send_unknown(trading, fault, seconds=1)
        venue.sim.advance_time(1)
        await trading.service.resolve_unknowns()
    await trading.service.send_pending()
    await trading.service.resolve_unknowns()

    states = {fault: trading.order(order.id).state for fault, order in orders.items()}
    assert states == {
        FaultKind.HTTP_502_AFTER_EXECUTE: State.OPEN,
        FaultKind.HTTP_502_BEFORE_EXECUTE: State.OUTCOME_UNKNOWN,  # before its deadline: still no proof
        FaultKind.DELAYED_ACCEPTANCE: State.OPEN,
    }
    placed = {o.txid for o in venue.sim.orders()}
    assert {trading.order(o.id).txid for o in orders.values()} - {None} == placed and len(placed) == 2
    assert len(venue.sim.requests("AddOrder")) == 3
    assert_one_add_order_per_cl_ord_id(venue)


async def test_an_addorder_withdrawn_when_its_turn_on_the_wire_comes_never_leaves(venue):
    """``still_wanted`` is asked once the AddOrder holds the signing lock (after any wait for other calls' turn):
    a reason means NOT_SENT, no nonce taken, nothing on the wire; the lock is free again for the next call."""
    asked_holding_the_lock: list[bool] = []

    def halted() -> str:
        asked_holding_the_lock.append(venue.exchange.rest._signed.locked())
        return "trading is halted (ops: incident)"

    request = venue.limit_buy()
    result = await venue.exchange.place(request, still_wanted=halted)
    assert result.status is PlaceStatus.NOT_SENT and "halted" in (result.error or ""), result
    assert result.error_class is ErrorClass.RETRYABLE
    assert asked_holding_the_lock == [True]
    assert venue.add_orders(request.client_order_id) == []  # the simulator never saw it
    wanted = await venue.exchange.place(venue.limit_buy(), still_wanted=lambda: None)
    assert wanted.status is PlaceStatus.ACKNOWLEDGED  # a call that is still wanted goes
    assert len(venue.sim.requests("AddOrder")) == 1


async def test_a_protective_legs_addorder_goes_before_the_entries_queued_for_the_wire(venue):
    """Signing and sending are serialised (nonce order): a stop-loss decided while a burst of entries waits for its
    turn goes next, not behind the burst (``rest.SigningTurn``). Before, it waited for every entry queued ahead."""
    entries = [venue.limit_buy() for _ in range(8)]
    leg = replace(venue.limit_buy(), role=OrderRole.STOP_LOSS)  # its role decides its turn, not what it is
    calls = [asyncio.ensure_future(venue.exchange.place(r)) for r in entries]
    signing = venue.exchange.rest._signed
    while signing.waiting() < len(entries) - 1:  # one entry holds the turn, the others wait for it
        await asyncio.sleep(0)
    calls.append(asyncio.ensure_future(venue.exchange.place(leg)))
    results = await asyncio.gather(*calls)
    assert {r.status for r in results} == {PlaceStatus.ACKNOWLEDGED}
    wire = [r.params.get("cl_ord_id") for r in venue.sim.requests("AddOrder")]
    assert wire.index(leg.client_order_id) == 1, wire  # right after the entry that held the turn
    assert_one_add_order_per_cl_ord_id(venue)
