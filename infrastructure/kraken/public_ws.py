"""``KrakenPublicPrices``: the WS v2 public ``trade`` and ``ticker`` channels as ``PriceTick``s, and nothing else.

Sources: REFERENCE.md 6.1 (public endpoint ``wss://ws.kraken.com/v2``; the built-in simulator serves it at
``ws://HOST:PORT/public/v2``) and the message shapes recorded from the live venue that the simulator serves
(``infrastructure/simulator/public_ws.py``)::

    {"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"],"snapshot":true},"req_id":1}
    {"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":83744.3,"qty":0.0004,
     "ord_type":"limit","trade_id":109116693,"timestamp":"2026-09-25T17:48:26.844359Z"}]}
    {"channel":"ticker","type":"snapshot","data":[{"symbol":"BTC/USD",...,"last":83744.3,...}]}

Every trade is a tick (a trigger crossed between two ticker updates is not missed); a ticker snapshot gives the
price at once after subscribing; the newest row of a trade snapshot is where the market is now, older rows are
history and are skipped. WS v2 names assets as people do (``BTC``, ``DOGE``) where REST says ``XBT``, ``XDG``:
symbols are mapped from each pair's REST ``wsname`` (``wire.ws_symbol_of``). It only streams: CONNECTED once a
subscription is acknowledged, DISCONNECTED when the socket is lost (then it reconnects with backoff); while it is
down the trading service reads REST ``Ticker``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp

from execledger.application.ports import PriceTick, StreamEvent, StreamState
from execledger.domain.pairs import PairRegistry
from execledger.infrastructure.kraken.urls import check_ws_url
from execledger.infrastructure.kraken.watchdog import FrameWatchdog
from execledger.infrastructure.kraken.wire import ws_symbol_of
from execledger.infrastructure.kraken.ws import MAX_MESSAGE_BYTES

log = logging.getLogger("execledger.kraken.prices")

MAX_RECONNECT_DELAY_S = 30.0  # Cloudflare bans IPs that reconnect more than ~150 times in 10 minutes (REFERENCE 5.4)
CHANNELS = ("trade", "ticker")
_decode = json.JSONDecoder(parse_float=Decimal).decode  # one decoder for every frame (exact decimals)


class PriceStreamInterrupted(Exception):
    """The public socket must be rebuilt (closed, silent past the watchdog, a refused subscription)."""


def _decimal(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and number > 0 else None


def _timestamp(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return datetime.now(UTC)


class KrakenPublicPrices:
    """``ticks(pairs)`` yields ``PriceTick`` (pair = AssetPairs key, price = last trade, at = the venue's
    timestamp) and ``StreamEvent``s until the consumer stops iterating. ``pairs`` are AssetPairs keys known to
    ``registry``; unknown ones are skipped (logged once)."""

    def __init__(
        self,
        ws_url: str,
        registry: PairRegistry | None,
        *,
        heartbeat_timeout_s: float = 10.0,
        reconnect_delay_s: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.ws_url = check_ws_url(ws_url)
        self.registry = registry
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.reconnect_delay_s = reconnect_delay_s
        self._sleep = sleep
        self.connects = 0

    def symbols(self, pairs: Sequence[str]) -> dict[str, str]:
        """WS v2 symbol -> AssetPairs key for the pairs the registry knows (``XXBTZUSD`` -> ``BTC/USD``)."""
        found: dict[str, str] = {}
        for key in pairs:
            rules = self.registry.find(key) if self.registry is not None else None
            if rules is None:
                log.warning("no public price stream for %s: not a pair the venue lists", key)
                continue
            found[ws_symbol_of(rules.wsname)] = rules.key
        return found

    async def ticks(self, pairs: Sequence[str]) -> AsyncIterator[PriceTick | StreamEvent]:
        symbols = self.symbols(pairs)
        if not symbols:
            return
        queue: asyncio.Queue[PriceTick | StreamEvent] = asyncio.Queue()
        task = asyncio.ensure_future(self._keep_connected(symbols, queue.put_nowait))
        try:
            while True:
                yield await queue.get()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _keep_connected(self, symbols: Mapping[str, str], emit: Callable[[Any], None]) -> None:
        failures = 0
        async with aiohttp.ClientSession() as session:
            while True:
                connected = False
                try:
                    connected = await self._connect_once(session, symbols, emit)
                except asyncio.CancelledError:
                    raise
                except (aiohttp.ClientError, PriceStreamInterrupted, TimeoutError, OSError, ValueError) as exc:
                    log.info("Kraken public price stream interrupted: %s", exc)
                failures = 1 if connected else failures + 1
                if failures == 1:  # reported once when it is lost (or never came up), not per failed attempt
                    emit(StreamEvent(StreamState.DISCONNECTED, "public price stream lost"))
                await self._sleep(min(self.reconnect_delay_s * 2 ** (failures - 1), MAX_RECONNECT_DELAY_S))

    async def _connect_once(
        self, session: aiohttp.ClientSession, symbols: Mapping[str, str], emit: Callable[[Any], None]
    ) -> bool:
        """One connection until it is lost; True when a subscription was acknowledged on it."""
        acknowledged = False
        async with session.ws_connect(self.ws_url, autoping=True, max_msg_size=MAX_MESSAGE_BYTES) as ws:
            self.connects += 1
            for number, channel in enumerate(CHANNELS, start=1):
                params = {"channel": channel, "symbol": sorted(symbols), "snapshot": True}
                await ws.send_json({"method": "subscribe", "params": params, "req_id": number})
            watchdog = FrameWatchdog(self.heartbeat_timeout_s)
            try:
                while True:
                    frame = await ws.receive()
                    watchdog.seen()
                    if frame.type is not aiohttp.WSMsgType.TEXT:
                        raise PriceStreamInterrupted(f"closed by the server ({frame.type.name}, {ws.close_code})")
                    for item in self._on_text(frame.data, symbols, acknowledged):
                        if isinstance(item, StreamEvent):
                            acknowledged = True
                        emit(item)
            except asyncio.CancelledError:
                if watchdog.expired():  # the watchdog's own cancel, not the stream being closed
                    raise PriceStreamInterrupted(f"no frame for {self.heartbeat_timeout_s:g}s") from None
                raise
            finally:
                watchdog.stop()

    def _on_text(self, text: str, symbols: Mapping[str, str], acknowledged: bool) -> list[PriceTick | StreamEvent]:
        try:
            message = _decode(text)
        except ValueError:
            raise PriceStreamInterrupted(f"non-JSON frame ({len(text)} chars)") from None
        if not isinstance(message, dict):
            return []
        if message.get("method") == "subscribe":
            if not message.get("success"):
                raise PriceStreamInterrupted(f"subscribe refused: {message.get('error', 'unknown error')}")
            return [] if acknowledged else [StreamEvent(StreamState.CONNECTED, "public price stream subscribed")]
        channel = message.get("channel")
        data = message.get("data")
        if channel not in CHANNELS or not isinstance(data, list):
            return []  # heartbeat, status, pong
        if channel == "trade" and message.get("type") == "snapshot":
            data = data[-1:]  # history: only the newest trade says where the market is now
        field = "price" if channel == "trade" else "last"
        ticks: list[PriceTick | StreamEvent] = []
        for row in data:
            if not isinstance(row, dict) or (key := symbols.get(str(row.get("symbol")))) is None:
                continue
            price = _decimal(row.get(field))
            if price is not None:
                ticks.append(PriceTick(key, price, _timestamp(row.get("timestamp"))))
        return ticks


__all__ = ["KrakenPublicPrices", "PriceStreamInterrupted"]
