"""Read routes: orders, execution reports, fills, one order with its history, and health."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from execledger.application.ledger import OrderNotFound
from execledger.domain.errors import FieldError
from execledger.infrastructure.api.context import CTX
from execledger.infrastructure.api.jsonio import error_response, json_response
from execledger.infrastructure.readmodels.queries import BadQuery, parse_filter


def _page(page) -> dict:
    return {
        "items": page.items,
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
        "next_offset": page.next_offset,
    }


async def list_orders(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    return json_response(_page(ctx.queries.orders(parse_filter(dict(request.query), ctx.pairs))))


async def list_reports(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    return json_response(_page(ctx.queries.execution_reports(parse_filter(dict(request.query), ctx.pairs))))


async def list_fills(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    query = dict(request.query)
    if "status" in query:
        raise BadQuery([FieldError("status", "not_a_fill_filter", "fills have no status")])
    return json_response(_page(ctx.queries.fills(parse_filter(query, ctx.pairs))))


async def get_order(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    raw = request.match_info["order_id"]
    try:
        order_id = str(UUID(raw))
    except ValueError:
        return error_response(400, f"{raw!r} is not an order id (a UUID)")
    state = ctx.queries.order(order_id)
    try:
        history = ctx.ledger.ledger.order_history(order_id)
    except OrderNotFound:
        return error_response(404, f"no order {order_id}")
    return json_response(
        {
            "order": state,
            "projected": state is not None,
            "history": [
                {"version": h.version, "event": h.name, "kind": h.kind.value, "timestamp": h.timestamp, "data": h.data}
                for h in history
            ],
        }
    )


async def health(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    lag = ctx.projector.lag()
    trading = ctx.trading_state()
    body = {
        "status": "ok",
        "projection_lag": lag,
        "projection_position": ctx.projector.position(),
        "trading": {
            "mode": trading.mode.value,
            "by": trading.by,
            "why": trading.why,
            "process": ctx.bus.trading_process(),
        },
    }
    if ctx.service is not None:
        body["trading"]["recovered"] = ctx.service.recovered.is_set()
    return json_response(body)
