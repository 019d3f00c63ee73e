"""python-kraken-sdk against the simulator: its REST clients (run in a thread, they are synchronous) and its
websocket client on the WS v2 ``executions`` channel."""

from __future__ import annotations

import asyncio

import pytest
from kraken.exceptions import (
    KrakenInsufficientFundsError,
    KrakenInvalidNonceError,
    KrakenInvalidOrderError,
    KrakenInvalidSignatureError,
    KrakenOrderMinimumNotMetError,
    KrakenUnknownOrderError,
)
from kraken.spot import Market, SpotWSClient, Trade, User


@pytest.fixture
def clients(sim):
    kwargs = {"key": sim.key, "secret": sim.secret, "url": sim.rest_url}
    return Trade(**kwargs), User(**kwargs)


class SdkFeed:
    """python-kraken-sdk's websocket client on the simulator, its messages collected for awaiting."""

    def __init__(self, sim):
        self.messages: asyncio.Queue[dict] = asyncio.Queue()
        # The SDK appends "/v2" to auth_ws_url itself, so it is given the origin with a ws:// scheme.
        self.client = SpotWSClient(
            key=sim.key,
            secret=sim.secret,
            callback=self._on_message,
            no_public=True,
            rest_url=sim.rest_url,
            auth_ws_url=sim.ws_url.removesuffix("/v2"),
        )

    async def _on_message(self, message: dict) -> None:
        self.messages.put_nowait(message)

    async def next(self, **match: str) -> dict:
        """The next message whose fields equal ``match`` (e.g. ``channel="executions"``)."""
        while True:
            message = await asyncio.wait_for(self.messages.get(), timeout=10)
            if all(message.get(k) == v for k, v in match.items()):
                return message

    async def __aenter__(self) -> SdkFeed:
        await self.client.start()
        await self.client.subscribe(params={"channel": "executions", "snap_orders": True, "snap_trades": True})
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()


def call(fn, /, *args, **kwargs):
    """Run a synchronous SDK call off the event loop that serves the simulator."""
    return asyncio.to_thread(fn, *args, **kwargs)


async def test_public_market_data(sim):
    market = Market(url=sim.rest_url)
    pairs = await call(market.get_asset_pairs, pair="XBTUSD")
    assert list(pairs) == ["XXBTZUSD"]
    ticker = await call(market.get_ticker, pair="ETHUSD")
    assert ticker["XETHZUSD"]["c"][0] == "3500.00"
    assert (await call(market.get_system_status))["status"] == "online"


async def test_place_query_fill_cancel_and_history(sim, clients):
    trade, user = clients
    placed = await call(
        trade.create_order,
        ordertype="limit",
        side="sell",
        pair="XBTUSD",
        volume="0.3",
        price="68000",
        cl_ord_id="pks-1",
    )
    txid = placed["txid"][0]
    assert placed["descr"]["order"] == "sell 0.30000000 XBTUSD @ limit 68000.0"
    assert txid in (await call(user.get_open_orders, cl_ord_id="pks-1"))["open"]
    sim.set_mark_price("XBTUSD", "68000")
    info = (await call(user.get_orders_info, txid=txid, trades=True))[txid]
    assert (info["status"], info["vol_exec"], info["price"]) == ("closed", "0.30000000", "68000.0")
    history = await call(user.get_trades_history)
    assert history["count"] == 1 and next(iter(history["trades"].values()))["ordertxid"] == txid
    assert (await call(user.get_account_balance))["XXBT"] == "1.7000000000"

    resting = (
        await call(
            trade.create_order,
            ordertype="take-profit-limit",
            side="sell",
            pair="XBTUSD",
            volume="0.1",
            price="75000",
            price2="74900",
        )
    )["txid"][0]
    assert (await call(trade.cancel_order, txid=resting)) == {"count": 1}
    closed = await call(user.get_closed_orders)
    assert {txid, resting} == set(closed["closed"]) and closed["closed"][resting]["status"] == "canceled"


async def test_sdk_raises_its_exceptions_for_krakens_errors(sim, clients):
    trade, user = clients
    with pytest.raises(KrakenInsufficientFundsError):
        await call(trade.create_order, ordertype="market", side="buy", pair="XBTUSD", volume="5")
    with pytest.raises(KrakenOrderMinimumNotMetError):
        await call(trade.create_order, ordertype="limit", side="buy", pair="XBTUSD", volume="0.00001", price="60000")
    with pytest.raises(KrakenUnknownOrderError):
        await call(trade.cancel_order, txid="OAAAAA-BBBBB-CCCCCC")
    with pytest.raises(KrakenInvalidOrderError):
        await call(user.get_orders_info, txid="OAAAAA-BBBBB-CCCCCC")
    impostor = User(key=sim.key, secret="a2V5a2V5a2V5a2V5", url=sim.rest_url)
    with pytest.raises(KrakenInvalidSignatureError):
        await call(impostor.get_account_balance)
    sim.last_nonce[sim.key] = 10**30
    with pytest.raises(KrakenInvalidNonceError):
        await call(user.get_account_balance)


async def test_websocket_client_streams_executions(sim, clients):
    trade, _ = clients
    async with SdkFeed(sim) as feed:
        snapshot = await feed.next(channel="executions")
        assert (snapshot["type"], snapshot["sequence"], snapshot["data"]) == ("snapshot", 1, [])
        placed = await call(
            trade.create_order,
            ordertype="limit",
            side="buy",
            pair="XBTUSD",
            volume="0.2",
            price="66000",
            cl_ord_id="pks-ws",
        )
        sim.set_mark_price("XBTUSD", "65000")
        updates = [await feed.next(channel="executions") for _ in range(4)]
        assert [u["sequence"] for u in updates] == [2, 3, 4, 5]
        assert [u["data"][0]["exec_type"] for u in updates] == ["pending_new", "new", "trade", "filled"]
        assert {u["data"][0]["order_id"] for u in updates} == {placed["txid"][0]}
        fill = updates[2]["data"][0]
        assert (fill["last_qty"], fill["last_price"], fill["liquidity_ind"]) == (0.2, 66000.0, "m")


async def test_websocket_client_recovers_from_a_disconnect_fault(sim, clients):
    """The SDK reconnects with a fresh token and re-subscribes; the new snapshot shows the order placed
    while it was away (the SDK waits 1-2 s of its own before reconnecting)."""
    trade, _ = clients
    async with SdkFeed(sim) as feed:
        assert (await feed.next(type="snapshot"))["data"] == []
        tokens_before = len(sim.ws_tokens)
        assert await sim.ws_disconnect() == 1
        placed = await call(
            trade.create_order, ordertype="limit", side="buy", pair="XBTUSD", volume="0.2", price="60000"
        )
        snapshot = await feed.next(type="snapshot")
        assert snapshot["sequence"] == 1  # a new connection starts its own sequence
        assert [r["order_id"] for r in snapshot["data"]] == placed["txid"]
        assert len(sim.ws_tokens) == tokens_before + 1
