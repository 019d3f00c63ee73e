"""An honest health: what the trading process knows about the venue, and whether it can trade.

``HealthMonitor`` collects what the trading process learns (the circuit breaker's changes, the executions stream,
the dead-man's switch expiry, the last reconciliation, the trading mode, whether start-up recovery finished, the
projection lag); ``snapshot()`` freezes it into a ``HealthSnapshot`` and ``assess()`` decides:

- ``unavailable`` (HTTP 503, not ready): start-up reconciliation not finished; the circuit breaker is not closed
  (AddOrder is refused while it is open or half-open: ``kraken/breaker.py``); or the dead-man's switch fires within
  ``deadman_margin_s`` (its refresh is failing, and Kraken will cancel every resting order: REFERENCE.md,
  CancelAllOrdersAfter, fixture ``rest_cancel_all_orders_after_official_example.json``).
- ``degraded`` (HTTP 200): the executions stream is down or silent (REST polling covers it), reconciliation is
  overdue, the read models lag, the read models cannot apply a batch (the error, where they stopped and how far
  behind they are, from ``projection_failures``, whichever process runs them), or an operator command has waited
  more than ``pending_command_age_s`` to be carried out (a halt recorded while no trading process runs: the mode
  still says ``running`` until one starts; ``trading.pending_commands`` gives the count and the oldest's kind and
  age).
- ``ok`` otherwise. A HALT is reported (mode, who, why) but is not unhealthy: it is the operator's decision, and a
  halted service still manages exits, so an orchestrator must not restart it.

A process without the trading role (``--role api``/``projections``) knows no venue: its health reports the
trading mode from the store and the projection lag, and ``venue`` is null.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

Status = Literal["ok", "degraded", "unavailable"]


@dataclass(frozen=True)
class HealthLimits:
    deadman_margin_s: float = 15.0  # the switch is refreshed every 20 s with 60 s: under 15 s left means trouble
    stream_silence_s: float = 30.0  # Kraken sends a heartbeat every second; 30 s of nothing is a dead stream
    reconciliation_overdue_s: float = 180.0  # three missed 60 s rounds
    projection_lag_max: int = 1000  # notifications
    pending_command_age_s: float = 10.0  # a running trading process carries a command out within milliseconds


@dataclass(frozen=True)
class PendingCommands:
    """Operator commands recorded but not yet carried out by a trading process."""

    count: int  # counted up to COUNT_LIMIT
    oldest_id: str | None
    oldest_kind: str | None
    oldest_by: str | None
    oldest_at: datetime | None

    COUNT_LIMIT = 1000


@dataclass(frozen=True)
class VenueHealth:
    breaker: str  # closed | half_open | open
    stream_connected: bool | None  # None: this process runs no stream (yet)
    last_message_at: datetime | None
    deadman_expires_at: datetime | None  # None: not armed
    last_reconciliation_at: datetime | None


@dataclass(frozen=True)
class HealthSnapshot:
    at: datetime
    role: str
    trading_mode: str
    mode_by: str
    mode_why: str
    recovered: bool | None  # None: this process does not trade
    venue: VenueHealth | None
    projection_lag: int | None
    projection_position: int | None
    trading_process: str | None = None  # who holds the writer lock (the trading process), if known
    pending_commands: PendingCommands | None = None  # None: not known in this process
    projection_failure: dict[str, Any] | None = None  # the batch the read models cannot apply (position, error, ...)
    trading_failure: str | None = None  # a worker of the trading service failed: trading stopped, the process exits


@dataclass(frozen=True)
class Assessment:
    status: Status
    can_trade: bool
    problems: list[str] = field(default_factory=list)  # why it cannot trade
    warnings: list[str] = field(default_factory=list)  # what is degraded

    @property
    def http_status(self) -> int:
        return 503 if self.status == "unavailable" else 200


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round((now - then).total_seconds(), 3)


def assess(s: HealthSnapshot, limits: HealthLimits | None = None) -> Assessment:
    """Decide ok / degraded / unavailable from a snapshot (pure: the same snapshot always gives the same answer)."""
    limits = limits or HealthLimits()
    problems: list[str] = []
    warnings: list[str] = []
    if s.trading_failure is not None:
        problems.append(f"the trading service stopped: {s.trading_failure}; the process exits and a restart recovers")
    elif s.recovered is False:
        problems.append("start-up reconciliation has not finished: signals are not safe yet")
    v = s.venue
    if v is not None:
        if v.breaker != "closed":
            problems.append(f"the venue circuit breaker is {v.breaker}: new orders are not sent")
        if v.deadman_expires_at is not None:
            left = (v.deadman_expires_at - s.at).total_seconds()
            if left < limits.deadman_margin_s:
                problems.append(
                    f"the dead-man's switch fires in {max(left, 0):.0f}s (its refresh is failing): "
                    "Kraken will cancel every resting order"
                )
        if v.stream_connected is False:
            warnings.append("the executions stream is down: REST polling covers it")
        elif v.stream_connected and v.last_message_at is not None:
            silent = _age(s.at, v.last_message_at) or 0.0
            if silent > limits.stream_silence_s:
                warnings.append(f"no message on the executions stream for {silent:.0f}s")
        if v.last_reconciliation_at is not None:
            overdue = _age(s.at, v.last_reconciliation_at) or 0.0
            if overdue > limits.reconciliation_overdue_s:
                warnings.append(f"last reconciliation {overdue:.0f}s ago")
    if s.projection_failure is not None:
        f = s.projection_failure
        behind = "" if s.projection_lag is None else f" ({s.projection_lag} events behind)"
        warnings.append(
            f"the read models cannot apply the events after position {f['position']}{behind}: {f['error']} "
            f"({f['attempts']} attempts)"
        )
    elif s.projection_lag is not None and s.projection_lag > limits.projection_lag_max:
        warnings.append(f"the read models are {s.projection_lag} events behind")
    p = s.pending_commands
    if p is not None and p.count and p.oldest_at is not None:
        waited = _age(s.at, p.oldest_at) or 0.0
        if waited > limits.pending_command_age_s:
            who = "no trading process is running" if not s.trading_process else f"{s.trading_process} has not read it"
            more = f" ({p.count} waiting)" if p.count > 1 else ""
            warnings.append(
                f"the {p.oldest_kind} recorded by {p.oldest_by} {waited:.0f}s ago is not carried out yet{more}: {who}"
            )
    status: Status = "unavailable" if problems else "degraded" if warnings else "ok"
    return Assessment(status, not problems, problems, warnings)


def health_body(s: HealthSnapshot, a: Assessment) -> dict[str, Any]:
    """The JSON of ``GET /v1/health``: times in ISO 8601 UTC, ages in seconds."""
    venue = None
    if s.venue is not None:
        v = s.venue
        venue = {
            "breaker": v.breaker,
            "stream": {"connected": v.stream_connected, "last_message_age_s": _age(s.at, v.last_message_at)},
            "deadman": {
                "armed": v.deadman_expires_at is not None,
                "expires_at": v.deadman_expires_at.isoformat() if v.deadman_expires_at else None,
                "expires_in_s": -(_age(s.at, v.deadman_expires_at) or 0.0) if v.deadman_expires_at else None,
            },
            "last_reconciliation": {
                "at": v.last_reconciliation_at.isoformat() if v.last_reconciliation_at else None,
                "age_s": _age(s.at, v.last_reconciliation_at),
            },
        }
    return {
        "status": a.status,
        "can_trade": a.can_trade,
        "problems": a.problems,
        "warnings": a.warnings,
        "role": s.role,
        "at": s.at.isoformat(),
        "trading": {
            "mode": s.trading_mode,
            "by": s.mode_by,
            "why": s.mode_why,
            "recovered": s.recovered,
            "process": s.trading_process,
            "pending_commands": _pending_body(s.at, s.pending_commands),
            "failure": s.trading_failure,
        },
        "venue": venue,
        "projection_lag": s.projection_lag,
        "projection_position": s.projection_position,
        "projection_failure": _failure_body(s.projection_failure),
    }


def _pending_body(now: datetime, p: PendingCommands | None) -> dict[str, Any] | None:
    if p is None:
        return None
    oldest = None
    if p.oldest_id is not None:
        oldest = {"command_id": p.oldest_id, "kind": p.oldest_kind, "by": p.oldest_by, "age_s": _age(now, p.oldest_at)}
    return {"count": p.count, "oldest": oldest}


def _failure_body(f: dict[str, Any] | None) -> dict[str, Any] | None:
    if f is None:
        return None
    failed_at = f["failed_at"]
    if failed_at is not None and failed_at.tzinfo is None:
        failed_at = failed_at.replace(tzinfo=UTC)
    return {
        "position": f["position"],
        "error": f["error"],
        "failed_at": failed_at.isoformat() if failed_at else None,
        "attempts": f["attempts"],
    }


class HealthMonitor:
    """What one process knows, read at each ``snapshot()`` from the parts it runs.

    In the trading process ``service`` is the ``TradingService`` (``recovered``, ``stream_healthy``,
    ``last_reconciliation``, ``deadman_expires_at``) and ``exchange`` the adapter (its circuit breaker at
    ``exchange.rest.breaker``, its executions stream at ``exchange.stream`` with ``last_message_at`` in monotonic
    seconds). Without them (unit tests, other adapters) the hooks ``breaker_changed`` (a ``CircuitBreaker``
    listener), ``attach_stream``, ``deadman_armed`` and ``reconciled`` set the same facts by hand.
    """

    def __init__(
        self,
        *,
        role: str = "all",
        trading_state: Callable[[], Any] | None = None,
        recovered: Callable[[], bool] | None = None,
        projection: Any = None,
        trades: bool = True,
        service: Any = None,
        exchange: Any = None,
        process: Callable[[], str | None] | None = None,
        pending: Callable[[], PendingCommands | None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        limits: HealthLimits | None = None,
    ):
        self.role = role
        self.trading_state = trading_state
        self.recovered = recovered
        self.projection = projection  # has lag() and position(); None: no read models in this process
        self.trades = trades
        self.service = service
        self.exchange = exchange
        self.process = process
        self.pending = pending  # reader of the commands not yet carried out (``pending_commands``)
        self.clock = clock
        self.limits = limits or HealthLimits()
        self.breaker = "closed"
        self.stream: Any = None
        self.deadman_expires_at: datetime | None = None
        self.last_reconciliation_at: datetime | None = None

    # --- hooks ----------------------------------------------------------------------------------------

    def breaker_changed(self, old: Any, new: Any, reason: str = "") -> None:
        self.breaker = str(getattr(new, "value", new))

    def attach_stream(self, stream: Any) -> None:
        self.stream = stream

    def deadman_armed(self, expires_at: datetime | None) -> None:
        self.deadman_expires_at = expires_at

    def reconciled(self, at: datetime | None = None) -> None:
        self.last_reconciliation_at = at or self.clock()

    # --- reading --------------------------------------------------------------------------------------

    def _venue(self, now: datetime) -> VenueHealth:
        svc, ex = self.service, self.exchange
        breaker_obj = getattr(getattr(ex, "rest", None), "breaker", None)
        breaker = str(getattr(breaker_obj.state, "value", breaker_obj.state)) if breaker_obj else self.breaker
        stream = getattr(ex, "stream", None) or self.stream
        if svc is not None:
            connected: bool | None = bool(svc.stream_healthy)
        else:
            connected = None if stream is None else bool(getattr(stream, "healthy", False))
        last = getattr(stream, "last_message_at", None)
        if isinstance(last, (int, float)):  # monotonic seconds (the event loop's clock)
            last = now - timedelta(seconds=max(0.0, time.monotonic() - last))
        deadman = svc.deadman_expires_at if svc is not None else self.deadman_expires_at
        reconciled = svc.last_reconciliation if svc is not None else self.last_reconciliation_at
        return VenueHealth(breaker, connected, last, deadman, reconciled)

    def snapshot(self) -> HealthSnapshot:
        state = self.trading_state() if self.trading_state else None
        now = self.clock()
        lag = position = failure = None
        if self.projection is not None:
            lag, position = self.projection.lag(), self.projection.position()
            failure = self.projection.failure() if hasattr(self.projection, "failure") else None
        if self.recovered is not None:
            recovered: bool | None = self.recovered()
        elif self.service is not None:
            recovered = self.service.recovered.is_set()
        else:
            recovered = None
        return HealthSnapshot(
            at=now,
            role=self.role,
            trading_mode=getattr(getattr(state, "mode", None), "value", "unknown"),
            mode_by=getattr(state, "by", ""),
            mode_why=getattr(state, "why", ""),
            recovered=recovered,
            venue=self._venue(now) if self.trades else None,
            projection_lag=lag,
            projection_position=position,
            trading_process=self.process() if self.process else None,
            pending_commands=self.pending() if self.pending else None,
            projection_failure=failure,
            trading_failure=_failure_text(self.service),
        )

    def assess(self) -> tuple[HealthSnapshot, Assessment]:
        snap = self.snapshot()
        return snap, assess(snap, self.limits)


def _failure_text(service: Any) -> str | None:
    failure = getattr(service, "failure", None)
    return None if failure is None else f"{type(failure).__name__}: {failure}"


def snapshot_dict(s: HealthSnapshot) -> dict[str, Any]:
    return asdict(s)


def pending_commands(orders: Any, commands: Any) -> Callable[[], PendingCommands]:
    """A reader of the commands recorded in ``commands`` (the CommandsApp) after the last one the trading process
    carried out (its tracking position in ``orders``, the OrdersApp): read again at every call, from any process."""
    from execledger.application.orders_app import COMMANDS

    def read() -> PendingCommands:
        done = orders.recorder.max_tracking_id(COMMANDS) or 0
        waiting = commands.recorder.select_notifications(start=done + 1, limit=PendingCommands.COUNT_LIMIT)
        if not waiting:
            return PendingCommands(0, None, None, None, None)
        issued = commands.mapper.to_domain_event(waiting[0])
        return PendingCommands(
            count=len(waiting),
            oldest_id=str(issued.originator_id),
            oldest_kind=getattr(issued, "kind", None),
            oldest_by=getattr(issued, "by", None),
            oldest_at=issued.timestamp,
        )

    return read


def stored_trading_state(app: Any) -> Callable[[], Any]:
    """A reader of the trading state as saved in ``app`` (an OrdersApp), read again at every call: a process
    that does not trade must not trust what it read at start."""
    from eventsourcing.application import AggregateNotFoundError

    from execledger.domain.trading_state import TRADING_STATE_ID, TradingState

    def read() -> TradingState:
        try:
            return app.repository.get(TRADING_STATE_ID)
        except AggregateNotFoundError:
            return TradingState()

    return read
