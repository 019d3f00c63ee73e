"""Models of the operator routes (health, readiness, liveness, one signal by any id): declared with each route
(``routes.Route``), so the OpenAPI document describes what the handlers send; the tests validate real answers
against them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


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


class PendingCommand(_Model):
    command_id: str
    kind: str | None
    by: str | None
    age_s: float | None


class PendingCommandsBody(_Model):
    """Operator commands recorded but not yet carried out (counted up to 1000), and the oldest of them."""

    count: int
    oldest: PendingCommand | None


class TradingHealth(_Model):
    mode: str
    by: str
    why: str
    recovered: bool | None
    process: str | None = Field(description="the trading process holding the writer lock: pid, host, since")
    pending_commands: PendingCommandsBody | None = None
    failure: str | None = Field(
        default=None, description="a worker of the trading service failed: its error (the process then exits)"
    )


class ProjectionFailureBody(_Model):
    """The batch the read models cannot apply: they stopped at ``position``."""

    position: int
    error: str
    failed_at: str | None
    attempts: int


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
    projection_failure: ProjectionFailureBody | None = None


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


class AnyIdPath(BaseModel):
    """A path segment naming an order or a signal by any of its ids: signal id, order id (UUID), Kraken txid or
    cl_ord_id."""

    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(min_length=1, max_length=128)


class AnySignalPath(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal_id: str = Field(min_length=1, max_length=128, description="signal id, order id, txid or cl_ord_id")


class SignalView(_Model):
    """``GET /v1/signals/{id}`` (any of signal id, order id, txid, cl_ord_id): the signal's outcome from the read
    models (null until projected), its orders and its dated timeline from the log."""

    status: Literal["placed"] = "placed"  # the signal has an entry order (SignalNotPlaced: it has none)
    signal_id: str
    entry_order_id: str
    summary: SignalSummary | None
    orders: list[OrderBrief]
    timeline: list[TimelineItem]


class SignalNotPlaced(_Model):
    """``GET /v1/signals/{id}`` for a signal recorded as a command (a POST answered 202) that has no entry order:
    ``pending`` (202: the trading process has not carried the command out yet) or ``refused`` (200: it refused it;
    ``refusal`` is the kind: busy, stale, halted, invalid, conflict; ``reason`` its text; times UTC)."""

    status: Literal["pending", "refused"]
    signal_id: str
    command_id: str  # the command of the newest attempt
    recorded_at: datetime
    refusal: str | None = None
    reason: str | None = None
    refused_at: datetime | None = None
    refused_by: str | None = None  # the trading process
    refused_times: int = 0  # how many of the signal's commands were refused in all (a caller may post it again)
    note: str | None = None


class SignalAnswer(RootModel[Annotated[SignalView | SignalNotPlaced, Field(discriminator="status")]]):
    """``GET /v1/signals/{id}`` with 200: the placed signal, or the refusal of one recorded and refused."""
