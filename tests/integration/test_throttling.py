"""Throttling against the simulator's counters: with the adapter's limiters on the simulator's tier, a burst
waits for capacity (simulator time) instead of being refused; without them the same burst is refused, which shows
the check can fail. An injected rate-limit answer is waited out and retried (reads) or reported (AddOrder)."""

import asyncio

import pytest

from execledger.application.ports import ErrorClass, PlaceStatus
from execledger.infrastructure.kraken.ratelimit import Tier
from execledger.infrastructure.simulator import FaultKind
from execledger.infrastructure.simulator.limits import REST_TIERS, TRADING_TIERS

API_LIMIT, ORDER_LIMIT = "EAPI:Rate limit exceeded", "EOrder:Rate limit exceeded"
STARTER_SIM = {"rest_tier": REST_TIERS["starter"], "trading_tier": TRADING_TIERS["starter"]}
STARTER_ADAPTER = {"rest_tier": Tier.STARTER, "trading_tier": Tier.STARTER}
NO_ADAPTER_LIMITS = {"rest_tier": None, "trading_tier": None}


def refusals(venue, error):
    return [r for r in venue.sim.requests() if r.error == error]


async def read_burst(venue, rounds: int):
    """``rounds`` x (OpenOrders, QueryOrders, TradesHistory): 4 points each on the REST counter (15 at most)."""
    placed = await venue.exchange.place(venue.limit_buy())
    calls = []
    for _ in range(rounds):
        calls += [
            venue.exchange.open_orders(),
            venue.exchange.query_orders([placed.venue_order_id]),
            venue.exchange.fills_since(None),
        ]
    return await asyncio.gather(*calls, return_exceptions=True)


@pytest.mark.parametrize(("sim_options", "venue_options"), [(STARTER_SIM, STARTER_ADAPTER)])
async def test_a_burst_of_reads_waits_for_the_rest_counter_instead_of_being_refused(venue):
    started = venue.time.now()
    results = await read_burst(venue, rounds=10)
    assert not [r for r in results if isinstance(r, BaseException)]
    assert refusals(venue, API_LIMIT) == []
    assert len(venue.sim.requests()) == 1 + 30
    # 40 points against a counter of 15 that decays 0.33/s: at least (40 - 15) / 0.33 s of waiting.
    assert venue.exchange.rest.limiter.waited_s >= (40 - 15) / 0.33 - 1
    assert venue.time.now() - started >= (40 - 15) / 0.33 - 1


@pytest.mark.parametrize(("sim_options", "venue_options"), [(STARTER_SIM, NO_ADAPTER_LIMITS)])
async def test_without_the_adapter_limiter_the_same_burst_is_refused(venue):
    await read_burst(venue, rounds=10)
    assert len(refusals(venue, API_LIMIT)) > 0


async def place_and_cancel_burst(venue, count: int):
    placed = await asyncio.gather(*(venue.exchange.place(venue.limit_buy(quantity="0.001")) for _ in range(count)))
    canceled = await asyncio.gather(
        *(venue.exchange.cancel(venue_order_id=p.venue_order_id) for p in placed if p.venue_order_id),
        return_exceptions=True,
    )
    return placed, canceled


@pytest.mark.parametrize(("sim_options", "venue_options"), [(STARTER_SIM, STARTER_ADAPTER)])
async def test_a_burst_of_orders_and_young_cancels_keeps_under_the_pair_counter(venue):
    placed, canceled = await place_and_cancel_burst(venue, 20)
    assert [p.status for p in placed] == [PlaceStatus.ACKNOWLEDGED] * 20
    assert [c.count for c in canceled] == [1] * 20
    assert refusals(venue, ORDER_LIMIT) == []
    assert len(venue.sim.requests("AddOrder")) == len(venue.sim.requests("CancelOrder")) == 20
    assert all(o.status == "canceled" for o in venue.sim.orders())
    # 20 orders (+1 each) and cancels of young orders (+8 while younger than 5 s) do not fit under 60 at once:
    # the adapter waited (in simulator time) rather than be refused.
    assert venue.exchange.trading.waited_s > 0


@pytest.mark.parametrize(("sim_options", "venue_options"), [(STARTER_SIM, NO_ADAPTER_LIMITS)])
async def test_without_the_trading_limiter_the_same_burst_is_refused(venue):
    await place_and_cancel_burst(venue, 20)
    assert len(refusals(venue, ORDER_LIMIT)) > 0


@pytest.mark.parametrize("venue_options", [STARTER_ADAPTER])
async def test_an_injected_rest_rate_limit_answer_on_a_read_is_waited_out_and_retried(venue):
    placed = await venue.exchange.place(venue.limit_buy())
    venue.sim.inject_fault("OpenOrders", FaultKind.API_RATE_LIMIT)
    orders = await venue.exchange.open_orders()
    assert [o.venue_order_id for o in orders] == [placed.venue_order_id]
    refused, answered = venue.sim.requests("OpenOrders")
    assert (refused.error, answered.error) == (API_LIMIT, None)
    # The answer means our model was behind: the counter is taken as full (15), and one more point needs
    # 1 / 0.33 s of decay before the retry goes out.
    assert answered.time - refused.time >= 1 / 0.33 - 1e-6
    assert venue.exchange.rest.limiter.waited_s > 0


@pytest.mark.parametrize("venue_options", [STARTER_ADAPTER])
async def test_an_injected_order_rate_limit_on_add_order_is_rejected_and_the_next_order_waits(venue):
    first = venue.limit_buy()
    venue.sim.inject_fault("AddOrder", FaultKind.ORDER_RATE_LIMIT)
    result = await venue.exchange.place(first)
    assert (result.status, result.error_class, result.error) == (
        PlaceStatus.REJECTED,
        ErrorClass.NOT_EXECUTED,
        ORDER_LIMIT,
    )
    assert venue.sim.orders() == []  # nothing executed: safe to send again
    second = venue.limit_buy()
    assert (await venue.exchange.place(second)).status is PlaceStatus.ACKNOWLEDGED
    assert venue.exchange.trading.waited_s >= 1.0  # the pair counter was taken as full (60): one point of decay
    assert [len(venue.add_orders(r.client_order_id)) for r in (first, second)] == [1, 1]


@pytest.mark.parametrize("venue_options", [STARTER_ADAPTER])
async def test_an_injected_order_rate_limit_on_a_cancel_is_retried(venue):
    placed = await venue.exchange.place(venue.limit_buy())
    venue.sim.inject_fault("CancelOrder", FaultKind.ORDER_RATE_LIMIT)
    assert (await venue.exchange.cancel(venue_order_id=placed.venue_order_id)).count == 1
    assert [c.error for c in venue.sim.requests("CancelOrder")] == [ORDER_LIMIT, None]


@pytest.mark.parametrize(("sim_options", "venue_options"), [(STARTER_SIM, STARTER_ADAPTER)])
async def test_an_addorder_is_not_sent_once_its_wait_for_the_counter_would_outlast_its_deadline(venue):
    """An AddOrder decided with a deadline ``valid_for_s`` seconds ahead waits for the trading counter's room at most
    that long less Kraken's 2 s minimum; longer, it is NOT_SENT and decided again with a fresh deadline, never sent
    to a certain ``EService:Deadline elapsed`` (break test 2026-12-02: stop-losses Submitted at a restart waited 11 s
    for the counter and were all refused so)."""
    from dataclasses import replace

    venue.exchange.trading.counter(venue.limit_buy().pair).fill()  # the next room is a second away
    late = replace(venue.limit_buy(), valid_for_s=2.5)  # 0.5 s of waiting allowed
    result = await venue.exchange.place(late)
    assert result.status is PlaceStatus.NOT_SENT and "rate limit" in (result.error or ""), result
    assert venue.sim.requests("AddOrder") == [] and venue.sim.requests("add_order") == []
    in_time = replace(venue.limit_buy(), valid_for_s=10.0)
    assert (await venue.exchange.place(in_time)).status is PlaceStatus.ACKNOWLEDGED
