"""AddOrder's ambiguous outcomes against the simulator: ``place`` says UNKNOWN, never resends, and the outcome is
resolved by evidence (the order found by cl_ord_id, or "never placed" once its deadline and the grace are past).
The simulator's request log proves one AddOrder per cl_ord_id in every case."""

from collections import Counter
from datetime import timedelta

import pytest

from execledger.application.exchange import ErrorClass, PlaceStatus, VenueOrderStatus
from execledger.infrastructure.simulator import FaultKind

GRACE = timedelta(seconds=5)


def assert_one_add_order_per_cl_ord_id(venue):
    counts = Counter(r.params.get("cl_ord_id") for r in venue.sim.requests("AddOrder"))
    assert counts and set(counts.values()) == {1}, counts


async def resolve(venue, request):
    """``resolve_place`` at the simulator's current time."""
    return await venue.exchange.resolve_place(request, now=venue.at(0), grace=GRACE)


def assert_sent_once(venue, request, status, fault):
    """The one AddOrder of this request, and no cl_ord_id sent twice in the whole log."""
    (call,) = venue.add_orders(request.cl_ord_id)
    assert (call.status, call.fault) == (status, str(fault))
    assert_one_add_order_per_cl_ord_id(venue)


async def place_unknown(venue, request):
    result = await venue.exchange.place(request)
    assert (result.status, result.txid, result.error_class) == (PlaceStatus.UNKNOWN, None, ErrorClass.AMBIGUOUS)
    return result


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
async def test_an_add_order_that_executed_behind_a_failed_reply_resolves_to_its_order(venue, fault, seconds):
    request = venue.limit_buy()
    venue.sim.inject_fault("AddOrder", fault, seconds=seconds)
    await place_unknown(venue, request)
    (order,) = venue.sim.orders()
    assert (order.request.cl_ord_id, order.status) == (request.cl_ord_id, "open")

    found = await venue.exchange.find_by_cl_ord_id(request.cl_ord_id)
    assert (found.txid, found.status, found.volume) == (order.txid, VenueOrderStatus.OPEN, request.volume)
    resolved = await resolve(venue, request)
    assert (resolved.status, resolved.txid) == (PlaceStatus.ACKNOWLEDGED, order.txid)
    assert_sent_once(venue, request, 502 if fault is FaultKind.HTTP_502_AFTER_EXECUTE else 200, fault)


async def test_an_add_order_that_executed_then_filled_is_found_among_closed_orders(venue):
    request = venue.limit_buy()
    venue.sim.inject_fault("AddOrder", FaultKind.HTTP_502_AFTER_EXECUTE)
    await place_unknown(venue, request)
    venue.sim.set_mark_price("XXBTZUSD", "59000")  # fills it: no longer open
    resolved = await resolve(venue, request)
    (order,) = venue.sim.orders()
    assert order.status == "closed"
    assert (resolved.status, resolved.txid) == (PlaceStatus.ACKNOWLEDGED, order.txid)
    assert [r.method for r in venue.sim.requests()] == ["AddOrder", "OpenOrders", "ClosedOrders"]
    assert_one_add_order_per_cl_ord_id(venue)


async def test_an_add_order_refused_by_a_502_before_the_engine_is_proven_not_placed_after_its_deadline(venue):
    request = venue.limit_buy(deadline_in=10)
    venue.sim.inject_fault("AddOrder", FaultKind.HTTP_502_BEFORE_EXECUTE)
    await place_unknown(venue, request)
    assert venue.sim.orders() == []

    early = await resolve(venue, request)
    assert early.status is PlaceStatus.UNKNOWN  # not found yet is no proof before the deadline
    await venue.time.sleep(10 + GRACE.total_seconds())
    assert (await resolve(venue, request)).status is PlaceStatus.UNKNOWN
    await venue.time.sleep(0.5)
    late = await resolve(venue, request)
    assert (late.status, late.error_class) == (PlaceStatus.REJECTED, ErrorClass.PERMANENT)
    assert venue.sim.orders() == []
    assert_sent_once(venue, request, 502, FaultKind.HTTP_502_BEFORE_EXECUTE)


async def test_a_delayed_acceptance_resolves_once_the_order_enters_the_book(venue):
    request = venue.limit_buy(deadline_in=30)
    venue.sim.inject_fault("AddOrder", FaultKind.DELAYED_ACCEPTANCE, seconds=5)
    await place_unknown(venue, request)
    assert (await resolve(venue, request)).status is PlaceStatus.UNKNOWN
    assert venue.sim.orders() == []

    venue.sim.advance_time(5)
    resolved = await resolve(venue, request)
    (order,) = venue.sim.orders()
    assert (resolved.status, resolved.txid) == (PlaceStatus.ACKNOWLEDGED, order.txid)
    assert_sent_once(venue, request, 502, FaultKind.DELAYED_ACCEPTANCE)


async def test_a_delayed_acceptance_past_the_deadline_is_proven_not_placed(venue):
    request = venue.limit_buy(deadline_in=10)
    venue.sim.inject_fault("AddOrder", FaultKind.DELAYED_ACCEPTANCE, seconds=60)
    await place_unknown(venue, request)
    venue.sim.advance_time(60)  # the engine gets it only now, after its deadline: dropped
    assert [r.cl_ord_id for r in venue.sim.engine.dropped_late] == [request.cl_ord_id]
    resolved = await resolve(venue, request)
    assert resolved.status is PlaceStatus.REJECTED
    assert venue.sim.orders() == []
    assert_sent_once(venue, request, 502, FaultKind.DELAYED_ACCEPTANCE)


async def test_ambiguous_outcomes_in_one_session_never_resend(venue):
    """Three ambiguous outcomes one after another (a lookup after each keeps the breaker closed): three cl_ord_ids,
    three AddOrders, and each lookup tells the placed ones from the one that never reached the engine."""
    found = {}
    for fault in (FaultKind.HTTP_502_AFTER_EXECUTE, FaultKind.HTTP_502_BEFORE_EXECUTE, FaultKind.DELAYED_ACCEPTANCE):
        request = venue.limit_buy()
        venue.sim.inject_fault("AddOrder", fault, seconds=1)
        await place_unknown(venue, request)
        venue.sim.advance_time(1)
        found[fault] = await venue.exchange.find_by_cl_ord_id(request.cl_ord_id)
    assert found[FaultKind.HTTP_502_BEFORE_EXECUTE] is None
    placed = {o.txid for o in venue.sim.orders()}
    assert {found[FaultKind.HTTP_502_AFTER_EXECUTE].txid, found[FaultKind.DELAYED_ACCEPTANCE].txid} == placed
    assert len(venue.sim.requests("AddOrder")) == 3
    assert_one_add_order_per_cl_ord_id(venue)
