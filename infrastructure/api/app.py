"""The HTTP API application: the route table (every module's declared ``ROUTES``), the guard middleware every
route passes, and the OpenAPI document built from the same declarations.

Reads come from the read models; POST /v1/signals writes through the engine. Bound to 127.0.0.1 by default; any
other bind requires a bearer token (``preflight.check_api_bind`` refuses to start without one).
"""

from __future__ import annotations

from aiohttp import web

from execledger.application.ledger import LedgerError
from execledger.infrastructure.api import health, openapi, reports, signal_view, signals, trading
from execledger.infrastructure.api.commands import REFUSAL_STATUS
from execledger.infrastructure.api.console import pages as console
from execledger.infrastructure.api.context import CTX, ApiContext
from execledger.infrastructure.api.guard import ROUTE_INFO, guard
from execledger.infrastructure.api.jsonio import MAX_BODY_BYTES
from execledger.infrastructure.api.models import (
    CommandAnswer,
    CommandBody,
    ErrorBody,
    OpenApiDocument,
    OrderPath,
    SignalPath,
)
from execledger.infrastructure.api.routes import Answer, Route
from execledger.infrastructure.net import is_loopback

# A new group of routes: a module with ``ROUTES = [Route(...)]``, listed here. Nothing else to register.
ROUTE_MODULES = (signals, reports, signal_view, health)

_COMMAND_ANSWERS: dict[int, Answer] = {
    **dict.fromkeys(set(REFUSAL_STATUS.values()), ("refused: the receipt says why", ErrorBody)),
    200: ("carried out: the command's receipt", CommandAnswer),
    202: ("recorded; the trading process has not confirmed it yet", CommandAnswer),
    422: ("invalid command, one error per field", ErrorBody),
}


def _command(path: str, handler, summary: str, path_params=None) -> Route:
    return Route(
        "POST",
        path,
        handler,
        summary,
        path_params=path_params,
        body=CommandBody,
        responses=_COMMAND_ANSWERS,
        tags=("operator",),
    )


# Operator commands through the log (trading.py); declared here so the module keeps only its handlers.
COMMAND_ROUTES = [
    _command("/v1/trading/halt", trading.halt, "Halt (or reduce) trading"),
    _command("/v1/trading/resume", trading.resume, "Resume trading"),
    _command("/v1/orders/{order_id}/cancel", trading.cancel_order, "Cancel one order", OrderPath),
    _command("/v1/orders/{order_id}/resolve", trading.resolve_order, "Resolve an order by hand", OrderPath),
    _command("/v1/signals/{signal_id}/close", trading.close_signal, "Close a signal's position", SignalPath),
]

META_ROUTES = [
    Route(
        "GET",
        "/v1/openapi.json",
        openapi.serve,
        "This document (OpenAPI 3.1)",
        responses={200: ("the OpenAPI document", OpenApiDocument)},
        public=True,
        tags=("meta",),
    ),
    Route(
        "GET",
        "/v1/docs",
        openapi.docs,
        "This document as an HTML page",
        responses={200: ("HTML", None)},
        public=True,
        html=True,
        tags=("meta",),
    ),
]


def all_routes() -> list[Route]:
    return [route for module in ROUTE_MODULES for route in module.ROUTES] + COMMAND_ROUTES + META_ROUTES


def create_api(ctx: ApiContext, routes: list[Route] | None = None) -> web.Application:
    """The aiohttp application serving ``routes`` (default: every declared route and the web console) behind the
    guard. The console's routes (``console/pages.py``) are HTML or the documented commands under its session: they
    are not in the OpenAPI document."""
    routes = all_routes() + console.ROUTES if routes is None else routes
    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY_BYTES)
    app[CTX] = ctx
    app[openapi.DOCUMENT] = openapi.build_document([r for r in routes if not r.console])
    if any(r.console for r in routes):
        console.install(app, ctx)
    info = {}
    for route in routes:
        info[app.router.add_route(route.method, route.path, route.handler)] = route
    app[ROUTE_INFO] = info
    return app


OPENAPI = openapi.build_document(all_routes())


def require_token_for(host: str, token: str | None) -> str | None:
    """Loopback binds may go without a token; anything else must have one (refuse to start otherwise)."""
    if not is_loopback(host) and not token:
        raise LedgerError(f"binding the API to {host} requires EXECLEDGER_API_TOKEN (a bearer token)")
    return token
