"""Kraken's counters as modelled: costs, decay, waiting for capacity, cancel penalties, resynchronisation."""

import pytest

from execledger.infrastructure.kraken.errors import ThrottleWaitTooLong
from execledger.infrastructure.kraken.ratelimit import (
    DecayingCounter,
    RestCallLimiter,
    Tier,
    TradingRateLimiter,
    cancel_penalty,
    rest_cost,
)
from tests.kraken.conftest import FakeTime


def test_rest_costs():
    assert rest_cost("OpenOrders") == 1
    assert rest_cost("QueryOrders") == 1
    assert rest_cost("TradesHistory") == 2 and rest_cost("Ledgers") == 2
    assert rest_cost("AddOrder") == 0 and rest_cost("CancelOrder") == 0


@pytest.mark.parametrize(
    ("age", "cost"),
    [
        (None, 8),
        (0, 8),
        (4.9, 8),
        (5, 6),
        (9.9, 6),
        (10, 5),
        (14, 5),
        (15, 4),
        (44, 4),
        (45, 2),
        (89, 2),
        (90, 1),
        (299, 1),
        (300, 0),
        (3600, 0),
    ],
)
def test_cancel_penalty_by_age(age, cost):
    assert cancel_penalty(age) == cost


def test_counter_decays_linearly_and_not_below_zero():
    t = FakeTime()
    counter = DecayingCounter(RestCallLimiter(Tier.STARTER).counter.limits, t.monotonic)
    counter.add(10)
    t.now += 3
    assert counter.level == pytest.approx(10 - 0.99)
    t.now += 100
    assert counter.level == 0


async def test_a_burst_waits_for_capacity_and_stays_under_the_maximum():
    t = FakeTime()
    limiter = RestCallLimiter(Tier.STARTER, clock=t.monotonic, sleep=t.sleep)
    levels = []
    for _ in range(30):
        await limiter.acquire("OpenOrders")
        levels.append(limiter.counter.level)
    assert max(levels) <= 15 + 1e-9
    assert t.slept, "the 16th call onwards must have waited"
    # 30 calls of cost 1 with max 15 and decay 0.33/s: at least (30 - 15) / 0.33 seconds in all.
    assert t.now - 1000 == pytest.approx(15 / 0.33, rel=1e-6)


async def test_cost_two_calls_fill_twice_as_fast():
    t = FakeTime()
    limiter = RestCallLimiter(Tier.PRO, clock=t.monotonic, sleep=t.sleep)
    for _ in range(10):
        await limiter.acquire("TradesHistory")
    assert limiter.counter.level == pytest.approx(20)
    assert not t.slept
    await limiter.acquire("TradesHistory")
    assert t.slept == [pytest.approx(2.0)]


async def test_trading_engine_methods_do_not_touch_the_rest_counter():
    t = FakeTime()
    limiter = RestCallLimiter(clock=t.monotonic, sleep=t.sleep)
    for _ in range(100):
        await limiter.acquire("AddOrder")
    assert limiter.counter.level == 0


async def test_rate_limited_answer_resynchronises_to_full():
    t = FakeTime()
    limiter = RestCallLimiter(Tier.STARTER, clock=t.monotonic, sleep=t.sleep)
    await limiter.acquire("OpenOrders")
    limiter.on_rate_limited()
    assert limiter.counter.level == 15
    await limiter.acquire("OpenOrders")
    assert t.slept == [pytest.approx(1 / 0.33)]


async def test_max_wait_refuses_instead_of_waiting_too_long():
    t = FakeTime()
    limiter = RestCallLimiter(Tier.STARTER, clock=t.monotonic, sleep=t.sleep, max_wait_s=1.0)
    limiter.on_rate_limited()
    with pytest.raises(ThrottleWaitTooLong):
        await limiter.acquire("OpenOrders")
    assert not t.slept


async def test_trading_counter_is_per_pair_and_cancels_of_young_orders_cost_more():
    t = FakeTime()
    limiter = TradingRateLimiter(Tier.STARTER, clock=t.monotonic, sleep=t.sleep)
    await limiter.acquire_add("XXBTZUSD")
    limiter.order_placed("O1")
    await limiter.acquire_cancel("XXBTZUSD", "O1")
    assert limiter.counter("XXBTZUSD").level == pytest.approx(9)
    assert limiter.counter("XETHZUSD").level == 0
    limiter.order_placed("O2", age_s=400)
    await limiter.acquire_cancel("XETHZUSD", "O2")
    assert limiter.counter("XETHZUSD").level == 0


async def test_trading_counter_burst_of_adds_and_cancels_never_exceeds_the_threshold():
    t = FakeTime()
    limiter = TradingRateLimiter(Tier.STARTER, clock=t.monotonic, sleep=t.sleep)
    peak = 0.0
    for i in range(40):
        await limiter.acquire_add("XXBTZUSD")
        limiter.order_placed(f"O{i}")
        await limiter.acquire_cancel("XXBTZUSD", f"O{i}")
        peak = max(peak, limiter.counter("XXBTZUSD").level)
    assert peak <= 60 + 1e-9
    assert limiter.waited_s > 0
    limiter.on_rate_limited("XXBTZUSD")
    assert limiter.counter("XXBTZUSD").level == 60


async def test_a_protective_leg_waiting_for_room_goes_before_entries_that_waited_longer():
    """The trading counter full: entries wait for room, then a stop-loss starts waiting. The leg gets the next
    room, and the entries leave room for it meanwhile (``adds_within`` counts it too). Before, whoever woke first
    took it: the entries, which had started waiting earlier."""
    import asyncio

    now, sleeping = [1000.0], []

    async def sleep(seconds: float) -> None:  # wakes when the test moves the clock, in the order slept
        woken = asyncio.get_running_loop().create_future()
        sleeping.append(woken)
        await woken

    limiter = TradingRateLimiter(Tier.STARTER, clock=lambda: now[0], sleep=sleep)
    limiter.counter("XBT/USD").fill()
    taken: list[str] = []

    async def add(name: str, urgent: bool = False) -> None:
        await limiter.acquire_add("XBT/USD", urgent=urgent)
        taken.append(name)

    calls = [asyncio.ensure_future(add(f"entry-{i}")) for i in range(3)]
    await asyncio.sleep(0)
    calls.append(asyncio.ensure_future(add("stop-loss", urgent=True)))
    await asyncio.sleep(0)
    assert len(sleeping) == 4 and limiter.adds_within("XBT/USD", 1.0) == 0  # the next room is the leg's
    while not all(c.done() for c in calls):
        now[0] += 1.0  # room for one more AddOrder
        woken, sleeping[:] = list(sleeping), []
        for w in woken:
            w.set_result(None)
        for _ in range(10):
            await asyncio.sleep(0)
    assert taken == ["stop-loss", "entry-0", "entry-1", "entry-2"], taken


async def test_an_entry_waits_until_the_room_it_keeps_for_legs_to_come_is_there_too():
    """``reserve`` (the service: the legs of this entry and of the entries in flight) is room the entry leaves
    free: with 3 AddOrders' room left and 2 to keep, the entry fits; with 3 to keep it waits one decay step (1/s on
    Starter), asking ``reserve`` again after the wait."""
    now, slept = [1000.0], []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = TradingRateLimiter(Tier.STARTER, clock=lambda: now[0], sleep=sleep)
    counter = limiter.counter("XBT/USD")
    counter.add(counter.limits.maximum - 3)  # room for three AddOrders
    assert await limiter.wait_for_add("XBT/USD", None, reserve=lambda: 2) and slept == []
    asked = []

    def keep() -> int:
        asked.append(now[0])
        return 3

    assert await limiter.wait_for_add("XBT/USD", None, reserve=keep)
    assert slept == [pytest.approx(1.0)] and len(asked) == 2  # waited for one more, then asked again
    assert not await limiter.wait_for_add("XBT/USD", 0.5, reserve=lambda: 10)  # 7 s away: False at once


async def test_an_addorder_that_would_wait_past_what_its_deadline_allows_takes_nothing():
    now = [1000.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = TradingRateLimiter(Tier.STARTER, clock=lambda: now[0], sleep=sleep)
    counter = limiter.counter("XBT/USD")
    counter.fill()  # the next room is a second away (decay 1/s)
    level = counter.level
    with pytest.raises(ThrottleWaitTooLong):
        await limiter.acquire_add("XBT/USD", urgent=True, max_wait_s=0.5)
    assert counter.level == level and now[0] == 1000.0  # nothing taken, no time waited
    await limiter.acquire_add("XBT/USD", urgent=True, max_wait_s=3.0)
    assert now[0] == pytest.approx(1001.0)
