"""Audit from the log itself: an order's (or a signal's) story, and every order as it was at a past moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from execledger.application.ledger import ExecutionLedger, HistoryEntry, OrderNotFound
from execledger.domain.order import Order


@dataclass(frozen=True)
class TimelineEntry:
    order_id: UUID
    role: str
    entry: HistoryEntry


def _orders_of_signal(ledger: ExecutionLedger, entry: Order) -> list[Order]:
    orders = [entry]
    for bracket in entry.brackets:
        orders += [ledger.get_order(i) for i in bracket.all_leg_ids()]
    return orders


def resolve_entry(ledger: ExecutionLedger, ident: str) -> Order:
    """An order id (entry or leg) or a signal id -> the signal's entry order."""
    try:
        order = ledger.get_order(UUID(ident))
    except (ValueError, OrderNotFound):
        return ledger.order_for_signal(ident)
    return ledger.get_order(order.parent_id) if order.parent_id else order


def signal_timeline(ledger: ExecutionLedger, ident: str) -> tuple[Order, list[Order], list[TimelineEntry]]:
    """Every event of the signal's entry and of all its bracket legs (every generation), in recorded order."""
    entry = resolve_entry(ledger, ident)
    orders = _orders_of_signal(ledger, entry)
    timeline = [TimelineEntry(o.id, o.role.value, h) for o in orders for h in ledger.order_history(o.id)]
    timeline.sort(key=lambda e: (e.entry.timestamp, e.entry.version))
    return entry, orders, timeline


def orders_at(ledger: ExecutionLedger, at: datetime) -> list[Order]:
    """Every order as it was at ``at``: its events up to that moment folded again (orders not yet placed omitted)."""
    result = []
    for order_id in ledger.order_ids():
        state = None
        for ev in ledger.app.repository.event_store.get(order_id):
            if ev.timestamp > at:
                break
            state = ev.mutate(state)
        if state is not None:
            result.append(state)
    return result
