"""Health, liveness, readiness and metrics routes.

- ``GET /v1/health``: the full picture (``health.health_body``); 200 when the service can trade (``ok`` or
  ``degraded``), 503 when it cannot (``unavailable``). It names the trading process itself (``pid 4242 on host-1
  since ...``, as its writer lock records it), the operator commands recorded but not yet carried out, and a batch
  the read models cannot apply.
- ``GET /v1/health/live``: 200 while the process answers (an orchestrator restarts it otherwise).
- ``GET /v1/health/ready``: 200 when it can do its job (trading roles: can trade; the api role: the store
  answers), else 503 with the reasons; take it out of rotation, do not restart it.
- ``GET /metrics``: Prometheus text exposition (``metrics.Metrics``).

The three health routes need no bearer token (probes carry none); ``/metrics`` does when a token is configured.
The roles without the API serve ``ROUTES`` alone on ``EXECLEDGER_OPS_PORT`` (``create_api(ctx, ROUTES)``).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from execledger.infrastructure.api.context import CTX, ApiContext
from execledger.infrastructure.api.jsonio import json_response
from execledger.infrastructure.api.ops_models import HealthResponse, LiveResponse, ReadyResponse
from execledger.infrastructure.api.routes import Route
from execledger.infrastructure.health import HealthMonitor, health_body, pending_commands
from execledger.infrastructure.metrics import Metrics


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
            pending=pending_commands(ctx.ledger.app, ctx.ledger.commands),
        )
    return ctx.health


def metrics_of(ctx: ApiContext) -> Metrics:
    if ctx.metrics is None:
        ctx.metrics = Metrics(pairs=ctx.pairs, health=monitor_of(ctx), order_counts=ctx.queries.order_counts)
    return ctx.metrics


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


ROUTES = [
    Route(
        "GET",
        "/v1/health",
        health,
        "The venue, the trading mode and the projection lag; 503 when the service cannot trade",
        responses={200: ("can trade (ok or degraded)", HealthResponse), 503: ("cannot trade", HealthResponse)},
        public=True,
        tags=("health",),
    ),
    Route(
        "GET",
        "/v1/health/live",
        live,
        "Liveness",
        responses={200: ("alive", LiveResponse)},
        public=True,
        tags=("health",),
    ),
    Route(
        "GET",
        "/v1/health/ready",
        ready,
        "Readiness: can this process do its job now",
        responses={200: ("ready", ReadyResponse), 503: ("not ready, and why", ReadyResponse)},
        public=True,
        tags=("health",),
    ),
    Route(
        "GET",
        "/metrics",
        metrics,
        "Prometheus metrics (text exposition format)",
        responses={200: ("text/plain; version=0.0.4", None)},
        tags=("health",),
    ),
]
