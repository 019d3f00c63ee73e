"""A hostile client against the venue: absurd numbers, wrong shapes, unbounded controls, a dead price feed. Every
one is answered with an error naming the field (never a 500, a dropped request or a stuck server), and nothing
is half-done. Each case here was found by throwing it at the simulator."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import aiohttp
import pytest

from execledger.infrastructure.simulator import KrakenSimulator
from execledger.infrastructure.simulator.feed import LivePriceFeed

LIMIT = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "60000", "volume": "0.01"}


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"price": "1e400"}, "EOrder:Invalid price:Invalid price argument"),  # was a 500 (DivisionImpossible)
        ({"price": "NaN"}, "EOrder:Invalid price:Invalid price argument"),
        ({"price": "+-5"}, "EOrder:Invalid price:Invalid price argument"),
        ({"price": "-99999999"}, "EOrder:Invalid price:Invalid price argument"),  # relative, below zero
        ({"volume": "1e-400"}, "EGeneral:Invalid arguments:volume"),
        ({"volume": "1e30"}, "EGeneral:Invalid arguments:volume"),
        ({"userref": "99999999999999999999"}, "EGeneral:Invalid arguments:userref"),
        ({"cl_ord_id": "é"}, "EGeneral:Invalid arguments:cl_ord_id"),
        ({"expiretm": "nan"}, "EGeneral:Invalid arguments:expiretm"),
        ({"expiretm": "+inf"}, "EGeneral:Invalid arguments:expiretm"),
        ({"starttm": "+1e30"}, "EGeneral:Invalid arguments:starttm"),
        ({"deadline": "garbage"}, "EGeneral:Invalid arguments:deadline"),
    ],
)
async def test_absurd_order_fields_are_refused_naming_the_field(sim, wire, fields, error):
    assert (await wire.call("AddOrder", LIMIT | fields))["error"] == [error]
    assert sim.orders() == []


@pytest.mark.parametrize("orders", [[1, 2], "x", [{}] * 16])
async def test_malformed_batches_are_refused_whole(sim, wire, orders):
    body = await wire.call("AddOrderBatch", {"pair": "XBTUSD", "orders": orders}, as_json=True)
    assert body["error"] == ["EGeneral:Invalid arguments:orders"] and sim.orders() == []


@pytest.mark.parametrize(
    ("route", "body", "named"),
    [
        ("time", {"seconds": "nan"}, "'seconds'"),  # was accepted: the clock became NaN
        ("time", {"seconds": 1e308}, "'seconds'"),
        ("advance", {"pair": "XBTUSD", "steps": 10**9}, "'steps'"),  # was a server stuck for hours
        ("advance", {"steps": 1000}, "name a 'pair'"),  # 1,000 steps of 1,434 pairs
        ("tape", {"pair": "SOLUSD", "speed": "nan"}, "'speed'"),
        ("tape", {"pair": "SOLUSD", "path": "/etc/passwd"}, "'path'"),  # only .csv tapes, never echoed
        ("nonce", {"ahead_s": "inf"}, "'ahead_s'"),
        ("faults", {"path": "AddOrder", "kind": "delay_reply", "seconds": "inf"}, "'seconds'"),
        ("balances", {"ZUSD": "nan"}, "'ZUSD'"),
        ("price", {"pair": "XBTUSD", "price": "1e400"}, "'price'"),
    ],
)
async def test_control_values_are_bounded_and_named(sim, wire, route, body, named):
    before = sim.clock.now()
    async with wire.session.post(wire.base + "/_sim/" + route, json=body) as response:
        assert response.status == 400
        assert named in (await response.json())["error"]
    assert sim.clock.now() == before and sim.faults.pending() == [] and sim.tapes == {}


async def test_a_tape_that_is_not_a_tape_is_refused_without_echoing_it(sim, wire, tmp_path):
    secret = tmp_path / "secrets.csv"
    secret.write_text("user,password,x\nroot,hunter2,y\n")
    async with wire.session.post(wire.base + "/_sim/tape", json={"pair": "SOLUSD", "path": str(secret)}) as response:
        answer = await response.json()
    assert response.status == 400 and "line 2" in answer["error"] and "hunter2" not in answer["error"]


async def test_malformed_ws_requests_are_each_answered(sim):
    token = sim.issue_ws_token(sim.key)
    order = {"token": token, "order_type": "limit", "side": "buy", "symbol": "BTC/USD", "order_qty": 0.1}
    requests = {
        1: {"method": "add_order", "params": "x"},
        2: {"method": "add_order", "params": order | {"limit_price": 1e300}},
        3: {"method": "add_order", "params": order | {"limit_price": 1.0, "symbol": ["BTC/USD"]}},
        4: {"method": "cancel_order", "params": {"token": token, "order_id": "not-a-list"}},
        5: {"method": "batch_add", "params": {"token": token, "symbol": "BTC/USD", "orders": "x"}},
        6: {"method": "batch_cancel", "params": {"token": token, "orders": 5}},  # was a dropped request
        7: {"method": "amend_order", "params": {"token": token, "order_id": None}},
        8: {"method": "cancel_all_orders_after", "params": {"token": token, "timeout": "x"}},
        9: {"method": "add_order", "params": order | {"limit_price": 60000.0, "triggers": {"price": "x"}}},
        10: {"method": "add_order", "params": order | {"limit_price": 60000.0, "expire_time": "x"}},
    }
    async with aiohttp.ClientSession() as session, session.ws_connect(sim.ws_url) as ws:
        await ws.receive_json()  # status
        for req_id, request in requests.items():
            await ws.send_str(json.dumps(request | {"req_id": req_id}))
        await ws.send_str("not json")
        await ws.send_bytes(b"\x00\x01")
        answers: dict[int, dict] = {}
        while len(answers) < len(requests):
            message = await asyncio.wait_for(ws.receive_json(), 10)
            if "req_id" in message:
                answers[message["req_id"]] = message
    assert all(a["success"] is False and a["error"] for a in answers.values()), answers
    assert answers[6]["error"] == "EGeneral:Invalid arguments"
    assert answers[9]["error"] == "Price field must be a number_float"
    assert sim.orders() == []


async def test_the_paper_feed_survives_an_outage_of_its_source():
    """The public feed dies (process gone: REST and WS refuse connections) and comes back on the same port; the
    paper venue keeps its last price meanwhile and follows the new one after reconnecting."""
    market = await KrakenSimulator(tier=None).start()
    port = market.port
    market.set_mark_price("SOL/USD", "20.00")
    async with KrakenSimulator(tier=None) as venue:
        feed = LivePriceFeed(venue, market.public_ws_url, market.rest_url, ["SOL/USD"], poll_s=0.2, reconnect_max_s=1)
        venue.price_feed = feed
        await feed.start()
        try:
            await asyncio.wait_for(feed.subscribed("SOL/USD"), 30)
            seen = feed.trades_seen
            market.set_mark_price("SOL/USD", "21.00")
            await asyncio.wait_for(feed.until_trades(seen + 1), 30)
            assert venue.mark_price("SOLUSD") == Decimal("21.00")
            await market.stop()  # the outage
            await asyncio.wait_for(feed.disconnected.wait(), 30)
            assert venue.mark_price("SOLUSD") == Decimal("21.00")  # nothing made up while blind
            market = await KrakenSimulator(tier=None, port=port).start()
            market.set_mark_price("SOL/USD", "22.50")  # the REST fallback or the new socket brings it
            await asyncio.wait_for(feed.until_price("SOLUSD", Decimal("22.50")), 30)
            await asyncio.wait_for(feed.connected.wait(), 30)
        finally:
            await feed.stop()
            venue.price_feed = None
            await market.stop()
