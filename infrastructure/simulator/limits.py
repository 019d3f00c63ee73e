"""Kraken's limits (REFERENCE.md section 5), all decaying linearly with simulator time:

- the REST call counter per API key (+1 a call, +2 for ledgers and trade history; AddOrder, CancelOrder and their
  batch/amend/edit cousins are counted by the trading engine instead), ``EAPI:Rate limit exceeded``;
- the matching engine's counter per key and pair: AddOrder +1 (even when the order is then refused), a batch
  +n/2, AmendOrder +1 plus {3, 2, 1} by the order's age (<5, <10, <15 s), EditOrder +1 plus {6, 5, 4, 2, 1}
  (<5, <10, <15, <45, <90 s), a cancel {8, 6, 5, 4, 2, 1} (<5, <10, <15, <45, <90, <300 s); age counts from the
  order's placement or last amend; ``EOrder:Rate limit exceeded``; a batch cancel is accepted even over the limit;
- the open-order cap per pair (Starter 60, Intermediate 80, Pro 225), ``EOrder:Orders limit exceeded``;
- public endpoints per client address: Kraken asks for no more than one call a second (ccxt's ``rateLimit``
  comment citing support article 206548367); Kraken publishes no burst, so a counter of ``PUBLIC_BURST`` calls
  decaying 1/s models it, ``EGeneral:Too many requests``.

Tiers: Starter 15 / 0.33 s⁻¹ and 60 / 1.0 s⁻¹, Intermediate 20 / 0.5 and 125 / 2.34, Pro 20 / 1.0 and 180 / 3.75.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import errors as E
from .errors import KrakenError

# Calls that cost 2 on the REST counter; AddOrder/CancelOrder and their batch/amend cousins cost nothing there.
DOUBLE_COST_CALLS = frozenset({"Ledgers", "QueryLedgers", "TradesHistory"})
TRADING_ENGINE_CALLS = frozenset(
    {"AddOrder", "AddOrderBatch", "CancelOrder", "CancelOrderBatch", "AmendOrder", "EditOrder"}
)
# Penalties by order age: (younger than seconds, points); older costs nothing.
CANCEL_PENALTIES = ((5, 8), (10, 6), (15, 5), (45, 4), (90, 2), (300, 1))
AMEND_PENALTIES = ((5, 3), (10, 2), (15, 1))
EDIT_PENALTIES = ((5, 6), (10, 5), (15, 4), (45, 2), (90, 1))
TIER_NAMES = ("starter", "intermediate", "pro")
OPEN_ORDER_CAPS = {"starter": 60, "intermediate": 80, "pro": 225}
PUBLIC_BURST = 20


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


def _penalty(table: tuple[tuple[int, int], ...], age_seconds: float) -> int:
    for younger_than, points in table:
        if age_seconds < younger_than:
            return points
    return 0


def cancel_penalty(age_seconds: float) -> int:
    """Points a cancel costs for an order of this age."""
    return _penalty(CANCEL_PENALTIES, age_seconds)


def amend_cost(age_seconds: float) -> int:
    """Points an AmendOrder costs: 1 fixed plus the age-based part."""
    return 1 + _penalty(AMEND_PENALTIES, age_seconds)


def edit_cost(age_seconds: float) -> int:
    """Points an EditOrder costs: 1 fixed plus the age-based part."""
    return 1 + _penalty(EDIT_PENALTIES, age_seconds)


def tier_named(name: str | None) -> str | None:
    """``starter``/``intermediate``/``pro``, or None for ``none``/None; anything else is a ``ValueError`` that lists
    the valid names."""
    if name is None or str(name).lower() == "none":
        return None
    value = str(name).lower()
    if value not in TIER_NAMES:
        raise ValueError(f"unknown tier {name!r}: valid tiers are {', '.join(TIER_NAMES)}, none")
    return value


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

    def charge_batch_add(self, key: str, pair_key: str, n: int, now: float) -> None:
        """A batch of ``n`` orders costs n/2, charged on receipt."""
        if self._counter(key, pair_key).add(n / 2, now) > self.tier.limit:
            raise KrakenError(E.ORDER_RATE_LIMIT)

    def charge_cancel(self, key: str, pair_key: str, age_seconds: float, now: float, *, batch: bool = False) -> None:
        """Charge a cancel's age penalty, or raise ``EOrder:Rate limit exceeded`` (never for a batch cancel, whose
        requests "are still accepted" over the limit)."""
        self._charge(key, pair_key, cancel_penalty(age_seconds), now, refuse=not batch)

    def charge_amend(self, key: str, pair_key: str, age_seconds: float, now: float) -> None:
        """Charge an AmendOrder, or raise ``EOrder:Rate limit exceeded``."""
        self._charge(key, pair_key, amend_cost(age_seconds), now)

    def charge_edit(self, key: str, pair_key: str, age_seconds: float, now: float) -> None:
        """Charge an EditOrder, or raise ``EOrder:Rate limit exceeded``."""
        self._charge(key, pair_key, edit_cost(age_seconds), now)

    def _charge(self, key: str, pair_key: str, points: int, now: float, refuse: bool = True) -> None:
        counter = self._counter(key, pair_key)
        if refuse and points and counter.value(now) + points > self.tier.limit:
            raise KrakenError(E.ORDER_RATE_LIMIT)
        counter.add(points, now)

    def value(self, key: str, pair_key: str, now: float) -> float:
        return self._counter(key, pair_key).value(now)


class PublicLimiter:
    """Public endpoints per client address: ``EGeneral:Too many requests`` past the burst (see the module doc)."""

    def __init__(self, burst: float = PUBLIC_BURST, per_second: float = 1.0):
        self.tier = Tier(burst, per_second)
        self._counters: dict[str, DecayingCounter] = {}

    def charge(self, address: str, now: float) -> None:
        counter = self._counters.setdefault(address, DecayingCounter(self.tier))
        if counter.value(now) + 1 > self.tier.limit:
            raise KrakenError(E.PUBLIC_RATE_LIMIT)
        counter.add(1, now)
