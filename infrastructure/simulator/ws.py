"""The WS v2 endpoints. ``/v2`` is the authenticated one (Kraken's ``ws-auth.kraken.com/v2``): status frame,
``executions`` subscribe / snapshot / updates, the trading methods (``ws_trading``), heartbeat, ping/pong, and the
two WS faults (disconnect, silent stall). ``/public/v2`` is the public one (``ws.kraken.com/v2``, see
``public_ws``). Like Kraken, each refuses the other's channels with the captured words."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from . import errors as E
from .appkey import SIMULATOR
from .clock import rfc3339
from .engine import Execution
from .errors import KrakenError
from .executions import execution_record, snapshot_order, trade_record
from .faults import REFUSALS, FaultKind
from .ws_trading import REST_NAMES, TRADING, WsRefusal

if TYPE_CHECKING:
    from .server import KrakenSimulator

log = logging.getLogger("execledger.simulator.ws")
SNAPSHOT_TRADES = 50
PUBLIC_ON_PRIVATE = "Public market data subscriptions are unavailable on this endpoint. Try ws.kraken.com"
PRIVATE_ON_PUBLIC = "Private data and trading are unavailable on this endpoint. Try ws-auth.kraken.com"


class Connection:
    """One WS client: its own ``sequence`` and an outbox drained by a writer task, in order."""

    def __init__(self, sim: KrakenSimulator, ws: web.WebSocketResponse):
        self.sim = sim
        self.ws = ws
        self.sequence = 0
        self.stalled = False
        self.subscribed = False
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def send(self, message: dict[str, Any]) -> None:
        # A stalled connection stays open but says nothing: messages are lost, as on a dead TCP path.
        if not self.stalled:
            self.outbox.put_nowait(message)

    async def writer(self) -> None:
        """Drain the outbox onto the socket, in order."""
        while (message := await self.outbox.get()) is not None:
            if self.ws.closed:
                return
            await self.ws.send_str(json.dumps(message))

    async def heartbeat(self, interval: float) -> None:
        while not self.ws.closed:
            await asyncio.sleep(interval)
            if self.subscribed:
                self.send({"channel": "heartbeat"})

    def reply(self, request: dict[str, Any], time_in: float, **fields: Any) -> None:
        answer: dict[str, Any] = {"method": request.get("method")}
        if isinstance(request.get("req_id"), int) and not isinstance(request.get("req_id"), bool):
            answer["req_id"] = request["req_id"]
        answer |= fields
        answer |= {"time_in": rfc3339(time_in, micros=True), "time_out": rfc3339(self.sim.clock.now(), micros=True)}
        self.send(answer)

    def ping(self, request: dict[str, Any], time_in: float) -> None:
        if "params" in request:
            self.reply(
                request, time_in, success=False, error="Unsupported field: 'params' for the given msg type: ping"
            )
        else:
            self.reply({**request, "method": "pong"}, time_in)

    async def handle(self, request: dict[str, Any]) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close_hooks(self) -> None:
        """Undo what the connection registered with the simulator."""


class ExecutionsConnection(Connection):
    """The authenticated endpoint: executions and trading methods for the key its token names."""

    def __init__(self, sim: KrakenSimulator, ws: web.WebSocketResponse):
        super().__init__(sim, ws)
        self.key: str | None = None  # the account whose executions this connection streams
        self._held: list[dict[str, Any]] | None = None  # executions caused by a request, sent after its answer
        sim.engine.listeners.append(self.on_execution)

    def close_hooks(self) -> None:
        self.sim.engine.listeners.remove(self.on_execution)

    def send_executions(self, kind: str, data: list[dict[str, Any]]) -> None:
        self.sequence += 1
        self.send({"channel": "executions", "type": kind, "data": data, "sequence": self.sequence})

    def on_execution(self, execution: Execution) -> None:
        """Engine listener: stream the account's executions to this connection."""
        if self.key is not None and self.subscribed and execution.order.key == self.key:
            record = execution_record(execution, self.sim.asset_names)
            if self._held is not None:
                self._held.append(record)
            else:
                self.send_executions("update", [record])

    async def handle(self, request: dict[str, Any]) -> None:
        """Answer one client request (ping, subscribe, unsubscribe, a trading method)."""
        time_in = self.sim.clock.now()
        method = request.get("method")
        params = request.get("params") or {}
        if method == "ping":
            self.ping(request, time_in)
            return
        if method in TRADING:
            await self.trade(str(method), request, params if isinstance(params, dict) else {}, time_in)
            return
        if method not in ("subscribe", "unsubscribe"):
            self.reply(request, time_in, success=False, error=E.invalid_arguments("method"))
            return
        channel = params.get("channel") if isinstance(params, dict) else None
        if channel in ("ticker", "trade", "book", "ohlc", "instrument", "level3"):
            self.reply(request, time_in, success=False, error=PUBLIC_ON_PRIVATE)
            return
        if channel != "executions":
            self.reply(request, time_in, success=False, error=E.invalid_arguments("channel"))
            return
        key = self.sim.ws_tokens.get(str(params.get("token")))
        if key is None:
            self.reply(request, time_in, error="ESession:Invalid session", status="error", success=False)
            return
        if method == "unsubscribe":
            self.key = None
            self.subscribed = False
            self.reply(request, time_in, result={"channel": "executions"}, success=True)
            return
        snap_orders = params.get("snap_orders", True) is not False
        snap_trades = params.get("snap_trades", False) is True
        result = {
            "channel": "executions",
            "maxratecount": self.sim.max_rate_count,
            "snap_orders": snap_orders,
            "snap_trades": snap_trades,
        }
        self.reply(request, time_in, result=result, success=True)
        self.key = key
        self.subscribed = True
        self.send_executions("snapshot", self._snapshot(key, snap_orders, snap_trades))

    async def trade(self, method: str, request: dict[str, Any], params: dict[str, Any], time_in: float) -> None:
        """A trading method: token, faults, the request log, then the same rules as REST."""
        sim = self.sim
        shown = {k: v for k, v in params.items() if k != "token"}
        record = sim.request_log.record(time_in, f"/ws/{method}", shown)
        key = sim.ws_tokens.get(str(params.get("token")))
        if key is None:
            record.error = "ESession:Invalid session"
            self.reply(request, time_in, success=False, error=record.error)
            return
        record.key = key
        fault = sim.faults.take(method)
        if fault is not None:
            record.fault = str(fault.kind)
            if fault.kind in REFUSALS:
                record.error = REFUSALS[fault.kind]
                self.reply(request, time_in, success=False, error=record.error)
                return
            if fault.kind is FaultKind.HOLD_REQUEST:
                await sim.hold_reply(fault.seconds)
        if method in REST_NAMES and sim.price_feed is not None:
            pair = sim.ws_pair(str(params.get("symbol") or ""))
            await sim.price_feed.ensure_price(pair.key if pair else None, key)
        self._held = []  # the answer goes out before the executions it caused, as on Kraken's socket
        try:
            answers = TRADING[method](sim, key, params)
        except (KrakenError, WsRefusal) as exc:
            record.error = exc.error
            answers = [{"error": exc.error, "success": False}]
        except (TypeError, ValueError, AttributeError, KeyError, ArithmeticError):
            # A field of the wrong shape (a string where a list belongs, ...): Kraken's generic refusal.
            record.error = E.invalid_arguments(method)
            answers = [{"error": "EGeneral:Invalid arguments", "success": False}]
        finally:
            caused, self._held = self._held, None
        record.result = answers
        if fault is not None and fault.kind is FaultKind.DELAY_REPLY:
            for execution in caused:  # the order is live: its executions flow while the answer is held
                self.send_executions("update", [execution])
            caused = []
            await sim.hold_reply(fault.seconds)
        for answer in answers:
            success = answer.pop("success", "error" not in answer or "result" in answer)
            self.reply(request, time_in, **answer, success=success)
        for execution in caused:
            self.send_executions("update", [execution])

    def _snapshot(self, key: str, snap_orders: bool, snap_trades: bool) -> list[dict[str, Any]]:
        account = self.sim.engine.account(key)
        data: list[dict[str, Any]] = []
        if snap_orders:
            data += [snapshot_order(o) for o in account.open.values()]
        if snap_trades:
            trades = list(account.trades.values())[-SNAPSHOT_TRADES:]
            for t in trades:
                order = account.orders[t.order_txid]
                status = "filled" if order.status == "closed" else "partially_filled"
                data.append(trade_record(order, t, status, self.sim.asset_names))
        return data


async def _guarded(conn: Connection, payload: dict[str, Any]) -> None:
    """Handle one request; one that breaks the handler is answered, not dropped."""
    try:
        await conn.handle(payload)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("WS request %r broke its handler", payload.get("method"))
        conn.reply(payload, conn.sim.clock.now(), success=False, error="EGeneral:Invalid arguments")


async def serve(request: web.Request, conn: Connection) -> web.WebSocketResponse:
    """Serve one connection until either side closes it."""
    sim: KrakenSimulator = request.app[SIMULATOR]
    ws = conn.ws
    sim.ws_connections.add(conn)
    writer = asyncio.create_task(conn.writer())
    heartbeat = asyncio.create_task(conn.heartbeat(sim.heartbeat_interval))
    handlers: set[asyncio.Task] = set()
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
                # Each request in its own task, started in arrival order: a held reply does not hold the others.
                task = asyncio.create_task(_guarded(conn, payload))
                handlers.add(task)
                task.add_done_callback(handlers.discard)
                await asyncio.sleep(0)
    finally:
        conn.close_hooks()
        sim.ws_connections.discard(conn)
        heartbeat.cancel()
        for task in handlers:
            task.cancel()
        conn.outbox.put_nowait(None)
        await asyncio.gather(writer, heartbeat, *handlers, return_exceptions=True)
    return ws


async def handle_ws(request: web.Request) -> web.WebSocketResponse:
    """One connection on the authenticated endpoint ``/v2``."""
    sim: KrakenSimulator = request.app[SIMULATOR]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    return await serve(request, ExecutionsConnection(sim, ws))


def add_routes(app: web.Application) -> None:
    """Mount the WS v2 endpoints."""
    from .public_ws import handle_public_ws

    app.router.add_get("/v2", handle_ws)
    app.router.add_get("/public/v2", handle_public_ws)
