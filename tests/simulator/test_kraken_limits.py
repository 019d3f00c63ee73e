"""Kraken's limits on the default simulator (Starter tier, wall clock) as real clients see them, and each counter's
arithmetic on a frozen clock (REFERENCE.md section 5)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import ccxt.async_support as ccxt
import pytest
from kraken.exceptions import KrakenApiLimitExceededError
from kraken.spot import User

from execledger.infrastructure.simulator import KrakenSimulator, Tier
from execledger.infrastructure.simulator.limits import amend_cost, edit_cost

from .conftest import FROZEN_AT, WireClient

ORDER = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000", "volume": "0.0001"}
STARTER_MAX, STARTER_DECAY = 15, 0.33


async def test_ccxt_sees_rate_limit_errors_in_a_30_call_burst_against_the_default_simulator():
    async with KrakenSimulator() as sim:
        client = ccxt.kraken({"apiKey": sim.key, "secret": sim.secret, "enableRateLimit": False})
        client.urls["api"] = {"public": sim.rest_url, "private": sim.rest_url}
        try:
            await client.load_markets()
            outcomes = []
            started = time.monotonic()
            for _ in range(30):
                try:
                    await client.fetch_balance()
                    outcomes.append("ok")
                except ccxt.DDoSProtection as exc:  # ccxt's class for "EAPI:Rate limit exceeded"
                    assert "EAPI:Rate limit exceeded" in str(exc)
                    outcomes.append("refused")
            elapsed = time.monotonic() - started
        finally:
            await client.close()
    # The counter admits 15 at once and 0.33 more per second: about half of a quick burst is refused.
    assert outcomes[:STARTER_MAX] == ["ok"] * STARTER_MAX
    assert STARTER_MAX <= outcomes.count("ok") <= STARTER_MAX + elapsed * STARTER_DECAY + 1
    assert outcomes.count("refused") >= 30 - STARTER_MAX - elapsed * STARTER_DECAY - 1


async def test_python_kraken_sdk_sees_rate_limit_errors_in_a_30_call_burst_against_the_default_simulator():
    async with KrakenSimulator() as sim:
        user = User(key=sim.key, secret=sim.secret, url=sim.rest_url)

        def burst() -> tuple[list[str], float]:
            outcomes, started = [], time.monotonic()
            for _ in range(30):
                try:
                    user.get_account_balance()
                    outcomes.append("ok")
                except KrakenApiLimitExceededError:
                    outcomes.append("refused")
            return outcomes, time.monotonic() - started

        outcomes, elapsed = await asyncio.to_thread(burst)
    assert outcomes[:STARTER_MAX] == ["ok"] * STARTER_MAX
    assert "refused" in outcomes
    assert outcomes.count("ok") <= STARTER_MAX + elapsed * STARTER_DECAY + 1


async def test_public_endpoints_refuse_a_burst_per_client_address():
    async with KrakenSimulator() as sim, aiohttp.ClientSession() as session:
        answers = []
        for _ in range(30):
            async with session.get(sim.rest_url + "/0/public/Time") as response:
                answers.append((await response.json())["error"])
    assert answers[:20] == [[]] * 20  # the burst we allow (Kraken publishes 1/s and no burst)
    assert ["EGeneral:Too many requests"] in answers[20:]


@pytest.fixture
async def starter():
    """The Starter tier on a frozen clock: counters move only when the test advances time."""
    async with (
        KrakenSimulator(seed=1, clock_start=FROZEN_AT, tier="starter") as sim,
        aiohttp.ClientSession() as session,
    ):
        yield sim, WireClient(session, sim)


async def test_starter_trading_counter_then_open_order_cap_per_pair(starter):
    sim, wire = starter
    for _ in range(60):
        await wire.result("AddOrder", ORDER)
    assert await wire.call("AddOrder", ORDER) == {"error": ["EOrder:Rate limit exceeded"]}  # the 61st point
    assert (await wire.result("AddOrder", ORDER | {"pair": "ETHUSD", "price": "2000", "volume": "0.01"}))["txid"]
    sim.advance_time(120)  # the counter decays at 1/s: empty again
    # ...but 60 orders rest on XBT/USD, Starter's cap per pair.
    assert await wire.call("AddOrder", ORDER) == {"error": ["EOrder:Orders limit exceeded"]}
    assert (await wire.result("CancelOrder", {"txid": sim.orders()[0].txid})) == {"count": 1}
    assert (await wire.result("AddOrder", ORDER))["txid"]


async def test_starter_rest_counter_costs_two_for_history_and_nothing_for_orders(starter):
    sim, wire = starter
    for _ in range(7):
        await wire.result("TradesHistory")  # 14
    await wire.result("Balance")  # 15
    assert await wire.call("Balance") == {"error": ["EAPI:Rate limit exceeded"]}
    assert (await wire.result("AddOrder", ORDER))["txid"]  # the trading engine counts AddOrder, not this counter
    sim.advance_time(1 / STARTER_DECAY + 0.01)  # one point decayed
    await wire.result("Balance")


def test_amend_and_edit_costs_follow_the_table():
    assert [amend_cost(a) for a in (0, 4.9, 5, 9.9, 10, 14.9, 15, 300)] == [4, 4, 3, 3, 2, 2, 1, 1]
    assert [edit_cost(a) for a in (0, 5, 10, 15, 45, 90)] == [7, 6, 5, 3, 2, 1]


async def test_amend_and_edit_are_charged_by_age_and_a_batch_cancel_goes_through_over_the_limit():
    async with (
        KrakenSimulator(seed=1, clock_start=FROZEN_AT, tier=None, trading_tier=Tier(12, 1.0)) as sim,
        aiohttp.ClientSession() as session,
    ):
        wire = WireClient(session, sim)
        txid = (await wire.result("AddOrder", ORDER))["txid"][0]  # 1
        await wire.result("AmendOrder", {"txid": txid, "limit_price": "50100"})  # +1 +3 (age 0) = 5
        sim.advance_time(5)  # decays to 0; the amend restarted the order's age
        await wire.result("AmendOrder", {"txid": txid, "order_qty": "0.0002"})  # age 5 s: +1 +2 = 3
        edited = await wire.result("EditOrder", {"txid": txid, "price": "50200", "pair": "XBTUSD"})  # age 0: +7 = 10
        assert await wire.call("AmendOrder", {"txid": edited["txid"], "limit_price": "50300"}) == {
            "error": ["EOrder:Rate limit exceeded"]  # 10 + 4 > 12
        }
        other = (await wire.result("AddOrder", ORDER))["txid"][0]  # 11
        # A batch cancel of two young orders costs 16 and is still accepted (REFERENCE.md 5.2).
        assert await wire.result("CancelOrderBatch", {"orders": [edited["txid"], other]}, as_json=True) == {"count": 2}
        assert await wire.call("AddOrder", ORDER) == {"error": ["EOrder:Rate limit exceeded"]}
