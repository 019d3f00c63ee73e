"""Listeners over what the ledger saves: ``(aggregate, events)`` pairs, told after each successful commit.

The engine is to call such listeners itself; until it does, ``observe_saves`` wraps one ledger's ``save`` (every
Order and TradingState change goes through it, signals included) so the log lines, metrics and tests can follow the
decisions today. A listener that raises is logged and never breaks trading: observing is not deciding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("execledger.observers")

Saved = Sequence[tuple[Any, list[Any]]]  # (aggregate as it is after the events, the eventsourcing domain events)
Listener = Callable[[Saved], None]


def notify_listeners(listeners: Sequence[Listener], saved: Saved) -> None:
    """Call each listener with what was saved; a failing listener is logged and the others still run."""
    for listener in listeners:
        try:
            listener(saved)
        except Exception:
            log.exception("listener %r failed on a save (the save itself stands)", listener)


def observe_saves(ledger: Any, *listeners: Listener) -> Callable[[], None]:
    """Call ``listeners`` after every successful ``ledger.save(...)``; returns a function that undoes it."""
    original = ledger.save

    def save(*aggregates: Any) -> None:
        pending = [(a, list(a.pending_events)) for a in aggregates if a.pending_events]
        original(*aggregates)
        if pending:
            notify_listeners(listeners, pending)

    ledger.save = save
    return lambda: setattr(ledger, "save", original)
