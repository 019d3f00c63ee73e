"""The one clock of every recorded event.

eventsourcing stamps each event with its class's ``create_timestamp()``; the aggregates of this domain take it from
here, and the composition root points it at the application's clock (``use``), so that the times decisions are
taken at and the times their events carry come from one source: a clock that a wall-clock step does not move
(see ``infrastructure/clock.py``). The domain itself never reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from eventsourcing.domain import Aggregate, datetime_now_with_tzinfo

_now: Callable[[], datetime] = datetime_now_with_tzinfo


def use(now: Callable[[], datetime]) -> None:
    """Take event timestamps from ``now`` (a tz-aware datetime source) from here on, in this process."""
    global _now
    _now = now


def now() -> datetime:
    return _now()


class TimestampedEvent(Aggregate.Event):
    """Base of the domain's events: timestamped by the one clock."""

    @staticmethod
    def create_timestamp() -> datetime:
        return _now()


def stamped(event: object) -> TimestampedEvent:
    """A stored event of this domain as its type (every aggregate here records TimestampedEvents): what the event
    store hands back is typed only by eventsourcing's protocol, which knows no ``timestamp`` nor ``mutate``."""
    if not isinstance(event, TimestampedEvent):
        raise TypeError(f"not an event of this domain: {type(event).__name__}")
    return event
