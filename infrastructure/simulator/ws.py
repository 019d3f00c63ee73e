"""The WS v2 auth endpoint (``/v2``): status frame, ``executions`` subscribe / snapshot / updates, heartbeat,
ping/pong, and the two WS faults (disconnect, silent stall)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .appkey import SIMULATOR
from .clock import rfc3339
from .engine import Execution
from .executions import execution_record, snapshot_order, trade_record

if TYPE_CHECKING:
    from .server import KrakenSimulator

SNAPSHOT_TRADES = 50


class ExecutionsConnection:
    """One WS client: its own ``sequence``, its subscription, an outbox drained by a writer task."""

    def __init__(self, sim: KrakenSimulator, ws: web.WebSocketResponse):
        self.sim = sim
        self.ws = ws
        self.key: str | None = None  # the account whose executions this connection streams
        self.sequence = 0
        self.stalled = False
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def send(self, message: dict[str, Any]) -> None:
        # A stalled connection stays open but says nothing: messages are lost, as on a dead TCP path.
        if not self.stalled:
            self.outbox.put_nowait(message)

    def send_executions(self, kind: str, data: list[dict[str, Any]]) -> None:
        self.sequence += 1
        self.send({"channel": "executions", "type": kind, "data": data, "sequence": self.sequence})

    def on_execution(self, execution: Execution) -> None:
        """Engine listener: stream the account's executions to this connection."""
        if self.key is not None and execution.order.key == self.key:
            self.send_executions("update", [execution_record(execution)])

    async def writer(self) -> None:
        """Drain the outbox onto the socket, in order."""
        while (message := await self.outbox.get()) is not None:
            if self.ws.closed:
                return
            await self.ws.send_str(json.dumps(message))

    async def heartbeat(self, interval: float) -> None:
        while not self.ws.closed:
            await asyncio.sleep(interval)
            if self.key is not None:
                self.send({"channel": "heartbeat"})

    def _reply(self, request: dict[str, Any], time_in: float, **fields: Any) -> None:
        reply: dict[str, Any] = {"method": request.get("method")}
        if isinstance(request.get("req_id"), int):
            reply["req_id"] = request["req_id"]
        reply |= fields
        reply |= {"time_in": rfc3339(time_in, micros=True), "time_out": rfc3339(self.sim.clock.now(), micros=True)}
        self.send(reply)

    def handle(self, request: dict[str, Any]) -> None:
        """Answer one client request (ping, subscribe, unsubscribe)."""
        time_in = self.sim.clock.now()
        method = request.get("method")
        params = request.get("params") or {}
        if method == "ping":
            if "params" in request:
                self._reply(
                    request, time_in, success=False, error="Unsupported field: 'params' for the given msg type: ping"
                )
            else:
                self._reply({**request, "method": "pong"}, time_in)
            return
        if method not in ("subscribe", "unsubscribe") or params.get("channel") != "executions":
            self._reply(request, time_in, success=False, error="EGeneral:Invalid arguments")
            return
        key = self.sim.ws_tokens.get(str(params.get("token")))
        if key is None:
            self._reply(request, time_in, error="ESession:Invalid session", status="error", success=False)
            return
        if method == "unsubscribe":
            self.key = None
            self._reply(request, time_in, result={"channel": "executions"}, success=True)
            return
        snap_orders = params.get("snap_orders", True) is not False
        snap_trades = params.get("snap_trades", False) is True
        result = {
            "channel": "executions",
            "maxratecount": self.sim.max_rate_count,
            "snap_orders": snap_orders,
            "snap_trades": snap_trades,
        }
        self._reply(request, time_in, result=result, success=True)
        self.key = key
        self.send_executions("snapshot", self._snapshot(key, snap_orders, snap_trades))

    def _snapshot(self, key: str, snap_orders: bool, snap_trades: bool) -> list[dict[str, Any]]:
        account = self.sim.engine.account(key)
        data: list[dict[str, Any]] = []
        if snap_orders:
            data += [snapshot_order(o) for o in sorted(account.orders.values(), key=lambda o: o.seq) if o.is_open]
        if snap_trades:
            trades = sorted(account.trades.values(), key=lambda t: t.trade_id)[-SNAPSHOT_TRADES:]
            for t in trades:
                order = account.orders[t.order_txid]
                data.append(trade_record(order, t, "filled" if order.status == "closed" else "partially_filled"))
        return data


async def handle_ws(request: web.Request) -> web.WebSocketResponse:
    """One WS v2 connection on ``/v2``, served until either side closes it."""
    sim: KrakenSimulator = request.app[SIMULATOR]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    conn = ExecutionsConnection(sim, ws)
    sim.ws_connections.add(conn)
    sim.engine.listeners.append(conn.on_execution)
    writer = asyncio.create_task(conn.writer())
    heartbeat = asyncio.create_task(conn.heartbeat(sim.heartbeat_interval))
    conn.send(
        {
            "channel": "status",
            "type": "update",
            "data": [
                {
                    "api_version": "v2",
                    "connection_id": id(conn),
                    "system": sim.engine.system_status,
                    "version": "2.0.10",
                }
            ],
        }
    )
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT or conn.stalled:
                continue
            try:
                payload = json.loads(msg.data)
            except json.JSONDecodeError:
                continue
            if isinstance(payload, dict):
                conn.handle(payload)
    finally:
        sim.engine.listeners.remove(conn.on_execution)
        sim.ws_connections.discard(conn)
        heartbeat.cancel()
        conn.outbox.put_nowait(None)
        await asyncio.gather(writer, heartbeat, return_exceptions=True)
    return ws


def add_routes(app: web.Application) -> None:
    """Mount the WS v2 endpoint."""
    app.router.add_get("/v2", handle_ws)
