"""Issuing a command over HTTP: record it, wait (bounded) for the trading process's receipt, answer with it.

Outcome -> status: applied or unchanged 200; refused: invalid 422, conflict 409, halted 423, not found 404, not
allowed 409, stale 409, busy 503 (with Retry-After). When no trading process runs, the command is still recorded
(it is carried out when one starts) and the answer is 202 saying so; when one runs but has not answered within
the wait, 202 with the command id. While none runs, what the trading process would refuse only at its start is
refused at once and nothing is recorded: a ledger no trading process has ever run on (409, ``refusal:
no_ledger``, naming the setting and where it points), an order or signal that is not in the ledger (404) and
an order a cancel or resolve names that has already ended (409, ``refusal: not_allowed``).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web
from eventsourcing.persistence import IntegrityError

from execledger.domain.commands import Command, CommandKind, CommandReceipt, InvalidCommand, Outcome, Refusal
from execledger.infrastructure.api.context import ApiContext
from execledger.infrastructure.api.jsonio import error_response, json_response
from execledger.infrastructure.commandbus import LedgerUnused, TargetNotAllowed, TargetNotFound

# How the command's fields are spelled in the request body.
BODY_FIELDS = {"why": "reason", "resolution": "as"}

REFUSAL_STATUS = {
    Refusal.INVALID: 422,
    Refusal.CONFLICT: 409,
    Refusal.HALTED: 423,
    Refusal.NOT_FOUND: 404,
    Refusal.NOT_ALLOWED: 409,
    Refusal.STALE: 409,
    Refusal.BUSY: 503,
}


def receipt_body(command: Command, receipt: CommandReceipt) -> dict[str, Any]:
    return {
        "command_id": str(command.id),
        "command": command.kind.value,
        "outcome": receipt.outcome.value,
        "applied_by": receipt.process,
        **receipt.detail,
    }


def answer(command: Command, receipt: CommandReceipt | None, trading: str | None) -> web.Response:
    """The HTTP answer to one issued command, from its receipt (or its absence)."""
    if receipt is None:
        note = (
            "no trading process is running: the command is recorded and takes effect when one starts"
            if trading is None
            else f"recorded; the trading process ({trading}) has not confirmed it yet"
        )
        return json_response(
            {"command_id": str(command.id), "command": command.kind.value, "status": "recorded", "note": note}, 202
        )
    body = receipt_body(command, receipt)
    if receipt.outcome is Outcome.REFUSED:
        refusal = receipt.refusal or Refusal.INVALID
        status = REFUSAL_STATUS[refusal]
        headers = {"Retry-After": "1"} if refusal is Refusal.BUSY else None
        return json_response({"error": receipt.detail.get("message", refusal.value), **body}, status, headers)
    return json_response(body, 200)


async def issue_and_wait(
    ctx: ApiContext,
    kind: CommandKind,
    payload: dict[str, Any],
    *,
    by: str,
    why: str,
    command_id: UUID | None = None,
) -> tuple[Command, CommandReceipt | None, str | None] | web.Response:
    """Record the command and wait for its receipt; a command that cannot be recorded is a 422 naming the field.
    A ``command_id`` already recorded (a signal's attempt posted twice at once) is waited for as it is when it
    holds the same payload, and a 409 when it holds another."""
    try:
        command = ctx.bus.issue(kind, payload, by=by, why=why, command_id=command_id)
    except IntegrityError:
        existing = ctx.bus.find_command(command_id) if command_id is not None else None
        if existing is None or existing.payload != payload:
            return error_response(409, "signal_id reused with other content", refusal=Refusal.CONFLICT.value)
        command = existing
    except InvalidCommand as exc:
        if kind is CommandKind.SUBMIT_SIGNAL:  # the body is the signal: name its fields as the signal's own errors do
            errors = [{**e.__dict__, "field": e.field.removeprefix("signal.")} for e in exc.errors]
            return error_response(422, "invalid signal", errors=errors)
        errors = [{**e.__dict__, "field": BODY_FIELDS.get(e.field, e.field)} for e in exc.errors]
        return error_response(422, "invalid command", errors=errors)
    except LedgerUnused as exc:
        return error_response(409, str(exc), refusal="no_ledger", setting=exc.setting)
    except TargetNotFound as exc:
        return error_response(404, str(exc), refusal=Refusal.NOT_FOUND.value)
    except TargetNotAllowed as exc:
        return error_response(409, str(exc), refusal=Refusal.NOT_ALLOWED.value)
    trading = ctx.bus.trading_process()
    receipt = await ctx.bus.receipt(command.id, ctx.receipt_timeout_s if trading is not None else 0)
    return command, receipt, trading
