"""Replay: re-run the policies over the recorded log and report every recorded decision they would not make now.

The log is read in commit order; before each recorded policy decision the policies are asked again, with the
orders exactly as they were just before it and the time the decision recorded. A decision they no longer
produce is a difference: it proves (or disproves) that the recorded decisions are reproducible from the facts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from execledger.application.orders_app import OrdersApp
from execledger.application.policies import (
    AmendOrder,
    CancelOrder,
    Defer,
    LastPrice,
    PlaceBracket,
    PlaceLeg,
    PolicyConfig,
    ResizeBracket,
    TimeOut,
    TriggerEmulated,
    protection_policy,
    timeout_policy,
)
from execledger.domain.order import Order
from execledger.domain.pairs import PairRegistry
from execledger.domain.reasons import Rule
from execledger.domain.values import OrderRole, plain


@dataclass(frozen=True)
class Difference:
    order_id: UUID
    version: int
    event: str
    rule: str | None
    recorded: str
    replayed: str


@dataclass
class ReplayResult:
    events: int = 0
    decisions_checked: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


class PolicyReplay:
    def __init__(self, app: OrdersApp, pairs: PairRegistry, config: PolicyConfig):
        self.app, self.pairs, self.config = app, pairs, config
        self.orders: dict[UUID, Order] = {}

    def _events(self, progress: Callable[[int], None] | None) -> Iterator[Any]:
        start = 1
        while True:
            batch = self.app.recorder.select_notifications(start=start, limit=1000)
            if not batch:
                return
            for n in batch:
                domain_event = self.app.mapper.to_domain_event(n)
                if isinstance(domain_event, Order.Event):
                    yield domain_event
            start = batch[-1].id + 1
            if progress:
                progress(len(batch))

    def run(self, progress: Callable[[int], None] | None = None) -> ReplayResult:
        result = ReplayResult()
        for ev in self._events(progress):
            before = self.orders.get(ev.originator_id)
            expected = self._check(before, ev)
            if expected is not None:
                result.decisions_checked += 1
                recorded, replayed = expected
                if recorded not in replayed:
                    why = getattr(ev, "reason", None) or {}
                    result.differences.append(
                        Difference(
                            ev.originator_id,
                            ev.originator_version,
                            type(ev).__name__,
                            why.get("rule"),
                            recorded,
                            "; ".join(replayed) or "nothing",
                        )
                    )
            self.orders[ev.originator_id] = ev.mutate(before)
            result.events += 1
        return result

    # Each check returns (what was recorded, what the policies decide now), both as comparable text.

    def _check(self, order: Order | None, ev: Any) -> tuple[str, list[str]] | None:
        name = type(ev).__name__
        why = getattr(ev, "reason", None) or {}
        rule = why.get("rule", "")
        if order is None:
            return None
        rules = self.pairs.require(order.pair)
        if name == "TimedOut":
            recorded = f"timeout after {ev.age_s:g}s (threshold {ev.threshold_s:g}s, {ev.rule})"
            return recorded, [_describe(a) for a in timeout_policy(order, rules, ev.observed_at, self.config)]
        if name == "Deferred" and rule == Rule.TIMEOUT_CANCEL_REFUSED:
            started = order.acknowledged_at or order.submitted_at
            if started is None:
                raise ValueError(f"order {order.id}: a timeout was deferred for an order that was never sent")
            now = started + timedelta(seconds=float(why["age_s"]))
            return f"defer {ev.key}", [_describe(a) for a in timeout_policy(order, rules, now, self.config)]
        if name in ("BracketPlaced", "BracketResized", "EmulatedLegTriggered"):
            return self._recorded(ev), self._protection(order, _last_of(ev))
        if name == "BracketLegAdded":
            leg = self._leg_after(ev.order_id)
            recorded = f"leg {ev.role} {plain(leg.quantity) if leg else '?'} in bracket {ev.index}"
            return recorded, self._protection(order, _last_of(leg.placement_reason if leg else {}))
        if order.parent_id in self.orders and rule in PROTECTION_RULES:
            entry = self.orders[order.parent_id]
            if name == "CancelRequested":
                return f"cancel {order.id}", self._protection(entry, _last_of(why))
            if name == "AmendRequested":
                return f"amend {order.id} to {plain(Decimal(ev.quantity))}", self._protection(entry, None)
        return None

    def _recorded(self, ev: Any) -> str:
        name = type(ev).__name__
        if name == "BracketPlaced":
            return f"bracket {plain(Decimal(ev.quantity))} sl={_p(ev.sl_price)} tp={_p(ev.tp_price)}"
        if name == "BracketResized":
            return f"resize bracket {ev.index} to {plain(Decimal(ev.quantity))}"
        return f"trigger {ev.role} at {plain(Decimal(ev.price))}"

    def _protection(self, entry: Order, last: LastPrice | None) -> list[str]:
        rules = self.pairs.require(entry.pair)
        return [_describe(a) for a in protection_policy(entry, self.orders, rules, self.config, last)]

    def _leg_after(self, order_id: UUID) -> Order | None:
        # A new leg's Placed follows its BracketLegAdded in the same transaction: peek it from the store.
        try:
            return self.app.repository.get(order_id, version=1)
        except Exception:
            return None


# Decisions on a leg that the protection policy takes (see ``protection_policy``).
PROTECTION_RULES = frozenset(
    {
        Rule.OCO_CANCEL_SIBLING,
        Rule.AMEND_REFUSED_REPLACE,
        Rule.ONE_LEG_PER_ROLE,
        Rule.BRACKET_GROW_AMEND,
        Rule.OCO_SHRINK_AMEND,
    }
)


def _last_of(why: Any) -> LastPrice | None:
    """The public price a recorded decision observed (it is in the event, or in the reason of a price-driven
    decision), so the policy is asked with the same price."""
    price = getattr(why, "price", None)
    at = getattr(why, "observed_at", None)
    if isinstance(why, dict):
        price, at = why.get("price"), why.get("observed_at")
    if price is None or at is None:
        return None
    return LastPrice(Decimal(str(price)), at if isinstance(at, datetime) else datetime.fromisoformat(str(at)))


def _describe(action: Any) -> str:
    if isinstance(action, TimeOut):
        return f"timeout after {action.age_s:g}s (threshold {action.threshold_s:g}s, {action.rule})"
    if isinstance(action, Defer):
        return f"defer {action.key}"
    if isinstance(action, PlaceBracket):
        return f"bracket {plain(action.quantity)} sl={_p(action.sl_price)} tp={_p(action.tp_price)}"
    if isinstance(action, PlaceLeg):
        return f"leg {OrderRole(action.role).value} {plain(action.quantity)} in bracket {action.bracket_index}"
    if isinstance(action, CancelOrder):
        return f"cancel {action.order_id}"
    if isinstance(action, AmendOrder):
        return f"amend {action.order_id} to {plain(action.quantity)}"
    if isinstance(action, ResizeBracket):
        return f"resize bracket {action.bracket_index} to {plain(action.quantity)}"
    if isinstance(action, TriggerEmulated):
        return f"trigger {action.role.value} at {plain(action.price)}"
    return repr(action)


def _p(value: Any) -> str:
    return "-" if value is None else plain(Decimal(value))
