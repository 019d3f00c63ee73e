"""The projection: stored events of the Orders log -> read-model rows, for one batch at a time.

It reads the stored JSON itself (orjson, only the fields the rows need) instead of going through the application's
mapper and re-hydrating ``Order`` aggregates (that path rebuilt 2-3k events/s on this machine class; decoding,
the view and the rows now take about 10 µs of CPU an event, the database's writes most of the rest: see
``bench/projection_rebuild.py``). What it does with each event is the aggregate's own mutation, on a small
``rows.OrderView``; ``tests/test_rows.py`` checks the
two agree on random histories and ``tests/test_projections.py`` that a rebuild equals the live tables.

Topics resolve through eventsourcing's registry, so events stored under the package's old top-level names
(``domain.order:Order.Placed``, registered in ``domain/__init__.py``) project like new ones; a class's upcasters
(``upcast_vN_vN+1``) run on the decoded JSON, as the mapper runs them on the transcoded state. Events of other
aggregates in the same log (the trading state) are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from eventsourcing.utils import resolve_topic

from execledger.domain.events import EventKind
from execledger.domain.order import Order
from execledger.infrastructure.readmodels.rows import (
    OrderView,
    db_time,
    decision_row,
    fill_row,
    order_row,
    report_row,
    signal_row,
    uuid_text,
)
from execledger.infrastructure.transcoder import may_hold_long_integer


class StoredRecord(NamedTuple):
    """One row of the event store's log: notification id, originator id (text), version, topic, JSON state."""

    id: int
    originator_id: str
    originator_version: int
    topic: str
    state: bytes


class EventDecodeError(ValueError):
    """A stored event could not be decoded; the message names its notification id, originator and topic."""


@dataclass(frozen=True)
class _Topic:
    name: str
    class_version: int
    cls: type
    kind: str  # what the event class declares (domain/events.py): decision, outcome or fact
    reported: bool  # whether it changes what an execution report shows


_topics: dict[str, _Topic | None] = {}


def topic_info(topic: str) -> _Topic | None:
    """The Order event class a stored topic names (old names included), or None for other aggregates' events."""
    try:
        return _topics[topic]
    except KeyError:
        pass
    cls = resolve_topic(topic)
    info = None
    if issubclass(cls, Order.Event):
        kind = getattr(cls, "kind", EventKind.FACT)
        info = _Topic(
            cls.__name__, getattr(cls, "class_version", 1), cls, kind.value, bool(getattr(cls, "reported", 0))
        )
    _topics[topic] = info
    return info


def _loads(record: StoredRecord) -> dict:
    """The stored JSON: orjson, or the standard library for what orjson refuses (NaN) or would misread (an integer
    beyond 64 bits, read as a float)."""
    if not may_hold_long_integer(record.state):
        try:
            return orjson.loads(record.state)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(record.state)
    except ValueError as exc:
        raise EventDecodeError(
            f"stored event {record.id} ({record.topic}, order {record.originator_id} v{record.originator_version})"
            f" is not valid JSON: {exc}"
        ) from None


def decode(record: StoredRecord, info: _Topic) -> dict:
    """The stored state as plain JSON values (tagged decimals, UUIDs and times left tagged), upcast to the class."""
    state = _loads(record)
    version = state.pop("class_version", 1)
    while version < info.class_version:
        getattr(info.cls, f"upcast_v{version}_v{version + 1}")(state)
        version += 1
    return state


@dataclass
class BatchRows:
    """What one batch writes: per-event rows to append, current-state rows to upsert."""

    reports: list[tuple] = field(default_factory=list)
    fills: list[tuple] = field(default_factory=list)
    decisions: list[tuple] = field(default_factory=list)
    orders: list[tuple] = field(default_factory=list)
    signals: list[tuple] = field(default_factory=list)
    last_id: int = 0
    events: int = 0

    @property
    def row_count(self) -> int:
        return len(self.reports) + len(self.fills) + len(self.decisions) + len(self.orders) + len(self.signals)


ViewLoader = Callable[[list[str]], dict[str, OrderView]]
MemberLoader = Callable[[list[str]], dict[str, list[str]]]


class OrdersProjection:
    """Turns batches of stored events into rows. Keeps a bounded cache of views (and of each signal's orders);
    whatever is not cached is read back from the read-model tables themselves through the loaders, which see
    the tables at the position the batch starts from. ``stage`` changes nothing until ``commit`` is called
    after the batch's transaction committed; ``forget`` drops everything (after a failed or conflicting batch)."""

    def __init__(self, load_views: ViewLoader, load_members: MemberLoader, *, max_cached: int = 20_000):
        self.load_views = load_views
        self.load_members = load_members
        self.max_cached = max_cached
        self.views: dict[str, OrderView] = {}
        self.members: dict[str, list[str]] = {}  # signal id -> its order ids, for signals seen since the cache began
        self._staged: tuple[dict[str, OrderView], dict[str, list[str]]] | None = None

    def forget(self) -> None:
        self.views.clear()
        self.members.clear()
        self._staged = None

    def stage(self, records: Iterable[StoredRecord]) -> BatchRows:
        """Rows for ``records`` (in log order) from the state the cache and tables hold before them."""
        out = BatchRows()
        decoded: list[tuple[StoredRecord, _Topic]] = []
        first_seen: dict[str, int] = {}
        for r in records:
            out.last_id = r.id
            out.events += 1
            info = topic_info(r.topic)
            if info is None:
                continue
            decoded.append((r, info))
            first_seen.setdefault(r.originator_id, r.originator_version)
        views: dict[str, OrderView] = {}  # this batch's copies: the cache is only updated by commit()
        missing = [oid for oid, v in first_seen.items() if v > 1 and oid not in self.views]
        loaded = self.load_views(missing) if missing else {}
        touched_signals: set[str] = set()
        new_members: dict[str, list[str]] = {}
        reports, fills, decisions = out.reports, out.fills, out.decisions
        for r, info in decoded:
            oid, version, name = r.originator_id, r.originator_version, info.name
            e = decode(r, info)
            at = db_time(e["timestamp"])
            if name == "Placed":
                view = views[oid] = OrderView.placed(oid, version, e, at)
                new_members.setdefault(view.signal_id, []).append(oid)
            else:
                known = views.get(oid)
                if known is None:
                    cached = self.views.get(oid) or loaded.get(oid)
                    if cached is None:
                        raise EventDecodeError(
                            f"stored event {r.id} ({r.topic}) is version {version} of order {oid}, "
                            "whose earlier events the read models do not have"
                        )
                    known = views[oid] = _copy(cached)
                view = known
                view.apply(name, version, e, at)
            touched_signals.add(view.signal_id)
            row = report_row(view, name, version, e, info.reported)
            if row is not None:
                reports.append(row)
            row = fill_row(view, name, e, at)
            if row is not None:
                fills.append(row)
            row = decision_row(view, name, version, e, at, info.kind)
            if row is not None:
                decisions.append(row)
        out.orders = [order_row(v) for v in views.values()]
        members = self._members(touched_signals, new_members)
        unknown = [oid for ids in members.values() for oid in ids if oid not in views and oid not in self.views]
        others = self.load_views(unknown) if unknown else {}
        for sid in sorted(touched_signals):
            ids = members[sid]
            out.signals.append(signal_row(sid, [views.get(i) or self.views.get(i) or others[i] for i in ids]))
        self._staged = (views, {sid: members[sid] for sid in touched_signals})
        return out

    def _members(self, signals: set[str], new: dict[str, list[str]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        unknown = [s for s in signals if s not in self.members]
        stored = self.load_members(unknown) if unknown else {}
        for sid in signals:
            ids = list(self.members[sid]) if sid in self.members else list(stored.get(sid, ()))
            ids += [i for i in new.get(sid, ()) if i not in ids]
            out[sid] = ids
        return out

    def commit(self) -> None:
        """The staged batch is durable: keep its views (and evict settled ones when the cache is full)."""
        if self._staged is None:
            return
        views, members = self._staged
        self._staged = None
        self.views.update(views)
        self.members.update(members)
        if len(self.views) > self.max_cached:
            # Terminal orders rarely see another event (a late fill); they are read back from the tables if so.
            self.views = {k: v for k, v in self.views.items() if not v.is_terminal}
            self.members.clear()
            if len(self.views) > self.max_cached:
                self.views.clear()


def _copy(view: OrderView) -> OrderView:
    new = OrderView.__new__(OrderView)
    for name in OrderView.__slots__:
        setattr(new, name, getattr(view, name))
    return new


def record_from_notification(n: Any) -> StoredRecord:
    """A StoredRecord from an eventsourcing ``Notification`` (tests, and callers that hold notifications)."""
    return StoredRecord(n.id, uuid_text(n.originator_id.hex), n.originator_version, n.topic, n.state)
