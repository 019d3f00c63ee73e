"""Operator commands over HTTP: halt, resume, cancel an order, close a signal's position, resolve an order.

Each route records a command in the log and answers with the trading process's receipt (see ``commands.py`` for
the status codes). Bodies are JSON objects; ``by`` (who) defaults to ``api`` and ``reason`` (why) is required.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from execledger.domain.commands import CommandKind
from execledger.infrastructure.api.commands import answer, issue_and_wait
from execledger.infrastructure.api.context import CTX
from execledger.infrastructure.api.jsonio import JSON_BODY, error_response


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    if JSON_BODY not in request:  # the guard read and parsed the body (guard.py); none was sent
        return {}
    body = request[JSON_BODY]
    if not isinstance(body, dict):
        return error_response(400, "the body must be a JSON object")
    return body


async def _command(
    request: web.Request, kind: CommandKind, fields: dict[str, str], path: dict[str, str] | None = None
) -> web.Response:
    """``fields`` maps a body field to the command's payload field; ``path`` adds values from the URL."""
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    unknown = sorted(set(body) - {"by", "reason", *fields})
    if unknown:
        return error_response(
            422,
            "invalid command",
            errors=[{"field": f, "rule": "extra_forbidden", "message": "unknown field"} for f in unknown],
        )
    payload = {fields[name]: value for name, value in body.items() if name in fields and value is not None}
    payload.update(path or {})
    by, why = body.get("by", "api"), body.get("reason", "")
    errors = [
        {"field": name, "rule": "string_type", "message": "must be text"}
        for name, value in (("by", by), ("reason", why))
        if not isinstance(value, str)
    ]
    if errors:
        return error_response(422, "invalid command", errors=errors)
    issued = await issue_and_wait(request.app[CTX], kind, payload, by=by, why=why)
    if isinstance(issued, web.Response):
        return issued
    return answer(*issued)


async def halt(request: web.Request) -> web.Response:
    return await _command(request, CommandKind.HALT, {"reducing": "reducing", "cancel_entries": "cancel_entries"})


async def resume(request: web.Request) -> web.Response:
    return await _command(request, CommandKind.RESUME, {})


async def cancel_order(request: web.Request) -> web.Response:
    return await _command(request, CommandKind.CANCEL_ORDER, {}, {"order": request.match_info["order_id"]})


async def resolve_order(request: web.Request) -> web.Response:
    return await _command(
        request,
        CommandKind.RESOLVE_ORDER,
        {"as": "resolution", "price": "price", "quantity": "quantity"},
        {"order": request.match_info["order_id"]},
    )


async def close_signal(request: web.Request) -> web.Response:
    return await _command(request, CommandKind.CLOSE_POSITION, {}, {"signal_id": request.match_info["signal_id"]})
