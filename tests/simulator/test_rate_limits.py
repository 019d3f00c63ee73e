"""Kraken's REST call counter and per-pair trading counter, with small tiers so tests can trip them."""

from __future__ import annotations

import aiohttp
import pytest

from execledger.infrastructure.simulator import KrakenSimulator, Tier
from execledger.infrastructure.simulator.limits import cancel_penalty, rest_cost

from .conftest import FROZEN_AT, WireClient

ORDER = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "60000", "volume": "0.01"}


def test_costs_follow_the_reference():
    assert [rest_cost(m) for m in ("Balance", "TradesHistory", "AddOrder", "CancelOrder", "CancelAll")] == [
        1,
        2,
        0,
        0,
        1,
    ]
    assert [cancel_penalty(a) for a in (0, 4.9, 5, 9, 14, 44, 89, 299, 300)] == [8, 8, 6, 6, 5, 4, 2, 1, 0]


@pytest.fixture
async def limited():
    async with (
        KrakenSimulator(seed=1, clock_start=FROZEN_AT, rest_tier=Tier(4, 1.0), trading_tier=Tier(10, 1.0)) as sim,
        aiohttp.ClientSession() as session,
    ):
        yield sim, WireClient(session, sim)


async def test_rest_counter_trips_and_decays(limited):
    sim, wire = limited
    await wire.result("TradesHistory")  # 2
    await wire.result("Balance")  # 3
    await wire.result("OpenOrders")  # 4
    assert await wire.call("Balance") == {"error": ["EAPI:Rate limit exceeded"]}
    await wire.result("AddOrder", ORDER)  # AddOrder is not counted here
    sim.advance_time(1)  # decays by one point
    await wire.result("Balance")
    assert (await wire.call("TradesHistory"))["error"] == ["EAPI:Rate limit exceeded"]


async def test_trading_counter_adds_one_per_order_and_penalises_young_cancels(limited):
    sim, wire = limited
    txids = [(await wire.result("AddOrder", ORDER))["txid"][0] for _ in range(2)]  # counter 2
    assert await wire.result("CancelOrder", {"txid": txids[0]}) == {"count": 1}  # age 0: +8 -> 10
    assert await wire.call("CancelOrder", {"txid": txids[1]}) == {"error": ["EOrder:Rate limit exceeded"]}
    assert await wire.call("AddOrder", ORDER) == {"error": ["EOrder:Rate limit exceeded"]}  # 11 > 10
    sim.advance_time(300)  # decayed to 0, and the order is now old enough to cancel for free
    assert await wire.result("CancelOrder", {"txid": txids[1]}) == {"count": 1}
    # A rejected order still costs its fixed point: ten invalid orders exhaust the counter.
    for _ in range(10):
        assert (await wire.call("AddOrder", ORDER | {"volume": "0.00001"}))["error"] == ["EOrder:Order minimum not met"]
    assert await wire.call("AddOrder", ORDER) == {"error": ["EOrder:Rate limit exceeded"]}
