"""The Order aggregate: an order's whole life as immutable events, with its state machine as data.

Every command either appends events (facts or decisions, each decision with a reason), is a recognised duplicate
(returns without writing anything), or raises a DomainError (and writes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from execledger.domain.clock import TimestampedEvent
from execledger.domain.errors import ConflictingFill, InvalidTransition, Overfill
from execledger.domain.events import EventKind, bind_declarations, declares, lean_create, lean_triggers
from execledger.domain.reasons import Rule
from execledger.domain.reasons import reason as make_reason
from execledger.domain.values import ZERO, OrderRole, OrderType, Side, plain


class State(StrEnum):
    """Lifecycle states that events move between. ``OrderStatus`` adds the derived partially-filled view."""

    PENDING_SUBMIT = "pending_submit"  # Placed: recorded, not sent yet
    SUBMITTING = "submitting"  # Submitted: AddOrder is (about to be) on the wire
    OUTCOME_UNKNOWN = "outcome_unknown"  # AddOrder timed out / 5xx: placed or not is not known yet
    OPEN = "open"  # on the book (acknowledged, or proven by evidence)
    CANCEL_PENDING = "cancel_pending"  # we asked to cancel; the venue has not confirmed
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"


class OrderStatus(StrEnum):
    PENDING_SUBMIT = "pending_submit"
    SUBMITTING = "submitting"
    OUTCOME_UNKNOWN = "outcome_unknown"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    CANCEL_PENDING = "cancel_pending"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"


TERMINAL = frozenset({State.FILLED, State.CANCELED, State.EXPIRED, State.REJECTED})
_STATUS_OF = {state: OrderStatus(state.value) for state in State}  # the status of each state (OPEN: unfilled)

S = State
# The transition table: every allowed (from, to) edge, with why it exists. Anything else is InvalidTransition.
TRANSITIONS: dict[tuple[State, State], str] = {
    (S.PENDING_SUBMIT, S.SUBMITTING): "the submission worker is sending AddOrder",
    (S.PENDING_SUBMIT, S.CANCELED): "withdrawn before it was ever sent (e.g. HALT)",
    (S.SUBMITTING, S.PENDING_SUBMIT): "AddOrder certainly never left the process (breaker open, throttled)",
    (S.SUBMITTING, S.OPEN): "AddOrder acknowledged with a txid, or the stream showed the order",
    (S.SUBMITTING, S.REJECTED): "AddOrder answered with a definitive (permanent) error",
    (S.SUBMITTING, S.OUTCOME_UNKNOWN): "AddOrder timed out or got a 5xx: it may or may not have been placed",
    (S.SUBMITTING, S.FILLED): "a fill arrived on the stream before the AddOrder reply (market orders)",
    (S.SUBMITTING, S.CANCELED): "the venue canceled it before the AddOrder reply (e.g. post-only would cross)",
    (S.SUBMITTING, S.EXPIRED): "the venue expired it before the AddOrder reply (IOC, deadline)",
    (S.OUTCOME_UNKNOWN, S.OPEN): "cl_ord_id found among open orders, or the stream showed it",
    (S.OUTCOME_UNKNOWN, S.REJECTED): "proven not placed: absent from open and closed orders after the deadline",
    (S.OUTCOME_UNKNOWN, S.FILLED): "cl_ord_id found filled among closed orders",
    (S.OUTCOME_UNKNOWN, S.CANCELED): "cl_ord_id found canceled among closed orders",
    (S.OUTCOME_UNKNOWN, S.EXPIRED): "cl_ord_id found expired among closed orders",
    (S.OUTCOME_UNKNOWN, S.CANCEL_PENDING): "compensating cancel by cl_ord_id while the outcome is unknown",
    (S.OPEN, S.FILLED): "the last fill completed the quantity",
    (S.OPEN, S.CANCEL_PENDING): "we asked the venue to cancel",
    (S.OPEN, S.CANCELED): "the venue canceled it without our asking (dead-man's switch, self-trade prevention)",
    (S.OPEN, S.EXPIRED): "the venue expired it (expiretm, GTD)",
    (S.CANCEL_PENDING, S.CANCELED): "the venue confirmed the cancel",
    (S.CANCEL_PENDING, S.FILLED): "a fill raced the cancel and completed the order",
    (S.CANCEL_PENDING, S.OPEN): "the cancel failed and the order still rests",
    (S.CANCEL_PENDING, S.EXPIRED): "it expired while the cancel was in flight",
    (S.CANCELED, S.FILLED): "a late fill that raced the cancel completed the order",
    (S.EXPIRED, S.FILLED): "a late fill that raced the expiry completed the order",
    # Venue facts outrank our inferences: an order we held rejected (proven "not placed" by a lookup the venue
    # later contradicts: delayed acceptance, a clock step) is whatever the venue shows it to be.
    (S.REJECTED, S.OPEN): "the venue shows an order we held rejected: it was placed after all",
    (S.REJECTED, S.FILLED): "the venue filled an order we held rejected",
    (S.REJECTED, S.CANCELED): "the venue shows an order we held rejected as canceled",
    (S.REJECTED, S.EXPIRED): "the venue shows an order we held rejected as expired",
}

# States in which the venue may still report fills for the order (late fills after cancel/expiry included).
FILLABLE = frozenset({S.SUBMITTING, S.OUTCOME_UNKNOWN, S.OPEN, S.CANCEL_PENDING, S.CANCELED, S.EXPIRED, S.REJECTED})


@dataclass(frozen=True)
class Fill:
    trade_id: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    executed_at: datetime | None


def _opt_decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


@lean_triggers
@bind_declarations
class Order(Aggregate):
    """One order on Kraken (an entry or a bracket leg), from the decision to place it to its final state."""

    class Event(TimestampedEvent):
        pass

    class Created(Event, Aggregate.Created):
        pass

    # --- events (explicit classes so the stored schema is visible and versioned) ---------------------------

    class Placed(Created):
        """The decision to place an order, with the rounded values that will be sent and why.

        v1 had no ``tags`` and no ``timeout_s``; v2 added both (see ``upcast_v1_v2``).
        """

        class_version = 2
        signal_id: str
        role: str
        pair: str
        side: str
        order_type: str
        quantity: Decimal
        limit_price: Decimal | None
        trigger_price: Decimal | None
        cl_ord_id: str
        parent_id: UUID | None
        sl_price: Decimal | None
        tp_price: Decimal | None
        timeout_s: float | None
        tags: dict[str, Any]
        signal_fingerprint: str
        reason: dict[str, Any]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["tags"] = {}
            state["timeout_s"] = None

    # --- construction -----------------------------------------------------------------------------------

    @classmethod
    def place(
        cls,
        *,
        order_id: UUID,
        signal_id: str,
        role: OrderRole,
        pair: str,
        side: Side,
        order_type: OrderType,
        quantity: Decimal,
        cl_ord_id: str,
        reason: dict[str, Any],
        limit_price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        parent_id: UUID | None = None,
        sl_price: Decimal | None = None,
        tp_price: Decimal | None = None,
        timeout_s: float | None = None,
        tags: dict[str, Any] | None = None,
        signal_fingerprint: str = "",
    ) -> Order:
        """Record the decision to place an order. Values must already be rounded by the pair's rules."""
        if quantity <= ZERO:
            raise ValueError(f"quantity must be positive, got {quantity}")
        return lean_create(
            cls,
            cls.Placed,
            order_id,
            signal_id=signal_id,
            role=OrderRole(role).value,
            pair=pair,
            side=Side(side).value,
            order_type=OrderType(order_type).value,
            quantity=quantity,
            limit_price=limit_price,
            trigger_price=trigger_price,
            cl_ord_id=cl_ord_id,
            parent_id=parent_id,
            sl_price=sl_price,
            tp_price=tp_price,
            timeout_s=timeout_s,
            tags=dict(tags or {}),
            signal_fingerprint=signal_fingerprint,
            reason=reason,
        )

    @declares(EventKind.DECISION, reported=True)
    @event(Placed)
    def __init__(
        self,
        *,
        signal_id: str,
        role: str,
        pair: str,
        side: str,
        order_type: str,
        quantity: Decimal,
        limit_price: Decimal | None,
        trigger_price: Decimal | None,
        cl_ord_id: str,
        parent_id: UUID | None,
        sl_price: Decimal | None,
        tp_price: Decimal | None,
        timeout_s: float | None,
        tags: dict[str, Any],
        signal_fingerprint: str,
        reason: dict[str, Any],
    ) -> None:
        self.signal_id: str = signal_id
        self.role = OrderRole(role)
        self.pair: str = pair
        self.side = Side(side)
        self.order_type = OrderType(order_type)
        self.quantity: Decimal = Decimal(quantity)
        self.limit_price = _opt_decimal(limit_price)
        self.trigger_price = _opt_decimal(trigger_price)
        self.cl_ord_id: str = cl_ord_id
        self.parent_id: UUID | None = parent_id
        self.sl_price = _opt_decimal(sl_price)
        self.tp_price = _opt_decimal(tp_price)
        self.timeout_s: float | None = timeout_s
        self.tags: dict[str, Any] = dict(tags)
        self.signal_fingerprint: str = signal_fingerprint
        # Why it was placed (a leg's reason names what it observed).
        self.placement_reason: dict[str, Any] = dict(reason)
        self._start_life()

    def _start_life(self) -> None:
        """What every order starts with once placed: not sent, no venue id, no fills, no legs, nothing pending."""
        self.state = State.PENDING_SUBMIT
        self.txid: str | None = None
        self.fills: dict[str, Fill] = {}
        self.filled_quantity: Decimal = ZERO
        self.filled_cost: Decimal = ZERO  # sum of quantity * price, exact
        self.fees: Decimal = ZERO
        self.fee_asset: str | None = None
        self.submitted_at: datetime | None = None
        self.deadline: datetime | None = None
        self.acknowledged_at: datetime | None = None
        self.brackets: list[Bracket] = []
        self.last_error: str | None = None
        self.rejected_transiently = False  # rejected for a reason that passes (a rate limit), not for what it is
        self.cancel_requested = False  # True once *we* asked to cancel (a venue cancel without it means "vanished")
        self.deferred: set[str] = set()  # keys of recorded "not now" decisions (see defer)
        self.conflicts: set[str] = set()  # keys of venue facts recorded as conflicting (see record_conflict)
        self.closing: dict[str, Any] | None = None  # entries: the operator's close request (who, why), once recorded
        self.position_exits: list[UUID] = []  # entries: market exits that close the whole position
        self.amend_pending: Decimal | None = None  # the total quantity an AmendOrder in flight asks for
        self.amend_refused: str | None = None  # the venue refused the last amend (the leg is then re-created)
        self.shortfall: Decimal = ZERO  # entries: what the account turned out not to hold of this position

    # --- derived views ----------------------------------------------------------------------------------

    @property
    def status(self) -> OrderStatus:
        if self.state is State.OPEN and self.filled_quantity > ZERO:
            return OrderStatus.PARTIALLY_FILLED
        return _STATUS_OF[self.state]

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def remaining_quantity(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def average_fill_price(self) -> Decimal | None:
        """Exact numerator and denominator are kept; the quotient is computed on demand (28 significant digits)."""
        if self.filled_quantity == ZERO:
            return None
        return self.filled_cost / self.filled_quantity

    def fees_in(self, asset: str) -> Decimal:
        """The fees this order's fills charged in ``asset`` (Kraken's Assets key, e.g. XXBT)."""
        return sum((f.fee for f in self.fills.values() if f.fee_asset == asset), ZERO)

    @property
    def bracketed_quantity(self) -> Decimal:
        return sum((b.quantity for b in self.brackets), ZERO)

    # --- guards -----------------------------------------------------------------------------------------

    def _require(self, target: State, command: str) -> None:
        if (self.state, target) not in TRANSITIONS:
            raise InvalidTransition(self.id, self.state.value, target.value, command)

    def _move(self, target: State) -> None:
        # Mutators run on replay too; they re-check the table so a corrupted log cannot load silently.
        if target is not self.state and (self.state, target) not in TRANSITIONS:
            raise InvalidTransition(self.id, self.state.value, target.value, "replay")
        self.state = target

    # --- submission -------------------------------------------------------------------------------------

    def submit(self, *, at: datetime, deadline: datetime | None, reason: dict[str, Any]) -> None:
        """Record the intent to send AddOrder (before the call: a crash after this leaves an evident intent).

        ``at`` is the application clock's time; timers (order age, deadlines) are derived from it, not from
        wall-clock sleeps, so they survive a restart and replay the same way.
        """
        self._require(State.SUBMITTING, "submit")
        self._submitted(at=at, deadline=deadline, reason=reason)

    @declares(EventKind.DECISION, reported=True)
    @event("Submitted")
    def _submitted(self, at: datetime, deadline: datetime | None, reason: dict[str, Any]) -> None:
        self._move(State.SUBMITTING)
        self.submitted_at = at
        self.deadline = deadline

    def acknowledge(self, *, txid: str, at: datetime, reason: dict[str, Any]) -> bool:
        """Record the venue's order id. Returns False (writing nothing) if the same txid is already known.

        A late acknowledgement after the stream already showed fills or a cancel only adds the txid.
        """
        if not txid:
            raise ValueError("txid must be non-empty")
        if self.txid == txid:
            return False
        if self.txid is not None:
            raise InvalidTransition(
                self.id, self.state.value, self.state.value, f"acknowledge with txid {txid} (already {self.txid})"
            )
        if self.state in (State.SUBMITTING, State.OUTCOME_UNKNOWN, State.REJECTED):
            self._require(State.OPEN, "acknowledge")
        elif self.state is State.PENDING_SUBMIT:
            raise InvalidTransition(self.id, self.state.value, State.OPEN.value, "acknowledge")
        self._acknowledged(txid=txid, at=at, reason=reason)
        return True

    @declares(EventKind.OUTCOME, reported=True)
    @event("Acknowledged")
    def _acknowledged(self, txid: str, at: datetime, reason: dict[str, Any]) -> None:
        self.txid = txid
        self.acknowledged_at = at
        if self.state in (State.SUBMITTING, State.OUTCOME_UNKNOWN, State.REJECTED):
            self._move(State.OPEN)

    def not_sent(self, *, error: str, reason: dict[str, Any]) -> None:
        """AddOrder certainly did not leave the process: the order is pending submission again."""
        self._require(State.PENDING_SUBMIT, "not_sent")
        self._not_sent(error=error, reason=reason)

    @declares(EventKind.OUTCOME, reported=True)
    @event("NotSent")
    def _not_sent(self, error: str, reason: dict[str, Any]) -> None:
        self._move(State.PENDING_SUBMIT)
        self.last_error = error

    def correct(
        self,
        *,
        reason: dict[str, Any],
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        trigger_price: Decimal | None = None,
    ) -> bool:
        """Before an order the venue refused without executing anything is sent again: re-rounded by the venue's
        current rules, or resized to what the account holds. Only while it waits to be sent (PENDING_SUBMIT).
        Returns False (writes nothing) when nothing changes. Values must already be rounded."""
        if self.state is not State.PENDING_SUBMIT:
            raise InvalidTransition(self.id, self.state.value, self.state.value, "correct (only before sending)")
        new = (
            self.quantity if quantity is None else quantity,
            self.limit_price if limit_price is None else limit_price,
            self.trigger_price if trigger_price is None else trigger_price,
        )
        if new[0] <= ZERO:
            raise ValueError(f"order {self.id}: a corrected quantity must be positive, got {plain(new[0])}")
        if new == (self.quantity, self.limit_price, self.trigger_price):
            return False
        self._corrected(quantity=new[0], limit_price=new[1], trigger_price=new[2], reason=reason)
        return True

    @declares(EventKind.DECISION, reported=True)
    @event("Corrected")
    def _corrected(
        self, quantity: Decimal, limit_price: Decimal | None, trigger_price: Decimal | None, reason: dict[str, Any]
    ) -> None:
        self.quantity = Decimal(quantity)
        self.limit_price = _opt_decimal(limit_price)
        self.trigger_price = _opt_decimal(trigger_price)

    def reject(self, *, error: str, reason: dict[str, Any], transient: bool = False) -> None:
        """Record a definitive rejection: a permanent Kraken error, or proof the order was never placed.
        ``transient``: not placed for a reason that passes (lost on the way and proven never placed), as opposed to
        the venue refusing this order for what it is; a protective leg rejected so is placed again."""
        self._require(State.REJECTED, "reject")
        self._rejected(error=error, reason=reason, transient=transient)

    class Rejected(Event):
        """v1 had no ``transient``: it was read from the reason (see ``upcast_v1_v2``)."""

        class_version = 2
        error: str
        reason: dict[str, Any]
        transient: bool

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            reason = state.get("reason") or {}
            state["transient"] = (
                reason.get("error_class") == "rate_limited" or reason.get("rule") == Rule.UNKNOWN_RESOLVED_NOT_PLACED
            )

    @declares(EventKind.OUTCOME, reported=True)
    @event(Rejected)
    def _rejected(self, error: str, reason: dict[str, Any], transient: bool) -> None:
        self._move(State.REJECTED)
        self.last_error = error
        self.rejected_transiently = transient

    def outcome_unknown(self, *, error: str, reason: dict[str, Any]) -> bool:
        """Record that AddOrder's outcome is unknown. Returns False if that is already the recorded state."""
        if self.state is State.OUTCOME_UNKNOWN:
            return False
        self._require(State.OUTCOME_UNKNOWN, "outcome_unknown")
        self._outcome_unknown(error=error, reason=reason)
        return True

    @declares(EventKind.OUTCOME, reported=True)
    @event("SubmissionOutcomeUnknown")
    def _outcome_unknown(self, error: str, reason: dict[str, Any]) -> None:
        self._move(State.OUTCOME_UNKNOWN)
        self.last_error = error

    # --- fills ------------------------------------------------------------------------------------------

    def apply_fill(
        self,
        *,
        trade_id: str,
        quantity: Decimal,
        price: Decimal,
        fee: Decimal = ZERO,
        fee_asset: str = "",
        executed_at: datetime | None = None,
        source: str = "venue",
    ) -> bool:
        """Record one trade. Returns False (writes nothing) for a trade id already recorded with the same values.

        Raises Overfill if it would exceed the order quantity, ConflictingFill if a known trade id comes back
        with other values, InvalidTransition if the order cannot have fills (never sent, or rejected).
        """
        if self._is_known_trade(trade_id, quantity, price, fee):
            return False
        if self.state not in FILLABLE:
            raise InvalidTransition(self.id, self.state.value, "fill", f"apply_fill({trade_id})")
        cumulative = self.filled_quantity + quantity
        if cumulative > self.quantity and self.amend_pending is not None and cumulative <= self.amend_pending:
            self._amend_proven_by(trade_id, self.amend_pending, source)
        if cumulative > self.quantity:
            raise Overfill(self.id, trade_id, plain(self.filled_quantity), plain(quantity), plain(self.quantity))
        record = self._partially_filled
        if cumulative == self.quantity:
            self._require(State.FILLED, f"apply_fill({trade_id})")
            record = self._filled
        record(
            trade_id=trade_id,
            quantity=quantity,
            price=price,
            fee=fee,
            fee_asset=fee_asset,
            executed_at=executed_at,
            source=source,
            cumulative_quantity=cumulative,
        )
        return True

    def _is_known_trade(self, trade_id: str, quantity: Decimal, price: Decimal, fee: Decimal) -> bool:
        """Whether ``trade_id`` is already recorded with these values (a duplicate); raises for an invalid fill or a
        known trade id reported with other values (ConflictingFill)."""
        if not trade_id:
            raise ValueError("trade_id must be non-empty")
        if quantity <= ZERO or price <= ZERO or fee < ZERO:
            raise ValueError(f"fill {trade_id}: quantity and price must be positive and fee not negative")
        known = self.fills.get(trade_id)
        if known is None:
            return False
        if (known.quantity, known.price) != (quantity, price):
            raise ConflictingFill(
                f"order {self.id}: trade {trade_id} already recorded as "
                f"{plain(known.quantity)} @ {plain(known.price)},"
                f" now reported as {plain(quantity)} @ {plain(price)}"
            )
        return True

    def _amend_proven_by(self, trade_id: str, amended_quantity: Decimal, source: str) -> None:
        """A fill beyond the recorded quantity but within the amend in flight proves the amend took effect."""
        self._amended(
            quantity=amended_quantity,
            source=source,
            reason=make_reason(
                Rule.AMEND_PROVEN_BY_FILL,
                f"trade {trade_id} fills beyond {plain(self.quantity)}: the amend to "
                f"{plain(amended_quantity)} took effect",
                source=source,
            ),
        )

    def _record_fill(
        self,
        trade_id: str,
        quantity: Decimal,
        price: Decimal,
        fee: Decimal,
        fee_asset: str,
        executed_at: datetime | None,
    ) -> None:
        quantity, price, fee = Decimal(quantity), Decimal(price), Decimal(fee)
        self.fills[trade_id] = Fill(trade_id, quantity, price, fee, fee_asset, executed_at)
        self.filled_quantity += quantity
        self.filled_cost += quantity * price
        self.fees += fee
        if fee_asset:
            self.fee_asset = fee_asset

    @declares(EventKind.FACT, reported=True)
    @event("PartiallyFilled")
    def _partially_filled(
        self,
        trade_id: str,
        quantity: Decimal,
        price: Decimal,
        fee: Decimal,
        fee_asset: str,
        executed_at: datetime | None,
        source: str,
        cumulative_quantity: Decimal,
    ) -> None:
        self._record_fill(trade_id, quantity, price, fee, fee_asset, executed_at)
        # A fill proves the order reached the book; after cancel/expiry a late partial fill changes no state.
        if self.state in (State.SUBMITTING, State.OUTCOME_UNKNOWN, State.REJECTED):
            self._move(State.OPEN)

    @declares(EventKind.FACT, reported=True)
    @event("Filled")
    def _filled(
        self,
        trade_id: str,
        quantity: Decimal,
        price: Decimal,
        fee: Decimal,
        fee_asset: str,
        executed_at: datetime | None,
        source: str,
        cumulative_quantity: Decimal,
    ) -> None:
        self._record_fill(trade_id, quantity, price, fee, fee_asset, executed_at)
        self._move(State.FILLED)

    # --- amend (Kraken AmendOrder: in place, ids unchanged, queue priority kept where possible) -----------

    def request_amend(self, *, quantity: Decimal, reason: dict[str, Any]) -> bool:
        """Decide to change a resting order's total quantity (AmendOrder ``order_qty``, REFERENCE.md 3.5), e.g. a
        protective leg that grows with the entry's fills or shrinks when its sibling fills. Only while OPEN with no
        cancel and no other amend pending, and never to what has filled or less (cancel instead). Returns False
        (writes nothing) when ``quantity`` is the current one. The amend is idempotent in effect (an absolute
        quantity), so a call whose reply was lost may be sent again."""
        if self.state is not State.OPEN or self.amend_pending is not None:
            raise InvalidTransition(self.id, self.state.value, self.state.value, "request_amend")
        if quantity <= self.filled_quantity:
            raise ValueError(
                f"order {self.id}: amend to {plain(quantity)} is not above the filled {plain(self.filled_quantity)}"
            )
        if quantity == self.quantity:
            return False
        self._amend_requested(quantity=quantity, reason=reason)
        return True

    @declares(EventKind.DECISION, reported=True)
    @event("AmendRequested")
    def _amend_requested(self, quantity: Decimal, reason: dict[str, Any]) -> None:
        self.amend_pending = Decimal(quantity)

    def amended(self, *, quantity: Decimal, source: str, reason: dict[str, Any]) -> bool:
        """The venue shows the order's total quantity changed (our amend's reply, or a report of the order with a
        new quantity: a venue fact is never refused). Returns False when that is already the recorded quantity."""
        quantity = Decimal(quantity)
        if quantity == self.quantity and self.amend_pending in (None, quantity):
            if self.amend_pending is not None:
                self._amended(quantity=quantity, source=source, reason=reason)
                return True
            return False
        if quantity < self.filled_quantity:
            raise ValueError(
                f"order {self.id}: venue quantity {plain(quantity)} is below the filled {plain(self.filled_quantity)}"
            )
        self._amended(quantity=quantity, source=source, reason=reason)
        return True

    @declares(EventKind.FACT, reported=True)
    @event("Amended")
    def _amended(self, quantity: Decimal, source: str, reason: dict[str, Any]) -> None:
        self.quantity = Decimal(quantity)
        self.amend_pending = None
        self.amend_refused = None
        if self.filled_quantity == self.quantity and self.state in (State.OPEN, State.CANCEL_PENDING):
            self._move(State.FILLED)  # shrunk to what had filled: nothing is left to work

    def amend_rejected(self, *, error: str, reason: dict[str, Any]) -> bool:
        """The venue refused the amend (or shows it did not take effect): the order keeps its quantity. Returns
        False when no amend is pending."""
        if self.amend_pending is None:
            return False
        self._amend_rejected(error=error, reason=reason)
        return True

    @declares(EventKind.OUTCOME, reported=True)
    @event("AmendRejected")
    def _amend_rejected(self, error: str, reason: dict[str, Any]) -> None:
        self.amend_pending = None
        self.amend_refused = error

    # --- cancel, expiry, timeout ------------------------------------------------------------------------

    def request_cancel(self, *, reason: dict[str, Any]) -> bool:
        """Decide to cancel. Returns False if a cancel is already pending. Before submission it cancels outright."""
        if self.state is State.CANCEL_PENDING:
            return False
        if self.state is State.PENDING_SUBMIT:
            self._canceled(reason=reason, venue_reason=None)
            return True
        self._require(State.CANCEL_PENDING, "request_cancel")
        self._cancel_requested(reason=reason)
        return True

    @declares(EventKind.DECISION, reported=True)
    @event("CancelRequested")
    def _cancel_requested(self, reason: dict[str, Any]) -> None:
        self._move(State.CANCEL_PENDING)
        self.cancel_requested = True

    def cancel_rejected(self, *, error: str, reason: dict[str, Any]) -> None:
        """The venue refused the cancel and the order still rests (e.g. cancel rate limit): back to open."""
        self._require(State.OPEN, "cancel_rejected")
        self._cancel_rejected(error=error, reason=reason)

    @declares(EventKind.OUTCOME, reported=True)
    @event("CancelRejected")
    def _cancel_rejected(self, error: str, reason: dict[str, Any]) -> None:
        self._move(State.OPEN)
        self.cancel_requested = False
        self.last_error = error

    def mark_canceled(self, *, reason: dict[str, Any], venue_reason: str | None = None) -> bool:
        """The venue canceled the order. Returns False if already recorded as canceled."""
        if self.state is State.CANCELED:
            return False
        self._require(State.CANCELED, "mark_canceled")
        self._canceled(reason=reason, venue_reason=venue_reason)
        return True

    @declares(EventKind.FACT, reported=True)
    @event("Canceled")
    def _canceled(self, reason: dict[str, Any], venue_reason: str | None) -> None:
        if self.state is State.PENDING_SUBMIT:
            self.cancel_requested = True  # withdrawn by us before it was ever sent
        self._move(State.CANCELED)

    def mark_expired(self, *, reason: dict[str, Any]) -> bool:
        """The venue expired the order. Returns False if already recorded as expired."""
        if self.state is State.EXPIRED:
            return False
        self._require(State.EXPIRED, "mark_expired")
        self._expired(reason=reason)
        return True

    @declares(EventKind.FACT, reported=True)
    @event("Expired")
    def _expired(self, reason: dict[str, Any]) -> None:
        self._move(State.EXPIRED)

    def time_out(self, *, age_s: float, threshold_s: float, rule: str, observed_at: datetime) -> None:
        """Timeout decision: record TimedOut(age, threshold, rule) and the CancelRequested it leads to."""
        if age_s < threshold_s:
            raise ValueError(f"age {age_s}s has not reached the threshold {threshold_s}s")
        self._require(State.CANCEL_PENDING, "time_out")
        self._timed_out(age_s=age_s, threshold_s=threshold_s, rule=rule, observed_at=observed_at)
        self._cancel_requested(
            reason=make_reason(
                Rule.TIMEOUT_CANCEL,
                f"still {self.status.value} after {age_s:g}s (threshold {threshold_s:g}s)",
                age_s=age_s,
                threshold_s=threshold_s,
                filled=self.filled_quantity,
                remaining=self.remaining_quantity,
            )
        )

    @declares(EventKind.DECISION)
    @event("TimedOut")
    def _timed_out(self, age_s: float, threshold_s: float, rule: str, observed_at: datetime) -> None:
        pass

    def defer(self, *, key: str, reason: dict[str, Any]) -> bool:
        """Record a decision *not* to act now, and why (e.g. a timeout cancel refused because the filled part
        would be unsellable, a bracket deferred until the fills reach the pair's minimum). Recorded once per
        ``key``; returns False (writes nothing) if that key was already recorded."""
        if key in self.deferred:
            return False
        self._deferred(key=key, reason=reason)
        return True

    @declares(EventKind.DECISION)
    @event("Deferred")
    def _deferred(self, key: str, reason: dict[str, Any]) -> None:
        self.deferred.add(key)

    # --- brackets ---------------------------------------------------------------------------------------

    def record_bracket(
        self,
        *,
        quantity: Decimal,
        stop_loss_order_id: UUID | None,
        take_profit_order_id: UUID | None,
        sl_price: Decimal | None,
        tp_price: Decimal | None,
        reason: dict[str, Any],
    ) -> Bracket:
        """Record the protective legs planned for ``quantity`` of this entry's filled position."""
        if self.role is not OrderRole.ENTRY:
            raise InvalidTransition(self.id, self.state.value, self.state.value, "record_bracket on a non-entry order")
        if quantity <= ZERO or self.bracketed_quantity + quantity > self.filled_quantity:
            raise ValueError(
                f"order {self.id}: bracket for {plain(quantity)} would cover more than the unprotected filled "
                f"quantity {plain(self.filled_quantity - self.bracketed_quantity)}"
            )
        if stop_loss_order_id is None and take_profit_order_id is None:
            raise ValueError("a bracket needs at least one leg")
        self._bracket_placed(
            index=len(self.brackets),
            quantity=quantity,
            stop_loss_order_id=stop_loss_order_id,
            take_profit_order_id=take_profit_order_id,
            sl_price=sl_price,
            tp_price=tp_price,
            reason=reason,
        )
        return self.brackets[-1]

    @declares(EventKind.DECISION)
    @event("BracketPlaced")
    def _bracket_placed(
        self,
        index: int,
        quantity: Decimal,
        stop_loss_order_id: UUID | None,
        take_profit_order_id: UUID | None,
        sl_price: Decimal | None,
        tp_price: Decimal | None,
        reason: dict[str, Any],
    ) -> None:
        legs: dict[str, list[UUID]] = {
            OrderRole.STOP_LOSS.value: [],
            OrderRole.TAKE_PROFIT.value: [],
            OrderRole.EXIT.value: [],
        }
        if stop_loss_order_id is not None:
            legs[OrderRole.STOP_LOSS.value].append(stop_loss_order_id)
        if take_profit_order_id is not None:
            legs[OrderRole.TAKE_PROFIT.value].append(take_profit_order_id)
        self.brackets.append(Bracket(index, Decimal(quantity), _opt_decimal(sl_price), _opt_decimal(tp_price), legs))

    def add_bracket_leg(self, *, index: int, role: OrderRole, order_id: UUID, reason: dict[str, Any]) -> None:
        """Record a new generation of one bracket leg: a re-created vanished leg, a shrunk sibling, a market exit."""
        if not 0 <= index < len(self.brackets):
            raise ValueError(f"order {self.id} has no bracket {index}")
        if OrderRole(role) is OrderRole.ENTRY:
            raise ValueError("an entry is not a bracket leg")
        self._bracket_leg_added(index=index, role=OrderRole(role).value, order_id=order_id, reason=reason)

    @declares(EventKind.DECISION)
    @event("BracketLegAdded")
    def _bracket_leg_added(self, index: int, role: str, order_id: UUID, reason: dict[str, Any]) -> None:
        self.brackets[index].legs[role].append(order_id)

    def resize_bracket(self, *, index: int, quantity: Decimal, reason: dict[str, Any]) -> bool:
        """The entry filled more: the bracket now protects ``quantity`` (its legs grow by an amend). Returns False
        when that is already its quantity."""
        if not 0 <= index < len(self.brackets):
            raise ValueError(f"order {self.id} has no bracket {index}")
        if quantity <= ZERO or quantity > self.filled_quantity:
            raise ValueError(
                f"order {self.id}: bracket of {plain(quantity)} for a filled {plain(self.filled_quantity)}"
            )
        if self.brackets[index].quantity == quantity:
            return False
        self._bracket_resized(index=index, quantity=quantity, reason=reason)
        return True

    @declares(EventKind.DECISION)
    @event("BracketResized")
    def _bracket_resized(self, index: int, quantity: Decimal, reason: dict[str, Any]) -> None:
        self.brackets[index].quantity = Decimal(quantity)

    def emulate_leg(self, *, index: int, role: OrderRole, trigger_price: Decimal, reason: dict[str, Any]) -> None:
        """This bracket's ``role`` is held by the ledger, not rested on the venue: Kraken holds the base for an
        untriggered stop-loss, so a take-profit beside it would be refused for funds (issue 13, scenario 4). The
        ledger watches the public price and sends it when ``trigger_price`` is crossed."""
        if not 0 <= index < len(self.brackets):
            raise ValueError(f"order {self.id} has no bracket {index}")
        self._leg_emulated(index=index, role=OrderRole(role).value, trigger_price=trigger_price, reason=reason)

    @declares(EventKind.DECISION)
    @event("LegEmulated")
    def _leg_emulated(self, index: int, role: str, trigger_price: Decimal, reason: dict[str, Any]) -> None:
        self.brackets[index].emulated[role] = Decimal(trigger_price)

    def trigger_emulated(
        self, *, index: int, role: OrderRole, price: Decimal, observed_at: datetime, reason: dict[str, Any]
    ) -> bool:
        """The public price crossed an emulated leg's trigger (``price`` observed at ``observed_at``): from now on
        the position exits at market for that role, after the resting sibling is canceled. Returns False if that
        leg already triggered."""
        role = OrderRole(role)
        bracket = self.brackets[index]
        if role.value not in bracket.emulated:
            raise ValueError(f"order {self.id}: bracket {index} does not emulate a {role.value}")
        if role.value in bracket.triggered:
            return False
        self._emulated_triggered(index=index, role=role.value, price=price, observed_at=observed_at, reason=reason)
        return True

    @declares(EventKind.DECISION)
    @event("EmulatedLegTriggered")
    def _emulated_triggered(
        self, index: int, role: str, price: Decimal, observed_at: datetime, reason: dict[str, Any]
    ) -> None:
        self.brackets[index].triggered[role] = Decimal(price)

    def record_shortfall(self, *, quantity: Decimal, reason: dict[str, Any]) -> bool:
        """The account holds ``quantity`` less of this entry's position than its fills say (a balance that was
        negative before the entry, a fee charged elsewhere: the venue refused a leg for funds and the available
        balance was read). The legs protect what is there; the position rule subtracts it. Returns False when
        that is already the recorded shortfall."""
        if self.role is not OrderRole.ENTRY:
            raise InvalidTransition(self.id, self.state.value, self.state.value, "record_shortfall on a non-entry")
        if quantity < ZERO:
            raise ValueError(f"order {self.id}: a shortfall cannot be negative ({plain(quantity)})")
        if quantity == self.shortfall:
            return False
        self._shortfall_recorded(quantity=quantity, reason=reason)
        return True

    @declares(EventKind.DECISION)
    @event("ShortfallRecorded")
    def _shortfall_recorded(self, quantity: Decimal, reason: dict[str, Any]) -> None:
        self.shortfall = Decimal(quantity)

    def record_conflict(self, *, key: str, reason: dict[str, Any]) -> bool:
        """A venue fact the ledger cannot apply (it contradicts what is recorded: a trade id reported with other
        values, more filled than the order's quantity): recorded for an operator, once per ``key``, never applied
        and never an error that stops a worker. Returns False if that conflict was already recorded."""
        if key in self.conflicts:
            return False
        self._conflict_recorded(key=key, reason=reason)
        return True

    @declares(EventKind.FACT)
    @event("ConflictRecorded")
    def _conflict_recorded(self, key: str, reason: dict[str, Any]) -> None:
        self.conflicts.add(key)

    def note_operator_resolution(self, *, reason: dict[str, Any]) -> None:
        """An operator resolves an order the venue lost (marks it canceled or filled by hand): who and why are
        recorded as a decision before the fact they assert."""
        self._operator_resolved(reason=reason)

    @declares(EventKind.DECISION)
    @event("OperatorResolved")
    def _operator_resolved(self, reason: dict[str, Any]) -> None:
        pass

    # --- closing the position ---------------------------------------------------------------------------

    def request_close(self, *, reason: dict[str, Any]) -> bool:
        """The operator asks to close this entry's position: cancel what works, then exit what is held at market.
        Returns False (writes nothing) if a close was already recorded."""
        if self.role is not OrderRole.ENTRY:
            raise InvalidTransition(self.id, self.state.value, self.state.value, "request_close on a non-entry order")
        if self.closing is not None:
            return False
        self._close_requested(reason=reason)
        return True

    @declares(EventKind.DECISION)
    @event("CloseRequested")
    def _close_requested(self, reason: dict[str, Any]) -> None:
        self.closing = dict(reason)

    def add_position_exit(self, *, order_id: UUID, quantity: Decimal, reason: dict[str, Any]) -> None:
        """Record a market exit for the whole position (after a close request), beside the brackets' own legs."""
        if self.role is not OrderRole.ENTRY:
            raise InvalidTransition(self.id, self.state.value, self.state.value, "add_position_exit on a non-entry")
        self._position_exit_added(order_id=order_id, quantity=quantity, reason=reason)

    @declares(EventKind.DECISION)
    @event("PositionExitAdded")
    def _position_exit_added(self, order_id: UUID, quantity: Decimal, reason: dict[str, Any]) -> None:
        self.position_exits.append(order_id)

    def exit_order_ids(self) -> list[UUID]:
        """Every order that sells (buys back) this entry's position: all leg generations and position exits."""
        return [i for b in self.brackets for i in b.all_leg_ids()] + list(self.position_exits)


@dataclass
class Bracket:
    """One protective bracket of an entry: the quantity it protects and every generation of each leg (oldest first)."""

    index: int
    quantity: Decimal
    sl_price: Decimal | None
    tp_price: Decimal | None
    legs: dict[str, list[UUID]]
    emulated: dict[str, Decimal] = field(default_factory=dict)  # role -> trigger the ledger watches (not on venue)
    triggered: dict[str, Decimal] = field(default_factory=dict)  # role -> the price that crossed its trigger

    def current(self, role: OrderRole) -> UUID | None:
        ids = self.legs.get(OrderRole(role).value) or []
        return ids[-1] if ids else None

    def all_leg_ids(self) -> list[UUID]:
        return [i for ids in self.legs.values() for i in ids]
