"""Kraken's rate counters, modelled as Kraken counts them, so calls wait for capacity instead of being rejected.

REFERENCE.md section 5: the REST call counter per API key (max and decay per second by tier; ledger/trade history
cost 2; AddOrder/CancelOrder and friends are counted by the trading engine instead) and the per-pair trading
counter (AddOrder +1; a cancel costs more the younger the order is). When Kraken still says "Rate limit exceeded"
our model was behind (another client on the key, a restart): the counter is then assumed full.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from execledger.infrastructure.kraken.errors import ThrottleWaitTooLong

log = logging.getLogger("execledger.kraken.ratelimit")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Tier(StrEnum):
    """Kraken's verification tier (not readable from the API: configure it)."""

    STARTER = "starter"
    INTERMEDIATE = "intermediate"
    PRO = "pro"


@dataclass(frozen=True)
class CounterLimits:
    maximum: float
    decay_per_s: float


REST_LIMITS = {
    Tier.STARTER: CounterLimits(15, 0.33),
    Tier.INTERMEDIATE: CounterLimits(20, 0.5),
    Tier.PRO: CounterLimits(20, 1.0),
}
TRADING_LIMITS = {
    Tier.STARTER: CounterLimits(60, 1.0),
    Tier.INTERMEDIATE: CounterLimits(125, 2.34),
    Tier.PRO: CounterLimits(180, 3.75),
}

# Methods counted by the trading engine (per pair), not by the REST counter.
TRADING_ENGINE_METHODS = frozenset(
    {"AddOrder", "AddOrderBatch", "CancelOrder", "CancelOrderBatch", "EditOrder", "AmendOrder"}
)
DOUBLE_COST_METHODS = frozenset({"Ledgers", "QueryLedgers", "TradesHistory"})

# Cancel penalty by order age (seconds since placed or amended): (age below, cost). 300 s and older cost nothing.
CANCEL_PENALTY = ((5, 8), (10, 6), (15, 5), (45, 4), (90, 2), (300, 1))
# Amend: +1 fixed and a decaying penalty by the order's age (REFERENCE.md 5.2 table).
AMEND_PENALTY = ((5, 3), (10, 2), (15, 1))


def rest_cost(method: str) -> int:
    """What one private call adds to the REST counter."""
    if method in TRADING_ENGINE_METHODS:
        return 0
    return 2 if method in DOUBLE_COST_METHODS else 1


def amend_cost(age_s: float | None) -> int:
    """The trading-counter cost of amending an order of this age (fixed +1 plus the age penalty); an unknown age
    is charged as the youngest."""
    if age_s is None:
        return 1 + AMEND_PENALTY[0][1]
    return 1 + next((cost for below, cost in AMEND_PENALTY if age_s < below), 0)


def cancel_penalty(age_s: float | None) -> int:
    """The trading-counter cost of cancelling an order of this age; an unknown age is charged as the youngest."""
    if age_s is None:
        return CANCEL_PENALTY[0][1]
    for below, cost in CANCEL_PENALTY:
        if age_s < below:
            return cost
    return 0


class DecayingCounter:
    """A counter that rises by each call's cost and decays linearly, never below zero."""

    def __init__(self, limits: CounterLimits, clock: Clock):
        self.limits = limits
        self._clock = clock
        self._level = 0.0
        self._at = clock()

    @property
    def level(self) -> float:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._at) * self.limits.decay_per_s)
        self._at = now
        return self._level

    def wait_for(self, cost: float) -> float:
        """Seconds until ``cost`` fits under the maximum (0 when it fits now)."""
        excess = self.level + cost - self.limits.maximum
        # Float rounding can leave a residue that a sleep of that size cannot remove: treat it as fitting.
        return 0.0 if excess <= 1e-9 else excess / self.limits.decay_per_s

    def add(self, cost: float) -> None:
        self._level = self.level + cost

    def fill(self) -> None:
        """Kraken said we are over: assume the counter is at its maximum."""
        self._level = max(self.level, float(self.limits.maximum))


class _WaitingLimiter:
    """Shared waiting logic: sleep until the cost fits, then take it (no await between check and take)."""

    def __init__(self, clock: Clock, sleep: Sleep, max_wait_s: float | None):
        self._clock = clock
        self._sleep = sleep
        self.max_wait_s = max_wait_s
        self.waited_s = 0.0  # total time spent waiting, for metrics and tests

    async def _take(self, counter: DecayingCounter, cost: float, what: str) -> None:
        if cost <= 0:
            return
        await self._wait_for_room(counter, cost, what)
        counter.add(cost)

    async def _wait_for_room(self, counter: DecayingCounter, cost: float, what: str) -> None:
        """Sleep until ``cost`` fits (without taking it)."""
        while (wait := counter.wait_for(_to_fit(counter, cost))) > 0:
            if self.max_wait_s is not None and wait > self.max_wait_s:
                raise ThrottleWaitTooLong(what, wait)
            log.debug("rate limit: %s waits %.2fs (level %.2f)", what, wait, counter.level)
            self.waited_s += wait
            await self._sleep(wait)


def _kept(reserve: Callable[[], int] | None) -> int:
    return 0 if reserve is None else max(0, reserve())


def _to_fit(counter: DecayingCounter, cost: float) -> float:
    """A cost above the maximum could never fit: let it through once the counter is empty."""
    return min(cost, counter.limits.maximum)


class RestCallLimiter(_WaitingLimiter):
    """The REST call counter of one API key."""

    def __init__(
        self,
        tier: Tier = Tier.STARTER,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        max_wait_s: float | None = None,
    ):
        super().__init__(clock, sleep, max_wait_s)
        self.counter = DecayingCounter(REST_LIMITS[tier], clock)

    async def acquire(self, method: str) -> None:
        """Wait until ``method`` fits under the counter, then count it."""
        await self._take(self.counter, rest_cost(method), method)

    async def wait_for_room(self, method: str) -> None:
        """Wait until ``method`` would fit, without counting it (``take_now`` counts it when it is sent)."""
        if (cost := rest_cost(method)) > 0:
            await self._wait_for_room(self.counter, cost, method)

    def take_now(self, method: str) -> bool:
        """Count ``method`` if it fits now; False (nothing counted) if it must wait again."""
        cost = rest_cost(method)
        if cost > 0:
            if self.counter.wait_for(_to_fit(self.counter, cost)) > 0:
                return False
            self.counter.add(cost)
        return True

    def on_rate_limited(self) -> None:
        log.warning("Kraken reported the REST rate limit: counter resynchronised to full")
        self.counter.fill()


class TradingRateLimiter(_WaitingLimiter):
    """The per-pair trading-engine counters, with the age-based cancel penalty."""

    def __init__(
        self,
        tier: Tier = Tier.STARTER,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        max_wait_s: float | None = None,
    ):
        super().__init__(clock, sleep, max_wait_s)
        self.limits = TRADING_LIMITS[tier]
        self._counters: dict[str, DecayingCounter] = {}
        self._placed_at: dict[str, float] = {}  # txid -> clock time placed or amended
        self._exits_waiting: dict[str, int] = {}  # pair -> protective legs' AddOrders waiting for room

    def counter(self, pair: str) -> DecayingCounter:
        if pair not in self._counters:
            self._counters[pair] = DecayingCounter(self.limits, self._clock)
        return self._counters[pair]

    async def acquire_add(self, pair: str, *, urgent: bool = False, max_wait_s: float | None = None) -> None:
        """Wait for room for one AddOrder (+1 fixed) on ``pair``, then take it. ``urgent`` (a protective leg): the
        room of the legs waiting is kept from every other AddOrder (``wait_for_add``). ThrottleWaitTooLong, with
        nothing taken, when the room is further away than ``max_wait_s`` (or the limiter's own maximum)."""
        limit = self.max_wait_s if max_wait_s is None else min(max_wait_s, self.max_wait_s or max_wait_s)
        if not await self.wait_for_add(pair, limit, urgent=urgent, raise_if_too_long=True):
            raise AssertionError("unreachable: raise_if_too_long")
        self.counter(pair).add(1)

    async def wait_for_add(
        self,
        pair: str,
        max_wait_s: float | None,
        *,
        urgent: bool = False,
        raise_if_too_long: bool = False,
        reserve: Callable[[], int] | None = None,
    ) -> bool:
        """Wait until one AddOrder on ``pair`` fits (without taking it). False, without waiting, when that would
        take longer than ``max_wait_s`` (or ThrottleWaitTooLong with ``raise_if_too_long``). An AddOrder not
        ``urgent`` also leaves room for every protective leg waiting on the pair (legs go first) and for the
        ``reserve()`` AddOrders its caller keeps for legs still to come (asked again after every wait)."""
        counter = self.counter(pair)
        if urgent:
            self._exits_waiting[pair] = self._exits_waiting.get(pair, 0) + 1
        try:
            while (wait := counter.wait_for(_to_fit(counter, 1 + self._ahead(pair, urgent) + _kept(reserve)))) > 0:
                if max_wait_s is not None and wait > max_wait_s:
                    if raise_if_too_long:
                        raise ThrottleWaitTooLong(f"AddOrder {pair}", wait)
                    return False
                self.waited_s += wait
                await self._sleep(wait)
            return True
        finally:
            if urgent:
                self._exits_waiting[pair] -= 1

    def _ahead(self, pair: str, urgent: bool) -> int:
        """How many AddOrders on ``pair`` go before one that waits: the legs waiting, for anything but a leg."""
        return 0 if urgent else self._exits_waiting.get(pair, 0)

    def adds_within(self, pair: str, seconds: float) -> int:
        """How many AddOrders on ``pair`` the counter lets through within ``seconds`` from now, after the
        protective legs already waiting for room."""
        counter = self.counter(pair)
        room = int(counter.limits.maximum - counter.level + counter.limits.decay_per_s * seconds)
        return room - self._exits_waiting.get(pair, 0)

    def order_placed(self, txid: str, age_s: float = 0.0) -> None:
        """Remember when an order started its life (placement, amend, or its ``opentm`` seen in a query)."""
        self._placed_at[txid] = self._clock() - age_s

    def age_of(self, txid: str | None) -> float | None:
        at = self._placed_at.get(txid) if txid else None
        return None if at is None else self._clock() - at

    async def acquire_cancel(self, pair: str, txid: str | None) -> None:
        """Wait for room for cancelling ``txid`` on ``pair`` (cost by its age)."""
        await self._take(self.counter(pair), cancel_penalty(self.age_of(txid)), f"CancelOrder {pair}")

    async def acquire_amend(self, pair: str, txid: str | None) -> None:
        """Wait for room for amending ``txid`` on ``pair``; its age counts from this amend afterwards."""
        await self._take(self.counter(pair), amend_cost(self.age_of(txid)), f"AmendOrder {pair}")
        if txid is not None:
            self.order_placed(txid)

    def order_closed(self, txid: str) -> None:
        self._placed_at.pop(txid, None)

    def on_rate_limited(self, pair: str) -> None:
        log.warning("Kraken reported the trading rate limit on %s: counter resynchronised to full", pair)
        self.counter(pair).fill()
