"""Read routes: orders, execution reports, fills, one order with its history."""

from __future__ import annotations

from aiohttp import web

from execledger.application.audit import resolve_order
from execledger.application.ledger import OrderNotFound
from execledger.domain.errors import FieldError
from execledger.infrastructure.api.context import CTX
from execledger.infrastructure.api.jsonio import ApiError, error_response, json_response
from execledger.infrastructure.api.models import (
    ErrorBody,
    ExecutionReportPage,
    FillPage,
    OrderDetail,
    OrderPage,
)
from execledger.infrastructure.api.ops_models import AnyIdPath
from execledger.infrastructure.api.routes import Route
from execledger.infrastructure.readmodels.queries import BadQuery, ListFilter, parse_filter


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
    if not raw.strip() or len(raw) > 128:
        raise ApiError(400, "the id must be 1 to 128 characters", field="order_id", rule="length")
    try:  # any of: order id, txid, cl_ord_id, or a signal id (its entry)
        order = resolve_order(ctx.ledger.ledger, raw, ctx.queries.find_order_id)
        order_id = str(order.id)
        history = ctx.ledger.ledger.order_history(order_id)
    except OrderNotFound as exc:
        return error_response(404, str(exc))
    state = ctx.queries.order(order_id)
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


_PAGE_ERRORS = {400: ("invalid query: one error per parameter", ErrorBody)}
ROUTES = [
    Route(
        "GET",
        "/v1/orders",
        list_orders,
        "List orders (entries and bracket legs)",
        query=ListFilter,
        responses={200: ("a page of orders", OrderPage), **_PAGE_ERRORS},
        tags=("reports",),
    ),
    Route(
        "GET",
        "/v1/orders/{order_id}",
        get_order,
        "One order by any of its ids (order id, txid, cl_ord_id; a signal id names its entry): state and history",
        path_params=AnyIdPath,
        responses={
            200: ("the order", OrderDetail),
            400: ("an empty or overlong id", ErrorBody),
            404: ("no order by that name", ErrorBody),
        },
        tags=("reports",),
    ),
    Route(
        "GET",
        "/v1/execution-reports",
        list_reports,
        "List execution reports (one per order event)",
        query=ListFilter,
        responses={200: ("a page of execution reports", ExecutionReportPage), **_PAGE_ERRORS},
        tags=("reports",),
    ),
    Route(
        "GET",
        "/v1/fills",
        list_fills,
        "List fills",
        query=ListFilter,
        query_exclude=("status",),
        responses={200: ("a page of fills", FillPage), **_PAGE_ERRORS},
        tags=("reports",),
    ),
]
