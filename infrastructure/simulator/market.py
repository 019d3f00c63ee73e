"""Public market data: every trade on the simulator's markets (price moves, tape rows, the accounts' own fills)
feeds per-pair statistics (REST ``Ticker``, WS v2 ``ticker``) and a short trade history (WS v2 ``trade``
snapshots, REST ``Trades``).

The venue has no depth, so bid and ask are both the last price. Statistics cover the simulator's run (Kraken's
"today" and "last 24 hours" are the same window here)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from execledger.domain.pairs import PairRules
from execledger.domain.values import ZERO, Side

RECENT_TRADES = 50


@dataclass(frozen=True)
class PublicTrade:
    pair: PairRules
    price: Decimal
    qty: Decimal
    side: Side
    ord_type: str
    trade_id: int
    time: float


@dataclass
class PairStats:
    open: Decimal
    last: Decimal
    high: Decimal
    low: Decimal
    last_qty: Decimal = ZERO
    volume: Decimal = ZERO
    notional: Decimal = ZERO
    trades: int = 0
    recent: deque[PublicTrade] = field(default_factory=lambda: deque(maxlen=RECENT_TRADES))

    @property
    def vwap(self) -> Decimal:
        return self.notional / self.volume if self.volume else self.last


TradeListener = Callable[[PublicTrade, PairStats], None]


class MarketData:
    """Per-pair statistics and recent trades; ``listeners`` hear each public trade (the public WS)."""

    def __init__(self, mark: Callable[[PairRules], Decimal]):
        self._mark = mark
        self._stats: dict[str, PairStats] = {}
        self._trade_id = 0
        self.listeners: list[TradeListener] = []

    def stats(self, pair: PairRules) -> PairStats:
        found = self._stats.get(pair.key)
        if found is None:
            price = self._mark(pair)
            found = self._stats[pair.key] = PairStats(open=price, last=price, high=price, low=price)
        return found

    def on_trade(self, pair: PairRules, price: Decimal, qty: Decimal, side: Side, ord_type: str, at: float) -> None:
        """The exchange's market listener: one trade happened."""
        stats = self.stats(pair)
        self._trade_id += 1
        trade = PublicTrade(pair, price, qty, side, ord_type, self._trade_id, at)
        stats.last, stats.last_qty = price, qty
        stats.high, stats.low = max(stats.high, price), min(stats.low, price)
        stats.volume += qty
        stats.notional += qty * price
        stats.trades += 1
        stats.recent.append(trade)
        for listener in list(self.listeners):
            listener(trade, stats)

    def ticker_rest(self, pair: PairRules) -> dict[str, Any]:
        """A REST ``Ticker`` row: ``a``/``b`` [price, whole lot volume, lot volume], ``c`` [price, lot volume],
        ``v``/``p``/``t``/``l``/``h`` [today, last 24 hours], ``o`` today's opening price."""
        s = self.stats(pair)
        s.last = self._mark(pair)  # a mark jumped by the control surface without a trade still shows

        def p(d):
            return f"{d:.{pair.pair_decimals}f}"

        def v(d):
            return f"{d:.{pair.lot_decimals}f}"

        return {
            "a": [p(s.last), "1", "1.000"],
            "b": [p(s.last), "1", "1.000"],
            "c": [p(s.last), v(s.last_qty)],
            "v": [v(s.volume), v(s.volume)],
            "p": [p(s.vwap), p(s.vwap)],
            "t": [s.trades, s.trades],
            "l": [p(s.low), p(s.low)],
            "h": [p(s.high), p(s.high)],
            "o": p(s.open),
        }

    def recent(self, pair: PairRules) -> list[PublicTrade]:
        return list(self.stats(pair).recent)
