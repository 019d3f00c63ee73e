"""WS v2 ``executions`` over a plain aiohttp client: status, ack, snapshot, updates, sequence, keepalive, faults."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import WSMsgType

from execledger.infrastructure.simulator import KrakenSimulator
from tests.conftest import kraken_fixture

from .conftest import WireClient

LIMIT = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "60000", "volume": "0.2"}


class Feed:
    """Reads frames in order, skipping heartbeats unless asked for them."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws

    async def next(self, heartbeats: bool = False, timeout: float = 5.0) -> dict:
        while True:
            msg = await self.ws.receive(timeout=timeout)
            assert msg.type == WSMsgType.TEXT, msg
            data = json.loads(msg.data)
            if heartbeats or data.get("channel") != "heartbeat":
                return data


async def subscribe(wire, sim, **params) -> tuple[Feed, dict, dict]:
    token = (await wire.result("GetWebSocketsToken"))["token"]
    ws = await wire.session.ws_connect(sim.ws_url)
    feed = Feed(ws)
    status = await feed.next()
    assert status["channel"] == "status" and status["data"][0]["api_version"] == "v2"
    await ws.send_json(
        {"method": "subscribe", "params": {"channel": "executions", "token": token, **params}, "req_id": 42}
    )
    ack = await feed.next()
    snapshot = await feed.next()
    return feed, ack, snapshot


async def test_subscribe_ack_and_snapshot(sim, wire):
    await wire.result("AddOrder", LIMIT)
    await wire.result("AddOrder", LIMIT | {"ordertype": "market", "volume": "0.01"})
    feed, ack, snapshot = await subscribe(wire, sim, snap_orders=True, snap_trades=True)
    expected = kraken_fixture("ws_v2_executions_subscribe_ack_docs.json")
    assert set(expected) <= set(ack) and ack["req_id"] == 42 and ack["success"] is True
    assert ack["result"] == {"channel": "executions", "maxratecount": 125, "snap_orders": True, "snap_trades": True}
    assert (snapshot["channel"], snapshot["type"], snapshot["sequence"]) == ("executions", "snapshot", 1)
    kinds = [(r["exec_type"], r["order_status"]) for r in snapshot["data"]]
    assert kinds == [("new", "new"), ("trade", "filled")]
    assert snapshot["data"][1]["symbol"] == "BTC/USD" and snapshot["data"][1]["liquidity_ind"] == "t"
    await feed.ws.close()


async def test_pending_new_new_trade_filled_with_increasing_sequence(sim, wire):
    feed, _, snapshot = await subscribe(wire, sim)
    assert snapshot["data"] == []
    txid = (await wire.result("AddOrder", LIMIT | {"cl_ord_id": "ws-1"}))["txid"][0]
    sim.set_mark_price("XBTUSD", "59000")
    updates = [await feed.next() for _ in range(4)]
    assert [u["sequence"] for u in updates] == [2, 3, 4, 5]
    records = [u["data"][0] for u in updates]
    assert [r["exec_type"] for r in records] == ["pending_new", "new", "trade", "filled"]
    assert all(r["order_id"] == txid and r["cl_ord_id"] == "ws-1" for r in records)
    pending_shape = kraken_fixture("ws_v2_executions_update_pending_new_docs.json")["data"][0]
    assert set(pending_shape) - {"stop_price"} <= set(records[0])
    assert records[0]["limit_price"] == 60000.0 and records[0]["order_qty"] == 0.2
    trade_shape = kraken_fixture("ws_v2_executions_update_trade_docs.json")["data"][0]
    assert set(trade_shape) <= set(records[2])
    assert (records[2]["last_price"], records[2]["liquidity_ind"], records[2]["fees"]) == (
        60000.0,
        "m",
        [{"asset": "USD", "qty": 30.0}],
    )
    assert (records[3]["order_status"], records[3]["cum_qty"], records[3]["avg_price"]) == ("filled", 0.2, 60000.0)
    await feed.ws.close()


async def test_cancel_and_expiry_updates(sim, wire):
    feed, _, _ = await subscribe(wire, sim)
    txid = (await wire.result("AddOrder", LIMIT))["txid"][0]
    await wire.result("AddOrder", LIMIT | {"expiretm": "+10"})
    await wire.result("CancelOrder", {"txid": txid})
    sim.advance_time(10)
    records = [(await feed.next())["data"][0] for _ in range(6)]
    canceled, expired = records[4], records[5]
    canceled_shape = kraken_fixture("ws_v2_executions_update_canceled_kraken_async_rs.json")["data"][0]
    assert set(canceled_shape) <= set(canceled) and canceled["reason"] == "User requested"
    assert (expired["exec_type"], expired["order_status"]) == ("expired", "expired")
    await feed.ws.close()


async def test_heartbeat_and_ping_pong(sim, wire):
    feed, _, _ = await subscribe(wire, sim)
    assert await feed.next(heartbeats=True) == kraken_fixture("ws_v2_heartbeat_docs.json")
    await feed.ws.send_json({"method": "ping", "req_id": 101})
    pong = await feed.next()
    assert set(pong) == set(kraken_fixture("ws_v2_pong_kraken_async_rs.json")) and pong["req_id"] == 101
    await feed.ws.send_json({"method": "ping", "params": {}, "req_id": 102})
    refused = await feed.next()
    assert refused["success"] is False and refused["error"].startswith("Unsupported field: 'params'")
    await feed.ws.close()


async def test_unknown_token_is_an_invalid_session(sim, wire):
    ws = await wire.session.ws_connect(sim.ws_url)
    feed = Feed(ws)
    await feed.next()
    await ws.send_json({"method": "subscribe", "params": {"channel": "executions", "token": "stale"}, "req_id": 42})
    assert await feed.next() | {"time_in": "", "time_out": ""} == kraken_fixture(
        "ws_v2_error_subscribe_invalid_session_kraken_async_rs.json"
    ) | {"time_in": "", "time_out": ""}
    await ws.close()


async def test_fault_ws_disconnect_closes_the_socket_like_a_cloudflare_restart(sim, wire):
    feed, _, _ = await subscribe(wire, sim)
    async with wire.session.post(sim.rest_url + "/_sim/ws/disconnect") as r:
        assert (await r.json()) == {"closed": 1}
    while (msg := await feed.ws.receive(timeout=5)).type == WSMsgType.TEXT:
        pass
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert feed.ws.close_code == 1001


async def test_fault_ws_stall_goes_silent_and_the_sequence_shows_the_gap(sim, wire):
    feed, _, _ = await subscribe(wire, sim)
    sim.ws_stall()
    await wire.result("AddOrder", LIMIT)  # pending_new + new are lost to the stalled client
    await feed.ws.send_json({"method": "ping", "req_id": 1})
    with pytest.raises(asyncio.TimeoutError):
        # Proving silence needs a wait: 0.3 s spans six heartbeat intervals, none of which may arrive.
        await feed.ws.receive(timeout=0.3)
    sim.ws_resume()
    await wire.result("CancelAll")
    update = await feed.next()
    # Snapshot was 1; pending_new (2) and new (3) were swallowed by the stall, so the client sees a gap.
    assert update["sequence"] == 4 and update["data"][0]["exec_type"] == "canceled"
    await feed.ws.close()


async def test_on_wall_time_the_dead_mans_switch_fires_by_itself():
    """Standalone and demo runs follow the wall clock: a background sweep fires due timers without any call."""
    async with KrakenSimulator(seed=2) as wall_sim, aiohttp.ClientSession() as session:
        wire = WireClient(session, wall_sim)
        feed, _, _ = await subscribe(wire, wall_sim)
        txid = (await wire.result("AddOrder", LIMIT))["txid"][0]
        await wire.result("CancelAllOrdersAfter", {"timeout": "1"})
        while (record := (await feed.next(timeout=5))["data"][0])["exec_type"] != "canceled":
            pass
        assert record["order_id"] == txid
        await feed.ws.close()


async def test_unsubscribe_stops_the_updates(sim, wire):
    feed, _, _ = await subscribe(wire, sim)
    token = next(iter(sim.ws_tokens))
    await feed.ws.send_json({"method": "unsubscribe", "params": {"channel": "executions", "token": token}, "req_id": 7})
    ack = await feed.next()
    assert (ack["method"], ack["req_id"], ack["success"]) == ("unsubscribe", 7, True)
    await wire.result("AddOrder", LIMIT)
    await feed.ws.send_json({"method": "ping", "req_id": 8})
    # Frames leave in order, so had the order been streamed its updates would come before this pong.
    assert (await feed.next())["method"] == "pong"
    await feed.ws.close()
