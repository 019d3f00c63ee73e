"""The live path: the service's own workers, driven by the WS v2 executions stream (no test-driven polling)."""

import asyncio
from decimal import Decimal

from execledger.application.engine import ReportPublisher
from execledger.application.policies import PolicyConfig
from execledger.application.ports import PriceTick
from execledger.application.service import ServiceConfig, TradingService
from execledger.domain.order import State
from execledger.domain.values import OrderRole


async def test_stream_drives_fill_bracket_and_oco(harness):
    h = await harness(policy=PolicyConfig(resting_leg="both"))
    service = TradingService(
        h.engine, h.exchange, ServiceConfig(deadman_enabled=False, tick_interval_s=0.05, reconcile_interval_s=3600)
    )
    legs_open, closed = asyncio.Event(), asyncio.Event()
    open_legs: set[str] = set()

    def on_report(report):
        if report.role in ("stop_loss", "take_profit") and report.order_status == "OPEN":
            open_legs.add(report.role)
            if len(open_legs) == 2:
                legs_open.set()
        if report.role == "take_profit" and report.order_status == "CANCELED":
            closed.set()

    h.engine.uow.add_listener(ReportPublisher(h.engine.ledger, on_report))
    running = asyncio.create_task(service.run())
    try:
        entry = h.engine.control.submit_signal(
            {
                "signal_id": "ws",
                "pair": "XBT/USD",
                "side": "buy",
                "order_type": "market",
                "quantity": "0.01",
                "sl_price": "64000",
                "tp_price": "69000",
            }
        ).order
        service.wake()
        await asyncio.wait_for(legs_open.wait(), 10)
        h.sim.set_mark_price("XBT/USD", "63990")  # the stop triggers at the venue; only the stream tells us
        await asyncio.wait_for(closed.wait(), 10)
    finally:
        await service.stop()
        await asyncio.wait_for(running, 10)
    fills = [e for e in h.engine.ledger.order_history(entry.id) if e.name == "Filled"]
    assert fills and fills[0].data["source"] == "ws"
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    assert h.order(sl).state is State.FILLED and h.position(entry) == 0
    h.assert_consistent()


async def test_the_price_watcher_sends_the_held_take_profit_when_the_price_reaches_it(harness):
    """The service's own price watcher (REST Ticker: the adapter streams no public prices yet) sees the price cross
    the take-profit the ledger holds: the stop is canceled and the position sold at market, with no test polling."""
    h = await harness()
    service = TradingService(
        h.engine,
        h.exchange,
        ServiceConfig(deadman_enabled=False, tick_interval_s=0.05, reconcile_interval_s=3600, price_poll_s=0.05),
    )
    stop_open, exited = asyncio.Event(), asyncio.Event()

    def on_report(report):
        if report.role == "stop_loss" and report.order_status == "OPEN":
            stop_open.set()
        if report.role == "take_profit" and report.order_status == "FILLED":
            exited.set()

    h.engine.uow.add_listener(ReportPublisher(h.engine.ledger, on_report))
    running = asyncio.create_task(service.run())
    try:
        entry = h.engine.control.submit_signal(
            {
                "signal_id": "held-tp",
                "pair": "XBT/USD",
                "side": "buy",
                "order_type": "market",
                "quantity": "0.01",
                "sl_price": "64000",
                "tp_price": "69000",
            }
        ).order
        service.wake()
        await asyncio.wait_for(stop_open.wait(), 10)
        h.sim.set_mark_price("XBT/USD", "69010")
        await asyncio.wait_for(exited.wait(), 10)
    finally:
        await service.stop()
        await asyncio.wait_for(running, 10)
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    assert h.order(sl).state is State.CANCELED and h.order(tp).state is State.FILLED and h.position(entry) == 0
    h.assert_consistent()


async def test_a_cancel_that_lands_with_a_price_ends_the_price_watcher(harness, monkeypatch):
    """The task group cancels the price watcher (another worker failed) in the very step a price reaches it: the
    watcher must end. Python 3.11's ``asyncio.wait_for`` returned the price and dropped the cancel, so the
    watcher went on forever and the failed service never finished (tests/faults/test_save_refused.py)."""
    h = await harness()
    service = TradingService(h.engine, h.exchange, ServiceConfig(deadman_enabled=False, price_poll_s=30))
    watcher: asyncio.Task | None = None

    async def price_ticks(pairs):
        yield PriceTick("XXBTZUSD", Decimal("70000"), h.clock.now())
        assert watcher is not None
        watcher.cancel()  # the watcher's queue was handed the price in this same step
        await asyncio.Event().wait()  # then a quiet market

    monkeypatch.setattr(h.exchange, "price_ticks", price_ticks)
    watcher = asyncio.create_task(service._follow_prices({"XXBTZUSD"}))
    done, _ = await asyncio.wait({watcher}, timeout=5)
    assert watcher in done and watcher.cancelled()
