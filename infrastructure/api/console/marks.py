"""The public last-trade price of a pair, for the console's unrealised PnL and its chart.

Only a process that runs the trading role has a venue connection (``ApiContext.service``): it asks the
``ExchangePort``'s ``last_prices`` (REST ``Ticker``, field ``c``: last trade closed; REFERENCE.md section 2) at
most once per ``ttl_s`` per pair, however many browsers poll, and keeps the last ``keep`` observations per pair
for the chart. The API role alone has no price: the console says so instead of guessing. A failed read keeps the
last price (with its time) and is logged at DEBUG: the console never turns a venue outage into an error page.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from execledger.application.ports import PriceTick

log = logging.getLogger("execledger.console")


class MarkPrices:
    def __init__(self, service: Callable[[], Any], ttl_s: float = 5.0, keep: int = 720, clock=time.monotonic):
        self._service, self.ttl_s, self.clock = service, ttl_s, clock
        self._asked: dict[str, float] = {}
        self._seen: dict[str, deque[PriceTick]] = {}
        self._keep = keep

    @property
    def service(self) -> Any:
        """The TradingService of this process (``ApiContext.service``), None in the api role."""
        return self._service()

    @property
    def available(self) -> bool:
        return self.service is not None

    async def last(self, pair: str) -> PriceTick | None:
        """The pair's (AssetPairs key) last price; None when this process has none."""
        service = self.service
        if service is None:
            return None
        now = self.clock()
        if now - self._asked.get(pair, float("-inf")) >= self.ttl_s:
            self._asked[pair] = now
            try:
                tick = (await service.exchange.last_prices([pair])).get(pair)
            except Exception as exc:  # an outage: keep what we saw
                log.debug("console: no price for %s: %s", pair, exc)
                tick = None
            if tick is not None:
                seen = self._seen.setdefault(pair, deque(maxlen=self._keep))
                if not seen or seen[-1] != tick:
                    seen.append(tick)
        latest = self._seen.get(pair)
        return latest[-1] if latest else None

    def history(self, pair: str) -> list[PriceTick]:
        return list(self._seen.get(pair, ()))


MARKS = web.AppKey("console_marks", MarkPrices)
