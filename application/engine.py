"""ExecutionEngine: applies venue observations and exchange-call outcomes to orders, runs the policies on what
changed, and saves each fact together with the decisions it triggered in one transaction.

It is synchronous and does no I/O besides the event store: the async workers in ``application.service`` call the
exchange and hand the outcomes back here. State is the log; the in-memory index is rebuilt from it on start.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from execledger.application.exchange import (
    CancelResult,
    ExecutionObservation,
    ObservationKind,
    OrderRequest,
    PlaceResult,
    PlaceStatus,
    VenueOrder,
    VenueOrderStatus,
    VenueTrade,
)
from execledger.application.ledger import ExecutionLedger, SubmitResult
from execledger.application.policies import (
    Action,
    CancelOrder,
    Defer,
    PlaceBracket,
    PlaceLeg,
    PolicyConfig,
    TimeOut,
    bracket_policy,
    oco_policy,
    timeout_policy,
)
from execledger.domain.order import Order, State
from execledger.domain.pairs import PairRules, PriceKind
from execledger.domain.reasons import reason
from execledger.domain.reports import REPORTED_EVENTS, ExecutionReport, execution_report
from execledger.domain.trading_state import TRADING_STATE_ID, TradingMode, TradingState
from execledger.domain.values import ZERO, OrderRole, OrderType, plain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    submit_deadline_s: float = 30.0  # AddOrder ``deadline``: after it the engine would reject the request
    unknown_grace_s: float = 5.0  # how long after the deadline "not found" becomes proof of "not placed"


class ExecutionEngine:
    """The write side's process manager. Not thread-safe: one engine per ledger, driven by one event loop."""

    def __init__(
        self,
        ledger: ExecutionLedger,
        config: EngineConfig | None = None,
        publish: Callable[[ExecutionReport], None] | None = None,
    ):
        self.ledger = ledger
        self.pairs = ledger.pairs
        self.clock = ledger.clock
        self.config = config or EngineConfig()
        self.publish = publish  # receives every ExecutionReport after its events are saved
        self.on_saved: Callable[[], None] | None = None  # told after every save (e.g. to wake the read models)
        self.orders: dict[UUID, Order] = {}
        self.by_txid: dict[str, UUID] = {}
        self.by_cl_ord_id: dict[str, UUID] = {}
        self.trading = self._load_trading_state()
        self.unmatched: list[ExecutionObservation] = []  # venue activity for orders this ledger does not know

    # --- loading ---------------------------------------------------------------------------------------

    def load(self) -> int:
        """Rebuild the in-memory index from the log; returns the number of orders loaded."""
        self.orders.clear(), self.by_txid.clear(), self.by_cl_ord_id.clear()
        for order_id in self.ledger.order_ids():
            self._index(self.ledger.get_order(order_id))
        return len(self.orders)

    def _index(self, order: Order) -> None:
        self.orders[order.id] = order
        self.by_cl_ord_id[order.cl_ord_id] = order.id
        if order.txid:
            self.by_txid[order.txid] = order.id

    def _load_trading_state(self) -> TradingState:
        try:
            return self.ledger.app.repository.get(TRADING_STATE_ID)
        except AggregateNotFoundError:
            return TradingState()

    def find(self, *, txid: str | None = None, cl_ord_id: str | None = None) -> Order | None:
        oid = (self.by_txid.get(txid) if txid else None) or (self.by_cl_ord_id.get(cl_ord_id) if cl_ord_id else None)
        return self.orders.get(oid) if oid else None

    def rules(self, order: Order) -> PairRules:
        rules = self.pairs.find(order.pair)
        if rules is None:  # pragma: no cover - Placed only accepts known pairs
            raise LookupError(f"no pair rules for {order.pair}")
        return rules

    # --- saving and reporting --------------------------------------------------------------------------

    def _save(self, aggregates: Iterable[Any]) -> None:
        touched = [a for a in {a.id: a for a in aggregates}.values() if a.pending_events]
        if not touched:
            return
        pending = [(a, list(a.pending_events)) for a in touched]
        self.ledger.save(*touched)
        if self.on_saved is not None:
            self.on_saved()
        for agg, events in pending:
            if isinstance(agg, Order):
                self._index(agg)
                if self.publish is not None:
                    self._report(agg, events)

    def _report(self, order: Order, events: list[Any]) -> None:
        """Publish a report for each reported event, built from the order as it was right after that event."""
        reported = [ev for ev in events if type(ev).__name__ in REPORTED_EVENTS]
        if not reported:
            return
        if len(reported) == 1 and reported[0] is events[-1]:  # the common case: the current state is the one
            self.publish(execution_report(order, events[-1]))
            return
        first = events[0].originator_version
        copy = self.ledger.app.repository.get(order.id, version=first - 1) if first > 1 else None
        for ev in events:
            copy = ev.mutate(copy)
            report = execution_report(copy, ev)
            if report is not None:
                self.publish(report)

    # --- signals and the trading state -----------------------------------------------------------------

    def submit_signal(self, data: Mapping[str, Any]) -> SubmitResult:
        """Record an approved signal as an entry order. Refused (TradingHalted) unless trading is RUNNING;
        a repeat of an already recorded signal is answered even while halted (it writes nothing)."""
        try:
            existing = self.ledger.order_for_signal(str(data.get("signal_id", "")))
        except Exception:
            existing = None
        if existing is None:
            self.trading.check_entry_allowed()
        result = self.ledger.submit_signal(data)
        if result.created:
            self._index(result.order)
            if self.publish is not None:
                self._report(result.order, list(self.ledger.app.repository.event_store.get(result.order.id)))
        return result

    def set_mode(self, mode: TradingMode, *, by: str, why: str, cancel_entries: bool = False) -> bool:
        """RUNNING / REDUCING / HALTED. Halting with ``cancel_entries`` also decides to cancel every resting entry
        (in the same transaction). Exits are never blocked."""
        now = self.clock.now()
        changed = self.trading.change(mode=mode, by=by, why=why, at=now, cancel_entries=cancel_entries)
        touched: list[Any] = [self.trading]
        if cancel_entries:
            for order in self.live_orders():
                if order.role is OrderRole.ENTRY and not order.cancel_requested:
                    order.request_cancel(
                        reason=reason("halt_cancel_entries", f"trading halted by {by}: {why}", mode=mode, by=by)
                    )
                    touched.append(order)
        self._save(touched)
        return changed

    # --- submission -----------------------------------------------------------------------------------

    def live_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if not o.is_terminal]

    def pending_submissions(self) -> list[Order]:
        return [o for o in self.orders.values() if o.state is State.PENDING_SUBMIT]

    def begin_submission(self, order_id: UUID) -> OrderRequest | None:
        """Record Submitted (the intent, before the call) and return the AddOrder to send; None if the order is no
        longer pending. An entry while trading is not RUNNING is withdrawn instead, with the reason."""
        order = self.orders[order_id]
        if order.state is not State.PENDING_SUBMIT:
            return None
        now = self.clock.now()
        if order.role is OrderRole.ENTRY and self.trading.mode is not TradingMode.RUNNING:
            order.request_cancel(
                reason=reason(
                    "halt_withdraw_entry",
                    f"not sent: trading is {self.trading.mode.value} ({self.trading.why})",
                    mode=self.trading.mode,
                    by=self.trading.by,
                )
            )
            self._save([order])
            return None
        deadline = now + timedelta(seconds=self.config.submit_deadline_s)
        order.submit(
            at=now,
            deadline=deadline,
            reason=reason(
                "submit",
                f"send AddOrder for {order.role.value} {order.side.value} {plain(order.quantity)} {order.pair}",
                deadline_s=self.config.submit_deadline_s,
            ),
        )
        self._save([order])
        if order.order_type is OrderType.LIMIT:
            price, price2 = order.limit_price, None
        elif order.order_type in (OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT):
            price, price2 = order.trigger_price, order.trigger_price  # the limit sits at the trigger
        else:
            price, price2 = order.trigger_price, None
        return OrderRequest(
            cl_ord_id=order.cl_ord_id,
            pair=order.pair,
            side=order.side,
            order_type=order.order_type,
            volume=order.quantity,
            price=price,
            price2=price2,
            deadline=deadline,
        )

    def record_place_result(self, order_id: UUID, result: PlaceResult) -> None:
        order = self.orders[order_id]
        now = self.clock.now()
        if result.status is PlaceStatus.ACKNOWLEDGED:
            order.acknowledge(txid=result.txid or "", at=now, reason=reason("ack", "AddOrder accepted"))
        elif result.status is PlaceStatus.REJECTED:
            if order.state in (State.SUBMITTING, State.OUTCOME_UNKNOWN):
                order.reject(
                    error=result.error or "rejected",
                    reason=reason(
                        "venue_rejected", f"AddOrder rejected: {result.error}", error_class=result.error_class
                    ),
                )
        elif result.status is PlaceStatus.UNKNOWN:
            if order.state is State.SUBMITTING:
                order.outcome_unknown(
                    error=result.error or "unknown",
                    reason=reason(
                        "ambiguous_submit",
                        f"AddOrder outcome unknown ({result.error}): resolve by cl_ord_id, never resend",
                        error_class=result.error_class,
                    ),
                )
        elif result.status is PlaceStatus.NOT_SENT and order.state is State.SUBMITTING:
            order.not_sent(
                error=result.error or "not sent",
                reason=reason("not_sent", f"AddOrder never left the process ({result.error}); it will be sent later"),
            )
        self._react_and_save(order)

    def recover_after_restart(self) -> int:
        """An order still SUBMITTING after a restart may or may not have reached the venue: its outcome is unknown
        (and will be resolved by cl_ord_id like any other ambiguous submit, never by resending)."""
        stuck = [o for o in self.orders.values() if o.state is State.SUBMITTING]
        for order in stuck:
            order.outcome_unknown(
                error="the process stopped during submission",
                reason=reason(
                    "restart_submission_unknown",
                    "found SUBMITTING after a restart: AddOrder may have been sent; resolve by cl_ord_id",
                    submitted_at=order.submitted_at,
                ),
            )
        self._save(stuck)
        return len(stuck)

    # --- unknown outcomes -----------------------------------------------------------------------------

    def unknown_outcomes(self) -> list[Order]:
        return [o for o in self.orders.values() if o.state is State.OUTCOME_UNKNOWN]

    def resolve_unknown(self, order_id: UUID, found: VenueOrder | None, trades: Iterable[VenueTrade] = ()) -> bool:
        """Apply the evidence of a cl_ord_id lookup. Found: the order was placed (its fills and state follow).
        Not found: proof of "not placed" only once the AddOrder deadline (plus a grace) has passed. Returns True
        when the outcome is no longer unknown."""
        order = self.orders[order_id]
        if order.state is not State.OUTCOME_UNKNOWN:
            return True
        if found is not None:
            self.apply_venue_order(found, trades, source="reconciliation")
            return self.orders[order_id].state is not State.OUTCOME_UNKNOWN
        now = self.clock.now()
        if not self._proven_not_placed(order):
            return False
        order.reject(
            error="not placed",
            reason=reason(
                "unknown_resolved_not_placed",
                f"cl_ord_id {order.cl_ord_id} is in neither open nor closed orders after the AddOrder deadline "
                f"({order.deadline.isoformat() if order.deadline else '-'}) plus {self.config.unknown_grace_s:g}s: "
                f"the engine can no longer accept it",
                deadline=order.deadline,
                checked_at=now,
            ),
        )
        self._react_and_save(order)
        return True

    def _proven_not_placed(self, order: Order) -> bool:
        """Not found by cl_ord_id is proof only once the AddOrder deadline plus the grace has passed."""
        limit = (order.deadline or order.submitted_at or self.clock.now()) + timedelta(
            seconds=self.config.unknown_grace_s
        )
        return self.clock.now() >= limit

    # --- cancels -----------------------------------------------------------------------------------------

    def resolve_cancel_without_txid(
        self, order_id: UUID, found: VenueOrder | None, trades: Iterable[VenueTrade] = ()
    ) -> None:
        """After a cancel by cl_ord_id (an unknown outcome, compensated): what the lookup by cl_ord_id shows is
        applied (its txid, fills and final state); absent after the AddOrder deadline plus the grace, the order was
        never placed, so nothing is left to cancel."""
        order = self.orders[order_id]
        if order.txid is not None:
            return
        if found is not None:
            self.apply_venue_order(found, trades, source="reconciliation")
            return
        if order.state is not State.CANCEL_PENDING or not self._proven_not_placed(order):
            return
        order.mark_canceled(
            reason=reason(
                "cancel_of_unplaced_order",
                f"cl_ord_id {order.cl_ord_id} is in neither open nor closed orders after the "
                f"AddOrder deadline plus {self.config.unknown_grace_s:g}s: it was never placed, "
                "nothing is left to cancel",
                deadline=order.deadline,
                checked_at=self.clock.now(),
            )
        )
        self._react_and_save(order)

    def pending_cancels(self) -> list[Order]:
        """Orders we decided to cancel whose cancel is not confirmed (re-sent after a restart: cancels are
        idempotent)."""
        return [o for o in self.orders.values() if o.state is State.CANCEL_PENDING]

    def record_cancel_result(self, order_id: UUID, result: CancelResult) -> bool:
        """Returns True when the order's final state must be queried (the venue says it is not open any more)."""
        order = self.orders[order_id]
        if order.state is not State.CANCEL_PENDING:
            return False
        if result.count > 0:
            order.mark_canceled(
                reason=reason("cancel_confirmed", f"CancelOrder canceled {result.count} order(s)"),
                venue_reason="User requested",
            )
        elif result.not_found:
            return True
        elif result.error:
            order.cancel_rejected(
                error=result.error, reason=reason("cancel_failed", f"CancelOrder failed: {result.error}")
            )
        self._react_and_save(order)
        return False

    # --- venue observations --------------------------------------------------------------------------------

    def apply_observation(self, obs: ExecutionObservation) -> bool:
        """Apply one execution report. Returns True when the order needs a REST resync (the report says more was
        filled than the trades we hold, e.g. after a gap)."""
        order = self.find(txid=obs.txid, cl_ord_id=obs.cl_ord_id)
        if order is None:
            self.unmatched.append(obs)
            return False
        now = self.clock.now()
        evidence = reason(
            f"venue_{obs.kind.value}",
            f"{obs.source} reported {obs.kind.value}",
            source=obs.source,
            sequence=obs.sequence,
        )
        if obs.txid and order.txid is None and order.state not in (State.PENDING_SUBMIT, State.REJECTED):
            order.acknowledge(txid=obs.txid, at=now, reason=evidence)
        if obs.trade_id and obs.last_qty and obs.last_price:
            self._fill(
                order,
                obs.trade_id,
                obs.last_qty,
                obs.last_price,
                obs.fee or ZERO,
                obs.fee_asset or "",
                obs.timestamp,
                obs.source,
            )
        needs_resync = obs.cum_qty is not None and obs.cum_qty > order.filled_quantity
        if not needs_resync:
            canceled = obs.kind is ObservationKind.CANCELED or obs.order_status is VenueOrderStatus.CANCELED
            expired = obs.kind is ObservationKind.EXPIRED or obs.order_status is VenueOrderStatus.EXPIRED
            if canceled and order.state is not State.FILLED:
                order.mark_canceled(reason=evidence, venue_reason=obs.reason)
            elif expired and not canceled and order.state is not State.FILLED:
                order.mark_expired(reason=evidence)
        self._react_and_save(order)
        return needs_resync

    def apply_venue_order(self, venue: VenueOrder, trades: Iterable[VenueTrade] = (), *, source: str = "rest") -> None:
        """Bring an order in line with the venue's view (REST QueryOrders/OpenOrders/ClosedOrders + its trades)."""
        order = self.find(txid=venue.txid, cl_ord_id=venue.cl_ord_id)
        if order is None:
            return
        now = self.clock.now()
        evidence = reason(
            "venue_state",
            f"{source} shows the order {venue.status.value}",
            source=source,
            venue_status=venue.status,
            volume_executed=venue.volume_executed,
        )
        if order.txid is None and order.state not in (State.PENDING_SUBMIT, State.REJECTED):
            order.acknowledge(txid=venue.txid, at=now, reason=evidence)
        for t in sorted((t for t in trades if t.txid == venue.txid), key=lambda t: (t.executed_at, t.trade_id)):
            self._fill(order, t.trade_id, t.volume, t.price, t.fee, t.fee_asset, t.executed_at, source)
        if order.filled_quantity >= venue.volume_executed and order.state is not State.FILLED:
            if venue.status is VenueOrderStatus.CANCELED:
                order.mark_canceled(reason=evidence, venue_reason=venue.reason)
            elif venue.status is VenueOrderStatus.EXPIRED:
                order.mark_expired(reason=evidence)
            elif venue.status is VenueOrderStatus.FILLED and venue.volume_executed < order.quantity:
                # Kraken can close a market order a hair short ("Insignificant volume remaining").
                order.mark_canceled(
                    reason=reason(
                        "venue_closed_short",
                        f"{source} shows the order closed with "
                        f"{plain(venue.volume_executed)} of {plain(order.quantity)} executed",
                        source=source,
                    ),
                    venue_reason=venue.reason or "closed",
                )
        self._react_and_save(order)

    def _fill(self, order: Order, trade_id, qty, price, fee, fee_asset, at, source) -> None:
        order.apply_fill(
            trade_id=trade_id,
            quantity=Decimal(qty),
            price=Decimal(price),
            fee=Decimal(fee),
            fee_asset=fee_asset,
            executed_at=at,
            source=source,
        )

    # --- timers ------------------------------------------------------------------------------------------

    def tick(self) -> None:
        """Run the time-driven policies (timeouts) and the bracket/OCO safety net over all live orders."""
        now = self.clock.now()
        for order in list(self.live_orders()):
            actions = timeout_policy(order, self.rules(order), now, self.config.policy)
            if actions:
                self._apply(order, actions)
        entries = {o.parent_id for o in self.live_orders() if o.parent_id} | {
            o.id for o in self.orders.values() if o.role is OrderRole.ENTRY and o.filled_quantity > o.bracketed_quantity
        }
        for entry_id in entries:
            if entry_id in self.orders:
                self._react_and_save(self.orders[entry_id])

    # --- reactions -----------------------------------------------------------------------------------------

    def _react_and_save(self, order: Order) -> None:
        """Run bracket/OCO policies on the entry this order belongs to and save everything touched at once."""
        entry = (
            order if order.role is OrderRole.ENTRY else self.orders.get(order.parent_id) if order.parent_id else None
        )
        touched: list[Any] = [order]
        if entry is not None:
            touched.append(entry)
            touched += self._apply(entry, bracket_policy(entry, self.rules(entry)), save=False)
            for bracket in list(entry.brackets):  # every bracket sees every leg: an over-exit elsewhere shrinks it
                touched += self._apply(
                    entry, oco_policy(entry, bracket, self.orders, self.rules(entry), self.config.policy), save=False
                )
        self._save(touched)

    def _apply(self, order: Order, actions: list[Action], *, save: bool = True) -> list[Order]:
        touched: list[Order] = [order]
        for action in actions:
            if isinstance(action, TimeOut):
                target = self.orders[action.order_id]
                target.time_out(
                    age_s=action.age_s, threshold_s=action.threshold_s, rule=action.rule, observed_at=action.observed_at
                )
                touched.append(target)
            elif isinstance(action, Defer):
                self.orders[action.order_id].defer(key=action.key, reason=action.reason)
            elif isinstance(action, CancelOrder):
                target = self.orders[action.order_id]
                target.request_cancel(reason=action.reason)
                touched.append(target)
            elif isinstance(action, PlaceBracket):
                touched += self._place_bracket(self.orders[action.entry_id], action)
            elif isinstance(action, PlaceLeg):
                touched += self._place_leg(self.orders[action.entry_id], action)
        if save:
            self._save(touched)
        return touched

    def _new_leg(
        self,
        entry: Order,
        role: OrderRole,
        order_type: OrderType,
        quantity: Decimal,
        trigger: Decimal | None,
        why: dict,
        generation: str,
    ) -> Order:
        rules = self.rules(entry)
        exit_side = entry.side.opposite
        leg = Order.place(
            order_id=uuid.uuid5(entry.id, generation),
            signal_id=entry.signal_id,
            role=role,
            pair=entry.pair,
            side=exit_side,
            order_type=order_type,
            quantity=rules.round_volume(quantity),
            trigger_price=rules.round_price(trigger, exit_side, PriceKind.TRIGGER) if trigger is not None else None,
            cl_ord_id=str(uuid.uuid4()),
            parent_id=entry.id,
            reason=why,
        )
        self.orders[leg.id] = leg
        return leg

    def _place_bracket(self, entry: Order, action: PlaceBracket) -> list[Order]:
        index = len(entry.brackets)
        cfg = self.config.policy
        sl = (
            self._new_leg(
                entry,
                OrderRole.STOP_LOSS,
                cfg.stop_order_type,
                action.quantity,
                action.sl_price,
                action.reason,
                f"bracket:{index}:stop_loss:0",
            )
            if action.sl_price is not None
            else None
        )
        tp = (
            self._new_leg(
                entry,
                OrderRole.TAKE_PROFIT,
                cfg.take_profit_order_type,
                action.quantity,
                action.tp_price,
                action.reason,
                f"bracket:{index}:take_profit:0",
            )
            if action.tp_price is not None
            else None
        )
        entry.record_bracket(
            quantity=action.quantity,
            stop_loss_order_id=sl.id if sl else None,
            take_profit_order_id=tp.id if tp else None,
            sl_price=action.sl_price,
            tp_price=action.tp_price,
            reason=action.reason,
        )
        return [o for o in (sl, tp) if o is not None]

    def _place_leg(self, entry: Order, action: PlaceLeg) -> list[Order]:
        bracket = entry.brackets[action.bracket_index]
        generation = len(bracket.legs.get(action.role.value, []))
        leg = self._new_leg(
            entry,
            action.role,
            action.order_type,
            action.quantity,
            action.trigger_price,
            action.reason,
            f"bracket:{action.bracket_index}:{action.role.value}:{generation}",
        )
        entry.add_bracket_leg(index=action.bracket_index, role=action.role, order_id=leg.id, reason=action.reason)
        return [leg]
