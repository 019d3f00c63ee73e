"""A crossed emulated take-profit whose market exit the venue refuses for what it is. Break test 2026-12-02: the
stop-loss was canceled to free the base, and each refusal made a new market exit at once, without end, while the
position had no stop. Now the trigger is spent: an operator is told once, and the stop-loss is placed again."""

from __future__ import annotations

from decimal import Decimal as D

from execledger.application.ports import ErrorClass, PlaceResult, PlaceStatus
from execledger.domain.order import State
from execledger.domain.position import protection_gaps, refused_triggers
from execledger.domain.values import OrderRole, OrderType
from tests.harness import Harness

REFUSED = PlaceResult(PlaceStatus.REJECTED, error="EGeneral:Invalid arguments", error_class=ErrorClass.PERMANENT)


async def test_a_refused_emulated_exit_is_not_sent_again_and_the_stop_protects_the_position_again(ledger, clock):
    h = Harness(ledger, clock)
    entry = await h.signal(signal_id="tp-refused")
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    [stop] = h.legs(entry, OrderRole.STOP_LOSS)
    assert stop.state is State.OPEN and not h.legs(entry, OrderRole.TAKE_PROFIT)  # the take-profit is emulated

    h.venue.script = [REFUSED]  # the market exit only: what follows is accepted
    h.venue.prices["XXBTZUSD"] = D("121")
    for _ in range(3):  # the price stays past the take-profit
        await h.service.poll_prices({"XXBTZUSD"})
        await h.settle()

    exits = h.legs(entry, OrderRole.TAKE_PROFIT)
    assert [(o.order_type, o.state) for o in exits] == [(OrderType.MARKET, State.REJECTED)], "sent again"
    stops = h.legs(entry, OrderRole.STOP_LOSS)
    assert [o.state for o in stops] == [State.CANCELED, State.OPEN]
    assert stops[-1].quantity == D("1") and h.position(entry) == D("1")
    entry = h.engine.orders[entry.id]
    assert refused_triggers(entry, h.engine.orders) == {OrderRole.TAKE_PROFIT}
    assert protection_gaps(entry, h.engine.orders) == []
    told = [e for e in ledger.order_history(entry.id) if e.name == "Deferred"]
    assert [e.data["reason"]["rule"] for e in told] == ["emulated_exit_refused"]
    assert "EGeneral:Invalid arguments" in told[0].data["reason"]["text"]


async def test_an_exit_refused_for_a_passing_reason_is_sent_again_not_given_up(ledger, clock):
    h = Harness(ledger, clock)
    entry = await h.signal(signal_id="tp-throttled")
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    h.venue.script = [
        PlaceResult(PlaceStatus.REJECTED, error="EOrder:Rate limit exceeded", error_class=ErrorClass.NOT_EXECUTED)
    ]
    h.venue.prices["XXBTZUSD"] = D("121")
    await h.service.poll_prices({"XXBTZUSD"})
    await h.settle()
    [exit_] = h.legs(entry, OrderRole.TAKE_PROFIT)
    assert exit_.state is State.OPEN and h.venue.add_order_calls[exit_.cl_ord_id] == 2
    assert refused_triggers(h.engine.orders[entry.id], h.engine.orders) == set()
