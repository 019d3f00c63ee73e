"""Kraken's two rate limiters (REFERENCE.md section 5): the REST call counter per key and the per-pair
trading counter with its age-based cancel penalties. Both decay linearly with simulator time."""

from __future__ import annotations

from dataclasses import dataclass

from . import errors as E
from .errors import KrakenError

# Calls that cost 2 on the REST counter; AddOrder/CancelOrder and their batch/amend cousins cost nothing there.
DOUBLE_COST_CALLS = frozenset({"Ledgers", "QueryLedgers", "TradesHistory"})
TRADING_ENGINE_CALLS = frozenset(
    {"AddOrder", "AddOrderBatch", "CancelOrder", "CancelOrderBatch", "AmendOrder", "EditOrder"}
)
# Cancel penalty by order age: (younger than seconds, points); 300 s or older costs nothing.
CANCEL_PENALTIES = ((5, 8), (10, 6), (15, 5), (45, 4), (90, 2), (300, 1))


@dataclass(frozen=True)
class Tier:
    """A counter ceiling and its decay per second."""

    limit: float
    decay_per_second: float


REST_TIERS = {"starter": Tier(15, 0.33), "intermediate": Tier(20, 0.5), "pro": Tier(20, 1.0)}
TRADING_TIERS = {"starter": Tier(60, 1.0), "intermediate": Tier(125, 2.34), "pro": Tier(180, 3.75)}


class DecayingCounter:
    """A counter that loses ``decay_per_second`` every second of simulator time, never below zero."""

    def __init__(self, tier: Tier):
        self.tier = tier
        self._value = 0.0
        self._at: float | None = None

    def value(self, now: float) -> float:
        if self._at is not None:
            self._value = max(0.0, self._value - (now - self._at) * self.tier.decay_per_second)
        self._at = now
        return self._value

    def add(self, points: float, now: float) -> float:
        self._value = self.value(now) + points
        return self._value


def rest_cost(method: str) -> int:
    """What one private call adds to the REST counter."""
    if method in TRADING_ENGINE_CALLS:
        return 0
    return 2 if method in DOUBLE_COST_CALLS else 1


def cancel_penalty(age_seconds: float) -> int:
    """Points a cancel costs for an order of this age."""
    for younger_than, points in CANCEL_PENALTIES:
        if age_seconds < younger_than:
            return points
    return 0


class RestCallLimiter:
    """``EAPI:Rate limit exceeded`` once a key's counter would pass its tier's ceiling."""

    def __init__(self, tier: Tier):
        self.tier = tier
        self._counters: dict[str, DecayingCounter] = {}

    def charge(self, key: str, method: str, now: float) -> None:
        """Count one call against the key, or raise ``EAPI:Rate limit exceeded``."""
        cost = rest_cost(method)
        if cost == 0:
            return
        counter = self._counters.setdefault(key, DecayingCounter(self.tier))
        if counter.value(now) + cost > self.tier.limit:
            raise KrakenError(E.API_RATE_LIMIT)
        counter.add(cost, now)

    def value(self, key: str, now: float) -> float:
        counter = self._counters.get(key)
        return counter.value(now) if counter else 0.0


class TradingLimiter:
    """The matching engine's per-pair counter: +1 per order (even a rejected one), age-based cancel penalties."""

    def __init__(self, tier: Tier):
        self.tier = tier
        self._counters: dict[tuple[str, str], DecayingCounter] = {}

    def _counter(self, key: str, pair_key: str) -> DecayingCounter:
        return self._counters.setdefault((key, pair_key), DecayingCounter(self.tier))

    def charge_add(self, key: str, pair_key: str, now: float) -> None:
        # Kraken applies the fixed count on receipt, before validation, so the point is spent either way.
        """Count one new order on the pair, or raise ``EOrder:Rate limit exceeded``."""
        if self._counter(key, pair_key).add(1, now) > self.tier.limit:
            raise KrakenError(E.ORDER_RATE_LIMIT)

    def charge_cancel(self, key: str, pair_key: str, age_seconds: float, now: float) -> None:
        """Charge a cancel's age penalty, or raise ``EOrder:Rate limit exceeded``."""
        counter = self._counter(key, pair_key)
        penalty = cancel_penalty(age_seconds)
        if penalty and counter.value(now) + penalty > self.tier.limit:
            raise KrakenError(E.ORDER_RATE_LIMIT)
        counter.add(penalty, now)

    def value(self, key: str, pair_key: str, now: float) -> float:
        return self._counter(key, pair_key).value(now)
