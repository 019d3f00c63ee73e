"""The matching core on its own (no server): fills, triggers, fees, funds, ids, timers, determinism."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from execledger.infrastructure.simulator import KrakenSimulator
from execledger.infrastructure.simulator.errors import KrakenError
from execledger.infrastructure.simulator.orderentry import parse_add_order

from .conftest import FROZEN_AT

D = Decimal


def make(**fields) -> KrakenSimulator:
    return KrakenSimulator(seed=fields.pop("seed", 3), clock_start=FROZEN_AT, **{"tier": None, **fields})


def place(sim: KrakenSimulator, **params):
    req = parse_add_order({"pair": "XBTUSD", **params}, sim.find_pair, sim.clock.now(), sim.last_price)
    return sim.engine.place(sim.key, req)


def test_ids_look_like_krakens():
    sim = make()
    sim.set_mark_price("XBTUSD", "60000")
    order = place(sim, type="buy", ordertype="market", volume="0.01")
    assert re.fullmatch(r"O[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{6}", order.txid)
    assert re.fullmatch(r"T[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{6}", order.trades[0].txid)


def test_market_buy_fills_at_once_at_the_mark_with_taker_fee_in_quote():
    sim = make()
    sim.set_mark_price("XBTUSD", "60000")
    before = sim.balances()
    order = place(sim, type="buy", ordertype="market", volume="0.5")
    assert order.status == "closed" and order.vol_exec == D("0.5")
    trade = order.trades[0]
    assert (trade.price, trade.cost, trade.fee, trade.maker) == (D("60000"), D("30000.00000"), D("120.00000"), False)
    after = sim.balances()
    assert after["XXBT"] - before["XXBT"] == D("0.5")
    assert before["ZUSD"] - after["ZUSD"] == D("30120")


def test_resting_limit_fills_at_its_own_price_as_maker_when_the_path_crosses_it():
    sim = make()
    sim.set_mark_price("XBTUSD", "60000")
    order = place(sim, type="buy", ordertype="limit", price="59000.0", volume="0.1")
    assert order.status == "open" and not order.trades
    sim.set_mark_price("XBTUSD", "59500")
    assert order.status == "open"
    sim.set_mark_price("XBTUSD", "58800")
    assert order.status == "closed"
    assert (order.trades[0].price, order.trades[0].maker, order.trades[0].fee) == (D("59000.0"), True, D("14.75000"))


def test_marketable_limit_takes_at_the_mark_and_post_only_is_canceled_instead():
    sim = make()
    sim.set_mark_price("XBTUSD", "60000")
    taker = place(sim, type="sell", ordertype="limit", price="59000.0", volume="0.1")
    assert taker.status == "closed" and taker.trades[0].price == D("60000") and not taker.trades[0].maker
    post = place(sim, type="sell", ordertype="limit", price="59000.0", volume="0.1", oflags="post")
    assert (post.status, post.reason, post.trades) == ("canceled", "Post only order", [])


def test_partial_fill_fractions_fill_a_limit_order_step_by_step():
    sim = make(fill_fractions=(D("0.25"), D("0.5")))
    sim.set_mark_price("XBTUSD", "60000")
    order = place(sim, type="buy", ordertype="limit", price="59000.0", volume="1")
    fills = []
    for _ in range(3):
        sim.set_mark_price("XBTUSD", "58000")
        fills.append(order.vol_exec)
    assert fills == [D("0.25"), D("0.75"), D("1")]
    assert order.status == "closed" and len(order.trades) == 3


@pytest.mark.parametrize(
    ("side", "ordertype", "trigger", "untouched", "touching"),
    [
        ("sell", "stop-loss", "58000.0", "59000", "57900"),
        ("buy", "stop-loss", "62000.0", "61000", "62100"),
        ("sell", "take-profit", "62000.0", "61000", "62000"),
        ("buy", "take-profit", "58000.0", "59000", "57500"),
    ],
)
def test_stop_loss_and_take_profit_trigger_on_the_path(side, ordertype, trigger, untouched, touching):
    sim = make()
    sim.set_mark_price("XBTUSD", "60000")
    order = place(sim, type=side, ordertype=ordertype, price=trigger, volume="0.1")
    sim.set_mark_price("XBTUSD", untouched)
    assert order.status == "open" and not order.triggered
    sim.set_mark_price("XBTUSD", touching)
    assert order.status == "closed" and order.trades[0].price == D(touching)


def test_stop_loss_limit_becomes_a_limit_at_price2_once_triggered():
    sim = make()
    sim.set_mark_price("XBTUSD", "60000")
    order = place(sim, type="sell", ordertype="stop-loss-limit", price="58000.0", price2="57900.0", volume="0.1")
    sim.set_mark_price("XBTUSD", "57950")  # triggers; 57950 >= 57900, so the sell limit is marketable
    assert order.triggered and order.status == "closed" and order.trades[0].price == D("57950")
    order2 = place(sim, type="sell", ordertype="stop-loss-limit", price="57000.0", price2="57500.0", volume="0.1")
    sim.set_mark_price("XBTUSD", "56900")  # triggers, but a sell limit at 57500 does not cross 56900
    assert order2.triggered and order2.status == "open"
    sim.set_mark_price("XBTUSD", "57600")
    assert order2.status == "closed" and order2.trades[0].price == D("57500.0") and order2.trades[0].maker


def test_insufficient_funds_counts_what_open_orders_hold():
    sim = make(balances={"ZUSD": "10000", "XXBT": "0"})
    sim.set_mark_price("XBTUSD", "60000")
    place(sim, type="buy", ordertype="limit", price="50000.0", volume="0.15")  # holds 7530 USD
    with pytest.raises(KrakenError, match="EOrder:Insufficient funds"):
        place(sim, type="buy", ordertype="limit", price="50000.0", volume="0.06")
    with pytest.raises(KrakenError, match="EOrder:Insufficient funds"):
        place(sim, type="sell", ordertype="limit", price="70000.0", volume="0.01")


def test_cl_ord_id_is_unique_among_open_orders_only():
    sim = make()
    sim.set_mark_price("XBTUSD", "60000")
    place(sim, type="buy", ordertype="limit", price="50000.0", volume="0.01", cl_ord_id="abc-1")
    with pytest.raises(KrakenError, match="cl_ord_id"):
        place(sim, type="buy", ordertype="limit", price="50000.0", volume="0.01", cl_ord_id="abc-1")
    place(sim, type="buy", ordertype="market", volume="0.01", cl_ord_id="abc-2")  # closes at once
    again = place(sim, type="buy", ordertype="market", volume="0.01", cl_ord_id="abc-2")
    assert again.status == "closed"


def test_dead_mans_switch_cancels_everything_then_disarms():
    sim = make()
    sim.set_mark_price("XBTUSD", "60000")
    order = place(sim, type="buy", ordertype="limit", price="50000.0", volume="0.01")
    sim.engine.arm_dead_man(sim.key, 60)
    sim.advance_time(59)
    assert order.status == "open"
    sim.advance_time(1)
    assert (order.status, order.reason) == ("canceled", "User requested")
    assert sim.engine.account(sim.key).dead_man_at is None


def test_expiretm_expires_an_order():
    sim = make()
    sim.set_mark_price("XBTUSD", "60000")
    order = place(sim, type="buy", ordertype="limit", price="50000.0", volume="0.01", expiretm="+30")
    sim.advance_time(29.9)
    assert order.status == "open"
    sim.advance_time(0.1)
    assert order.status == "expired"


def _fill_story(seed: int) -> list[tuple]:
    sim = make(seed=seed, fill_fractions=(D("0.3"),))
    place(sim, type="buy", ordertype="limit", price=str(sim.mark_price("XBTUSD") - 100), volume="0.2")
    place(sim, type="sell", ordertype="limit", price=str(sim.mark_price("XBTUSD") + 100), volume="0.2")
    place(sim, type="sell", ordertype="stop-loss", price=str(sim.mark_price("XBTUSD") - 150), volume="0.1")
    sim.advance_price("XBTUSD", steps=300)
    return [(str(t.side), t.price, t.vol, t.fee, t.maker) for t in sim.trades()]


def test_same_seed_same_inputs_same_fills():
    story = _fill_story(11)
    assert len(story) >= 3
    assert _fill_story(11) == story
    assert _fill_story(12) != story


def test_csv_tape_drives_the_mark():
    sim = make(price_source="csv")
    first = sim.mark_price("XBTUSD")
    assert first == D("67164.7")  # the first row of the shipped XBT/USD tape
    assert sim.advance_price("XBTUSD")["XXBTZUSD"] == D("67131.2")
    assert sim.mark_price("ETHUSD") == D("3510.29")
