"""Prometheus metrics (prometheus-client) of one execledger process, served at ``GET /metrics``.

``Metrics`` is a listener over saved ``(aggregate, events)`` pairs and owns its own registry (no global state, so
two services in one test process do not mix). Series (all prefixed ``execledger_``):

| metric | type | labels | what |
|---|---|---|---|
| ``orders`` | gauge | status, role | orders this process knows, by current status |
| ``order_events_total`` | counter | event | recorded Order events (Placed, Filled, Canceled, ...) |
| ``fills_total`` | counter | role, pair, source | fills recorded (source ws, rest or reconciliation) |
| ``rejections_total`` | counter | error_class | AddOrder rejections by the adapter's error class |
| ``decisions_total`` | counter | rule | decisions by the rule that made them |
| ``trading_mode`` | gauge | mode | 1 for the current mode (running, reducing, halted) |
| ``signal_to_submit_seconds`` | histogram | | entry decided (Placed) -> AddOrder about to be sent (Submitted) |
| ``addorder_roundtrip_seconds`` | histogram | role | Submitted -> Acknowledged |
| ``fill_to_protection_seconds`` | histogram | | fill recorded (the leg's Placed) -> the leg acknowledged on the book |
| ``cancel_roundtrip_seconds`` | histogram | outcome | CancelRequested -> Canceled / CancelRejected / Filled |
| ``breaker_state`` | gauge | state | 1 for the circuit breaker's current state |
| ``stream_connected`` | gauge | | 1 when the WS executions stream is healthy |
| ``stream_last_message_age_seconds`` | gauge | | since the stream's last frame |
| ``deadman_expiry_timestamp_seconds`` | gauge | | when the dead-man's switch fires (Unix time; absent when disarmed) |
| ``last_reconciliation_timestamp_seconds`` | gauge | | Unix time of the last reconciliation |
| ``projection_lag_events`` | gauge | | notifications the read models have not processed |
| ``can_trade`` / ``recovered`` | gauge | | 1/0 from the health assessment |

Latencies come from the events' own timestamps (the time each was recorded), so they measure the ledger's view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from execledger.domain.order import Order, OrderStatus
from execledger.domain.pairs import PairRegistry
from execledger.domain.trading_state import TradingMode, TradingState
from execledger.domain.values import OrderRole
from execledger.infrastructure.health import HealthMonitor, assess
from execledger.infrastructure.present import pair_name

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BREAKER_STATES = ("closed", "half_open", "open")


def _seconds(later: datetime, earlier: datetime | None) -> float | None:
    if earlier is None:
        return None
    return max(0.0, (later - earlier).total_seconds())


class _StateCollector(Collector):
    """Series read at scrape time: orders by status, the trading mode, and everything the health monitor knows."""

    def __init__(self, metrics: Metrics):
        self.m = metrics

    def collect(self) -> Iterator[Any]:
        m = self.m
        orders = GaugeMetricFamily("execledger_orders", "Orders by current status and role", labels=["status", "role"])
        if m.order_counts is not None:
            counts = m.order_counts()
        else:
            counts = {}
            for status, role in m.status.values():
                counts[(status, role)] = counts.get((status, role), 0) + 1
        for status in OrderStatus:
            for role in OrderRole:
                orders.add_metric([status.value, role.value], counts.get((status.value, role.value), 0))
        yield orders
        mode = GaugeMetricFamily("execledger_trading_mode", "1 for the current trading mode", labels=["mode"])
        for each in TradingMode:
            mode.add_metric([each.value], 1 if m.mode == each.value else 0)
        yield mode
        h = m.health
        if h is None:
            return
        snap = h.snapshot()
        verdict = assess(snap, h.limits)
        yield GaugeMetricFamily("execledger_can_trade", "1: the service can place orders now", value=verdict.can_trade)
        if snap.recovered is not None:
            yield GaugeMetricFamily("execledger_recovered", "1: start-up reconciliation done", value=snap.recovered)
        if snap.projection_lag is not None:
            yield GaugeMetricFamily(
                "execledger_projection_lag_events", "Notifications not yet projected", value=snap.projection_lag
            )
        v = snap.venue
        if v is None:
            return
        breaker = GaugeMetricFamily("execledger_breaker_state", "1 for the breaker's current state", labels=["state"])
        for state in BREAKER_STATES:
            breaker.add_metric([state], 1 if v.breaker == state else 0)
        yield breaker
        if v.stream_connected is not None:
            yield GaugeMetricFamily("execledger_stream_connected", "1: WS executions healthy", value=v.stream_connected)
        if v.last_message_at is not None:
            yield GaugeMetricFamily(
                "execledger_stream_last_message_age_seconds",
                "Seconds since the stream's last frame",
                value=max(0.0, (snap.at - v.last_message_at).total_seconds()),
            )
        if v.deadman_expires_at is not None:
            yield GaugeMetricFamily(
                "execledger_deadman_expiry_timestamp_seconds",
                "Unix time at which the dead-man's switch cancels every order",
                value=v.deadman_expires_at.timestamp(),
            )
        if v.last_reconciliation_at is not None:
            yield GaugeMetricFamily(
                "execledger_last_reconciliation_timestamp_seconds",
                "Unix time of the last reconciliation with the venue",
                value=v.last_reconciliation_at.timestamp(),
            )


class Metrics:
    """Counters and histograms fed by saved events; call it with ``[(aggregate, events), ...]``."""

    def __init__(
        self,
        *,
        pairs: PairRegistry | None = None,
        health: HealthMonitor | None = None,
        order_counts: Callable[[], dict[tuple[str, str], int]] | None = None,
    ):
        """``order_counts``: ``{(status, role): n}`` read at scrape time (e.g. from the read models, right in every
        role); without it the ``orders`` gauge counts what this listener saw (``seed`` it at start)."""
        self.pairs = pairs
        self.health = health
        self.order_counts = order_counts
        self.registry = CollectorRegistry()
        r = self.registry
        self.order_events = Counter("execledger_order_events", "Order events recorded", ["event"], registry=r)
        self.fills = Counter("execledger_fills", "Fills recorded", ["role", "pair", "source"], registry=r)
        self.rejections = Counter(
            "execledger_rejections", "AddOrder rejections by error class", ["error_class"], registry=r
        )
        self.decisions = Counter("execledger_decisions", "Decisions by rule", ["rule"], registry=r)
        self.signal_to_submit = Histogram(
            "execledger_signal_to_submit_seconds",
            "Entry decided (Placed) to AddOrder about to be sent (Submitted)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.addorder_roundtrip = Histogram(
            "execledger_addorder_roundtrip_seconds",
            "Submitted to Acknowledged",
            ["role"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fill_to_protection = Histogram(
            "execledger_fill_to_protection_seconds",
            "Fill recorded (protective leg decided) to the leg acknowledged on the book",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cancel_roundtrip = Histogram(
            "execledger_cancel_roundtrip_seconds",
            "CancelRequested to the venue's answer",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        r.register(_StateCollector(self))
        self.status: dict[Any, tuple[str, str]] = {}  # order id -> (status, role)
        self.mode = TradingMode.RUNNING.value
        self._submitted_at: dict[Any, datetime] = {}
        self._cancel_requested_at: dict[Any, datetime] = {}

    def seed(self, orders: Sequence[Order] | Any, trading: TradingState | None = None) -> None:
        """Start from the orders (and mode) loaded at start-up, so the gauges are right before anything happens."""
        for order in orders:
            self.status[order.id] = (order.status.value, order.role.value)
        if trading is not None:
            self.mode = trading.mode.value

    def __call__(self, saved: Sequence[tuple[Any, list[Any]]]) -> None:
        for aggregate, events in saved:
            if isinstance(aggregate, Order):
                for ev in events:
                    self._order_event(aggregate, ev)
                self.status[aggregate.id] = (aggregate.status.value, aggregate.role.value)
            elif isinstance(aggregate, TradingState):
                self.mode = aggregate.mode.value

    def _order_event(self, order: Order, ev: Any) -> None:
        name = type(ev).__name__
        self.order_events.labels(name).inc()
        why = getattr(ev, "reason", None) or {}
        if why.get("rule") and name not in ("PartiallyFilled", "Filled", "Acknowledged", "Canceled", "Expired"):
            self.decisions.labels(why["rule"]).inc()
        if name == "Submitted":
            self._submitted_at[order.id] = ev.timestamp
            if order.role is OrderRole.ENTRY:
                seconds = _seconds(ev.timestamp, order.created_on)
                if seconds is not None:
                    self.signal_to_submit.observe(seconds)
        elif name == "Acknowledged":
            seconds = _seconds(ev.timestamp, self._submitted_at.pop(order.id, None))
            if seconds is not None:
                self.addorder_roundtrip.labels(order.role.value).observe(seconds)
            if order.role in (OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT):
                self.fill_to_protection.observe(_seconds(ev.timestamp, order.created_on) or 0.0)
        elif name == "Rejected":
            self._submitted_at.pop(order.id, None)
            self.rejections.labels(str(why.get("error_class") or why.get("rule") or "unknown")).inc()
        elif name in ("PartiallyFilled", "Filled"):
            self.fills.labels(order.role.value, pair_name(self.pairs, order.pair) or "", ev.source or "").inc()
        elif name == "CancelRequested":
            self._cancel_requested_at[order.id] = ev.timestamp
        if name in ("Canceled", "CancelRejected") or (name == "Filled" and order.id in self._cancel_requested_at):
            seconds = _seconds(ev.timestamp, self._cancel_requested_at.pop(order.id, None))
            if seconds is not None:
                self.cancel_roundtrip.labels(name.lower()).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
