"""Response models of the operator routes (health, readiness, liveness, one signal), for validation and for the
OpenAPI document (each route's 200 body is ``Model.model_json_schema()``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamHealth(_Model):
    connected: bool | None
    last_message_age_s: float | None


class DeadmanHealth(_Model):
    armed: bool
    expires_at: str | None
    expires_in_s: float | None


class ReconciliationHealth(_Model):
    at: str | None
    age_s: float | None


class VenueHealthBody(_Model):
    breaker: Literal["closed", "half_open", "open"]
    stream: StreamHealth
    deadman: DeadmanHealth
    last_reconciliation: ReconciliationHealth


class TradingHealth(_Model):
    mode: str
    by: str
    why: str
    recovered: bool | None
    process: str | None


class HealthResponse(_Model):
    """``GET /v1/health``: 200 when the service can trade (ok, degraded), 503 when it cannot (unavailable)."""

    status: Literal["ok", "degraded", "unavailable"]
    can_trade: bool
    problems: list[str]
    warnings: list[str]
    role: str
    at: str
    trading: TradingHealth
    venue: VenueHealthBody | None
    projection_lag: int | None
    projection_position: int | None


class ReadyResponse(_Model):
    ready: bool
    status: str | None = None
    problems: list[str]


class LiveResponse(_Model):
    status: Literal["alive"]


class OrderBrief(_Model):
    order_id: str
    signal_id: str
    role: str
    pair: str | None
    side: str
    type: str
    qty: str
    limit_px: str | None
    trigger_px: str | None
    status: str
    filled_qty: str
    leaves_qty: str
    avg_px: str | None
    fees: str
    txid: str | None
    client_order_id: str
    version: int


class TimelineItem(_Model):
    at: str
    order_id: str
    role: str
    version: int
    event: str
    kind: Literal["decision", "outcome", "fact"]
    rule: str | None
    details: str


class SignalSummary(_Model):
    signal_id: str
    pair: str | None
    quote: str | None
    side: str | None
    state: Literal["working", "open", "closed", "not_filled"]
    exit_reason: str | None
    entry_status: str | None
    opened_at: str | None
    closed_at: str | None
    entry_qty: str | None
    entry_avg_px: str | None
    exit_qty: str | None
    exit_avg_px: str | None
    position: str | None
    realised_pnl: str | None
    fees: str | None
    net_pnl: str | None
    legs: int | None
    open_legs: int | None


class SignalView(_Model):
    """``GET /v1/signals/{id}`` (any of signal id, order id, txid, cl_ord_id): the signal's outcome from the read
    models (null until projected), its orders and its dated timeline from the log."""

    signal_id: str
    entry_order_id: str
    summary: SignalSummary | None
    orders: list[OrderBrief]
    timeline: list[TimelineItem]


OPS_RESPONSE_MODELS = {
    ("GET", "/v1/health"): HealthResponse,
    ("GET", "/v1/health/ready"): ReadyResponse,
    ("GET", "/v1/health/live"): LiveResponse,
    ("GET", "/v1/signals/{signal_id}"): SignalView,
}


def ops_openapi() -> tuple[dict, dict]:
    """The OpenAPI 3.1 ``paths`` of the operator routes and the ``components.schemas`` they refer to, generated
    from the models above (``/metrics`` is Prometheus text, not JSON)."""
    from pydantic.json_schema import models_json_schema

    models = [HealthResponse, ReadyResponse, LiveResponse, SignalView]
    _, top = models_json_schema([(m, "serialization") for m in models], ref_template="#/components/schemas/{model}")
    schemas = top.get("$defs", {})

    def ok(model: type[BaseModel], desc: str) -> dict:
        ref = {"$ref": f"#/components/schemas/{model.__name__}"}
        return {"description": desc, "content": {"application/json": {"schema": ref}}}

    err = {"description": "refused", "content": {"application/json": {"schema": {"type": "object"}}}}
    any_id = {
        "name": "signal_id",
        "in": "path",
        "required": True,
        "description": "a signal id, order id, Kraken txid or cl_ord_id",
        "schema": {"type": "string", "maxLength": 128},
    }
    paths = {
        "/v1/health": {
            "get": {
                "summary": "The venue, the trading mode and the projection lag; 503 when the service cannot trade",
                "security": [],
                "responses": {"200": ok(HealthResponse, "can trade"), "503": ok(HealthResponse, "cannot trade")},
            }
        },
        "/v1/health/live": {
            "get": {"summary": "Liveness", "security": [], "responses": {"200": ok(LiveResponse, "alive")}}
        },
        "/v1/health/ready": {
            "get": {
                "summary": "Readiness: can this process do its job now",
                "security": [],
                "responses": {"200": ok(ReadyResponse, "ready"), "503": ok(ReadyResponse, "not ready")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "text exposition", "content": {"text/plain": {}}}},
            }
        },
        "/v1/signals/{signal_id}": {
            "get": {
                "summary": "One signal by any of its ids: outcome, orders and dated timeline",
                "parameters": [any_id],
                "responses": {"200": ok(SignalView, "the signal"), "400": err, "404": err},
            }
        },
    }
    return paths, schemas
