"""What each recorded event is: every event class of the domain declares its kind (a decision, an outcome, a
fact) and whether it changes what an execution report shows. Audit, replay, the projector and the reports ask the
event (``kind_of``, ``is_reported``), never a table of names.

eventsourcing generates the event class of a ``@event("Name")`` mutator when the aggregate class is made, so the
declaration sits on the mutator (``@declares(...)`` above ``@event``) and ``bind_declarations`` copies it onto the
generated class.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import CommandMethodDecorator, decorated_func_callers
from eventsourcing.utils import get_topic

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


_DECISIONS = itertools.count()  # the order in which this process decided events, across every aggregate


def decided_order(aggregate: Any) -> list[int]:
    """The decision numbers of ``aggregate``'s pending events, one each in order, and forgets them; [] when any
    of them was recorded without one (the library's own path): the unit of work then keeps that aggregate's
    events where they are. Stored events are written in decision order across aggregates (a leg's decision
    taken after its entry's first fill is stored before that entry's later fill), so that replaying the log
    re-decides in the order things were decided."""
    numbers: list[int] = aggregate.__dict__.pop("_decided", [])
    return numbers if len(numbers) == len(aggregate._pending_events) else []


def _number(aggregate: Any) -> None:
    aggregate.__dict__.setdefault("_decided", []).append(next(_DECISIONS))


def lean_triggers(aggregate: type) -> type:
    """Class decorator (below ``bind_declarations``): each ``@event`` command method of ``aggregate`` (not
    ``__init__``) records its event through ``_trigger`` instead of eventsourcing's decorator path.

    The event is the one the library records (the class it registered for the method, built with the same values,
    the same id, next version and timestamp), the method's body is applied to the aggregate with those values, and
    the aggregate's version, modified time and pending events change as the library's ``trigger_event`` changes
    them. What the library spends on the way, 20-25 us an event on Python 3.11 (the bound decorator object, the
    coercion and two filterings of the arguments, the checks of ``mutate``), is left out: ~11 events a lifecycle
    (issue 18). Replay is untouched: stored events are applied by the library's ``mutate``."""
    for name, member in list(vars(aggregate).items()):
        if not isinstance(member, CommandMethodDecorator) or member.decorated_property is not None:
            continue
        func = member.decorated_func
        if func.__name__ == "__init__":
            continue
        setattr(aggregate, name, _trigger(decorated_func_callers[member], func))
    return aggregate


def _trigger(event_cls: Any, func: Callable[..., None]) -> Callable[..., None]:
    """A command method recording ``event_cls`` and applying ``func`` (the decorated body) with its values."""
    params = [p for p in inspect.signature(func).parameters.values() if p.name != "self"]
    names = tuple(p.name for p in params)
    defaults = {p.name: p.default for p in params if p.default is not p.empty}
    stamp = event_cls.create_timestamp

    def trigger(self: Any, *args: Any, **kwargs: Any) -> None:
        if args:
            kwargs.update(zip(names, args, strict=False))
        if defaults:
            kwargs = {**defaults, **kwargs}
        new = event_cls(originator_id=self._id, originator_version=self._version + 1, timestamp=stamp(), **kwargs)
        func(self, **kwargs)  # the library applies the event's values: the same objects
        self._version = new.originator_version
        self._modified_on = new.timestamp
        self._pending_events.append(new)
        _number(self)

    trigger.__name__, trigger.__qualname__, trigger.__doc__ = func.__name__, func.__qualname__, func.__doc__
    return trigger


def lean_create(aggregate_cls: type[T], event_cls: Any, originator_id: UUID, **kwargs: Any) -> T:
    """A new ``aggregate_cls`` from its created event ``event_cls`` with ``kwargs``: what the library's ``_create``
    records and builds (the same event, version 1, the class's topic; the aggregate's base attributes, then its
    ``@event`` ``__init__`` body with the event's values), without its argument filtering and topic resolving
    (20 us an order on Python 3.11, three orders a lifecycle; issue 18)."""
    cls: Any = aggregate_cls
    timestamp = event_cls.create_timestamp()
    version = cls.INITIAL_VERSION
    new = event_cls(
        originator_topic=get_topic(cls),
        originator_id=originator_id,
        originator_version=version,
        timestamp=timestamp,
        **kwargs,
    )
    aggregate = cls.__new__(cls)
    aggregate.__base_init__(originator_id=originator_id, originator_version=version, timestamp=timestamp)
    vars(cls)["__init__"].decorated_func(aggregate, **kwargs)
    new.apply(aggregate)
    aggregate._pending_events.append(new)
    _number(aggregate)
    result: T = aggregate
    return result
