"""Audit from the log itself: an order's (or a signal's) story, and every order as it was at a past moment.

Any of the four ids an operator holds names an order: the signal id, the ledger's order id (UUID, entry or leg),
Kraken's txid (e.g. ``OQCLML-BW3P3-BUCMWZ``) or the ``cl_ord_id`` the ledger sent with AddOrder (a UUID).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from execledger.application.ledger import ExecutionLedger, HistoryEntry, OrderNotFound
from execledger.domain.clock import stamped
from execledger.domain.order import Order

# Finds an order id by txid or cl_ord_id, e.g. from the read models' orders table (fast, indexed); None if unknown.
VenueIdLookup = Callable[[str], UUID | str | None]


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


def _scan_log_for(ledger: ExecutionLedger, ident: str) -> UUID | None:
    """The order whose Placed carries ``ident`` as cl_ord_id, or whose Acknowledged carries it as txid (a scan of
    those two event types in the log: the fallback when no read-model lookup is given or it lags)."""
    # eventsourcing generates Order.Acknowledged from its @event mutator at run time, where mypy cannot see it.
    topics = (_topic(Order.Placed), _topic(Order.Acknowledged))  # type: ignore[attr-defined]
    wanted = ident.strip()
    start = 1
    while True:
        batch = ledger.app.recorder.select_notifications(start=start, limit=1000, topics=topics)
        if not batch:
            return None
        for n in batch:
            ev = ledger.app.mapper.to_domain_event(n)
            if getattr(ev, "cl_ord_id", None) == wanted or str(getattr(ev, "txid", "")).upper() == wanted.upper():
                return ev.originator_id
        start = batch[-1].id + 1


def _topic(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def resolve_order(ledger: ExecutionLedger, ident: str, lookup: VenueIdLookup | None = None) -> Order:
    """The order named by ``ident``: an order id, a txid or a cl_ord_id names that order; a signal id names the
    signal's entry. Raises OrderNotFound naming what was tried."""
    ident = ident.strip()
    try:
        return ledger.get_order(UUID(ident))
    except (ValueError, OrderNotFound):
        pass
    try:
        return ledger.order_for_signal(ident)
    except OrderNotFound:
        pass
    found = lookup(ident) if lookup is not None else None
    if found is None:
        found = _scan_log_for(ledger, ident)
    if found is None:
        raise OrderNotFound(f"{ident!r} is not a signal id, order id, txid or cl_ord_id known to this ledger")
    return ledger.get_order(found)


def resolve_entry(ledger: ExecutionLedger, ident: str, lookup: VenueIdLookup | None = None) -> Order:
    """Any of the four ids -> the signal's entry order (a leg's id, txid or cl_ord_id leads to its entry)."""
    order = resolve_order(ledger, ident, lookup)
    return ledger.get_order(order.parent_id) if order.parent_id else order


def signal_timeline(
    ledger: ExecutionLedger, ident: str, lookup: VenueIdLookup | None = None
) -> tuple[Order, list[Order], list[TimelineEntry]]:
    """Every event of the signal's entry and of all its bracket legs (every generation), in recorded order."""
    entry = resolve_entry(ledger, ident, lookup)
    orders = _orders_of_signal(ledger, entry)
    timeline = [TimelineEntry(o.id, o.role.value, h) for o in orders for h in ledger.order_history(o.id)]
    timeline.sort(key=lambda e: (e.entry.timestamp, e.entry.version))
    return entry, orders, timeline


def orders_at(ledger: ExecutionLedger, at: datetime) -> list[Order]:
    """Every order as it was at ``at``: its events up to that moment folded again (orders not yet placed omitted)."""
    result: list[Order] = []
    for order_id in ledger.order_ids():
        state = None
        for ev in map(stamped, ledger.app.repository.event_store.get(order_id)):
            if ev.timestamp > at:
                break
            state = ev.mutate(state)
        if state is not None:
            result.append(state)
    return result
