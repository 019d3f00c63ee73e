"""The public WS v2 price stream (``KrakenPublicPrices``) against the built-in simulator's ``/public/v2``: it is
what decides an emulated take-profit, so a trade must become a tick at once, under the pair's AssetPairs key,
and a lost socket must say so (the service reads REST Ticker meanwhile) and come back by itself."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from execledger.application.ports import PriceTick, StreamEvent, StreamState
from execledger.infrastructure.kraken.adapter import KrakenExchange
from execledger.infrastructure.kraken.public_ws import KrakenPublicPrices
from execledger.infrastructure.kraken.urls import derive_public_ws_url
from execledger.infrastructure.simulator import KrakenSimulator
from execledger.infrastructure.simulator.catalog import shipped_registry

D = Decimal


async def next_of(stream, kind, timeout: float = 10.0):
    async def find():
        async for item in stream:
            if isinstance(item, kind):
                return item
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(find(), timeout)


def test_the_public_endpoint_is_derived_beside_the_private_one():
    assert derive_public_ws_url("wss://ws-auth.kraken.com/v2") == "wss://ws.kraken.com/v2"
    assert derive_public_ws_url("ws://127.0.0.1:8765/v2") == "ws://127.0.0.1:8765/public/v2"
    assert derive_public_ws_url("wss://proxy.example/v2") is None  # unknown layout: REST Ticker only
    assert derive_public_ws_url(None) is None
    with pytest.raises(ValueError, match="unencrypted"):
        derive_public_ws_url("ws://example.com/v2")


async def test_each_trade_is_a_tick_under_the_pairs_key_and_xbt_is_btc_on_the_wire():
    async with KrakenSimulator(tier=None) as sim:
        prices = KrakenPublicPrices(sim.public_ws_url, shipped_registry())
        assert prices.symbols(["XXBTZUSD", "XDGUSD", "NOSUCHPAIR"]) == {"BTC/USD": "XXBTZUSD", "DOGE/USD": "XDGUSD"}
        stream = prices.ticks(["XXBTZUSD"])
        try:
            assert (await next_of(stream, StreamEvent)).state is StreamState.CONNECTED
            first = await next_of(stream, PriceTick)  # the ticker snapshot: where the market is now
            assert first.pair == "XXBTZUSD" and first.price == sim.mark_price("XBT/USD")
            for price in ("70001.5", "69990.1"):
                sim.set_mark_price("XBT/USD", price)
                tick = await next_of(stream, PriceTick)
                while tick.price != D(price):  # the ticker update may follow the trade: both carry the price
                    tick = await next_of(stream, PriceTick)
                assert tick.pair == "XXBTZUSD"
        finally:
            await stream.aclose()


async def test_a_lost_socket_is_reported_and_the_stream_comes_back_by_itself():
    sim = KrakenSimulator(tier=None)
    await sim.start()
    port = sim.port
    prices = KrakenPublicPrices(sim.public_ws_url, shipped_registry(), reconnect_delay_s=0.05)
    stream = prices.ticks(["XXBTZUSD"])
    try:
        assert (await next_of(stream, StreamEvent)).state is StreamState.CONNECTED
        await sim.stop()
        assert (await next_of(stream, StreamEvent)).state is StreamState.DISCONNECTED
        await asyncio.sleep(0.3)  # several reconnect attempts (0.05 s, 0.1 s, ...) fail while nothing listens
        again = KrakenSimulator(tier=None, port=port)
        await again.start()
        try:
            # reported once while it was down, however many attempts failed: the next event is the recovery
            assert (await next_of(stream, StreamEvent, timeout=20)).state is StreamState.CONNECTED
            again.set_mark_price("XBT/USD", "71234.5")
            tick = await next_of(stream, PriceTick)
            while tick.price != D("71234.5"):
                tick = await next_of(stream, PriceTick)
            assert prices.connects >= 2
        finally:
            await again.stop()
    finally:
        await stream.aclose()


def test_the_adapter_streams_prices_only_where_it_knows_the_public_endpoint(tmp_path):
    from execledger.infrastructure.kraken.rest import KrakenRestClient

    rest = KrakenRestClient("http://127.0.0.1:9")
    assert KrakenExchange(rest, ws_url="ws://127.0.0.1:9/v2").public_ws_url == "ws://127.0.0.1:9/public/v2"
    with pytest.raises(NotImplementedError):
        KrakenExchange(rest, ws_url=None).price_ticks(["XXBTZUSD"])


async def test_a_silent_socket_is_rebuilt_by_the_heartbeat_watchdog():
    sim = KrakenSimulator(tier=None)
    await sim.start()
    prices = KrakenPublicPrices(sim.public_ws_url, shipped_registry(), heartbeat_timeout_s=0.2, reconnect_delay_s=0.01)
    stream = prices.ticks(["XXBTZUSD"])
    try:
        assert (await next_of(stream, StreamEvent)).state is StreamState.CONNECTED
        # no trade after the snapshot: nothing arrives for 0.2 s although the socket is open
        assert (await next_of(stream, StreamEvent)).state is StreamState.DISCONNECTED
        assert (await next_of(stream, StreamEvent)).state is StreamState.CONNECTED
        assert prices.connects >= 2
    finally:
        await stream.aclose()
        await sim.stop()
