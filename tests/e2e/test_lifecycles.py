"""Order lifecycles end to end: engine + workers + the real Kraken adapter + the in-process simulator.
After every scenario the venue's books and balances agree with the ledger and no leg outlives its position."""

from decimal import Decimal as D

import pytest

from execledger.application.policies import PolicyConfig
from execledger.domain.errors import SignalRejected
from execledger.domain.order import OrderStatus, State
from execledger.domain.trading_state import TradingHalted, TradingMode
from execledger.domain.values import OrderRole, OrderType
from execledger.infrastructure.simulator.config import default_asset_pairs

XBT = "XBT/USD"  # the simulator starts XBT/USD at 67000.0
BOTH_REST = PolicyConfig(resting_leg="both")  # both legs on the venue (the simulator's account holds enough)


async def test_limit_entry_partially_fills_then_times_out(harness):
    h = await harness(fill_fractions=(D("0.4"),))
    entry = await h.signal(signal_id="pt", limit_price="66000", sl_price="64000", tp_price="69000", timeout_s=60)
    assert h.order(entry).state is State.OPEN
    await h.price(XBT, "65990")  # crosses the resting limit once: 40% fills at 66000
    await h.price(XBT, "67000")
    entry = h.order(entry)
    assert entry.status is OrderStatus.PARTIALLY_FILLED and entry.filled_quantity == D("0.004")
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    assert sl.quantity == D("0.004") and sl.state is State.OPEN
    await h.advance(61)
    entry = h.order(entry)
    assert entry.state is State.CANCELED and entry.filled_quantity == D("0.004")
    assert [e.name for e in h.engine.ledger.order_history(entry.id)].count("TimedOut") == 1
    h.assert_consistent()


async def test_entry_fills_in_three_increments_and_legs_follow(harness):
    h = await harness(fill_fractions=(D("0.3"), D("0.3")))
    entry = await h.signal(signal_id="inc", quantity="0.03", limit_price="66000", sl_price="64000", tp_price="69000")
    for expected in ("0.009", "0.018", "0.03"):
        await h.price(XBT, "65990")
        assert h.order(entry).filled_quantity == D(expected)
        h.assert_consistent()
    entry = h.order(entry)
    assert [b.quantity for b in entry.brackets] == [D("0.03")] and entry.state is State.FILLED
    assert [o.quantity for o in h.legs(entry, live=True)] == [D("0.03")]  # one stop, grown; the take-profit is held


async def test_market_entry_fills_at_once_then_stop_hit_cancels_take_profit(harness):
    h = await harness(policy=BOTH_REST)
    entry = await h.signal(signal_id="sl", order_type="market", sl_price="64000", tp_price="69000")
    entry = h.order(entry)
    assert entry.state is State.FILLED and entry.average_fill_price == D("67000.0")
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    await h.price(XBT, "63990")
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    assert h.order(sl).state is State.FILLED and h.order(tp).state is State.CANCELED
    assert h.position(entry) == 0
    h.assert_consistent()


async def test_by_default_the_stop_rests_and_the_take_profit_is_held_until_the_price_reaches_it(harness):
    """Issue 13, scenario 4: the venue holds the base for the untriggered stop, so a take-profit beside it would be
    refused for funds. The ledger holds it on the public price; crossed, it cancels the stop and sells at market."""
    h = await harness()
    entry = await h.signal(signal_id="tp", order_type="market", sl_price="64000", tp_price="69000")
    [sl] = h.legs(entry)
    assert sl.role is OrderRole.STOP_LOSS and len(h.sim.requests("AddOrder")) == 2
    h.assert_consistent()
    await h.price(XBT, "69010")
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    assert h.order(tp).order_type is OrderType.MARKET and h.order(tp).state is State.FILLED
    assert h.order(sl).state is State.CANCELED and h.position(entry) == 0
    h.assert_consistent()


async def test_take_profit_hit_cancels_stop_when_both_rest(harness):
    h = await harness(policy=BOTH_REST)
    entry = await h.signal(signal_id="tp", order_type="market", sl_price="64000", tp_price="69000")
    await h.price(XBT, "69010")
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    assert h.order(tp).state is State.FILLED and h.order(sl).state is State.CANCELED
    h.assert_consistent()


async def test_take_profit_partially_filled_shrinks_the_stop(harness):
    h = await harness(
        fill_fractions=(D("0.5"),),
        policy=PolicyConfig(take_profit_order_type=OrderType.TAKE_PROFIT_LIMIT, resting_leg="both"),
    )
    entry = await h.signal(signal_id="tpp", order_type="market", sl_price="64000", tp_price="69000")
    await h.price(XBT, "69010")  # triggers the take-profit-limit: half fills
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    assert h.order(tp).filled_quantity == D("0.005")
    [stop] = h.legs(entry, OrderRole.STOP_LOSS, live=True)
    assert stop.quantity == D("0.005")
    h.assert_consistent()
    await h.price(XBT, "69020")  # the rest of the take-profit fills: the shrunk stop goes
    assert h.position(entry) == 0 and not h.legs(entry, OrderRole.STOP_LOSS, live=True)
    h.assert_consistent()


async def test_vanished_stop_is_recreated(harness):
    h = await harness()
    entry = await h.signal(signal_id="vanish", order_type="market", sl_price="64000", tp_price="69000")
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    h.sim.engine.cancel(h.sim.engine.cancel_targets(h.sim.key, txid=h.order(sl).txid))  # gone at the venue
    await h.settle()
    [new_sl] = h.legs(entry, OrderRole.STOP_LOSS, live=True)
    assert new_sl.id != sl.id and new_sl.quantity == D("0.01") and new_sl.state is State.OPEN
    h.assert_consistent()


async def test_halt_mid_flight(harness):
    h = await harness()
    held = await h.signal(signal_id="held", order_type="market", sl_price="64000", tp_price="69000")
    resting = await h.signal(signal_id="resting", limit_price="60000")
    h.engine.control.set_mode(TradingMode.HALTED, by="ops", why="venue incident", cancel_entries=True)
    with pytest.raises(TradingHalted):
        h.engine.control.submit_signal(
            {"signal_id": "late", "pair": XBT, "side": "buy", "order_type": "market", "quantity": "0.01"}
        )
    await h.settle()
    assert h.order(resting).state is State.CANCELED
    await h.price(XBT, "63990")  # exits keep working while halted
    assert h.position(held) == 0
    assert len(h.sim.requests("CancelOrder")) >= 1  # the resting entry's cancel reached the venue
    assert len(h.sim.requests("AddOrder")) == 3  # held + its stop + resting; nothing for "late"
    h.assert_consistent()


async def test_below_minimum_is_rejected_before_the_venue_and_by_the_venue(harness):
    venue_pairs = default_asset_pairs()
    venue_pairs["XXBTZUSD"] = {**venue_pairs["XXBTZUSD"], "ordermin": "0.02"}  # the venue raised its minimum
    h = await harness(asset_pairs=venue_pairs)
    with pytest.raises(SignalRejected) as info:  # below the ledger's own snapshot: never sent
        await h.signal(signal_id="tiny", order_type="market", quantity="0.00001")
    assert info.value.errors[0].rule == "ordermin" and not h.sim.requests("AddOrder")
    entry = await h.signal(signal_id="small", order_type="market", quantity="0.01")  # passes ours, not the venue's
    entry = h.order(entry)
    assert entry.state is State.REJECTED and entry.last_error == "EOrder:Order minimum not met"
    assert len(h.sim.requests("AddOrder")) == 1
    h.assert_consistent()


async def test_a_fill_that_raced_a_cancel_is_recorded_and_protected(harness):
    """Found by a hostile tester: with the stream down, an accepted cancel was recorded as Canceled at once and
    the part that filled just before it was never learned: a position held, unprotected, unknown to the ledger."""
    h = await harness(fill_fractions=(D("0.4"),))
    entry = await h.signal(signal_id="race", limit_price="66000", sl_price="64000", tp_price="69000", timeout_s=600)
    h.sim.set_mark_price(XBT, "65990")  # 40% fills on the venue; nobody has told the ledger yet
    h.engine.control.cancel_order(str(entry.id), by="ops", why="changed my mind")
    await h.settle()
    entry = h.order(entry)
    assert entry.state is State.CANCELED and entry.filled_quantity == D("0.004")
    [sl] = h.legs(entry, OrderRole.STOP_LOSS, live=True)
    assert sl.quantity == D("0.004")
    h.assert_consistent()
