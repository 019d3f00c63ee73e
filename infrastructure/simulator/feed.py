"""Paper trading's prices: a venue's public market data drives the simulator's marks, so its matching core fills
the ledger's orders at live prices while no order ever leaves the process.

``LivePriceFeed`` subscribes to Kraken's WS v2 public ``trade`` and ``ticker`` channels (``wss://ws.kraken.com/v2``
by default; any endpoint speaking that protocol, such as another simulator playing a tape) for the pairs it
follows, and sets the mark on every trade. While the socket is down it polls REST ``Ticker`` (``/0/public/Ticker``)
every ``poll_s`` and reconnects with a backoff doubling to ``reconnect_max_s``. A pair is followed from the start
(``pairs``) or from its first order: ``ensure_price`` subscribes and, if the pair has no live price yet, asks REST
once; without any price the order is refused ``EService:Unavailable`` (nothing is filled at a made-up price).
Message shapes: ``public_ws`` (the simulator serves the same ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import aiohttp

from execledger.domain.pairs import PairRules
from execledger.domain.values import Side
from execledger.infrastructure.kraken.wire import ws_symbol_of

from . import errors as E
from .errors import KrakenError

if TYPE_CHECKING:
    from .server import KrakenSimulator

log = logging.getLogger("execledger.simulator.feed")
REQUEST_TIMEOUT_S = 10.0


def _decimal(value: Any) -> Decimal | None:
    try:
        d = Decimal(repr(value) if isinstance(value, float) else str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() and d > 0 else None


class LivePriceFeed:
    def __init__(
        self,
        sim: KrakenSimulator,
        ws_url: str,
        rest_url: str | None,
        pairs: Iterable[str] = (),
        *,
        poll_s: float = 2.0,
        reconnect_max_s: float = 30.0,
    ):
        self.sim = sim
        self.ws_url = ws_url
        self.rest_url = rest_url.rstrip("/") if rest_url else None
        self.poll_s = poll_s
        self.reconnect_max_s = reconnect_max_s
        self.pairs: dict[str, PairRules] = {}
        for name in pairs:
            self.pairs[sim.pair(name).key] = sim.pair(name)
        self.priced: set[str] = set()  # pairs that have had a live price
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.trades_seen = 0
        self._price_set = asyncio.Event()
        self._trade_seen = asyncio.Event()
        self._priced_events: dict[str, asyncio.Event] = {}
        self._subscribed_events: dict[str, asyncio.Event] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task | None = None
        self._req_id = 0

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))
        self._task = asyncio.create_task(self._run(), name="paper-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        delay = 1.0
        while True:
            try:
                await self._stream()
                delay = 1.0  # a session that ran and ended: reconnect soon
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("paper feed %s unavailable (%s); REST Ticker meanwhile", self.ws_url, exc)
            self.connected.clear()
            self.disconnected.set()
            self._ws = None
            deadline = asyncio.get_running_loop().time() + delay
            while asyncio.get_running_loop().time() < deadline:
                await self.poll_rest(list(self.pairs.values()))
                await asyncio.sleep(min(self.poll_s, max(0.0, deadline - asyncio.get_running_loop().time())))
            delay = min(delay * 2, self.reconnect_max_s)

    async def _stream(self) -> None:
        assert self._session is not None
        async with self._session.ws_connect(
            self.ws_url, heartbeat=30, timeout=aiohttp.ClientWSTimeout(ws_close=REQUEST_TIMEOUT_S)
        ) as ws:
            self._ws = ws
            if self.pairs:
                await self._subscribe(list(self.pairs.values()))
            self.connected.set()
            self.disconnected.clear()
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self._on_message(msg.data)
                elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break

    async def _subscribe(self, pairs: list[PairRules]) -> None:
        if self._ws is None or self._ws.closed:
            return
        symbols = [ws_symbol_of(p.wsname) for p in pairs]
        for channel in ("trade", "ticker"):
            self._req_id += 1
            request = {"method": "subscribe", "params": {"channel": channel, "symbol": symbols}, "req_id": self._req_id}
            await self._ws.send_str(json.dumps(request))

    # -- prices ----------------------------------------------------------------------------------------------

    def _on_message(self, text: str) -> None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            return
        if not isinstance(message, dict):
            return
        if message.get("method") == "subscribe" and message.get("success"):
            result = message.get("result") or {}
            pair = self.sim.ws_pair(str(result.get("symbol"))) if result.get("channel") == "trade" else None
            if pair is not None:
                self._event(self._subscribed_events, pair.key).set()
            return
        if message.get("channel") not in ("trade", "ticker"):
            return
        data = message.get("data") if isinstance(message.get("data"), list) else []
        if message["channel"] == "trade":
            # A snapshot is history: only its newest trade says where the market is now.
            rows = data[-1:] if message.get("type") == "snapshot" else data
            for row in rows:
                self._trade(row)
        else:
            for row in data:
                self._ticker(row)

    def _pair(self, row: Any) -> PairRules | None:
        return self.sim.ws_pair(str(row.get("symbol"))) if isinstance(row, dict) else None

    def _trade(self, row: Any) -> None:
        pair = self._pair(row)
        price = _decimal(row.get("price")) if pair else None
        if pair is None or price is None:
            return
        qty = _decimal(row.get("qty"))
        side = Side.SELL if row.get("side") == "sell" else Side.BUY
        self._set(pair, price, qty, side)
        self.trades_seen += 1
        self._trade_seen.set()

    def _ticker(self, row: Any) -> None:
        pair = self._pair(row)
        price = _decimal(row.get("last")) if pair else None
        if (
            pair is not None
            and price is not None
            and (pair.key not in self.priced or price != self.sim.engine.mark(pair))
        ):
            self._set(pair, price, None, None)

    def _set(self, pair: PairRules, price: Decimal, qty: Decimal | None, side: Side | None) -> None:
        self.priced.add(pair.key)
        self.sim.engine.set_mark(pair, price, qty, side)
        self._event(self._priced_events, pair.key).set()
        self._price_set.set()

    # -- for whoever waits on the feed (tests, tools) --------------------------------------------------------

    @staticmethod
    def _event(events: dict[str, asyncio.Event], key: str) -> asyncio.Event:
        if key not in events:
            events[key] = asyncio.Event()
        return events[key]

    def priced_event(self, pair_name: str) -> asyncio.Event:
        """Set once the pair has had a live price."""
        return self._event(self._priced_events, self.sim.pair(pair_name).key)

    async def subscribed(self, pair_name: str) -> None:
        """Until the venue has acknowledged the pair's trade subscription."""
        await self._event(self._subscribed_events, self.sim.pair(pair_name).key).wait()

    async def until_price(self, pair_name: str, price: Decimal) -> None:
        """Until the feed has set the pair's mark to ``price``."""
        pair = self.sim.pair(pair_name)
        while self.sim.engine.mark(pair) != price:
            self._price_set.clear()
            await self._price_set.wait()

    async def until_trades(self, count: int) -> None:
        """Until ``count`` public trades have been applied since the feed started."""
        while self.trades_seen < count:
            self._trade_seen.clear()
            await self._trade_seen.wait()

    async def poll_rest(self, pairs: list[PairRules]) -> None:
        """One REST ``Ticker`` call for these pairs; their marks move to the last trade it reports."""
        if not pairs or self.rest_url is None or self._session is None:
            return
        url = f"{self.rest_url}/0/public/Ticker"
        try:
            async with self._session.get(url, params={"pair": ",".join(p.key for p in pairs)}) as response:
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            log.info("paper feed REST Ticker failed: %s", exc)
            return
        if not isinstance(body, dict) or body.get("error") or not isinstance(body.get("result"), dict):
            return
        for key, row in body["result"].items():
            pair = self.sim.find_pair(str(key))
            last = row.get("c") if isinstance(row, dict) else None
            price = _decimal(last[0]) if isinstance(last, list) and last else None
            if pair is not None and price is not None and price != self.sim.engine.mark(pair):
                self._set(pair, price, None, None)
            elif pair is not None and price is not None:
                self.priced.add(pair.key)

    async def ensure_price(self, pair_name: str | None, key: str | None = None) -> None:
        """Before an order on ``pair_name``: follow the pair, and make sure it has a live price (REST once if
        need be); ``EService:Unavailable`` when none can be had."""
        pair = self.sim.find_pair(pair_name) if pair_name else None
        if pair is None:
            return  # the order entry answers "Unknown asset pair" itself
        if pair.key not in self.pairs:
            self.pairs[pair.key] = pair
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                await self._subscribe([pair])
        if pair.key not in self.priced:
            await self.poll_rest([pair])
        if pair.key not in self.priced:
            raise KrakenError(E.SERVICE_UNAVAILABLE)
