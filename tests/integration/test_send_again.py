"""An AddOrder the venue refused before executing anything is sent again under the order's own cl_ord_id, after the
refusal is recorded; one whose outcome is unknown never is. Against the simulator, through the trading service on
the real adapter (the fault seed 8 of the CI suite found the first case flagged as a duplicate AddOrder; the
invariant is now the one of ``tests/faults/resends.py``, checked here on the same request log and ledger)."""

from dataclasses import replace

import pytest

from execledger.application.ports import ErrorClass, PlaceStatus
from execledger.domain.order import State
from execledger.infrastructure.simulator import FaultKind
from execledger.infrastructure.simulator import errors as E
from tests.faults.resends import add_order_violations, recorded_attempts


def invariant_3(trading) -> list[str]:
    """The fault suite's invariant 3 on this venue's request log and this ledger."""
    by_cl = {o.cl_ord_id: o for o in trading.engine.orders.values()}

    def attempts(cl_ord_id):
        order = by_cl.get(cl_ord_id)
        return None if order is None else recorded_attempts(trading.ledger.ledger.order_history(order.id))

    return add_order_violations([r.as_json() for r in trading.venue.sim.requests("AddOrder")], attempts)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (FaultKind.ORDER_RATE_LIMIT, E.ORDER_RATE_LIMIT),
        (FaultKind.API_RATE_LIMIT, E.API_RATE_LIMIT),
        (FaultKind.INVALID_NONCE, E.INVALID_NONCE),
    ],
)
async def test_a_certain_refusal_is_recorded_then_sent_again_under_the_same_cl_ord_id(venue, trading, fault, error):
    order_id = trading.buy()
    venue.sim.inject_fault("AddOrder", fault)
    assert await trading.service.send_pending() == 1
    refused = trading.order(order_id)
    assert refused.state is State.PENDING_SUBMIT and venue.sim.orders() == []
    assert trading.history(order_id) == ["Placed", "Submitted", "NotSent"]
    assert trading.ledger.ledger.order_history(order_id)[-1].data["reason"]["error_class"] == ErrorClass.NOT_EXECUTED

    assert await trading.service.send_pending() == 1
    placed = trading.order(order_id)
    (resting,) = venue.sim.orders()
    assert (placed.state, placed.txid) == (State.OPEN, resting.txid)
    assert trading.history(order_id) == ["Placed", "Submitted", "NotSent", "Submitted", "Acknowledged"]
    calls = venue.add_orders(placed.cl_ord_id)
    assert [(c.status, c.error) for c in calls] == [(200, error), (200, None)]
    assert invariant_3(trading) == []


async def test_an_unknown_outcome_is_never_sent_again_and_a_blind_resend_is_flagged(venue, trading):
    order_id = trading.buy()
    venue.sim.inject_fault("AddOrder", FaultKind.HTTP_502_BEFORE_EXECUTE)
    assert await trading.service.send_pending() == 1
    order = trading.order(order_id)
    assert order.state is State.OUTCOME_UNKNOWN
    for _ in range(3):
        await trading.service.send_pending()
    assert len(venue.add_orders(order.cl_ord_id)) == 1
    assert invariant_3(trading) == []

    # What the invariant exists for: the same AddOrder sent again after an answer that proved nothing.
    request = replace(venue.limit_buy(), client_order_id=order.cl_ord_id)
    assert (await venue.exchange.place(request)).status is PlaceStatus.ACKNOWLEDGED
    (finding,) = [f for f in invariant_3(trading) if "blind resend" in f]
    assert order.cl_ord_id in finding and "502" in finding


async def test_a_resend_refused_because_the_cl_ord_id_rests_is_resolved_by_lookup_not_rejected(venue):
    """Kraken checks cl_ord_id uniqueness across open orders: a repeat refused for it means an earlier attempt was
    placed after all, so the outcome is unknown (resolved by cl_ord_id), never a rejection of the order."""
    request = venue.limit_buy()
    first = await venue.exchange.place(request)
    assert first.status is PlaceStatus.ACKNOWLEDGED
    again = await venue.exchange.place(request)
    assert (again.status, again.error_class) == (PlaceStatus.UNKNOWN, ErrorClass.AMBIGUOUS)
    assert E.DUPLICATE_CL_ORD_ID in (again.error or "")
    found = await venue.exchange.find_by_client_order_id(request.client_order_id)
    assert found is not None and found.venue_order_id == first.venue_order_id


@pytest.mark.parametrize("how", ["fault", "balance"])
async def test_an_entry_refused_for_funds_is_rejected_at_once_with_the_reason(venue, trading, how):
    """The break test's finding: an entry refused ``EOrder:Insufficient funds`` was sent again with backoff until its
    maximum age (60 s). The error table says it is definite for an entry: Rejected at the first answer, with the
    venue's reason, and never sent again (a protective leg refused so is resized and sent again:
    ``tests/kraken/test_adapter.py``, ``tests/test_engine.py``)."""
    order_id = trading.buy()
    if how == "fault":
        venue.sim.inject_fault("AddOrder", FaultKind.INSUFFICIENT_FUNDS)
    else:
        venue.sim.set_balance("ZUSD", "1")  # 0.01 XBT at 60000 costs 600
    assert await trading.service.send_pending() == 1
    rejected = trading.order(order_id)
    assert rejected.state is State.REJECTED and rejected.last_error == E.INSUFFICIENT_FUNDS
    assert trading.history(order_id) == ["Placed", "Submitted", "Rejected"]
    why = trading.ledger.ledger.order_history(order_id)[-1].data["reason"]
    assert why["error_class"] == ErrorClass.PERMANENT and E.INSUFFICIENT_FUNDS in why["text"]
    for _ in range(3):
        await trading.service.send_pending()
    assert len(venue.add_orders(rejected.cl_ord_id)) == 1 and venue.sim.orders() == []


@pytest.mark.parametrize(("behind_s", "error"), [(3600.0, E.DEADLINE_ELAPSED), (-3600.0, "deadline")])
async def test_a_deadline_refused_on_the_venues_clock_is_sent_again_on_that_clock(venue, trading, behind_s, error):
    """Break test 2026-12-02: after the venue's clock stepped an hour ahead of the ledger's, every AddOrder was
    refused ``EService:Deadline elapsed`` until a restart (the ledger read the venue's clock only at start). An hour
    behind, every deadline is more than Kraken's 60 s ahead (``EGeneral:Invalid arguments:deadline``). Now the
    refusal reads the venue's clock and the order goes again at once with a deadline on it; the ledger keeps
    recording (and waiting on) its own clock."""
    trading.engine.clock.behind_s = behind_s
    order_id = trading.buy()
    assert await trading.service.send_pending() == 1
    assert trading.history(order_id) == ["Placed", "Submitted", "NotSent"]
    assert await trading.service.send_pending() == 1  # sent again at once: the correction reads the venue's clock
    placed = trading.order(order_id)
    (resting,) = venue.sim.orders()
    assert (placed.state, placed.txid) == (State.OPEN, resting.txid)
    calls = venue.add_orders(placed.cl_ord_id)
    assert [c.status for c in calls] == [200, 200] and error in (calls[0].error or "") and calls[1].error is None
    assert abs(trading.engine.execution.venue_clock_offset.total_seconds() - behind_s) <= 1.5
    # The recorded deadline is on the ledger's clock: an unknown outcome is proven "not placed" on the same clock.
    assert 0 < (placed.deadline - trading.engine.clock.now()).total_seconds() <= 60
    assert invariant_3(trading) == []

    later = trading.buy()  # every AddOrder from now on carries a deadline on the venue's clock: no refusal first
    assert await trading.service.send_pending() == 1
    assert trading.history(later) == ["Placed", "Submitted", "Acknowledged"]
