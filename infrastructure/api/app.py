"""The HTTP API application: its context, the middleware every route passes, and the route table.

Reads come from the read models; POST /v1/signals writes through the engine. Bound to 127.0.0.1 by default; any
other bind requires a bearer token.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from execledger.application.ledger import LedgerError
from execledger.infrastructure.api import openapi, reports, signals, trading
from execledger.infrastructure.api.context import CTX, ApiContext
from execledger.infrastructure.api.jsonio import error_response
from execledger.infrastructure.net import is_loopback
from execledger.infrastructure.readmodels.queries import BadQuery


@web.middleware
async def _auth_and_errors(request: web.Request, handler):
    ctx = request.app[CTX]
    if ctx.token is not None and request.path != "/v1/health":
        supplied = request.headers.get("Authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {ctx.token}".encode()):
            return error_response(401, "missing or wrong bearer token")
    try:
        return await handler(request)
    except BadQuery as exc:
        return error_response(400, "invalid query", errors=[e.__dict__ for e in exc.errors])
    except web.HTTPException:
        raise
    except Exception as exc:
        request.app.logger.exception("unhandled error on %s", request.path)
        return error_response(500, f"internal error: {type(exc).__name__}")


def create_api(ctx: ApiContext) -> web.Application:
    app = web.Application(middlewares=[_auth_and_errors], client_max_size=64 * 1024)
    app[CTX] = ctx
    app.router.add_post("/v1/signals", signals.post_signal)
    app.router.add_get("/v1/orders", reports.list_orders)
    app.router.add_get("/v1/orders/{order_id}", reports.get_order)
    app.router.add_get("/v1/execution-reports", reports.list_reports)
    app.router.add_get("/v1/fills", reports.list_fills)
    app.router.add_get("/v1/health", reports.health)
    app.router.add_get("/v1/openapi.json", openapi.serve)
    app.router.add_post("/v1/trading/halt", trading.halt)
    app.router.add_post("/v1/trading/resume", trading.resume)
    app.router.add_post("/v1/orders/{order_id}/cancel", trading.cancel_order)
    app.router.add_post("/v1/orders/{order_id}/resolve", trading.resolve_order)
    app.router.add_post("/v1/signals/{signal_id}/close", trading.close_signal)
    return app


def require_token_for(host: str, token: str | None) -> str | None:
    """Loopback binds may go without a token; anything else must have one (refuse to start otherwise)."""
    if not is_loopback(host) and not token:
        raise LedgerError(f"binding the API to {host} requires EXECLEDGER_API_TOKEN (a bearer token)")
    return token
