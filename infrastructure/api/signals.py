"""POST /v1/signals: an approved trade signal in, an order (or a field-by-field refusal) out.

The API process never writes orders: it validates the signal (422 naming each field, nothing recorded), answers a
repeat of an already recorded signal from the log (200, or 409 for the same id with other content), refuses new
entries while trading is not running (423), and otherwise records a ``submit_signal`` command and waits for the
trading process to place it: 201 with the new order, or the refusal the trading process recorded. The command's
id is the signal's next attempt (``signal_command_id``), so ``GET /v1/signals/{id}`` finds a signal still pending
or refused after a 202. Every refusal made here is logged once, one line (``log_signal_refused``); a refusal the
trading process records is logged by the trading process.
"""

from __future__ import annotations

import json

from aiohttp import web

from execledger.application.ledger import SignalConflict, entry_for_signal, entry_order_id
from execledger.domain.commands import CommandKind, Outcome, Refusal, signal_command_id
from execledger.domain.errors import SignalRejected
from execledger.domain.signal import TradeSignal, parse_signal, plan_entry
from execledger.infrastructure.api.commands import REFUSAL_STATUS, answer, issue_and_wait, receipt_body
from execledger.infrastructure.api.context import CTX
from execledger.infrastructure.api.jsonio import body_of, error_response, json_response
from execledger.infrastructure.api.models import CommandAnswer, ErrorBody, HaltedBody, SignalAccepted
from execledger.infrastructure.api.routes import Route
from execledger.infrastructure.eventlog import log_signal_refused


def _order_body(order, created: bool) -> dict:
    return {
        "order_id": str(order.id),
        "signal_id": order.signal_id,
        "status": order.status.value,
        "cl_ord_id": order.cl_ord_id,
        "created": created,
    }


def _refusal(status: int, message: str, signal_id: object, refusal: str, **fields: object) -> web.Response:
    """A signal refused at once (nothing recorded, so no trading process will log it): the answer, and its one
    log line with the signal id, the refusal kind and the reason."""
    log_signal_refused(signal_id, refusal, message, http_status=status)
    return error_response(status, message, **fields)


async def post_signal(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    body = body_of(request)
    if not isinstance(body, dict):
        return _refusal(
            422,
            "invalid signal",
            None,
            Refusal.INVALID.value,
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
        errors = [e.__dict__ for e in exc.errors]
        log_signal_refused(body.get("signal_id"), Refusal.INVALID.value, str(exc), http_status=422)
        return error_response(422, "invalid signal", errors=errors)
    except SignalConflict as exc:
        return _refusal(409, str(exc), body.get("signal_id"), Refusal.CONFLICT.value)
    if ctx.bus.trading_process() is None:
        message = "no trading process is running: the signal was not recorded"
        log_signal_refused(signal.signal_id, "no_trading_process", message, http_status=503)
        return json_response({"error": message}, 503, {"Retry-After": "5"})
    state = ctx.trading_state()
    if state.mode.value != "running":
        return _refusal(
            423,
            f"trading is {state.mode.value} (set by {state.by}: {state.why}); new entries are refused",
            signal.signal_id,
            Refusal.HALTED.value,
            mode=state.mode.value,
            by=state.by,
            why=state.why,
        )
    return await _record(request, signal)


async def _record(request: web.Request, signal: TradeSignal) -> web.Response:
    """Record the signal's command under the id of its next attempt (``signal_command_id``: found again by the
    signal's id, pending or refused) and answer with its receipt, or 202 while it has none."""
    ctx = request.app[CTX]
    latest = ctx.bus.latest_refusal(signal.signal_id)  # one indexed read, as the repeat check above
    refused = latest.originator_version if latest is not None else 0
    issued = await issue_and_wait(
        ctx,
        CommandKind.SUBMIT_SIGNAL,
        {"signal": signal.model_dump(mode="json", exclude_none=True)},
        by=str(request.get("principal", "api")),
        why=f"signal {signal.signal_id} posted to {request.path}",
        command_id=signal_command_id(signal.signal_id, refused),
    )
    if isinstance(issued, web.Response):
        if issued.status >= 400:  # not recorded (invalid text, a ledger never used, the id's other content)
            log_signal_refused(signal.signal_id, _refusal_kind(issued), issued.text or "", http_status=issued.status)
        return issued
    command, receipt, trading = issued
    if receipt is not None and receipt.outcome in (Outcome.APPLIED, Outcome.UNCHANGED):
        detail = receipt_body(command, receipt)
        created = bool(receipt.detail.get("created"))
        return json_response({**detail, "created": created}, 201 if created else 200)
    return answer(command, receipt, trading)


def _refusal_kind(response: web.Response) -> str:
    try:
        body = json.loads(response.text or "{}")
    except ValueError:
        body = {}
    if isinstance(body, dict) and body.get("refusal"):
        return str(body["refusal"])
    return Refusal.INVALID.value if response.status == 422 else str(response.status)


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
