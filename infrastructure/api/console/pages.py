"""The console's routes: HTML pages rendered with Jinja2 from the read side, and the operator's buttons.

- ``GET /`` and ``GET /console`` -> ``/console/signals`` (DESIGN.md: "the web console at ``/``").
- ``GET /console/login``, ``POST /console/login`` ``{token, next?}``, ``POST /console/logout``: the session
  (``sessions.py``).
- ``GET /console/signals?status=&pair=&text=&offset=``: signals with their outcome
  (``ReportQueries.signal_summaries``; ``status`` is the entry's).
- ``GET /console/orders?status=&pair=&role=&text=&offset=``: orders, entries and legs (``ReportQueries.orders``).
- ``GET /console/signals/{id}``: one signal by any of its ids (``signal_view``): entry, legs, position, realised
  and unrealised PnL, the audit timeline with every reason, its fills against the price (``chart.py``).
- ``POST /console/act/trading/halt``, ``.../trading/resume``, ``/console/act/orders/{id}/cancel``,
  ``/console/act/signals/{id}/close``: the handlers of the ``/v1`` operator routes themselves (``trading.py``):
  the same body, the same command bus, the same receipt.
- ``GET /console/static/{name}``: the console's own CSS and script (no CDN, no build step).

Filters are the JSON API's (``ListFilter``): a bad one is shown on the page, naming the field, as the API's 400
would. Pages refresh their ``data-live`` parts in place every ``POLL_MS`` (``static/console.js``). The console's
routes are not in the OpenAPI document: they answer HTML, or are the documented ``/v1`` commands under the
console's session.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from uuid import UUID

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from execledger.application.ledger import OrderNotFound
from execledger.domain.order import OrderStatus
from execledger.domain.values import OrderRole, plain
from execledger.infrastructure.api import trading
from execledger.infrastructure.api.console.chart import Level, Point, fill_chart
from execledger.infrastructure.api.console.marks import MARKS, MarkPrices
from execledger.infrastructure.api.console.sessions import (
    COOKIE,
    SESSION,
    SESSIONS,
    ConsoleSessions,
    safe_next,
    sessions_of,
    set_cookie,
    token_matches,
)
from execledger.infrastructure.api.context import CTX, ApiContext
from execledger.infrastructure.api.health import monitor_of
from execledger.infrastructure.api.jsonio import JSON_BODY, error_response, json_response
from execledger.infrastructure.api.routes import Route
from execledger.infrastructure.api.signal_view import not_placed_view, signal_view
from execledger.infrastructure.health import health_body
from execledger.infrastructure.present import present_order
from execledger.infrastructure.readmodels.queries import BadQuery, ListFilter, Page, parse_filter
from execledger.infrastructure.render import when

HERE = Path(__file__).parent
STATIC = {
    "console.css": "text/css",
    "console.js": "text/javascript",
}
PAGE_SIZE = 50
POLL_MS = 1000
LIVE_STATUSES = frozenset(s.value for s in OrderStatus) - {"filled", "canceled", "expired", "rejected"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(("html",), default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["when"] = when
_env.filters["plain"] = plain


def install(app: web.Application, ctx: ApiContext) -> None:
    """What the console keeps per application: its sessions and the prices it saw (``create_api`` calls this)."""
    app[SESSIONS] = ConsoleSessions()
    app[MARKS] = MarkPrices(lambda: ctx.service)


async def _header(ctx: ApiContext) -> dict[str, Any]:
    """Trading mode, who set it and why, and the service's health (the same assessment as ``GET /v1/health``)."""
    snap, verdict = await asyncio.to_thread(monitor_of(ctx).assess)
    return health_body(snap, verdict)


VERSION_HEADER = "X-Console-Version"
HEALTH = web.RequestKey("console_health", dict)
VERSION = web.RequestKey("console_version", str)


async def _unchanged(request: web.Request, *extra: Any) -> bool:
    """Whether the page a poll asks for is the one it has (``X-Console-Version``): a page is a function of the read
    models' position, the trading state and the health verdict (and ``extra``), so a poll of an unchanged page is
    answered 204 without running its queries. Keeps the health for the page itself."""
    health = await _header(request.app[CTX])
    key = [health["projection_position"], health["trading"], health["status"], health["problems"], request.path_qs]
    version = hashlib.sha256(json.dumps([*key, *extra], default=str).encode()).hexdigest()[:20]
    request[HEALTH], request[VERSION] = health, version
    return request.headers.get(VERSION_HEADER) == version


async def _page(request: web.Request, template: str, title: str, status: int = 200, **values: Any) -> web.Response:
    ctx = request.app[CTX]
    found = request.get(SESSION)
    new = found is None  # only without a configured token (sessions.console_access): the page gives one
    session = sessions_of(request.app).create() if found is None else found
    body = _env.get_template(template).render(
        title=title,
        csrf=session.csrf,
        health=request[HEALTH] if HEALTH in request else await _header(ctx),
        version=request.get(VERSION, ""),
        path=request.path,
        logged_in=ctx.token is not None,
        poll_ms=POLL_MS,
        **values,
    )
    response = web.Response(text=body, status=status, content_type="text/html")
    if new:
        set_cookie(request, response, session)
    _secure(response)
    return response


def _secure(response: web.StreamResponse) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"


def _filter(request: web.Request, allowed: tuple[str, ...]) -> tuple[ListFilter, dict[str, str], list[dict]]:
    """The page's filters as the API parses them; blanks are 'any'. Returns the filter, the form's values, errors."""
    form = {k: request.query.get(k, "").strip() for k in allowed}
    params: dict[str, Any] = {k: v for k, v in form.items() if v}
    params["limit"] = PAGE_SIZE
    offset = request.query.get("offset", "0")
    params["offset"] = offset if offset.isdigit() else 0
    try:
        return parse_filter(params, request.app[CTX].pairs), form, []
    except BadQuery as exc:
        return ListFilter(limit=PAGE_SIZE, offset=0), form, [e.__dict__ for e in exc.errors]


def _paging(request: web.Request, page) -> dict[str, Any]:
    def link(offset: int | None) -> str | None:
        if offset is None:
            return None
        return str(request.rel_url.update_query(offset=str(offset)))

    prev = max(page.offset - page.limit, 0) if page.offset > 0 else None
    return {
        "total": page.total,
        "first": page.offset + 1 if page.items else 0,
        "last": page.offset + len(page.items),
        "prev": link(prev),
        "next": link(page.next_offset),
    }


async def index(request: web.Request) -> web.Response:
    return web.Response(status=303, headers={"Location": "/console/signals"})


async def login_page(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    if ctx.token is None or request.get(SESSION) is not None:
        return web.Response(status=303, headers={"Location": safe_next(request.query.get("next"))})
    body = _env.get_template("login.html").render(title="Log in", next=safe_next(request.query.get("next")))
    response = web.Response(text=body, content_type="text/html")
    _secure(response)
    return response


async def login(request: web.Request) -> web.Response:
    """``{token, next?}`` -> 200 ``{next}`` with a new session cookie; 401 for a wrong token (nothing set)."""
    body = request.get(JSON_BODY)
    if not isinstance(body, dict):
        return error_response(400, "send a JSON object {token}", errors=[{"field": "body", "rule": "object"}])
    if not token_matches(body.get("token"), request.app[CTX].token):
        return error_response(401, "wrong token", errors=[{"field": "token", "rule": "bearer_token"}])
    sessions = sessions_of(request.app)
    sessions.drop(request.cookies.get(COOKIE))  # a new id at every login: no session fixation
    session = sessions.create()
    response = json_response({"next": safe_next(body.get("next") if isinstance(body.get("next"), str) else None)})
    set_cookie(request, response, session)
    return response


async def logout(request: web.Request) -> web.Response:
    sessions_of(request.app).drop(request.cookies.get(COOKIE))
    response = json_response({"next": "/console/login"})
    response.del_cookie(COOKIE, path="/console")
    return response


async def signals_page(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    if await _unchanged(request):
        return web.Response(status=204)
    f, form, errors = _filter(request, ("status", "pair", "text"))
    page = await asyncio.to_thread(ctx.queries.signal_summaries, f, ctx.pairs) if not errors else Page([], 0, 1, 0)
    return await _page(
        request,
        "signals.html",
        "Signals",
        400 if errors else 200,
        rows=page.items,
        form=form,
        errors=errors,
        paging=_paging(request, page),
        statuses=[s.value for s in OrderStatus],
    )


async def orders_page(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    if await _unchanged(request):
        return web.Response(status=204)
    f, form, errors = _filter(request, ("status", "pair", "role", "text"))
    page = await asyncio.to_thread(ctx.queries.orders, f) if not errors else Page([], 0, 1, 0)  # nothing unfiltered
    return await _page(
        request,
        "orders.html",
        "Orders",
        400 if errors else 200,
        rows=[present_order(r, ctx.pairs) for r in page.items],
        form=form,
        errors=errors,
        paging=_paging(request, page),
        statuses=[s.value for s in OrderStatus],
        roles=[r.value for r in OrderRole],
        live=LIVE_STATUSES,
    )


def _dec(value: Any) -> Decimal | None:
    try:
        return None if value in (None, "") else Decimal(str(value))
    except InvalidOperation:
        return None


def unrealised(summary: dict[str, Any] | None, mark: Decimal | None) -> Decimal | None:
    """What the open position would realise at ``mark`` (quote currency, before exit fees): ``(mark - entry
    average) × position``, sign flipped for a sell entry; the same rule as the realised PnL of the read model."""
    if summary is None:
        return None
    position, entry = _dec(summary.get("position")), _dec(summary.get("entry_avg_px"))
    if position is None or position == 0:
        return Decimal(0)
    if mark is None or entry is None:
        return None
    sign = 1 if summary.get("side") == "buy" else -1
    return sign * (mark - entry) * position


_LEVEL_NAMES = {"entry": "limit", "stop_loss": "stop", "take_profit": "tp"}


def _levels(ctx: ApiContext, view: dict[str, Any]) -> list[Level]:
    """The entry's limit and its planned stop and take-profit (the entry's ``Placed``: a take-profit the ledger
    holds has no order), then the live legs' own triggers where they differ."""
    entry = ctx.ledger.ledger.get_order(UUID(view["entry_order_id"]))
    levels = [
        Level(_LEVEL_NAMES[role], price, role)
        for role, price in (
            ("entry", entry.limit_price),
            ("stop_loss", entry.sl_price),
            ("take_profit", entry.tp_price),
        )
        if price is not None
    ]
    for o in view["orders"]:
        price = o["trigger_px"] or o["limit_px"]
        if o["role"] != "entry" and price is not None and o["status"] in LIVE_STATUSES:
            levels.append(Level(_LEVEL_NAMES.get(o["role"], o["role"]), Decimal(price), o["role"]))
    return list(dict.fromkeys(levels))  # a leg at its plan's price is one line


def _when(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def signal_page(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    ident = request.match_info["signal_id"]
    if not ident.strip() or len(ident) > 128:
        return await _page(request, "missing.html", "Not found", 404, ident=ident[:128])
    marks = request.app[MARKS]
    # The log may be ahead of the read models, and the price moves: with a venue, a page at most every TTL.
    if await _unchanged(request, int(time.monotonic() // marks.ttl_s) if marks.available else None):
        return web.Response(status=204)
    trace = await asyncio.to_thread(not_placed_view, ctx, ident)  # recorded, no entry: pending or refused
    if trace is not None:
        return await _page(request, "notplaced.html", f"Signal {trace['signal_id']}", trace=trace)
    try:
        view = await asyncio.to_thread(signal_view, ctx, ident)
    except OrderNotFound:
        return await _page(request, "missing.html", "Not found", 404, ident=ident)
    fills_page = await asyncio.to_thread(ctx.queries.fills, ListFilter(signal_id=view["signal_id"], limit=1000))
    entry = next(o for o in view["orders"] if o["order_id"] == view["entry_order_id"])
    rules = ctx.pairs.find(entry["pair"] or "")
    tick = await marks.last(rules.key) if rules is not None else None
    summary = view["summary"]
    upnl = unrealised(summary, tick.price if tick else None)
    points = [
        Point(
            _when(f.get("executed_at") or f["recorded_at"]) or ctx.ledger.ledger.clock.now(),
            Decimal(f["price"]),
            f"{f['role']} {f['side']} {f['quantity']} @ {f['price']}",
            f["role"],
        )
        for f in fills_page.items
    ]
    levels = await asyncio.to_thread(_levels, ctx, view)
    start = min((p.at for p in points), default=None)
    prices = [Point(t.at, t.price, "price", "price") for t in (marks.history(rules.key) if rules else [])]
    if start is not None:
        prices = [p for p in prices if p.at >= start] or prices[-1:]
    chart = fill_chart(points, levels, prices, ctx.ledger.ledger.clock.now())  # the one clock
    return await _page(
        request,
        "signal.html",
        f"Signal {view['signal_id']}",
        view=view,
        summary=summary,
        mark=tick,
        marks_available=marks.available,
        unrealised=plain(round(upnl, 8)) if upnl is not None else None,
        chart=chart,
        live=LIVE_STATUSES,
    )


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        return error_response(404, "no such file")
    response = web.Response(body=(HERE / "static" / name).read_bytes(), content_type=STATIC[name])
    response.headers["Cache-Control"] = "no-cache"
    return response


def _page_route(path: str, handler, summary: str, public: bool = False) -> Route:
    return Route("GET", path, handler, summary, html=True, public=public, console=True, tags=("console",))


def _act(path: str, handler, summary: str) -> Route:
    return Route("POST", path, handler, summary, console=True, tags=("console",))


ROUTES = [
    _page_route("/", index, "The web console (DESIGN.md): to its signals", public=True),
    _page_route("/console", index, "The console: to the signals"),
    _page_route("/console/login", login_page, "Log in with the API token", public=True),
    Route("POST", "/console/login", login, "Log in: a session cookie", console=True, public=True),
    _act("/console/logout", logout, "Log out"),
    _page_route("/console/signals", signals_page, "Signals"),
    _page_route("/console/orders", orders_page, "Orders"),
    _page_route("/console/signals/{signal_id}", signal_page, "One signal"),
    _page_route("/console/static/{name}", static, "The console's CSS and script", public=True),
    _act("/console/act/trading/halt", trading.halt, "Halt (POST /v1/trading/halt)"),
    _act("/console/act/trading/resume", trading.resume, "Resume (POST /v1/trading/resume)"),
    _act("/console/act/orders/{order_id}/cancel", trading.cancel_order, "Cancel (POST /v1/orders/{id}/cancel)"),
    _act("/console/act/signals/{signal_id}/close", trading.close_signal, "Close (POST /v1/signals/{id}/close)"),
]
