"""ccxt's kraken class (async) pointed at the simulator: it must not tell the difference."""

from __future__ import annotations

import ccxt.async_support as ccxt
import pytest

from execledger.infrastructure.simulator import FaultKind


@pytest.fixture
async def exchange(sim):
    client = ccxt.kraken({"apiKey": sim.key, "secret": sim.secret, "enableRateLimit": False})
    client.urls["api"] = {"public": sim.rest_url, "private": sim.rest_url}
    yield client
    await client.close()


async def test_markets_balance_and_ticker(sim, exchange):
    markets = await exchange.load_markets()
    assert {"BTC/USD", "ETH/USD"} <= set(markets)
    assert markets["BTC/USD"]["id"] == "XXBTZUSD" and markets["BTC/USD"]["limits"]["amount"]["min"] == 0.00005
    balance = await exchange.fetch_balance()
    assert balance["BTC"]["total"] == 2.0 and balance["USD"]["free"] == 100000.0
    sim.set_mark_price("XBTUSD", "65432.1")
    assert (await exchange.fetch_ticker("BTC/USD"))["last"] == 65432.1


async def test_place_query_fill_and_trades_history(sim, exchange):
    placed = await exchange.create_order("BTC/USD", "limit", "buy", 0.05, 66000, {"cl_ord_id": "ccxt-1"})
    fetched = await exchange.fetch_order(placed["id"])
    assert (fetched["status"], fetched["clientOrderId"], fetched["filled"], fetched["price"]) == (
        "open",
        "ccxt-1",
        0.0,
        66000.0,
    )
    assert [o["id"] for o in await exchange.fetch_open_orders("BTC/USD")] == [placed["id"]]
    sim.set_mark_price("XBTUSD", "65990")
    filled = await exchange.fetch_order(placed["id"])
    assert (filled["status"], filled["filled"], filled["average"]) == ("closed", 0.05, 66000.0)
    trades = await exchange.fetch_my_trades("BTC/USD")
    assert len(trades) == 1
    trade = trades[0]
    assert (trade["order"], trade["price"], trade["amount"], trade["takerOrMaker"]) == (
        placed["id"],
        66000.0,
        0.05,
        "maker",
    )
    assert trade["fee"] == {"currency": "USD", "cost": 8.25}
    closed = await exchange.fetch_closed_orders("BTC/USD")
    assert [o["id"] for o in closed] == [placed["id"]]


async def test_market_order_and_stop_loss_trigger(sim, exchange):
    market = await exchange.create_order("ETH/USD", "market", "buy", 0.5)
    assert (await exchange.fetch_order(market["id"]))["status"] == "closed"
    stop = await exchange.create_order("ETH/USD", "market", "sell", 0.5, None, {"stopLossPrice": 3400})
    info = (await exchange.fetch_order(stop["id"]))["info"]
    assert (info["descr"]["ordertype"], info["status"]) == ("stop-loss", "open")
    sim.set_mark_price("ETHUSD", "3399")
    after = await exchange.fetch_order(stop["id"])
    assert (after["status"], after["average"]) == ("closed", 3399.0)


async def test_cancel_and_errors_map_to_ccxt_exceptions(sim, exchange):
    placed = await exchange.create_order("BTC/USD", "limit", "buy", 0.01, 60000)
    await exchange.cancel_order(placed["id"])
    assert (await exchange.fetch_order(placed["id"]))["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        await exchange.cancel_order(placed["id"])
    with pytest.raises(ccxt.InsufficientFunds):
        await exchange.create_order("BTC/USD", "market", "buy", 5)
    with pytest.raises(ccxt.InvalidOrder):
        await exchange.create_order("BTC/USD", "limit", "buy", 0.00001, 60000)
    sim.inject_fault("AddOrder", FaultKind.SERVICE_UNAVAILABLE)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await exchange.create_order("BTC/USD", "limit", "buy", 0.01, 60000)
    sim.inject_fault("AddOrder", FaultKind.HTTP_502_AFTER_EXECUTE)
    with pytest.raises(ccxt.NetworkError):  # ccxt cannot know the order went through...
        await exchange.create_order("BTC/USD", "limit", "buy", 0.01, 60000, {"cl_ord_id": "after-502"})
    found = await exchange.fetch_open_orders("BTC/USD", params={"cl_ord_id": "after-502"})
    assert len(found) == 1  # ...but the order is there


async def test_wrong_secret_and_replayed_nonce(sim, exchange):
    impostor = ccxt.kraken({"apiKey": sim.key, "secret": "a2V5a2V5a2V5a2V5", "enableRateLimit": False})
    impostor.urls["api"] = exchange.urls["api"]
    try:
        with pytest.raises(ccxt.ExchangeError, match="EAPI:Invalid signature"):  # ccxt has no mapping for it
            await impostor.fetch_balance()
    finally:
        await impostor.close()
    await exchange.fetch_balance()
    sim.last_nonce[sim.key] = 10**30  # as if another client had used a larger nonce scale on this key
    with pytest.raises(ccxt.InvalidNonce):
        await exchange.fetch_balance()
