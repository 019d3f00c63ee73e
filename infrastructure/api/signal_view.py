"""``GET /v1/signals/{signal_id}``: one signal, named by any of its ids (signal id, order id, txid, cl_ord_id).

A signal recorded as a command (a ``POST`` answered 202) that has no entry order answers what became of it: 202
``status: pending`` while the trading process has not carried the command out, 200 ``status: refused`` with the
refusal kind, reason and time once it refused it. 404 only for an id never seen.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from aiohttp import web

from execledger.application.audit import signal_timeline
from execledger.application.ledger import OrderNotFound, entry_order_id
from execledger.infrastructure.api.context import CTX, ApiContext
from execledger.infrastructure.api.jsonio import ApiError, error_response, json_response
from execledger.infrastructure.api.models import ErrorBody
from execledger.infrastructure.api.ops_models import AnySignalPath, SignalAnswer, SignalNotPlaced, SignalView
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


def not_placed_view(ctx: ApiContext, ident: str) -> dict | None:
    """A signal recorded as a command that has no entry order: pending or refused (``CommandBus.signal_trace``,
    keyed reads only), as ``SignalNotPlaced``; None for an id never recorded, or one whose entry exists."""
    if ctx.ledger.ledger.find(entry_order_id(ident)) is not None:
        return None
    trace = ctx.bus.signal_trace(ident)
    if trace is None:
        return None
    body = {k: v for k, v in asdict(trace).items() if v is not None}
    if trace.status == "pending":
        body["note"] = "recorded; the trading process has not carried it out yet"
    return SignalNotPlaced.model_validate(body).model_dump(mode="json", exclude_none=True)


def signal_or_trace(ctx: ApiContext, ident: str) -> tuple[int, dict]:
    """(200, SignalView) for a signal with an entry order; (200, refused) or (202, pending) for one recorded and
    not placed. Raises OrderNotFound for an id never seen."""
    found = not_placed_view(ctx, ident)
    if found is not None:
        return (202 if found["status"] == "pending" else 200), found
    return 200, signal_view(ctx, ident)


async def get_signal(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    ident = request.match_info["signal_id"]
    if not ident.strip() or len(ident) > 128:
        raise ApiError(400, "the id must be 1 to 128 characters", field="signal_id", rule="length")
    try:
        status, body = await asyncio.to_thread(signal_or_trace, ctx, ident)
    except OrderNotFound as exc:
        return error_response(404, str(exc))
    return json_response(body, status)


ROUTES = [
    Route(
        "GET",
        "/v1/signals/{signal_id}",
        get_signal,
        "One signal by any of its ids (signal id, order id, txid, cl_ord_id): outcome, orders, dated timeline",
        path_params=AnySignalPath,
        responses={
            200: ("the signal; or, for one recorded and refused, the refusal (status refused)", SignalAnswer),
            202: ("recorded and not yet carried out by the trading process (status pending)", SignalNotPlaced),
            400: ("an empty or overlong id", ErrorBody),
            404: ("no signal, order, txid or cl_ord_id by that name", ErrorBody),
        },
        tags=("reports",),
    ),
]
