"""The reporting and signal HTTP API (aiohttp, JSON). Reads come from the read models; POST /v1/signals writes
through the engine. Bound to 127.0.0.1 by default; any other bind requires a bearer token."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from aiohttp import web

from execledger.application.engine import ExecutionEngine
from execledger.application.ledger import LedgerError, OrderNotFound, SignalConflict
from execledger.domain.errors import FieldError, SignalRejected
from execledger.domain.trading_state import TradingHalted
from execledger.domain.values import plain
from execledger.infrastructure.readmodels.projector import ReadModelProjector
from execledger.infrastructure.readmodels.queries import BadQuery, ReportQueries, parse_filter
from execledger.infrastructure.net import is_loopback


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, set):
        return sorted(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, default=_default), status=status, content_type="application/json")


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return _json({"error": message, **extra}, status)


@dataclass
class ApiContext:
    engine: ExecutionEngine
    queries: ReportQueries
    projector: ReadModelProjector
    token: str | None = None
    on_signal: Callable[[], None] | None = None  # wakes the submission worker
    recovered: Callable[[], bool] | None = None  # trading role in this process: start-up reconciliation done?


CTX = web.AppKey("ctx", ApiContext)


@web.middleware
async def _auth_and_errors(request: web.Request, handler):
    ctx = request.app[CTX]
    if ctx.token is not None and request.path != "/v1/health":
        supplied = request.headers.get("Authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {ctx.token}".encode()):
            return _error(401, "missing or wrong bearer token")
    try:
        return await handler(request)
    except BadQuery as exc:
        return _error(400, "invalid query", errors=[e.__dict__ for e in exc.errors])
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - a clear 500 without internals; the log has the rest
        request.app.logger.exception("unhandled error on %s", request.path)
        return _error(500, f"internal error: {type(exc).__name__}")


def _page(page) -> dict:
    return {"items": page.items, "total": page.total, "limit": page.limit, "offset": page.offset,
            "next_offset": page.next_offset}


async def post_signal(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "the body must be a JSON object")
    if not isinstance(body, dict):
        return _error(422, "invalid signal", errors=[{"field": "signal", "rule": "object_required",
                                                       "message": "the body must be a JSON object"}])
    try:
        result = ctx.engine.submit_signal(body)
    except SignalRejected as exc:
        return _error(422, "invalid signal", errors=[e.__dict__ for e in exc.errors])
    except TradingHalted as exc:
        return _error(423, str(exc), mode=exc.mode.value, by=exc.by, why=exc.why)
    except SignalConflict as exc:
        return _error(409, str(exc))
    if result.created and ctx.on_signal:
        ctx.on_signal()
    order = result.order
    return _json({"order_id": str(order.id), "signal_id": order.signal_id, "status": order.status.value,
                  "cl_ord_id": order.cl_ord_id, "created": result.created}, 201 if result.created else 200)


async def list_orders(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    return _json(_page(ctx.queries.orders(parse_filter(dict(request.query), ctx.engine.pairs))))


async def list_reports(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    return _json(_page(ctx.queries.execution_reports(parse_filter(dict(request.query), ctx.engine.pairs))))


async def list_fills(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    query = dict(request.query)
    if "status" in query:
        raise BadQuery([FieldError("status", "not_a_fill_filter", "fills have no status")])
    return _json(_page(ctx.queries.fills(parse_filter(query, ctx.engine.pairs))))


async def get_order(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    raw = request.match_info["order_id"]
    try:
        order_id = str(UUID(raw))
    except ValueError:
        return _error(400, f"{raw!r} is not an order id (a UUID)")
    state = ctx.queries.order(order_id)
    try:
        history = ctx.engine.ledger.order_history(order_id)
    except OrderNotFound:
        return _error(404, f"no order {order_id}")
    return _json({"order": state, "projected": state is not None,
                  "history": [{"version": h.version, "event": h.name, "kind": h.kind.value,
                               "timestamp": h.timestamp, "data": h.data} for h in history]})


async def health(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    lag = ctx.projector.lag()
    trading = ctx.engine.trading
    body = {"status": "ok", "projection_lag": lag, "projection_position": ctx.projector.position(),
            "trading": {"mode": trading.mode.value, "by": trading.by, "why": trading.why}}
    if ctx.recovered is not None:
        body["trading"]["recovered"] = ctx.recovered()
    return _json(body)


async def openapi(request: web.Request) -> web.Response:
    return _json(OPENAPI)


def create_api(ctx: ApiContext) -> web.Application:
    app = web.Application(middlewares=[_auth_and_errors], client_max_size=64 * 1024)
    app[CTX] = ctx
    app.router.add_post("/v1/signals", post_signal)
    app.router.add_get("/v1/orders", list_orders)
    app.router.add_get("/v1/orders/{order_id}", get_order)
    app.router.add_get("/v1/execution-reports", list_reports)
    app.router.add_get("/v1/fills", list_fills)
    app.router.add_get("/v1/health", health)
    app.router.add_get("/v1/openapi.json", openapi)
    return app


def require_token_for(host: str, token: str | None) -> str | None:
    """Loopback binds may go without a token; anything else must have one (refuse to start otherwise)."""
    if not is_loopback(host) and not token:
        raise LedgerError(f"binding the API to {host} requires EXECLEDGER_API_TOKEN (a bearer token)")
    return token


_FILTERS = [
    {"name": n, "in": "query", "required": False, "schema": s} for n, s in [
        ("signal_id", {"type": "string"}), ("pair", {"type": "string", "example": "XBT/USD"}),
        ("status", {"type": "string", "enum": ["pending_submit", "submitting", "outcome_unknown", "open",
                                               "partially_filled", "cancel_pending", "filled", "canceled",
                                               "expired", "rejected"]}),
        ("since", {"type": "string", "format": "date-time"}), ("until", {"type": "string", "format": "date-time"}),
        ("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
        ("offset", {"type": "integer", "minimum": 0, "default": 0}),
    ]
]
_PAGE = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object"}},
                                          "total": {"type": "integer"}, "limit": {"type": "integer"},
                                          "offset": {"type": "integer"}, "next_offset": {"type": ["integer", "null"]}}}
_ERR = {"type": "object", "properties": {"error": {"type": "string"}, "errors": {"type": "array"}}}
_SIGNAL = {
    "type": "object", "required": ["signal_id", "pair", "side", "order_type", "quantity"], "additionalProperties": False,
    "properties": {
        "signal_id": {"type": "string", "pattern": "^[A-Za-z0-9_.:\\-]{1,64}$"},
        "pair": {"type": "string", "example": "XBT/USD"}, "side": {"enum": ["buy", "sell"]},
        "order_type": {"enum": ["market", "limit"]}, "quantity": {"type": "string", "example": "0.01"},
        "limit_price": {"type": "string"}, "sl_price": {"type": "string"}, "tp_price": {"type": "string"},
        "timeout_s": {"type": "number", "exclusiveMinimum": 0}, "tags": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def _resp(desc: str, schema: dict | None = None) -> dict:
    return {"description": desc, **({"content": {"application/json": {"schema": schema}}} if schema else {})}


OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "execledger", "version": "1", "description": "Reports from the read models; signals in."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "security": [{"bearer": []}],
    "paths": {
        "/v1/signals": {"post": {
            "summary": "Submit an approved trade signal (idempotent by signal_id)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _SIGNAL}}},
            "responses": {"201": _resp("order created"), "200": _resp("the same signal again: nothing written"),
                          "400": _resp("body is not JSON", _ERR), "409": _resp("signal_id reused with other content", _ERR),
                          "422": _resp("invalid signal, one error per field", _ERR), "423": _resp("trading halted", _ERR)}}},
        "/v1/orders": {"get": {"summary": "List orders", "parameters": _FILTERS,
                               "responses": {"200": _resp("a page", _PAGE), "400": _resp("invalid query", _ERR)}}},
        "/v1/orders/{order_id}": {"get": {
            "summary": "One order: projected state and full event history",
            "parameters": [{"name": "order_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}],
            "responses": {"200": _resp("the order"), "400": _resp("not a UUID", _ERR), "404": _resp("no such order", _ERR)}}},
        "/v1/execution-reports": {"get": {"summary": "List execution reports", "parameters": _FILTERS,
                                          "responses": {"200": _resp("a page", _PAGE), "400": _resp("invalid query", _ERR)}}},
        "/v1/fills": {"get": {"summary": "List fills", "parameters": [p for p in _FILTERS if p["name"] != "status"],
                              "responses": {"200": _resp("a page", _PAGE), "400": _resp("invalid query", _ERR)}}},
        "/v1/health": {"get": {"summary": "Liveness, projection lag and trading mode", "security": [],
                               "responses": {"200": _resp("ok")}}},
        "/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": _resp("OpenAPI 3.1")}}},
    },
}
