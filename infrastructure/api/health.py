"""Health, liveness, readiness and metrics routes.

- ``GET /v1/health``: the full picture (``health.health_body``); 200 when the service can trade (``ok`` or
  ``degraded``), 503 when it cannot (``unavailable``).
- ``GET /v1/health/live``: 200 while the process answers (an orchestrator restarts it otherwise).
- ``GET /v1/health/ready``: 200 when it can do its job (trading roles: can trade; the api role: the store
  answers), else 503 with the reasons; take it out of rotation, do not restart it.
- ``GET /metrics``: Prometheus text exposition (``metrics.Metrics``).

The three health routes need no bearer token (probes carry none); ``/metrics`` does when a token is configured.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from execledger.infrastructure.api.context import CTX, ApiContext
from execledger.infrastructure.api.jsonio import json_response
from execledger.infrastructure.health import HealthMonitor, health_body
from execledger.infrastructure.metrics import Metrics

PUBLIC_PATHS = frozenset({"/v1/health", "/v1/health/live", "/v1/health/ready"})


def monitor_of(ctx: ApiContext) -> HealthMonitor:
    """The process's monitor; without one (no trading role here) a store-only view: mode, recovery, lag."""
    if ctx.health is None:
        ctx.health = HealthMonitor(
            role="api" if ctx.service is None else "all",
            trading_state=ctx.trading_state,
            projection=ctx.projector,
            service=ctx.service,
            trades=ctx.service is not None,
            process=ctx.bus.trading_process if ctx.bus is not None else None,
        )
    return ctx.health


def metrics_of(ctx: ApiContext) -> Metrics:
    if ctx.metrics is None:
        ctx.metrics = Metrics(pairs=ctx.pairs, health=monitor_of(ctx), order_counts=ctx.queries.order_counts)
    return ctx.metrics


def create_ops_app(ctx: ApiContext) -> web.Application:
    """Only the probes and the metrics, for a process that serves no API (the trading or projections role).
    ``/metrics`` asks for the bearer token when one is configured; the health routes never do."""
    import hmac

    @web.middleware
    async def token(request: web.Request, handler):
        if ctx.token is not None and request.path not in PUBLIC_PATHS:
            supplied = request.headers.get("Authorization", "")
            if not hmac.compare_digest(supplied.encode(), f"Bearer {ctx.token}".encode()):
                return json_response({"error": "missing or wrong bearer token"}, 401)
        return await handler(request)

    app = web.Application(middlewares=[token])
    app[CTX] = ctx
    app.router.add_get("/v1/health", health)
    app.router.add_get("/v1/health/live", live)
    app.router.add_get("/v1/health/ready", ready)
    app.router.add_get("/metrics", metrics)
    return app


async def health(request: web.Request) -> web.Response:
    monitor = monitor_of(request.app[CTX])
    snap, verdict = await asyncio.to_thread(monitor.assess)  # reads the store: keep the event loop free
    return json_response(health_body(snap, verdict), verdict.http_status)


async def live(request: web.Request) -> web.Response:
    return json_response({"status": "alive"})


async def ready(request: web.Request) -> web.Response:
    monitor = monitor_of(request.app[CTX])
    try:
        _snap, verdict = await asyncio.to_thread(monitor.assess)
    except Exception as exc:  # the store does not answer: not ready, and say why
        return json_response({"ready": False, "problems": [f"store unavailable: {type(exc).__name__}"]}, 503)
    body = {"ready": verdict.can_trade, "status": verdict.status, "problems": verdict.problems}
    return json_response(body, 200 if verdict.can_trade else 503)


async def metrics(request: web.Request) -> web.Response:
    body, content_type = await asyncio.to_thread(metrics_of(request.app[CTX]).render)
    return web.Response(body=body, headers={"Content-Type": content_type})
