"""POST /v1/signals: an approved trade signal in, an order (or a field-by-field refusal) out.

The API process never writes orders: it validates the signal (422 naming each field, nothing recorded), answers a
repeat of an already recorded signal from the log (200, or 409 for the same id with other content), refuses new
entries while trading is not running (423), and otherwise records a ``submit_signal`` command and waits for the
trading process to place it: 201 with the new order, or the refusal the trading process recorded.
"""

from __future__ import annotations

from aiohttp import web

from execledger.application.ledger import SignalConflict, entry_for_signal, entry_order_id
from execledger.domain.commands import CommandKind, Outcome
from execledger.domain.errors import SignalRejected
from execledger.domain.signal import TradeSignal, parse_signal, plan_entry
from execledger.infrastructure.api.commands import REFUSAL_STATUS, answer, issue_and_wait, receipt_body
from execledger.infrastructure.api.context import CTX
from execledger.infrastructure.api.jsonio import body_of, error_response, json_response
from execledger.infrastructure.api.models import CommandAnswer, ErrorBody, HaltedBody, SignalAccepted
from execledger.infrastructure.api.routes import Route


def _order_body(order, created: bool) -> dict:
    return {
        "order_id": str(order.id),
        "signal_id": order.signal_id,
        "status": order.status.value,
        "cl_ord_id": order.cl_ord_id,
        "created": created,
    }


async def post_signal(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    body = body_of(request)
    if not isinstance(body, dict):
        return error_response(
            422,
            "invalid signal",
            errors=[{"field": "signal", "rule": "object_required", "message": "the body must be a JSON object"}],
        )
    try:
        signal = parse_signal(body)
        existing = ctx.ledger.ledger.find(entry_order_id(signal.signal_id))
        if existing is not None:  # a repeat: answered from the log, even while halted; nothing recorded
            result = entry_for_signal(signal, ctx.pairs, existing)
            return json_response(_order_body(result.order, False), 200)
        plan_entry(signal, ctx.pairs)
    except SignalRejected as exc:
        return error_response(422, "invalid signal", errors=[e.__dict__ for e in exc.errors])
    except SignalConflict as exc:
        return error_response(409, str(exc))
    if ctx.bus.trading_process() is None:
        return json_response(
            {"error": "no trading process is running: the signal was not recorded"}, 503, {"Retry-After": "5"}
        )
    state = ctx.trading_state()
    if state.mode.value != "running":
        return error_response(
            423,
            f"trading is {state.mode.value} (set by {state.by}: {state.why}); new entries are refused",
            mode=state.mode.value,
            by=state.by,
            why=state.why,
        )
    issued = await issue_and_wait(
        ctx,
        CommandKind.SUBMIT_SIGNAL,
        {"signal": signal.model_dump(mode="json", exclude_none=True)},
        by=str(request.get("principal", "api")),
        why=f"signal {signal.signal_id} posted to {request.path}",
    )
    if isinstance(issued, web.Response):
        return issued
    command, receipt, trading = issued
    if receipt is not None and receipt.outcome in (Outcome.APPLIED, Outcome.UNCHANGED):
        detail = receipt_body(command, receipt)
        created = bool(receipt.detail.get("created"))
        return json_response({**detail, "created": created}, 201 if created else 200)
    return answer(command, receipt, trading)


ROUTES = [
    Route(
        "POST",
        "/v1/signals",
        post_signal,
        "Submit an approved trade signal (idempotent by signal_id)",
        body=TradeSignal,
        responses={
            **dict.fromkeys(set(REFUSAL_STATUS.values()), ("refused by the trading process", ErrorBody)),
            201: ("order created", SignalAccepted),
            200: ("the same signal again: nothing written", SignalAccepted),
            202: ("recorded; the trading process has not confirmed it yet", CommandAnswer),
            409: ("signal_id reused with other content", ErrorBody),
            422: ("invalid signal, one error per field", ErrorBody),
            423: ("trading halted or reducing: no new entries", HaltedBody),
        },
        tags=("signals",),
    )
]
