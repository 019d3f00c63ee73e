"""``GET /v1/signals/{signal_id}``: one signal, named by any of its ids (signal id, order id, txid, cl_ord_id)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from execledger.application.audit import signal_timeline
from execledger.application.ledger import OrderNotFound
from execledger.infrastructure.api.context import CTX, ApiContext
from execledger.infrastructure.api.jsonio import ApiError, error_response, json_response
from execledger.infrastructure.api.models import ErrorBody
from execledger.infrastructure.api.ops_models import AnySignalPath, SignalView
from execledger.infrastructure.api.routes import Route
from execledger.infrastructure.present import order_brief
from execledger.infrastructure.readmodels.queries import ListFilter
from execledger.infrastructure.render import json_default, timeline_rows


def signal_view(ctx: ApiContext, ident: str) -> dict:
    """The body of the route (raises OrderNotFound)."""
    ledger = ctx.ledger.ledger
    entry, orders, timeline = signal_timeline(ledger, ident, ctx.queries.find_order_id)
    pairs = ctx.pairs
    page = ctx.queries.signal_summaries(ListFilter(signal_id=entry.signal_id, limit=1), pairs)
    rows = [{**r, "at": json_default(r["at"])} for r in timeline_rows(orders, timeline)]
    body = {
        "signal_id": entry.signal_id,
        "entry_order_id": str(entry.id),
        "summary": page.items[0] if page.items else None,
        "orders": [order_brief(o, pairs) for o in orders],
        "timeline": rows,
    }
    return SignalView.model_validate(body).model_dump(mode="json")


async def get_signal(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    ident = request.match_info["signal_id"]
    if not ident.strip() or len(ident) > 128:
        raise ApiError(400, "the id must be 1 to 128 characters", field="signal_id", rule="length")
    try:
        body = await asyncio.to_thread(signal_view, ctx, ident)
    except OrderNotFound as exc:
        return error_response(404, str(exc))
    return json_response(body)


ROUTES = [
    Route(
        "GET",
        "/v1/signals/{signal_id}",
        get_signal,
        "One signal by any of its ids (signal id, order id, txid, cl_ord_id): outcome, orders, dated timeline",
        path_params=AnySignalPath,
        responses={
            200: ("the signal", SignalView),
            400: ("an empty or overlong id", ErrorBody),
            404: ("no signal, order, txid or cl_ord_id by that name", ErrorBody),
        },
        tags=("reports",),
    ),
]
