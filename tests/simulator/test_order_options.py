"""Every AddOrder option Kraken documents (REFERENCE.md 3.2-3.6), each driven over the wire by python-kraken-sdk
or ccxt, unpatched: batches, amend/edit, IOC/GTD, post-only, validate, userref, oflags, stop/take-profit limits
with price2, trailing stops, trigger=index, relative prices, cl_ord_id formats, funds held by stops."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import ccxt.async_support as ccxt
import pytest
from kraken.exceptions import (
    KrakenInsufficientFundsError,
    KrakenInvalidArgumentsError,
    KrakenInvalidOrderError,
    KrakenInvalidPriceError,
    KrakenOrderMinimumNotMetError,
    KrakenUnknownOrderError,
)
from kraken.spot import Trade, User

from execledger.infrastructure.simulator import KrakenSimulator

from .conftest import FROZEN_AT

D = Decimal


def call(fn, /, *args, **kwargs):
    """Run a synchronous SDK call off the event loop that serves the simulator."""
    return asyncio.to_thread(fn, *args, **kwargs)


async def refusal(error_class, fn, /, **kwargs) -> str:
    """The SDK raises its class for Kraken's error, with Kraken's body in the message: the error string."""
    with pytest.raises(error_class) as caught:
        await call(fn, **kwargs)
    return str(caught.value).split("'error': ['", 1)[1].split("'", 1)[0]


@pytest.fixture
def clients(sim):
    kwargs = {"key": sim.key, "secret": sim.secret, "url": sim.rest_url}
    return Trade(**kwargs), User(**kwargs)


@pytest.fixture
async def exchange(sim):
    # A second API key on the account: ccxt's millisecond nonces would be refused after the SDK's 1e-8 s ones on
    # one key, exactly as Kraken refuses them (REFERENCE.md 1, "Do not share one key across nonce scales").
    secret = sim.add_api_key("ccxt-key")
    client = ccxt.kraken({"apiKey": "ccxt-key", "secret": secret, "enableRateLimit": False})
    client.urls["api"] = {"public": sim.rest_url, "private": sim.rest_url}
    yield client
    await client.close()


def order(sim, txid: str):
    return sim.engine.account(sim.key).orders[txid]


async def test_add_order_batch_places_each_order_and_refuses_one_without_funds(sim, clients):
    trade, _ = clients
    sim.set_mark_price("XBTUSD", "65000")
    placed = await call(
        trade.create_order_batch,
        orders=[
            {"ordertype": "limit", "type": "buy", "volume": "0.01", "price": "60000", "cl_ord_id": "batch-1"},
            {"ordertype": "limit", "type": "sell", "volume": "0.01", "price": "70000", "userref": 7},
            {"ordertype": "limit", "type": "buy", "volume": "50", "price": "60000"},
        ],
        pair="XBTUSD",
    )
    entries = placed["orders"]
    assert entries[0]["descr"]["order"] == "buy 0.01000000 XBTUSD @ limit 60000.0"
    assert isinstance(entries[0]["txid"], str) and isinstance(entries[1]["txid"], str)  # a scalar, unlike AddOrder
    assert entries[2] == {"error": "EOrder:Insufficient funds"}  # refused alone at submission, the rest placed
    assert order(sim, entries[0]["txid"]).request.cl_ord_id == "batch-1"
    # Validation covers the whole batch: one order below the minimum refuses all of them.
    before = len(sim.orders())
    with pytest.raises(KrakenOrderMinimumNotMetError):
        await call(
            trade.create_order_batch,
            orders=[
                {"ordertype": "limit", "type": "buy", "volume": "0.01", "price": "60000"},
                {"ordertype": "limit", "type": "buy", "volume": "0.00001", "price": "60000"},
            ],
            pair="XBTUSD",
        )
    assert len(sim.orders()) == before
    assert await call(trade.cancel_order_batch, orders=[entries[0]["txid"], 7, "OAAAAA-BBBBB-CCCCCC"]) == {"count": 2}
    assert {order(sim, e["txid"]).status for e in entries[:2]} == {"canceled"}


async def test_ccxt_create_orders_and_cancel_orders_use_the_batch_methods(sim, exchange):
    sim.set_mark_price("ETHUSD", "3500")
    created = await exchange.create_orders(
        [
            {"symbol": "ETH/USD", "type": "limit", "side": "buy", "amount": 0.1, "price": 3000},
            {"symbol": "ETH/USD", "type": "limit", "side": "buy", "amount": 0.2, "price": 3100},
        ]
    )
    ids = [o["id"] for o in created]
    assert [sim.requests()[-1].method, len(ids)] == ["AddOrderBatch", 2]
    assert {o["id"] for o in await exchange.fetch_open_orders("ETH/USD")} == set(ids)
    await exchange.cancel_orders(ids)
    assert sim.requests()[-1].method == "CancelOrderBatch"
    assert await exchange.fetch_open_orders("ETH/USD") == []


async def test_amend_order_keeps_the_txid_and_records_each_amend(sim, clients, exchange):
    trade, user = clients
    sim.set_mark_price("XBTUSD", "65000")
    txid = (await call(trade.create_order, ordertype="limit", side="buy", pair="XBTUSD", volume="0.02", price="60000"))[
        "txid"
    ][0]
    amend = await call(trade.amend_order, txid=txid, order_qty="0.03", limit_price="60500")
    assert set(amend) == {"amend_id"} and amend["amend_id"].startswith("T")
    info = (await call(user.get_orders_info, txid=txid))[txid]
    assert (info["vol"], info["descr"]["price"], info["misc"]) == ("0.03000000", "60500.0", "amended")
    # ccxt's editOrder is AmendOrder now (by cl_ord_id or txid).
    await exchange.edit_order(txid, "BTC/USD", "limit", "buy", 0.025, 61000)
    assert (order(sim, txid).request.volume, order(sim, txid).request.price) == (D("0.025"), D("61000"))
    history = await call(trade.request, "POST", "/0/private/OrderAmends", params={"order_id": txid})
    assert [a["amend_type"] for a in history["amends"]] == ["original", "user", "user"]
    assert [a["limit_price"] for a in history["amends"]] == ["60000.0", "60500.0", "61000.0"]
    assert history["amends"][0]["order_qty"] == "0.02000000" and history["count"] == 3
    # Reducing to what has filled ends the order; amending a closed order is refused.
    sim.set_mark_price("XBTUSD", "61000")
    assert order(sim, txid).status == "closed"
    with pytest.raises(KrakenUnknownOrderError):
        await call(trade.amend_order, txid=txid, order_qty="0.05")


async def test_amend_a_trigger_price_by_cl_ord_id_and_refuse_a_limit_on_a_market_stop(sim, clients):
    trade, _ = clients
    sim.set_mark_price("XBTUSD", "65000")
    txid = (
        await call(
            trade.create_order,
            ordertype="stop-loss",
            side="sell",
            pair="XBTUSD",
            volume="0.1",
            price="60000",
            cl_ord_id="stop-1",
        )
    )["txid"][0]
    await call(trade.amend_order, cl_ord_id="stop-1", trigger_price="62000")
    assert order(sim, txid).request.trigger_price == D("62000")
    refused = await refusal(KrakenInvalidOrderError, trade.amend_order, cl_ord_id="stop-1", limit_price="61000")
    assert refused.startswith("EOrder:Invalid order:limit_price")
    sim.set_mark_price("XBTUSD", "61900")  # the amended trigger, not the original one, fires
    assert order(sim, txid).status == "closed" and order(sim, txid).trades[0].price == D("61900")


async def test_edit_order_replaces_the_order_with_a_new_txid(sim, clients):
    trade, user = clients
    sim.set_mark_price("XBTUSD", "65000")
    old = (await call(trade.create_order, ordertype="limit", side="buy", pair="XBTUSD", volume="0.02", price="60000"))[
        "txid"
    ][0]
    edited = await call(trade.edit_order, txid=old, pair="XBTUSD", volume="0.04", price="60100")
    assert (edited["status"], edited["originaltxid"], edited["orders_cancelled"]) == ("ok", old, 1)
    assert edited["txid"] != old and edited["descr"]["order"] == "buy 0.04000000 XBTUSD @ limit 60100.0"
    info = await call(user.get_orders_info, txid=f"{old},{edited['txid']}")
    assert (info[old]["status"], info[old]["reason"]) == ("canceled", "Order replaced")
    assert (info[edited["txid"]]["status"], info[edited["txid"]]["refid"]) == ("open", old)


async def test_ioc_fills_what_it_can_at_once_and_cancels_the_rest():
    async with KrakenSimulator(seed=2, clock_start=FROZEN_AT, tier=None, fill_fractions=(D("0.5"),)) as sim:
        trade = Trade(key=sim.key, secret=sim.secret, url=sim.rest_url)
        sim.set_mark_price("XBTUSD", "60000")
        missed = (
            await call(
                trade.create_order,
                ordertype="limit",
                side="buy",
                pair="XBTUSD",
                volume="0.1",
                price="59000",
                timeinforce="IOC",
            )
        )["txid"][0]
        assert (order(sim, missed).status, order(sim, missed).vol_exec) == ("canceled", 0)  # never rests
        partial = (
            await call(
                trade.create_order,
                ordertype="limit",
                side="buy",
                pair="XBTUSD",
                volume="0.1",
                price="61000",
                timeinforce="IOC",
            )
        )["txid"][0]
        o = order(sim, partial)
        assert (o.status, o.vol_exec, o.reason) == ("canceled", D("0.05"), "Immediate or cancel")


async def test_gtd_needs_an_expiry_and_expires_on_the_simulators_clock(sim, clients):
    trade, user = clients
    sim.set_mark_price("XBTUSD", "65000")
    txid = (
        await call(
            trade.create_order,
            ordertype="limit",
            side="buy",
            pair="XBTUSD",
            volume="0.01",
            price="60000",
            timeinforce="GTD",
            expiretm="+30",
        )
    )["txid"][0]
    info = (await call(user.get_orders_info, txid=txid))[txid]
    assert (info["status"], info["expiretm"]) == ("open", FROZEN_AT + 30)
    sim.advance_time(29)
    assert order(sim, txid).status == "open"
    sim.advance_time(1)
    assert order(sim, txid).status == "expired"
    assert (
        await refusal(
            KrakenInvalidArgumentsError,
            trade.create_order,
            ordertype="limit",
            side="buy",
            pair="XBTUSD",
            volume="0.01",
            price="60000",
            timeinforce="GTD",
        )
        == "EGeneral:Invalid arguments:expiretm"
    )
    assert (
        await refusal(
            KrakenInvalidArgumentsError,
            trade.create_order,
            ordertype="limit",
            side="buy",
            pair="XBTUSD",
            volume="0.01",
            price="60000",
            expiretm="+2",
        )
        == "EGeneral:Invalid arguments:expiretm"
    )  # at least 5 s ahead


async def test_validate_checks_everything_and_books_nothing(sim, clients):
    trade, _ = clients
    checked = await call(
        trade.create_order, ordertype="limit", side="buy", pair="XBTUSD", volume="0.01", price="60000", validate=True
    )
    assert checked == {"descr": {"order": "buy 0.01000000 XBTUSD @ limit 60000.0"}}  # no txid
    assert sim.orders() == []
    with pytest.raises(KrakenInsufficientFundsError):  # state checks run too
        await call(
            trade.create_order,
            ordertype="limit",
            side="buy",
            pair="XBTUSD",
            volume="40",
            price="60000",
            validate=True,
        )


async def test_userref_groups_orders_for_filters_and_cancels(sim, clients):
    trade, user = clients
    for price in ("60000", "60100"):
        await call(
            trade.create_order, ordertype="limit", side="buy", pair="XBTUSD", volume="0.01", price=price, userref=42
        )
    await call(trade.create_order, ordertype="limit", side="buy", pair="XBTUSD", volume="0.01", price="60200")
    grouped = (await call(user.get_open_orders, userref=42))["open"]
    assert len(grouped) == 2 and {o["userref"] for o in grouped.values()} == {42}
    assert await call(trade.cancel_order, txid=42) == {"count": 2}
    assert len((await call(user.get_open_orders))["open"]) == 1


async def test_oflags_fee_currency_nompp_and_viqc(sim, clients):
    trade, user = clients
    sim.set_mark_price("XBTUSD", "60000")
    before = sim.balances()
    base_fee = (
        await call(trade.create_order, ordertype="market", side="buy", pair="XBTUSD", volume="0.1", oflags="fcib")
    )["txid"][0]
    o = order(sim, base_fee)
    assert (o.trades[0].fee, o.trades[0].fee_asset) == (D("0.00040000"), "XXBT")  # 0.4 % of 0.1 BTC, in BTC
    after = sim.balances()
    assert (after["XXBT"] - before["XXBT"], before["ZUSD"] - after["ZUSD"]) == (D("0.0996"), D("6000"))
    info = (await call(user.get_orders_info, txid=base_fee))[base_fee]
    assert (info["oflags"], info["fee"]) == ("fcib", "0.00040000")
    refused = await refusal(
        KrakenInvalidArgumentsError,
        trade.create_order,
        ordertype="limit",
        side="buy",
        pair="XBTUSD",
        volume="0.1",
        price="59000",
        oflags="nompp",
    )
    assert refused.startswith("EGeneral:Invalid arguments:nompp")
    assert (
        await refusal(
            KrakenInvalidArgumentsError,
            trade.create_order,
            ordertype="market",
            side="buy",
            pair="XBTUSD",
            volume="0.1",
            oflags="fcib,fciq",
        )
        == "EGeneral:Invalid arguments:oflags"
    )
    spend = (
        await call(trade.create_order, ordertype="market", side="buy", pair="XBTUSD", volume="1200", oflags="viqc")
    )["txid"][0]
    o = order(sim, spend)
    assert (o.vol_exec, o.cost) == (D("0.02"), D("1200.00000"))  # 1,200 USD of BTC at 60,000
    assert (
        await refusal(
            KrakenInvalidArgumentsError,
            trade.create_order,
            ordertype="market",
            side="sell",
            pair="XBTUSD",
            volume="100",
            oflags="viqc",
        )
        == "EGeneral:Invalid arguments:viqc"
    )


async def test_account_default_fee_in_base_applies_unless_the_order_says_fciq(sim, clients, wire):
    trade, _ = clients
    sim.set_mark_price("XBTUSD", "60000")
    async with wire.session.post(wire.base + "/_sim/fees", json={"default": "base"}) as response:
        assert (await response.json()) == {"default": "base"}
    default = (await call(trade.create_order, ordertype="market", side="sell", pair="XBTUSD", volume="0.1"))["txid"][0]
    quote = (
        await call(trade.create_order, ordertype="market", side="sell", pair="XBTUSD", volume="0.1", oflags="fciq")
    )["txid"][0]
    assert [order(sim, t).trades[0].fee_asset for t in (default, quote)] == ["XXBT", "ZUSD"]
    async with wire.session.post(wire.base + "/_sim/fees", json={"default": "both"}) as response:
        assert response.status == 400 and "base, quote" in (await response.json())["error"]


async def test_stop_loss_limit_and_take_profit_limit_use_price2_once_triggered(sim, exchange, clients):
    trade, _ = clients
    sim.set_mark_price("XBTUSD", "60000")
    stop = await exchange.create_order("BTC/USD", "limit", "sell", 0.1, 58900, {"stopLossPrice": 59000})
    take = (
        await call(
            trade.create_order,
            ordertype="take-profit-limit",
            side="sell",
            pair="XBTUSD",
            volume="0.1",
            price="62000",
            price2="61900",
        )
    )["txid"][0]
    info = order(sim, stop["id"])
    assert (str(info.request.ordertype), info.request.price, info.request.price2) == (
        "stop-loss-limit",
        D("59000"),
        D("58900"),
    )
    sim.set_mark_price("XBTUSD", "58950")  # triggers the stop; its limit 58,900 is marketable at 58,950
    assert order(sim, stop["id"]).status == "closed" and order(sim, stop["id"]).trades[0].price == D("58950")
    sim.set_mark_price("XBTUSD", "62050")  # triggers the take-profit: a limit sell at 61,900, filled at the mark
    assert order(sim, take).trades[0].price == D("62050")


async def test_trailing_stop_follows_the_best_price_and_fires_on_the_retrace(sim, clients, exchange):
    trade, user = clients
    sim.set_mark_price("XBTUSD", "60000")
    txid = (
        await call(
            trade.create_order, ordertype="trailing-stop", side="sell", pair="XBTUSD", volume="0.1", price="+1000"
        )
    )["txid"][0]
    assert order(sim, txid).stop_price == D("59000")
    sim.set_mark_price("XBTUSD", "62000")  # the peak moves the stop up
    info = (await call(user.get_orders_info, txid=txid))[txid]
    assert (info["descr"]["price"], info["stopprice"], info["limitprice"]) == ("+1000.0", "61000.0", "62000.0")
    assert info["descr"]["order"] == "sell 0.10000000 XBTUSD @ trailing stop +1000.0"
    sim.set_mark_price("XBTUSD", "61500")
    assert order(sim, txid).status == "open"  # a retrace short of the stop
    sim.set_mark_price("XBTUSD", "60990")
    assert order(sim, txid).status == "closed" and order(sim, txid).trades[0].price == D("60990")
    # Percent trails through ccxt, and a trailing stop's price must be "+offset".
    pct = await exchange.create_order("BTC/USD", "market", "sell", 0.1, None, {"trailingPercent": "2"})
    assert order(sim, pct["id"]).stop_price == D("59770.2")  # 2 % under 60,990
    assert (
        await refusal(
            KrakenInvalidPriceError,
            trade.create_order,
            ordertype="trailing-stop",
            side="sell",
            pair="XBTUSD",
            volume="0.1",
            price="1000",
        )
        == "EOrder:Invalid price:Invalid price argument"
    )


async def test_trailing_stop_limit_sets_its_limit_from_the_trigger(sim, clients):
    trade, _ = clients
    sim.set_mark_price("XBTUSD", "60000")
    txid = (
        await call(
            trade.create_order,
            ordertype="trailing-stop-limit",
            side="buy",
            pair="XBTUSD",
            volume="0.1",
            price="+2%",
            price2="+100",
        )
    )["txid"][0]
    sim.set_mark_price("XBTUSD", "59000")  # the trough: stop at 60,180
    assert order(sim, txid).stop_price == D("60180.0")
    sim.set_mark_price("XBTUSD", "60200")
    o = order(sim, txid)
    assert (o.triggered, o.active_limit, o.status) == (True, D("60280.0"), "closed")


async def test_trigger_index_watches_the_index_price_not_the_last_trade(sim, clients, wire):
    trade, _ = clients
    sim.set_mark_price("XBTUSD", "60000")
    txid = (
        await call(
            trade.create_order,
            ordertype="stop-loss",
            side="sell",
            pair="XBTUSD",
            volume="0.1",
            price="59000",
            trigger="index",
        )
    )["txid"][0]
    async with wire.session.post(wire.base + "/_sim/index", json={"pair": "XBTUSD", "price": "60000"}) as response:
        assert (await response.json()) == {"index": "60000"}
    sim.set_mark_price("XBTUSD", "58000")  # the last trade passes the stop; the index does not
    assert order(sim, txid).status == "open"
    sim.set_index_price("XBTUSD", "58990")
    assert order(sim, txid).status == "closed" and order(sim, txid).trades[0].price == D("58000")


async def test_relative_prices_resolve_against_the_last_trade_on_the_pairs_grid(sim, clients):
    trade, _ = clients
    sim.set_mark_price("XBTUSD", "60000")
    below = (
        await call(trade.create_order, ordertype="limit", side="buy", pair="XBTUSD", volume="0.01", price="-1000")
    )["txid"][0]
    pct = (
        await call(trade.create_order, ordertype="limit", side="sell", pair="XBTUSD", volume="0.01", price="+1.25%")
    )["txid"][0]
    hashed = (
        await call(trade.create_order, ordertype="take-profit", side="sell", pair="XBTUSD", volume="0.01", price="#5%")
    )["txid"][0]
    assert [order(sim, t).request.price for t in (below, pct, hashed)] == [D("59000.0"), D("60750.0"), D("63000.0")]


@pytest.mark.parametrize(
    ("cl_ord_id", "accepted"),
    [
        ("6d1b345e-2821-40e2-ad83-4ecb18a06876", True),  # long UUID
        ("da8e4ad59b78481c93e589746b0cf91f", True),  # short UUID
        ("free-text-18-chars", True),
        ("free-text-of-19-chr", False),
        ("6d1b345e-2821-40e2-ad83-4ecb18a0687z", False),  # 36 chars but not a UUID
    ],
)
async def test_cl_ord_id_formats(sim, wire, cl_ord_id, accepted):
    body = await wire.call(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "buy",
            "ordertype": "limit",
            "price": "50000",
            "volume": "0.01",
            "cl_ord_id": cl_ord_id,
        },
    )
    assert (body["error"] == []) is accepted
    if not accepted:
        assert body["error"] == ["EGeneral:Invalid arguments:cl_ord_id"]


async def test_untriggered_stops_hold_funds_and_a_switch_turns_that_off(sim, clients, wire):
    """Issue 13, scenario 4: a take-profit selling the base a resting stop already holds is refused."""
    trade, user = clients
    sim.set_mark_price("XBTUSD", "60000")
    stop = (
        await call(trade.create_order, ordertype="stop-loss", side="sell", pair="XBTUSD", volume="2", price="55000")
    )["txid"][0]
    assert (await call(user.get_balances))["XXBT"]["hold_trade"] == "2.0000000000"
    with pytest.raises(KrakenInsufficientFundsError):
        await call(trade.create_order, ordertype="take-profit", side="sell", pair="XBTUSD", volume="2", price="65000")
    async with wire.session.post(wire.base + "/_sim/holds", json={"untriggered_stops": False}) as response:
        assert (await response.json()) == {"untriggered_stops": False}
    take = (
        await call(trade.create_order, ordertype="take-profit", side="sell", pair="XBTUSD", volume="2", price="65000")
    )["txid"][0]
    assert (await call(user.get_balances))["XXBT"]["hold_trade"] == "0.0000000000"
    await call(trade.create_order, ordertype="market", side="sell", pair="XBTUSD", volume="1")
    sim.set_mark_price("XBTUSD", "54000")  # the stop triggers but 1 BTC is left for its 2: canceled
    assert (order(sim, stop).status, order(sim, stop).reason) == ("canceled", "Insufficient funds")
    assert order(sim, take).status == "open"


async def test_reduce_only_and_stptype_are_accepted_and_bad_values_named(sim, clients):
    trade, _ = clients
    ok = await call(
        trade.create_order,
        ordertype="limit",
        side="buy",
        pair="XBTUSD",
        volume="0.01",
        price="50000",
        reduce_only=True,
        stptype="cancel-both",
    )
    assert order(sim, ok["txid"][0]).request.reduce_only is True
    assert (
        await refusal(
            KrakenInvalidArgumentsError,
            trade.create_order,
            ordertype="limit",
            side="buy",
            pair="XBTUSD",
            volume="0.01",
            price="50000",
            stptype="cancel-all",
        )
        == "EGeneral:Invalid arguments:stptype"
    )
    assert (
        await refusal(
            KrakenInvalidArgumentsError,
            trade.create_order,
            ordertype="limit",
            side="buy",
            pair="XBTUSD",
            volume="0.01",
            price="50000",
            timeinforce="FOK",
        )
        == "EGeneral:Invalid arguments:timeinforce"
    )  # FOK is not in the 2025 spec's enum


def test_amend_keeps_queue_priority_for_a_smaller_quantity_and_loses_it_for_a_new_price():
    sim = KrakenSimulator(seed=1, clock_start=FROZEN_AT, tier=None, fill_fractions=(D("0.5"),))
    sim.set_mark_price("XBTUSD", "61000")
    params = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "60000"}

    def place(volume: str):
        from execledger.infrastructure.simulator.orderentry import parse_add_order

        req = parse_add_order(params | {"volume": volume}, sim.find_pair, sim.clock.now(), sim.last_price)
        return sim.engine.place(sim.key, req)

    first, second, third = place("0.04"), place("0.04"), place("0.04")
    sim.engine.amend(first, order_qty=D("0.02"))  # smaller: keeps its place
    sim.engine.amend(second, limit_price=D("60000.5"))  # a new price: to the back of the queue
    assert first.seq < third.seq < second.seq
    sim.set_mark_price("XBTUSD", "59000")  # every order crosses; they fill in queue order
    fills = sorted((t for t in sim.trades()), key=lambda t: t.trade_id)
    assert [t.order_txid for t in fills] == [first.txid, third.txid, second.txid]


async def test_starttm_keeps_an_order_pending_until_its_start(sim, clients):
    trade, user = clients
    sim.set_mark_price("XBTUSD", "60000")
    txid = (
        await call(
            trade.create_order,
            ordertype="limit",
            side="buy",
            pair="XBTUSD",
            volume="0.01",
            price="61000",
            starttm="+60",
        )
    )["txid"][0]
    info = (await call(user.get_orders_info, txid=txid))[txid]
    assert (info["status"], info["starttm"]) == ("pending", FROZEN_AT + 60)
    assert (await call(user.get_balances))["ZUSD"]["hold_trade"] != "0.0000"  # funds are held while it waits
    sim.advance_time(59)
    assert order(sim, txid).status == "pending"
    sim.advance_time(1)  # live now, and marketable at 60,000: it takes at once
    assert order(sim, txid).status == "closed" and order(sim, txid).trades[0].price == D("60000")
