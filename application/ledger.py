"""ExecutionLedger: the use cases that turn approved signals into recorded orders and read their history."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from execledger.application.orders_app import OrdersApp
from execledger.application.policies import LastPrice
from execledger.application.ports import Clock, SystemClock
from execledger.domain.clock import stamped
from execledger.domain.errors import DomainError
from execledger.domain.events import EventKind, kind_of
from execledger.domain.order import Order
from execledger.domain.pairs import PairRegistry
from execledger.domain.reasons import Rule, reason
from execledger.domain.signal import TradeSignal, parse_signal, plan_entry
from execledger.domain.values import OrderRole, plain

# Namespace for ids derived from signal ids, so a signal maps to the same order id on every run and every machine.
ORDER_ID_NAMESPACE = UUID("8f0c5a52-4c3e-4d0e-9a7e-3f1b2d6c9e10")


class LedgerError(Exception):
    """Base of the application layer's errors."""


class SignalConflict(LedgerError):
    """The signal_id was already used for a signal with other content: nothing was written."""


class OrderNotFound(LedgerError):
    pass


def entry_order_id(signal_id: str) -> UUID:
    """The entry order's id is derived from the signal id: that is what makes submission idempotent."""
    return uuid.uuid5(ORDER_ID_NAMESPACE, f"entry:{signal_id}")


@dataclass(frozen=True)
class SubmitResult:
    order: Order
    created: bool  # False: the same signal was already recorded, nothing was written


@dataclass(frozen=True)
class HistoryEntry:
    """One stored event as audit shows it."""

    version: int
    name: str
    kind: EventKind
    timestamp: datetime
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> dict[str, Any] | None:
        return self.data.get("reason")


_ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic", "class_version"}


def entry_for_signal(
    data: Mapping[str, Any] | TradeSignal,
    pairs: PairRegistry,
    existing: Order | None,
    last_price: Callable[[str], LastPrice | None] | None = None,
) -> SubmitResult:
    """Validate an approved signal into its entry order (Placed), not yet saved.

    Idempotent by ``signal_id``: ``existing`` is the entry already recorded for that id (if any); the same signal
    again returns it (``created=False``), the same id with other content raises SignalConflict. Invalid input raises
    SignalRejected. Values are rounded once, by the pair's rules (``domain/pairs.py``). ``last_price``: a pair's
    (AssetPairs key) fresh last price or None (``ContingencyManager.last_price``), used as ``plan_entry`` says."""
    signal = parse_signal(data)
    fingerprint = signal.fingerprint()
    if existing is not None:
        return SubmitResult(_same_signal(existing, signal, fingerprint), created=False)
    last = _last_price_of(signal, pairs, last_price)
    plan = plan_entry(signal, pairs, last.price if last is not None else None)
    order = Order.place(
        order_id=entry_order_id(signal.signal_id),
        signal_id=signal.signal_id,
        role=OrderRole.ENTRY,
        pair=plan.rules.key,
        side=signal.side,
        order_type=plan.order_type,
        quantity=plan.quantity,
        limit_price=plan.limit_price,
        cl_ord_id=str(uuid.uuid4()),
        sl_price=plan.sl_price,
        tp_price=plan.tp_price,
        timeout_s=signal.timeout_s,
        tags=signal.tags,
        signal_fingerprint=fingerprint,
        reason=reason(
            Rule.APPROVED_SIGNAL,
            f"approved signal {signal.signal_id}: {signal.side} {plain(plan.quantity)} {plan.rules.wsname} "
            f"{signal.order_type}" + (f" @ {plain(plan.limit_price)}" if plan.limit_price is not None else ""),
            pair_rules={
                "pair_decimals": plan.rules.pair_decimals,
                "lot_decimals": plan.rules.lot_decimals,
                "ordermin": plan.rules.ordermin,
                "costmin": plan.rules.costmin,
            },
            rounded=plan.rounding(),
            **_market_reference(signal, last),
        ),
    )
    return SubmitResult(order, created=True)


def _last_price_of(
    signal: TradeSignal, pairs: PairRegistry, last_price: Callable[[str], LastPrice | None] | None
) -> LastPrice | None:
    """The fresh last price of the signal's pair when a check needs it: the legs of an entry that fills at once
    (market, marketable limit), a market entry's cost (``plan_entry``). The Placed reason records the price used,
    or that none was known, in ``market_reference``."""
    known = pairs.find(signal.pair)
    wanted = signal.sl_price is not None or signal.tp_price is not None or signal.order_type == "market"
    return last_price(known.key) if last_price is not None and known is not None and wanted else None


def _market_reference(signal: TradeSignal, last: LastPrice | None) -> dict[str, Any]:
    """What an entry's sl/tp were checked against besides its limit: the last price (and when it was seen), or, for
    a market entry, the note that no fresh price was known (the trading process follows prices only of pairs whose
    protection needs them): then a stop above a buy's fill triggers at once on the venue."""
    if signal.sl_price is None and signal.tp_price is None:
        return {}
    if last is None and signal.order_type != "market":
        return {}  # a limit entry's legs were checked against its limit
    if last is None:
        return {"market_reference": "no fresh last price known: sl/tp not checked against the market"}
    return {"market_reference": {"last_price": last.price, "observed_at": last.at}}


def _same_signal(order: Order, signal: TradeSignal, fingerprint: str) -> Order:
    if order.signal_fingerprint != fingerprint:
        raise SignalConflict(
            f"signal_id {signal.signal_id!r} was already recorded with different content "
            f"(order {order.id}); a new signal needs a new signal_id"
        )
    return order


class ExecutionLedger:
    """Reads of the write side: orders and their histories, straight from the log (reports use the read models)."""

    def __init__(self, app: OrdersApp, pairs: PairRegistry, clock: Clock | None = None):
        self.app = app
        self.pairs = pairs
        self.clock = clock or SystemClock()

    # --- queries ----------------------------------------------------------------------------------------

    def get_order(self, order_id: UUID | str) -> Order:
        found = self.find(_as_uuid(order_id))
        if found is None:
            raise OrderNotFound(f"no order with id {order_id}")
        return found

    def order_for_signal(self, signal_id: str) -> Order:
        found = self.find(entry_order_id(signal_id))
        if found is None:
            raise OrderNotFound(f"no order for signal {signal_id!r}")
        return found

    def order_history(self, order_id: UUID | str) -> list[HistoryEntry]:
        """Every stored event of the order, oldest first, with its kind (decision/outcome/fact) and reason."""
        oid = _as_uuid(order_id)
        events = list(self.app.repository.event_store.get(oid))
        if not events:
            raise OrderNotFound(f"no order with id {order_id}")
        history = []
        for ev in map(stamped, events):
            name = type(ev).__name__
            data = {k: v for k, v in ev.__dict__.items() if k not in _ENVELOPE}
            history.append(HistoryEntry(ev.originator_version, name, kind_of(ev), ev.timestamp, data))
        return history

    def order_ids(self) -> Iterator[UUID]:
        """Ids of all orders in the order they were placed (reads the log; reports use the read models)."""
        start = 1
        while True:
            batch = self.app.recorder.select_notifications(start=start, limit=1000, topics=_PLACED_TOPICS)
            if not batch:
                return
            for n in batch:
                yield n.originator_id if isinstance(n.originator_id, UUID) else UUID(str(n.originator_id))
            start = batch[-1].id + 1

    def load_orders(self, page: int = 1000, *, everything: bool = False) -> Iterator[Order]:
        """Every order the trading process must hold, built in one pass over the log: pages of the orders' stored
        events, decoded by the application's mapper (upcasts included) and folded into aggregates in memory, as
        ``repository.get`` folds them, instead of one query per order. Orders of retired signals (``retire``) are
        left out unless an event was recorded for them after they were retired (``everything``: every order, for
        audits). In placement order."""
        recorder: Any = self.app.recorder  # the store's recorder; with the retired-orders table it has two more calls
        select = None if everything else getattr(recorder, "select_live_order_events", None)
        if select is None:  # every order (or a store without the retired-orders table)
            select = recorder.select_notifications
        else:
            recorder.revive_retired()  # signals that got an event after they were retired load again
        to_event = self.app.mapper.to_domain_event
        orders: dict[UUID, Order] = {}
        start = 1
        collecting = gc.isenabled()
        gc.disable()  # the fold only allocates what it keeps: cyclic collections during it cost 25-35% for nothing
        try:
            while True:
                batch = select(start=start, limit=page, topics=ORDER_TOPICS)
                if not batch:
                    break
                for n in batch:
                    ev: Any = to_event(n)  # an Order event: its mutate folds it as repository.get would
                    oid = ev.originator_id
                    orders[oid] = ev.mutate(orders.get(oid))
                start = batch[-1].id + 1
        finally:
            if collecting:
                gc.enable()
        return iter(orders.values())

    def load_signal(self, order_id: UUID) -> list[Order]:
        """Every order of the signal ``order_id`` belongs to (its entry first, then every exit order), or [] when
        the log has no such order. Loads what the trading process let go of (``retire``) when it is asked for."""
        order = self.find(order_id)
        if order is None:
            return []
        entry = order if order.parent_id is None else self.find(order.parent_id)
        if entry is None:  # pragma: no cover - a leg is recorded after its entry
            return [order]
        exits = [order if i == order.id else self.find(i) for i in entry.exit_order_ids()]
        return [entry, *(o for o in exits if o is not None)]

    def signal_entry_id(self, signal_id: str) -> UUID:
        return entry_order_id(signal_id)

    def retire(self, orders: list[Order]) -> None:
        """Record that these orders (whole signals, flat and terminal) are no longer held in memory: start-up skips
        them and their venue ids still find them (``retired_order_id``). Written before they are dropped."""
        record = getattr(self.app.recorder, "retire_orders", None)
        if record is not None:
            record([(o.id, o.parent_id or o.id, o.version, o.cl_ord_id, o.txid) for o in orders])

    @property
    def can_retire(self) -> bool:
        return hasattr(self.app.recorder, "retire_orders")

    def retired_order_id(self, ref: str) -> UUID | None:
        """The id of a retired order with this Kraken txid or cl_ord_id, or None."""
        lookup = getattr(self.app.recorder, "retired_order_id", None)
        return lookup(ref) if lookup is not None else None

    # --- helpers ----------------------------------------------------------------------------------------

    def find_recorded(self, order_id: UUID) -> Order | None:
        """``find`` for an id that is most likely not recorded (a new signal's entry): the store's cheap existence
        check first (``has_events``, where the recorder has one), the aggregate only when it is there."""
        has_events = getattr(self.app.recorder, "has_events", None)
        if has_events is not None and not has_events(order_id):
            return None
        return self.find(order_id)

    def find(self, order_id: UUID) -> Order | None:
        """The order as the log has it, or None."""
        try:
            return self.app.repository.get(order_id)
        except AggregateNotFoundError:
            return None


# Placed events stored before the package was installed as ``execledger`` carry the old module path.
_PLACED_TOPICS = (f"{Order.Placed.__module__}:{Order.Placed.__qualname__}", "domain.order:Order.Placed")
# Every event of an order, under both module paths.
ORDER_TOPICS = tuple(
    f"{module}:{cls.__qualname__}"
    for module in (Order.__module__, "domain.order")
    for cls in vars(Order).values()
    if isinstance(cls, type) and issubclass(cls, Order.Event)
)


def _as_uuid(value: UUID | str) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise OrderNotFound(f"{value!r} is not an order id (a UUID)") from None


__all__ = [
    "DomainError",
    "ExecutionLedger",
    "HistoryEntry",
    "LedgerError",
    "OrderNotFound",
    "SignalConflict",
    "SubmitResult",
    "entry_for_signal",
    "entry_order_id",
]
