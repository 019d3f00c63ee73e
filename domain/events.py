"""What each recorded event is: every event class of the domain declares its kind (a decision, an outcome, a
fact) and whether it changes what an execution report shows. Audit, replay, the projector and the reports ask the
event (``kind_of``, ``is_reported``), never a table of names.

eventsourcing generates the event class of a ``@event("Name")`` mutator when the aggregate class is made, so the
declaration sits on the mutator (``@declares(...)`` above ``@event``) and ``bind_declarations`` copies it onto the
generated class.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

T = TypeVar("T")


class EventKind(StrEnum):
    DECISION = "decision"  # what we decided and why (recorded before any exchange call)
    OUTCOME = "outcome"  # what the exchange answered to one of our calls
    FACT = "fact"  # what the venue reported on its own (fills, cancels, expiries)


def declares(kind: EventKind, *, reported: bool = False) -> Callable[[T], T]:
    """Declare the kind of the event a ``@event`` mutator records (put it above ``@event``)."""

    def mark(decorated: T) -> T:
        # The mutator is a function object, which takes attributes; T says nothing of them.
        decorated.declared = (kind, reported)  # type: ignore[attr-defined]
        return decorated

    return mark


def bind_declarations(aggregate: type) -> type:
    """Copy each mutator's declaration onto the event class eventsourcing generated for it (a class decorator)."""
    for member in vars(aggregate).values():
        declared = getattr(member, "declared", None)
        name = getattr(member, "event_cls_name", None) or getattr(
            getattr(member, "given_event_cls", None), "__name__", None
        )
        if declared is not None and name:
            event_cls = getattr(aggregate, name)
            event_cls.kind, event_cls.reported = declared
    return aggregate


def kind_of(event: Any) -> EventKind:
    return getattr(type(event), "kind", EventKind.FACT)


def is_reported(event: Any) -> bool:
    return bool(getattr(type(event), "reported", False))


def kinds_by_name(aggregate: type) -> dict[str, EventKind]:
    """Event name -> kind for every event class of ``aggregate`` that declares one (for readers keyed by name)."""
    kinds = {name: getattr(value, "kind", None) for name, value in vars(aggregate).items() if isinstance(value, type)}
    return {name: kind for name, kind in kinds.items() if isinstance(kind, EventKind)}
