"""The public WS v2 endpoint (``/public/v2``, Kraken's ``ws.kraken.com/v2``): ``ticker`` and ``trade`` channels.

Subscribe with ``{"method": "subscribe", "params": {"channel": "ticker"|"trade", "symbol": ["BTC/USD"],
"snapshot": true}}``; one acknowledgement per symbol (``result: {channel, snapshot, symbol}``), then a snapshot
(ticker: the current statistics; trade: the last 50 trades) and an update on every trade. Message shapes are the
ones recorded from the live venue in 2026 by a third party (``Bytex.Adapters.Tests/Fixtures/KrakenPayloads.cs``,
which also records that REST names such as ``XBT/USD`` are refused here with ``Currency pair not supported``):

    {"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":83744.2,"bid_qty":0.56,"ask":83744.3,
     "ask_qty":0.0004,"last":83744.3,"volume":3156.8,"vwap":84174.6,"low":83163.6,"high":85247.4,"change":-429.3,
     "change_pct":-0.51,"timestamp":"2026-09-25T17:48:26.844359Z"}]}
    {"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":83744.3,"qty":0.0004,
     "ord_type":"limit","trade_id":109116693,"timestamp":"2026-09-25T17:48:26.844359Z"}]}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from execledger.domain.pairs import PairRules
from execledger.domain.values import Side

from . import errors as E
from .appkey import SIMULATOR
from .executions import ws_symbol
from .market import PairStats, PublicTrade
from .ws import PRIVATE_ON_PUBLIC, Connection, serve
from .ws_trading import TRADING

if TYPE_CHECKING:
    from .server import KrakenSimulator

CHANNELS = ("ticker", "trade")


def ticker_data(pair: PairRules, stats: PairStats, at: str) -> dict[str, Any]:
    last = float(stats.last)
    change = stats.last - stats.open
    return {
        "symbol": ws_symbol(pair),
        "bid": last,
        "bid_qty": 1.0,
        "ask": last,
        "ask_qty": 1.0,
        "last": last,
        "volume": float(stats.volume),
        "vwap": float(stats.vwap),
        "low": float(stats.low),
        "high": float(stats.high),
        "change": float(change),
        "change_pct": round(float(change / stats.open * 100), 2) if stats.open else 0.0,
        "timestamp": at,
    }


def trade_data(trade: PublicTrade, at: str) -> dict[str, Any]:
    return {
        "symbol": ws_symbol(trade.pair),
        "side": "buy" if trade.side is Side.BUY else "sell",
        "price": float(trade.price),
        "qty": float(trade.qty),
        "ord_type": trade.ord_type,
        "trade_id": trade.trade_id,
        "timestamp": at,
    }


class PublicConnection(Connection):
    """One public client: its subscriptions per channel, fed by the market's trade listener."""

    def __init__(self, sim: KrakenSimulator, ws: web.WebSocketResponse):
        super().__init__(sim, ws)
        self.channels: dict[str, set[str]] = {c: set() for c in CHANNELS}  # channel -> pair keys
        sim.market.listeners.append(self.on_trade)

    def close_hooks(self) -> None:
        self.sim.market.listeners.remove(self.on_trade)

    def on_trade(self, trade: PublicTrade, stats: PairStats) -> None:
        from .clock import rfc3339

        at = rfc3339(trade.time, micros=True)
        if trade.pair.key in self.channels["trade"]:
            self.send({"channel": "trade", "type": "update", "data": [trade_data(trade, at)]})
        if trade.pair.key in self.channels["ticker"]:
            self.send({"channel": "ticker", "type": "update", "data": [ticker_data(trade.pair, stats, at)]})

    async def handle(self, request: dict[str, Any]) -> None:
        time_in = self.sim.clock.now()
        method = request.get("method")
        given = request.get("params")
        params: dict[str, Any] = given if isinstance(given, dict) else {}
        if method == "ping":
            self.ping(request, time_in)
            return
        if method in TRADING:
            self.reply(request, time_in, success=False, error=PRIVATE_ON_PUBLIC)
            return
        if method not in ("subscribe", "unsubscribe"):
            self.reply(request, time_in, success=False, error=E.invalid_arguments("method"))
            return
        channel = params.get("channel")
        if channel == "executions" or channel == "balances" or channel == "level3":
            self.reply(request, time_in, success=False, error=PRIVATE_ON_PUBLIC)
            return
        if channel not in CHANNELS:
            self.reply(request, time_in, success=False, error=E.invalid_arguments("channel"))
            return
        symbols = params.get("symbol")
        if not isinstance(symbols, list) or not symbols:
            self.reply(request, time_in, success=False, error=E.invalid_arguments("symbol"))
            return
        snapshot = params.get("snapshot", True) is not False
        for symbol in symbols:
            pair = self.sim.ws_pair(str(symbol))
            if pair is None:
                self.reply(
                    request, time_in, success=False, symbol=symbol, error=f"Currency pair not supported {symbol}"
                )
                continue
            if method == "unsubscribe":
                self.channels[channel].discard(pair.key)
                self.reply(request, time_in, success=True, result={"channel": channel, "symbol": symbol})
                continue
            self.channels[channel].add(pair.key)
            self.subscribed = True
            self.reply(
                request, time_in, success=True, result={"channel": channel, "snapshot": snapshot, "symbol": symbol}
            )
            if snapshot:
                self._snapshot(channel, pair)

    def _snapshot(self, channel: str, pair: PairRules) -> None:
        from .clock import rfc3339

        market = self.sim.market
        if channel == "ticker":
            at = rfc3339(self.sim.clock.now(), micros=True)
            stats = market.stats(pair)
            stats.last = self.sim.engine.mark(pair)
            self.send({"channel": "ticker", "type": "snapshot", "data": [ticker_data(pair, stats, at)]})
        else:
            trades = market.recent(pair)
            data = [trade_data(t, rfc3339(t.time, micros=True)) for t in trades]
            self.send({"channel": "trade", "type": "snapshot", "data": data})


async def handle_public_ws(request: web.Request) -> web.WebSocketResponse:
    """One connection on the public endpoint ``/public/v2``."""
    sim: KrakenSimulator = request.app[SIMULATOR]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    return await serve(request, PublicConnection(sim, ws))
