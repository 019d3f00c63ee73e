"""Metrics after a scripted lifecycle, the health verdicts, and health 503 with the venue really down."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from execledger.infrastructure.api.ops_models import HealthResponse
from execledger.infrastructure.health import HealthLimits, HealthMonitor, HealthSnapshot, VenueHealth, assess
from execledger.infrastructure.metrics import Metrics
from tests.harness import Harness
from tests.ops.scenario import scripted_lifecycle
from tests.test_runner import start


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}`` from a Prometheus exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict, name: str, **labels) -> float:
    return found[(name, tuple(sorted(labels.items())))]


async def test_metrics_after_a_scripted_lifecycle(ledger, clock, pairs):
    h = Harness(ledger, clock)
    metrics = Metrics(pairs=pairs)
    h.engine.uow.add_listener(metrics)
    story = await scripted_lifecycle(h, clock)
    found = samples(metrics.render()[0].decode())

    assert value(found, "execledger_order_events_total", event="Placed") == 5  # 3 entries + stop + take-profit
    assert value(found, "execledger_order_events_total", event="Filled") == 2  # the entry and its take-profit
    assert value(found, "execledger_fills_total", role="entry", pair="XBT/USD", source="ws") == 1
    assert value(found, "execledger_fills_total", role="take_profit", pair="XBT/USD", source="ws") == 1
    assert value(found, "execledger_rejections_total", error_class="permanent") == 1
    assert value(found, "execledger_decisions_total", rule="oco_cancel_sibling") == 1
    assert value(found, "execledger_decisions_total", rule="timeout_cancel") == 1
    assert value(found, "execledger_orders", status="filled", role="entry") == 1
    assert value(found, "execledger_orders", status="filled", role="take_profit") == 1
    assert value(found, "execledger_orders", status="canceled", role="stop_loss") == 1
    assert value(found, "execledger_orders", status="canceled", role="entry") == 1  # the timed-out one
    assert value(found, "execledger_orders", status="rejected", role="entry") == 1
    assert value(found, "execledger_orders", status="open", role="entry") == 0
    assert value(found, "execledger_trading_mode", mode="running") == 1
    assert value(found, "execledger_trading_mode", mode="halted") == 0
    assert value(found, "execledger_signal_to_submit_seconds_count") == 3
    assert value(found, "execledger_addorder_roundtrip_seconds_count", role="entry") == 2  # the third was rejected
    assert value(found, "execledger_fill_to_protection_seconds_count") == 2  # stop and take-profit on the book
    assert value(found, "execledger_cancel_roundtrip_seconds_count", outcome="canceled") == 2  # OCO + timeout
    assert story["sl"].status.value == "canceled"


NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def snap(**venue) -> HealthSnapshot:
    v = {
        "breaker": "closed",
        "stream_connected": True,
        "last_message_at": NOW - timedelta(seconds=1),
        "deadman_expires_at": NOW + timedelta(seconds=55),
        "last_reconciliation_at": NOW - timedelta(seconds=30),
        **venue,
    }
    return HealthSnapshot(NOW, "all", "running", "system", "initial state", True, VenueHealth(**v), 0, 10)


def test_health_verdicts():
    assert assess(snap()).status == "ok" and assess(snap()).http_status == 200
    opened = assess(snap(breaker="open"))
    assert (opened.status, opened.http_status, opened.can_trade) == ("unavailable", 503, False)
    assert "circuit breaker is open" in opened.problems[0]
    assert assess(snap(breaker="half_open")).http_status == 503
    firing = assess(snap(deadman_expires_at=NOW + timedelta(seconds=5)))
    assert firing.http_status == 503 and "dead-man's switch fires in 5s" in firing.problems[0]
    down = assess(snap(stream_connected=False))
    assert (down.status, down.http_status) == ("degraded", 200) and "REST polling" in down.warnings[0]
    silent = assess(snap(last_message_at=NOW - timedelta(seconds=45)))
    assert silent.status == "degraded" and "45s" in silent.warnings[0]
    assert assess(snap(last_reconciliation_at=NOW - timedelta(seconds=600))).status == "degraded"
    lagging = HealthSnapshot(NOW, "api", "halted", "ops", "maintenance", None, None, 5000, 10)
    verdict = assess(lagging, HealthLimits(projection_lag_max=1000))
    assert verdict.status == "degraded" and verdict.can_trade  # a HALT is the operator's choice, not a failure
    not_recovered = HealthSnapshot(NOW, "all", "running", "s", "i", False, snap().venue, 0, 0)
    assert assess(not_recovered).http_status == 503
    died = dataclasses.replace(snap(), trading_failure="ConcurrencyConflict: the store refused the transaction")
    verdict = assess(died)  # recovered long ago, venue fine: a dead worker still means no trading
    assert (verdict.http_status, verdict.can_trade) == (503, False)
    assert verdict.problems == [
        "the trading service stopped: ConcurrencyConflict: the store refused the transaction; the process exits "
        "and a restart recovers"
    ]


def test_monitor_follows_its_hooks():
    class Stream:
        healthy = True
        last_message_at = NOW

    monitor = HealthMonitor(clock=lambda: NOW + timedelta(seconds=2))
    monitor.attach_stream(Stream())
    monitor.breaker_changed("closed", "open", "5 consecutive failures")
    monitor.deadman_armed(NOW + timedelta(seconds=60))
    monitor.reconciled(NOW)
    s, verdict = monitor.assess()
    assert s.venue.breaker == "open" and s.venue.stream_connected and s.venue.last_reconciliation_at == NOW
    assert verdict.http_status == 503


async def test_health_is_503_with_the_venue_down_and_metrics_say_why(settings):
    stop, task, running = await start(settings)
    try:
        opened = asyncio.Event()
        breaker = running.exchange.rest.breaker
        breaker.add_listener(lambda old, new, reason: opened.set() if new.value == "open" else None)
        async with aiohttp.ClientSession() as http:
            await asyncio.wait_for(running.service.recovered.wait(), 30)
            r = await http.get(f"{running.api_url}/v1/health")
            body = await r.json()
            assert r.status == 200, body
            assert body["venue"]["breaker"] == "closed" and body["venue"]["deadman"]["armed"] is True
            assert body["venue"]["last_reconciliation"]["at"] is not None

            await running.simulator.stop()  # the venue is gone: connections refused
            await asyncio.wait_for(opened.wait(), 90)
            r = await http.get(f"{running.api_url}/v1/health")
            body = await r.json()
            assert r.status == 503 and body["status"] == "unavailable" and body["can_trade"] is False
            HealthResponse.model_validate(body)  # the documented schema (OpenAPI) is what the route sends
            assert body["venue"]["breaker"] == "open"
            assert any("circuit breaker is open" in p for p in body["problems"])
            assert body["venue"]["stream"]["connected"] is False
            ready = await http.get(f"{running.api_url}/v1/health/ready")
            assert ready.status == 503 and (await ready.json())["ready"] is False
            assert (await http.get(f"{running.api_url}/v1/health/live")).status == 200
            found = samples(await (await http.get(f"{running.api_url}/metrics")).text())
            assert value(found, "execledger_breaker_state", state="open") == 1
            assert value(found, "execledger_stream_connected") == 0
            assert value(found, "execledger_can_trade") == 0
            assert ("execledger_deadman_expiry_timestamp_seconds", ()) in found
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
