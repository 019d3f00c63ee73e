"""POST /v1/signals: an approved trade signal in, an order (or a field-by-field refusal) out."""

from __future__ import annotations

import json

from aiohttp import web

from execledger.application.ledger import SignalConflict
from execledger.domain.errors import SignalRejected
from execledger.domain.trading_state import TradingHalted
from execledger.infrastructure.api.context import CTX
from execledger.infrastructure.api.jsonio import error_response, json_response


async def post_signal(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error_response(400, "the body must be a JSON object")
    if not isinstance(body, dict):
        return error_response(
            422,
            "invalid signal",
            errors=[{"field": "signal", "rule": "object_required", "message": "the body must be a JSON object"}],
        )
    try:
        result = ctx.engine.submit_signal(body)
    except SignalRejected as exc:
        return error_response(422, "invalid signal", errors=[e.__dict__ for e in exc.errors])
    except TradingHalted as exc:
        return error_response(423, str(exc), mode=exc.mode.value, by=exc.by, why=exc.why)
    except SignalConflict as exc:
        return error_response(409, str(exc))
    if result.created and ctx.on_signal:
        ctx.on_signal()
    order = result.order
    return json_response(
        {
            "order_id": str(order.id),
            "signal_id": order.signal_id,
            "status": order.status.value,
            "cl_ord_id": order.cl_ord_id,
            "created": result.created,
        },
        201 if result.created else 200,
    )
