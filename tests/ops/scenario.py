"""One scripted lifecycle shared by the operator-surface tests: every kind of line, metric and notification.

A limit entry fills and is bracketed (the stop rests, the ledger holds the take-profit); the price reaches the
take-profit, so the stop is canceled and the position sold at market; a second entry times out; a third is rejected
by the venue; trading is halted and resumed.
"""

from __future__ import annotations

from decimal import Decimal

from execledger.application.ports import ErrorClass, PlaceResult, PlaceStatus
from execledger.domain.trading_state import TradingMode
from execledger.domain.values import OrderRole
from tests.harness import Harness


async def scripted_lifecycle(h: Harness, clock) -> dict:
    """Run the story; returns the orders by name (entries and legs, as they are at the end)."""
    tp_entry = await h.signal(signal_id="life-tp", quantity="1", limit_price="100", sl_price="90", tp_price="120")
    h.venue.fill(h.txid(tp_entry), "1", "100", fee="0.16")
    await h.settle()
    [sl] = h.legs(tp_entry, OrderRole.STOP_LOSS)
    clock.advance(1)
    h.venue.prices["XXBTZUSD"] = Decimal("120")
    await h.service.poll_prices({"XXBTZUSD"})
    await h.settle()
    [tp] = h.legs(tp_entry, OrderRole.TAKE_PROFIT)
    h.venue.fill(h.txid(tp), "1", "120", fee="0.19")
    await h.settle()

    late = await h.signal(signal_id="life-timeout", limit_price="95", sl_price="90", tp_price="120", timeout_s=60)
    clock.advance(61)
    await h.settle()

    h.venue.script = [
        PlaceResult(PlaceStatus.REJECTED, error="EOrder:Insufficient funds", error_class=ErrorClass.PERMANENT)
    ]
    rejected = await h.signal(signal_id="life-rejected", limit_price="99", sl_price="90", tp_price="120")

    h.engine.control.set_mode(TradingMode.HALTED, by="ops-test", why="maintenance window")
    h.engine.control.set_mode(TradingMode.RUNNING, by="ops-test", why="maintenance over")
    return {
        "entry": h.engine.orders[tp_entry.id],
        "tp": h.engine.orders[tp.id],
        "sl": h.engine.orders[sl.id],
        "late": h.engine.orders[late.id],
        "rejected": h.engine.orders[rejected.id],
    }
