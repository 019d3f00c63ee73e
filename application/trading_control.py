"""TradingControl: the trading state and the operator's commands, carried out by the one trading process.

Signals, halt/resume (or reduce-only), cancel an order, close a signal's position and resolve an order the venue
has lost arrive as ``Command``s from the commands log (``handle``) or, inside the trading process itself, as
direct calls (tests, the demo, benchmarks). Either way the decisions they cause are committed in one transaction
through the unit of work; a command from the log is committed together with its ``CommandReceipt`` and its
tracking position, so it is carried out exactly once even across crashes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import InterfaceError, OperationalError, Tracking

from execledger.application.contingencies import ContingencyManager
from execledger.application.execution import MISSING_ON_VENUE
from execledger.application.ledger import (
    ExecutionLedger,
    SignalConflict,
    SubmitResult,
    entry_for_signal,
    entry_order_id,
)
from execledger.application.order_index import OrderIndex
from execledger.application.ports import Clock
from execledger.application.unit_of_work import UnitOfWork
from execledger.domain.commands import (
    CancelOrder,
    ClosePosition,
    Command,
    CommandKind,
    CommandReceipt,
    Halt,
    InvalidCommand,
    Outcome,
    Refusal,
    ResolveOrder,
    SignalRefusals,
    SubmitSignal,
    signal_refusals_id,
)
from execledger.domain.errors import SignalRejected
from execledger.domain.order import FILLABLE, Order, State
from execledger.domain.pairs import PairRules
from execledger.domain.position import position_of
from execledger.domain.reasons import Rule, jsonable, reason
from execledger.domain.trading_state import TRADING_STATE_ID, TradingHalted, TradingMode, TradingState
from execledger.domain.values import OrderRole, plain

log = logging.getLogger("execledger.trading_control")

MAX_PRICE = Decimal(10) ** 12  # no pair trades above this: a price beyond it is a typo
MISSING_STRIKES_TEXT = "three reconciliations in a row"


@dataclass
class Decision:
    """What one command decided: its outcome, the receipt's detail, and the aggregates to commit."""

    outcome: Outcome
    detail: dict[str, Any] = field(default_factory=dict)
    touched: list[Any] = field(default_factory=list)

    @classmethod
    def refused(cls, refusal: Refusal, message: str, **detail: Any) -> Decision:
        return cls(Outcome.REFUSED, {"refusal": refusal.value, "message": message, **detail})


_UNANSWERED = (State.PENDING_SUBMIT, State.SUBMITTING)  # the backlog bounded by max_pending_entries


class EntriesBusy(Exception):
    """A new entry was refused because too many wait to be sent, or the venue cannot take orders now."""


class CommandRefused(Exception):
    """A direct (in-process) command was refused; ``decision`` says why."""

    def __init__(self, decision: Decision):
        self.decision = decision
        super().__init__(decision.detail.get("message", "refused"))


class TradingControl:
    def __init__(
        self,
        ledger: ExecutionLedger,
        index: OrderIndex,
        uow: UnitOfWork,
        contingencies: ContingencyManager,
        clock: Clock,
        *,
        process: str,
        signal_max_age_s: float,
        max_pending_entries: int,
    ):
        self.ledger = ledger
        self.index = index
        self.uow = uow
        self.contingencies = contingencies
        self.clock = clock
        self.process = process
        self.signal_max_age_s = signal_max_age_s
        self.max_pending_entries = max_pending_entries
        # Set by the trading service: why the venue cannot take an entry on a pair now (None when it can).
        self.venue_unavailable: Callable[[str], str | None] = lambda pair: None
        self.state = self._load_state()

    def _load_state(self) -> TradingState:
        try:
            return self.ledger.app.repository.get(TRADING_STATE_ID)
        except AggregateNotFoundError:
            return TradingState()

    def reload_state(self) -> None:
        self.state = self._load_state()

    # --- in-process use cases (each commits) --------------------------------------------------------------------

    def submit_signal(self, data: Mapping[str, Any]) -> SubmitResult:
        """Record an approved signal as an entry order. Refused (TradingHalted) unless trading is RUNNING; a repeat
        of an already recorded signal is answered even while halted (it writes nothing). Raises SignalRejected,
        SignalConflict."""
        result = self._signal(data)
        self.uow.commit(result.order)
        return result

    def set_mode(self, mode: TradingMode, *, by: str, why: str, cancel_entries: bool = False) -> bool:
        """RUNNING / REDUCING / HALTED. Halting with ``cancel_entries`` also decides to cancel every resting entry
        (in the same transaction). Exits are never blocked. Returns whether the mode changed."""
        decision = self._mode(mode, by=by, why=why, cancel_entries=cancel_entries)
        self._commit(decision)
        return decision.outcome is Outcome.APPLIED

    def cancel_order(self, ref: str, *, by: str, why: str) -> Decision:
        return self._direct(self._cancel(CancelOrder(order=ref), by=by, why=why))

    def close_position(self, signal_id: str, *, by: str, why: str) -> Decision:
        return self._direct(self._close(ClosePosition(signal_id=signal_id), by=by, why=why))

    def resolve_order(
        self,
        ref: str,
        resolution: str,
        *,
        by: str,
        why: str,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> Decision:
        # Validated like a recorded command: a resolution other than canceled or filled is refused here.
        payload = ResolveOrder.model_validate(
            {"order": ref, "resolution": resolution, "price": price, "quantity": quantity}
        )
        return self._direct(self._resolve(payload, by=by, why=why, trade_id=None))

    def _direct(self, decision: Decision) -> Decision:
        if decision.outcome is Outcome.REFUSED:
            raise CommandRefused(decision)
        self._commit(decision)
        return decision

    def _commit(self, decision: Decision, *extra: Any, tracking: Tracking | None = None) -> None:
        try:
            self.uow.commit(*decision.touched, *extra, tracking=tracking)
        except BaseException:
            self.reload_state()
            raise

    # --- commands from the log ----------------------------------------------------------------------------------

    def handle(self, command: Command, tracking: Tracking) -> CommandReceipt:
        """Carry out one command from the log: its decisions, its receipt and its tracking position are committed
        in one transaction. A command that cannot be carried out is refused (with the reason on the receipt), never
        left unprocessed: the log moves on. A database error (eventsourcing's ``OperationalError`` or
        ``InterfaceError``: a connection lost, a lock timeout) refuses nothing: it propagates with nothing kept, and
        the command is read again from its position (``TradingService._command_follower`` retries)."""
        try:
            decision = self._decide(command)
        except (OperationalError, InterfaceError):  # the database failed for a moment: not the command's fault
            self._discard_uncommitted()  # nothing decided is kept and no receipt is written: it is read again
            raise
        except Exception as exc:  # a bug, not the operator's fault: refuse it visibly and keep following the log
            log.exception("command %s (%s) failed", command.id, command.kind.value)
            self._discard_uncommitted()
            decision = Decision.refused(Refusal.INVALID, f"could not be carried out: {type(exc).__name__}: {exc}")
        receipt = CommandReceipt.record(
            command_id=command.id,
            kind=command.kind,
            outcome=decision.outcome,
            detail=_jsonable({**decision.detail, "by": command.by, "why": command.why}),
            process=self.process,
        )
        self._commit(decision, receipt, self._signal_refused(command, decision), tracking=tracking)
        return receipt

    def _signal_refused(self, command: Command, decision: Decision) -> SignalRefusals | None:
        """A refused ``submit_signal``: the signal's ``SignalRefusals`` with this refusal added (committed with the
        receipt), so that the signal's id finds it; None for anything else."""
        signal = command.payload.get("signal") if command.kind is CommandKind.SUBMIT_SIGNAL else None
        signal_id = signal.get("signal_id") if isinstance(signal, dict) else None
        if decision.outcome is not Outcome.REFUSED or not isinstance(signal_id, str) or not signal_id:
            return None
        refusal = {
            "command_id": str(command.id),
            "refusal": str(decision.detail.get("refusal") or Refusal.INVALID.value),
            "message": str(decision.detail.get("message", "")),
            "recorded_at": command.created_on.isoformat(),
            "process": self.process,
        }
        try:
            refusals: SignalRefusals = self.ledger.app.repository.get(signal_refusals_id(signal_id))
        except AggregateNotFoundError:
            return SignalRefusals.first(signal_id=signal_id, refusal=refusal)
        refusals.refused(**refusal)
        return refusals

    def _decide(self, command: Command) -> Decision:
        try:
            payload = command.parsed()
        except InvalidCommand as exc:
            return Decision.refused(Refusal.INVALID, str(exc), errors=[e.__dict__ for e in exc.errors])
        by, why = command.by, command.why
        if isinstance(payload, SubmitSignal):
            age = (self.clock.now() - command.created_on).total_seconds()
            if age > self.signal_max_age_s:
                return Decision.refused(
                    Refusal.STALE,
                    f"the signal waited {age:.1f}s for the trading process, more than its maximum age "
                    f"{self.signal_max_age_s:g}s: not placed",
                    age_s=round(age, 3),
                )
            return self._signal_decision(payload.signal)
        if isinstance(payload, Halt):
            mode = TradingMode.REDUCING if payload.reducing else TradingMode.HALTED
            return self._mode(mode, by=by, why=why, cancel_entries=payload.cancel_entries)
        if command.kind is CommandKind.RESUME:
            return self._mode(TradingMode.RUNNING, by=by, why=why)
        if isinstance(payload, CancelOrder):
            return self._cancel(payload, by=by, why=why)
        if isinstance(payload, ClosePosition):
            return self._close(payload, by=by, why=why)
        if isinstance(payload, ResolveOrder):
            return self._resolve(payload, by=by, why=why, trade_id=f"manual-{command.id}")
        return Decision.refused(Refusal.INVALID, f"{command.kind.value} is not carried out by this version")

    def _discard_uncommitted(self) -> None:
        """After a failed decision: forget every in-memory change that was not committed."""
        for order in [o for o in self.index.values() if o.pending_events]:
            self.uow.discard([order])
        self.reload_state()

    # --- decisions ----------------------------------------------------------------------------------------------

    def _existing_entry(self, signal_id: str) -> Order | None:
        order_id = entry_order_id(signal_id)
        return self.index.get(order_id) or self.ledger.find_recorded(order_id)

    def _signal(self, data: Mapping[str, Any]) -> SubmitResult:
        signal_id = str(data.get("signal_id", "")) if isinstance(data, Mapping) else ""
        existing = None
        try:
            existing = self._existing_entry(signal_id) if signal_id else None
        except ValueError:
            existing = None
        if existing is None:
            self.state.check_entry_allowed()
        result = entry_for_signal(data, self.ledger.pairs, existing, self.contingencies.intake_price)
        if result.created and (busy := self._busy(result.order.pair)) is not None:
            raise EntriesBusy(busy)
        if result.created:
            self.index.put(result.order)
        return result

    def _busy(self, pair: str) -> str | None:
        """Backpressure: why a new entry cannot be accepted now, or None. The backlog is every entry the venue has not
        answered yet: not sent, and submitted (its AddOrder queued behind the signed calls before it, or on the
        wire). Counting only the unsent ones let a burst move the queue into submitting entries, unbounded: at
        twice the rate the venue took, an accepted entry reached it 20 s later (bench/load.py)."""
        waiting = self.index.count_role(OrderRole.ENTRY, *_UNANSWERED)
        if waiting >= self.max_pending_entries:
            return (
                f"{waiting} entries wait to be sent or answered by the venue (the bound is "
                f"{self.max_pending_entries}): try again shortly"
            )
        unavailable = self.venue_unavailable(pair)
        return f"not accepting entries now: {unavailable}" if unavailable else None

    def _signal_decision(self, data: Mapping[str, Any]) -> Decision:
        try:
            result = self._signal(data)
        except SignalRejected as exc:
            return Decision.refused(Refusal.INVALID, str(exc), errors=[e.__dict__ for e in exc.errors])
        except SignalConflict as exc:
            return Decision.refused(Refusal.CONFLICT, str(exc))
        except TradingHalted as exc:
            return Decision.refused(Refusal.HALTED, str(exc), mode=exc.mode.value, halted_by=exc.by, halted_why=exc.why)
        except EntriesBusy as exc:
            return Decision.refused(Refusal.BUSY, str(exc))
        order = result.order
        detail = {
            "order_id": str(order.id),
            "signal_id": order.signal_id,
            "cl_ord_id": order.cl_ord_id,
            "status": order.status.value,
            "created": result.created,
        }
        if not result.created:
            return Decision(Outcome.UNCHANGED, detail)
        return Decision(Outcome.APPLIED, detail, [order])

    def _mode(self, mode: TradingMode, *, by: str, why: str, cancel_entries: bool = False) -> Decision:
        changed = self.state.change(mode=mode, by=by, why=why, at=self.clock.now(), cancel_entries=cancel_entries)
        touched: list[Any] = [self.state]
        canceled = []
        if cancel_entries:
            for order in self.index.live():
                if order.role is OrderRole.ENTRY and not order.cancel_requested and order.state is not State.SUBMITTING:
                    order.request_cancel(
                        reason=reason(Rule.HALT_CANCEL_ENTRIES, f"trading halted by {by}: {why}", mode=mode, by=by)
                    )
                    touched += self.contingencies.react(order)
                    canceled.append(str(order.id))
        detail = {"mode": mode.value, "cancel_entries": cancel_entries, "canceled": canceled}
        return Decision(Outcome.APPLIED if changed else Outcome.UNCHANGED, detail, touched)

    def _cancel(self, payload: CancelOrder, *, by: str, why: str) -> Decision:
        order = self.index.resolve(payload.order)
        if order is None:
            return Decision.refused(Refusal.NOT_FOUND, f"no order {payload.order!r} in this ledger")
        detail = {"order_id": str(order.id), "signal_id": order.signal_id, "status": order.status.value}
        if order.is_terminal:
            return Decision.refused(Refusal.NOT_ALLOWED, f"the order is already {order.state.value}", **detail)
        if order.cancel_requested:
            return Decision(Outcome.UNCHANGED, detail)
        entry = self.index.entry_of(order)
        if order.role in (OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT) and entry is not None and entry.closing is None:
            return Decision.refused(
                Refusal.NOT_ALLOWED,
                f"the {order.role.value} protects the open position of signal {order.signal_id}: close the "
                f"position instead (execledger close {order.signal_id})",
                **detail,
            )
        if order.state is State.SUBMITTING:
            return Decision.refused(Refusal.NOT_ALLOWED, "AddOrder is on the wire: ask again in a moment", **detail)
        order.request_cancel(reason=reason(Rule.OPERATOR_CANCEL, f"canceled by {by}: {why}", by=by))
        return Decision(Outcome.APPLIED, {**detail, "status": order.status.value}, self.contingencies.react(order))

    def _close(self, payload: ClosePosition, *, by: str, why: str) -> Decision:
        entry = self.index.entry_of_signal(payload.signal_id)
        if entry is None:
            found = self.index.resolve(payload.signal_id)
            entry = self.index.entry_of(found) if found is not None else None
        if entry is None:
            return Decision.refused(Refusal.NOT_FOUND, f"no signal {payload.signal_id!r} in this ledger")
        position = position_of(entry, self.index, self.contingencies.rules(entry).base)
        detail = {"signal_id": entry.signal_id, "entry_order_id": str(entry.id), "held": plain(position.net)}
        if entry.closing is not None:
            return Decision(Outcome.UNCHANGED, detail)
        working = [o for o in [entry, *(self.index.get(i) for i in entry.exit_order_ids())] if o and not o.is_terminal]
        if position.is_flat and not working:
            return Decision(Outcome.UNCHANGED, {**detail, "message": "nothing is held or working"})
        entry.request_close(reason=reason(Rule.OPERATOR_CLOSE, f"close requested by {by}: {why}", by=by, why=why))
        return Decision(Outcome.APPLIED, detail, self.contingencies.react(entry))

    def _resolve(self, payload: ResolveOrder, *, by: str, why: str, trade_id: str | None) -> Decision:
        """Resolve by hand an order the venue has lost: only one reconciliation recorded missing (or one whose
        AddOrder outcome is still unknown and has no venue id). Any other order is whatever the venue says it is:
        marking a live stop canceled by hand would have the ledger place a second one beside it."""
        order = self.index.resolve(payload.order)
        if order is None:
            return Decision.refused(Refusal.NOT_FOUND, f"no order {payload.order!r} in this ledger")
        detail = {"order_id": str(order.id), "signal_id": order.signal_id, "previous_status": order.status.value}
        if order.is_terminal:
            return Decision.refused(Refusal.NOT_ALLOWED, f"the order is already {order.state.value}", **detail)
        lost = MISSING_ON_VENUE in order.conflicts or (order.txid is None and order.state is State.OUTCOME_UNKNOWN)
        if not lost:
            return Decision.refused(
                Refusal.NOT_ALLOWED,
                "the venue has not lost this order (reconciliation finds it, or has not yet missed it "
                f"{MISSING_STRIKES_TEXT}): it is {order.state.value} as the venue reports it; cancel it instead",
                **detail,
            )
        rules = self.contingencies.rules(order)
        why_reason = reason(
            Rule.OPERATOR_RESOLVED,
            f"resolved as {payload.resolution} by {by}: {why}",
            by=by,
            why=why,
            resolution=payload.resolution,
        )
        if payload.resolution == "canceled":
            order.note_operator_resolution(reason=why_reason)
            order.mark_canceled(reason=why_reason, venue_reason=None)
            return Decision(Outcome.APPLIED, {**detail, "status": order.status.value}, self.contingencies.react(order))
        return self._resolve_as_filled(order, rules, payload, why_reason, detail, trade_id)

    def _resolve_as_filled(
        self,
        order: Order,
        rules: PairRules,
        payload: ResolveOrder,
        why_reason: dict[str, Any],
        detail: dict[str, Any],
        trade_id: str | None,
    ) -> Decision:
        """A lost order resolved as filled: one trade at the given (or its own) price, rounded by the pair's rules,
        for at most what it has left."""
        if order.state not in FILLABLE:
            return Decision.refused(
                Refusal.NOT_ALLOWED, f"a {order.state.value} order was never sent: it cannot have filled", **detail
            )
        price = payload.price or order.limit_price or order.trigger_price
        if price is None:
            return Decision.refused(Refusal.INVALID, "a market order resolved as filled needs a price", **detail)
        if price <= 0 or price > MAX_PRICE:
            return Decision.refused(
                Refusal.INVALID, f"price {plain(price)} is not a price for {rules.wsname}", **detail
            )
        price = rules.round_price(price, order.side)
        quantity = rules.round_volume(min(payload.quantity or order.remaining_quantity, MAX_PRICE))
        if quantity <= 0 or quantity > order.remaining_quantity:
            return Decision.refused(
                Refusal.INVALID,
                f"{plain(quantity)} (rounded to {rules.lot_decimals} lot decimals) is not within the "
                f"{plain(order.remaining_quantity)} the order has left",
                **detail,
            )
        order.note_operator_resolution(reason=why_reason)
        order.apply_fill(
            trade_id=trade_id or f"manual-{uuid5(order.id, str(order.version))}",
            quantity=quantity,
            price=price,
            executed_at=self.clock.now(),
            source="operator",
        )
        return Decision(Outcome.APPLIED, {**detail, "status": order.status.value}, self.contingencies.react(order))


def _jsonable(value: Any) -> Any:
    return jsonable(value)


__all__ = ["CommandRefused", "Decision", "EntriesBusy", "TradingControl"]
