"""ExecutionHandler: venue facts and the outcomes of our own calls, applied to orders.

Venue facts enter through exactly two handlers, ``on_fill_report`` and ``on_status_report``, whichever path
delivered them (the WS stream, REST polling, reconciliation). Our calls' outcomes enter through
``on_place_result`` and ``on_cancel_result``. Each change is committed together with what the contingency manager
decides about it (brackets, OCO, close) in one transaction of the unit of work.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from execledger.application.contingencies import ContingencyManager
from execledger.application.order_index import OrderIndex
from execledger.application.ports import (
    AmendResult,
    CancelResult,
    Clock,
    Correction,
    EntryBlock,
    ErrorClass,
    FillReport,
    OrderRequest,
    OrderStatusReport,
    PlaceResult,
    PlaceStatus,
    VenueOrderStatus,
)
from execledger.application.unit_of_work import UnitOfWork
from execledger.domain.errors import DomainError
from execledger.domain.order import Order, State
from execledger.domain.reasons import Rule, reason
from execledger.domain.trading_state import TradingMode, TradingState
from execledger.domain.values import OrderRole, OrderType, plain

log = logging.getLogger("execledger.execution")

MISSING_ON_VENUE = "missing_on_venue"  # the conflict key reconciliation records for an order the venue lost


# How a refused AddOrder goes out again, for its reason (ports.Correction).
_AFTER = {
    Correction.REROUND: " after a reround",
    Correction.RESIZE: " after a resize",
    Correction.FRESH_NONCE: " at once with a fresh nonce",
    Correction.VENUE_CLOCK: " at once with a deadline on the venue's clock",
}

# eventsourcing generates Order.Acknowledged from its @event mutator at run time, where mypy cannot see it.
_ACKNOWLEDGED: type = Order.Acknowledged  # type: ignore[attr-defined]


class BatchConflict(Exception):
    """A venue report inside ``ExecutionHandler.one_commit`` could not be applied: everything the block applied
    and decided was forgotten (nothing of it was committed or handed out); apply the reports again one by one."""


class ExecutionHandler:
    def __init__(
        self,
        index: OrderIndex,
        uow: UnitOfWork,
        contingencies: ContingencyManager,
        clock: Clock,
        *,
        trading_state: Callable[[], TradingState],
        submit_deadline_s: float,
        unknown_grace_s: float,
        entry_max_age_s: float,
        exit_submit_deadline_s: float | None = None,
    ):
        self.index = index
        self.uow = uow
        self.contingencies = contingencies
        self.clock = clock
        self.trading_state = trading_state
        self.submit_deadline_s = submit_deadline_s
        self.exit_submit_deadline_s = min(exit_submit_deadline_s or submit_deadline_s, submit_deadline_s)
        self.unknown_grace_s = unknown_grace_s
        self.entry_max_age_s = entry_max_age_s
        # How far the venue's clock runs ahead of this ledger's (negative: behind), as last read after a refused
        # deadline (``Correction.VENUE_CLOCK``): added to the ``deadline`` an AddOrder carries to the venue only. The
        # ledger's own record of the deadline, and every wait on it, stays on the ledger's clock.
        self.venue_clock_offset = timedelta(0)
        self.unmatched: deque[Any] = deque(maxlen=1000)  # venue reports about orders this ledger does not know
        # Which of the exit orders a reaction just decided may be sent at once (the service: nothing to wait for);
        # their Submitted is then committed with the fact that caused them, one durable commit instead of two.
        self.send_at_once: Callable[[list[Order]], list[Order]] = lambda orders: []
        self._ready: dict[UUID, OrderRequest] = {}  # order id -> AddOrder whose Submitted is committed, not sent
        # Set by whoever promises to flush soon (the service): a commit of acknowledgements alone is then deferred
        # to the next commit (``UnitOfWork.defer``) and this is called; unset, every reaction commits at once.
        self.on_deferred: Callable[[], None] | None = None
        self._batch: list[Any] | None = None  # inside one_commit: what the reports touched, committed at its end
        self._batch_ready: dict[UUID, OrderRequest] = {}  # inside one_commit: AddOrders decided, not handed out

    def _react_and_commit(self, order: Order) -> None:
        self._commit_with_submissions(self.contingencies.react(order))

    @contextmanager
    def one_commit(self) -> Iterator[None]:
        """Venue reports applied inside the block (``on_fill_report``, ``on_status_report``; nothing inside may
        await) share ONE commit, made when it ends: the reports that arrived together, say a wave of fills, cost
        one durable write instead of one each. Every reaction decides as it would alone; only the commit waits, and
        the AddOrders decided are handed out (``take_ready``) after it: a decision is still committed before its
        side effect. A report the ledger cannot apply raises ``BatchConflict`` once everything the block applied
        and decided is forgotten (reloaded from the log; acknowledgements its orders held are kept, deferred);
        any other exception forgets it too and propagates."""
        if self._batch is not None:
            raise RuntimeError("one_commit blocks do not nest")
        self._batch, self._batch_ready = [], {}
        try:
            yield
            touched, ready = self._batch, self._batch_ready
        except BaseException:
            forgotten = list({id(a): a for a in self._batch if a is not None}.values())
            self.uow.discard(forgotten)
            self._acknowledge_again(forgotten)
            raise
        finally:
            self._batch, self._batch_ready = None, {}
        if not ready and self._deferring(touched):
            self._defer(touched)
        else:
            self.uow.commit(*touched)
            self._ready.update(ready)

    def _acknowledge_again(self, forgotten: list[Any]) -> None:
        """After a block was forgotten: an acknowledgement one of its orders held uncommitted (deferred before the
        block, or applied in it) is applied again to the order as the log has it, and deferred: the venue's txid
        was heard, and the order must not wait for reconciliation to be found open again."""
        acknowledged = []
        for old in forgotten:
            ack: Any = next((e for e in getattr(old, "pending_events", ()) if type(e) is _ACKNOWLEDGED), None)
            order = self.index.get(old.id) if ack is not None else None
            if order is None or order.txid is not None:
                continue
            try:
                order.acknowledge(txid=ack.txid, at=ack.at, reason=ack.reason)
            except DomainError:
                continue
            acknowledged.append(order)
        if acknowledged:
            self.uow.defer(acknowledged)
            if self.on_deferred is not None:
                self.on_deferred()

    def _commit_with_submissions(self, touched: list[Any]) -> None:
        """Commit ``touched`` together with Submitted for its new exit orders that ``send_at_once`` lets go now
        (a fill and the stop-loss it causes share one transaction). Their AddOrders are handed out by
        ``take_ready`` only once that commit is durable: a decision is committed before its side effect.
        Acknowledgements alone are deferred when ``on_deferred`` is set. Inside ``one_commit`` the same is
        decided and the commit waits for the block's end."""
        if self._deferring(touched):
            if self._batch is not None:
                self._batch += touched  # joins the block's commit, or is deferred with it
            else:
                self._defer(touched)
            return
        pending = [
            o
            for o in {id(a): a for a in touched}.values()
            if isinstance(o, Order) and o.state is State.PENDING_SUBMIT and o.role is not OrderRole.ENTRY
        ]
        chosen = self.send_at_once(pending) if pending else []
        now = self.clock.now()
        requests = {o.id: request for o in chosen if (request := self._decide_submission(o, now)) is not None}
        if self._batch is not None:
            self._batch += touched
            self._batch_ready.update(requests)
            return
        self.uow.commit(*touched)
        self._ready.update(requests)

    def _deferring(self, touched: list[Any]) -> bool:
        """Whether ``touched`` holds acknowledgements alone, to be deferred (``on_deferred`` is set)."""
        return self.on_deferred is not None and all(type(e) is _ACKNOWLEDGED for o in touched for e in o.pending_events)

    def _defer(self, touched: list[Any]) -> None:
        if any(o.pending_events for o in touched):
            self.uow.defer(touched)  # an acknowledgement decides nothing and the venue can tell it again
            assert self.on_deferred is not None  # _deferring said so
            self.on_deferred()

    def take_ready(self) -> dict[UUID, OrderRequest]:
        """The AddOrders whose Submitted a reaction already committed (order id -> request), each handed out once:
        the caller sends them."""
        ready, self._ready = self._ready, {}
        return ready

    # --- submission ------------------------------------------------------------------------------------------

    def time_left(self, order: Order) -> float | None:
        """Seconds an entry may still wait to be sent (its maximum age); None for exits, which wait as long as it
        takes (protection has no age)."""
        if order.role is not OrderRole.ENTRY:
            return None
        return max(0.0, self.entry_max_age_s - (self.clock.now() - order.created_on).total_seconds() - 2.0)

    def begin_submission(self, order_id: UUID) -> OrderRequest | None:
        """Record Submitted (the intent, before the call) and return the AddOrder to send; None if the order is no
        longer pending. An entry while trading is not RUNNING is withdrawn instead, with the reason."""
        return self.begin_submissions([order_id]).get(order_id)

    def begin_submissions(self, order_ids: Iterable[UUID]) -> dict[UUID, OrderRequest]:
        """``begin_submission`` for several orders in ONE commit (a send pass): Submitted for each order still
        pending, or its withdrawal (an entry while trading is not RUNNING or past its maximum age). Returns the
        AddOrders to send by order id, only once the commit is durable."""
        now = self.clock.now()
        touched: list[Order] = []
        requests: dict[UUID, OrderRequest] = {}
        for order_id in order_ids:
            order = self.index[order_id]
            request = self._decide_submission(order, now)
            if request is not None:
                requests[order.id] = request
            if order.pending_events:
                touched.append(order)
        self.uow.commit(*touched)
        return requests

    def _decide_submission(self, order: Order, now: datetime) -> OrderRequest | None:
        """Submitted (uncommitted) for a pending order, and its AddOrder; None when it is not pending any more or
        was withdrawn instead (also uncommitted)."""
        if order.state is not State.PENDING_SUBMIT or self._withdrawn_before_sending(order, now):
            return None
        deadline = self._submit_deadline(order, now)
        order.submit(
            at=now,
            deadline=deadline,
            reason=reason(
                Rule.SUBMIT,
                f"send AddOrder for {order.role.value} {order.side.value} {plain(order.quantity)} {order.pair}",
                deadline_s=round((deadline - now).total_seconds(), 3),  # a leg's is the exit deadline, not the entry's
            ),
        )
        return _add_order_request(order, deadline + self.venue_clock_offset, (deadline - now).total_seconds())

    def _withdrawn_before_sending(self, order: Order, now: datetime) -> bool:
        """An entry is not sent while trading is not RUNNING, nor once its signal is older than its maximum age:
        record the cancel with the reason (the caller commits it) and say so."""
        trading = self.trading_state()
        if order.role is OrderRole.ENTRY and trading.mode is not TradingMode.RUNNING:
            order.request_cancel(
                reason=reason(
                    Rule.HALT_WITHDRAW_ENTRY,
                    f"not sent: trading is {trading.mode.value} ({trading.why})",
                    mode=trading.mode,
                    by=trading.by,
                )
            )
            return True
        age = (now - order.created_on).total_seconds()
        if order.role is OrderRole.ENTRY and age > self.entry_max_age_s:
            order.request_cancel(
                reason=reason(
                    Rule.ENTRY_MAX_AGE_EXCEEDED,
                    f"not sent: the signal is {age:.1f}s old, more than its maximum age {self.entry_max_age_s:g}s "
                    f"(the venue could not take it in time)",
                    age_s=round(age, 3),
                    max_age_s=self.entry_max_age_s,
                )
            )
            return True
        return False

    def _submit_deadline(self, order: Order, now: datetime) -> datetime:
        """The AddOrder's ``deadline`` (REFERENCE.md 3.2, AddOrder parameters: the engine rejects the request if it
        has not processed it by then; at least now + 2 s, at most now + 60 s): ``submit_deadline_s`` for an entry,
        capped by its maximum age, ``exit_submit_deadline_s`` for a protective leg, whose unknown outcome after a
        crash leaves the position waiting that long (plus the grace) before the leg is sent again."""
        if order.role is not OrderRole.ENTRY:
            return now + timedelta(seconds=self.exit_submit_deadline_s)
        # The venue refuses an entry after its maximum age, too (Kraken's ``deadline``, at least now + 2 s).
        return min(
            now + timedelta(seconds=self.submit_deadline_s),
            max(order.created_on + timedelta(seconds=self.entry_max_age_s), now + timedelta(seconds=2)),
        )

    def defer_submission(self, order_id: UUID, block: EntryBlock) -> None:
        """The venue cannot take orders now: record that the order waits, once per order per outage."""
        order = self.index[order_id]
        recorded = order.defer(
            key=f"entry_blocked:{block.since.isoformat()}",
            reason=reason(
                Rule.SEND_DEFERRED_VENUE_UNAVAILABLE,
                f"not sent now: {block.reason}; sent when the venue takes orders again",
                since=block.since,
            ),
        )
        if recorded:
            self.uow.commit(order)

    def on_place_result(self, order_id: UUID, result: PlaceResult) -> None:
        self.on_place_results([(order_id, result)])

    def on_place_results(self, answers: Iterable[tuple[UUID, PlaceResult]]) -> None:
        """AddOrder answers (order id, result), each recorded with what it decides, all in ONE commit. Raises (and
        keeps nothing of any of them) when one cannot be recorded."""
        touched: list[Any] = []
        now = self.clock.now()
        try:
            for order_id, result in answers:
                order = self.index[order_id]
                touched.append(order)
                self._record_place_outcome(order, result, now)
                self._cancel_if_halted_meanwhile(order)
                touched += self.contingencies.react(order)
        except BaseException:
            self.uow.discard(touched)
            raise
        self._commit_with_submissions(touched)

    def _record_place_outcome(self, order: Order, result: PlaceResult, now: datetime) -> None:
        """What AddOrder's answer proves: acknowledged, refused before executing (sent again), rejected, unknown
        (resolved by cl_ord_id, never resent), or never sent. An answer the order's state has moved past is moot."""
        if result.status is PlaceStatus.ACKNOWLEDGED:
            order.acknowledge(txid=result.venue_order_id or "", at=now, reason=reason(Rule.ACK, "AddOrder accepted"))
        elif result.not_executed and order.state is State.SUBMITTING:
            # Refused before anything executed (a nonce, a rate limit, funds, precision, a market gate): the same
            # order goes out again after a wait, corrected first when the refusal says how.
            order.not_sent(
                error=result.error or "not executed",
                reason=reason(
                    Rule.NOT_EXECUTED_SEND_AGAIN,
                    f"AddOrder refused before executing anything ({result.error}); sent again"
                    + _AFTER.get(result.correction, ""),
                    error_class=result.error_class,
                    correction=result.correction,
                ),
            )
        elif result.status is PlaceStatus.REJECTED:
            if order.state in (State.SUBMITTING, State.OUTCOME_UNKNOWN):
                order.reject(
                    error=result.error or "rejected",
                    reason=reason(
                        Rule.VENUE_REJECTED, f"AddOrder rejected: {result.error}", error_class=result.error_class
                    ),
                )
        elif result.status is PlaceStatus.UNKNOWN:
            if order.state is State.SUBMITTING:
                order.outcome_unknown(
                    error=result.error or "unknown",
                    reason=reason(
                        Rule.AMBIGUOUS_SUBMIT,
                        f"AddOrder outcome unknown ({result.error}): resolve by cl_ord_id, never resend",
                        error_class=result.error_class,
                    ),
                )
        elif result.status is PlaceStatus.NOT_SENT and order.state is State.SUBMITTING:
            order.not_sent(
                error=result.error or "not sent",
                reason=reason(
                    Rule.NOT_SENT, f"AddOrder never left the process ({result.error}); it will be sent later"
                ),
            )

    def _cancel_if_halted_meanwhile(self, order: Order) -> None:
        trading = self.trading_state()
        if (
            order.role is OrderRole.ENTRY
            and trading.cancel_entries
            and trading.mode is not TradingMode.RUNNING
            and order.state in (State.OPEN, State.OUTCOME_UNKNOWN)
            and not order.cancel_requested
        ):
            # Halted with cancel-entries while this AddOrder was on the wire: cancel what it placed.
            order.request_cancel(
                reason=reason(Rule.HALT_CANCEL_ENTRIES, f"trading halted by {trading.by}: {trading.why}", by=trading.by)
            )

    def recover_after_restart(self, in_flight: Collection[UUID] = ()) -> int:
        """An order still SUBMITTING after a restart may or may not have reached the venue: its outcome is unknown
        (and will be resolved by cl_ord_id like any other ambiguous submit, never by resending). ``in_flight``: orders
        whose AddOrder this process is still waiting for (a reconciliation while running): their answer decides."""
        stuck = [o for o in self.index.in_state(State.SUBMITTING) if o.id not in in_flight]
        for order in stuck:
            order.outcome_unknown(
                error="the process stopped during submission",
                reason=reason(
                    Rule.RESTART_SUBMISSION_UNKNOWN,
                    "found SUBMITTING after a restart: AddOrder may have been sent; resolve by cl_ord_id",
                    submitted_at=order.submitted_at,
                ),
            )
        self.uow.commit(*stuck)
        return len(stuck)

    # --- unknown outcomes ------------------------------------------------------------------------------------

    def resolve_unknown(
        self, order_id: UUID, found: OrderStatusReport | None, fills: Iterable[FillReport] = ()
    ) -> bool:
        """Apply the evidence of a cl_ord_id lookup. Found: the order was placed (its fills and state follow).
        Not found: proof of "not placed" only once the AddOrder deadline (plus a grace) has passed. Returns True
        when the outcome is no longer unknown."""
        order = self.index[order_id]
        if order.state is not State.OUTCOME_UNKNOWN:
            return True
        if found is not None:
            self.on_status_report(_as_reconciliation(found), fills)
            return self.index[order_id].state is not State.OUTCOME_UNKNOWN
        now = self.clock.now()
        if not self._proven_not_placed(order):
            return False
        order.reject(
            error="not placed",
            reason=reason(
                Rule.UNKNOWN_RESOLVED_NOT_PLACED,
                f"cl_ord_id {order.cl_ord_id} is in neither open nor closed orders after the AddOrder deadline "
                f"({order.deadline.isoformat() if order.deadline else '-'}) plus {self.unknown_grace_s:g}s: "
                f"the engine can no longer accept it",
                deadline=order.deadline,
                checked_at=now,
            ),
            transient=True,
        )
        self._react_and_commit(order)
        return True

    def _proven_not_placed(self, order: Order) -> bool:
        """Not found by cl_ord_id is proof only once the AddOrder deadline plus the grace has passed."""
        limit = (order.deadline or order.submitted_at or self.clock.now()) + timedelta(seconds=self.unknown_grace_s)
        return self.clock.now() >= limit

    # --- cancels ---------------------------------------------------------------------------------------------

    def resolve_cancel_without_venue_id(
        self, order_id: UUID, found: OrderStatusReport | None, fills: Iterable[FillReport] = ()
    ) -> None:
        """After a cancel by cl_ord_id (an unknown outcome, compensated): what the lookup by cl_ord_id shows is
        applied (its txid, fills and final state); absent after the AddOrder deadline plus the grace, the order was
        never placed, so nothing is left to cancel."""
        order = self.index[order_id]
        if order.txid is not None:
            return
        if found is not None:
            self.on_status_report(_as_reconciliation(found), fills)
            return
        if order.state is not State.CANCEL_PENDING or not self._proven_not_placed(order):
            return
        order.mark_canceled(
            reason=reason(
                Rule.CANCEL_OF_UNPLACED_ORDER,
                f"cl_ord_id {order.cl_ord_id} is in neither open nor closed orders after the AddOrder deadline plus "
                f"{self.unknown_grace_s:g}s: it was never placed, nothing is left to cancel",
                deadline=order.deadline,
                checked_at=self.clock.now(),
            )
        )
        self._react_and_commit(order)

    def on_cancel_result(self, order_id: UUID, result: CancelResult) -> bool:
        """Returns True when the order's final state must be read from the venue: after a cancel the venue accepted
        (what filled before it took effect is known only from the venue's final state: recording it canceled at once
        lost a fill that raced the cancel) and when the venue says it is not open any more."""
        order = self.index[order_id]
        if order.state is not State.CANCEL_PENDING:
            return False
        if result.count > 0 or result.not_found:
            return True
        elif result.error:
            order.cancel_rejected(
                error=result.error, reason=reason(Rule.CANCEL_FAILED, f"CancelOrder failed: {result.error}")
            )
        self._react_and_commit(order)
        return False

    # --- amends ----------------------------------------------------------------------------------------------

    def on_amend_result(self, order_id: UUID, result: AmendResult) -> bool:
        """The outcome of an AmendOrder. Returns True when the order must be read from the venue: the outcome is
        unknown, or the venue says the order is not open any more (its final state and fills tell what happened).
        A refusal that executed nothing (a nonce, a rate limit) records nothing: the service sends it again."""
        order = self.index[order_id]
        asked = order.amend_pending
        if asked is None:
            return False
        if result.status is PlaceStatus.ACKNOWLEDGED:
            order.amended(
                quantity=asked,
                source="amend",
                reason=reason(
                    Rule.AMEND_ACK,
                    f"AmendOrder accepted: the order now totals {plain(asked)}",
                    amend_id=result.amend_id,
                ),
            )
        elif result.status is PlaceStatus.REJECTED and result.error_class is ErrorClass.NOT_EXECUTED:
            return False
        elif result.status is PlaceStatus.REJECTED:
            order.amend_rejected(
                error=result.error or "rejected",
                reason=reason(
                    Rule.AMEND_REFUSED, f"AmendOrder refused: {result.error}", error_class=result.error_class
                ),
            )
            self._react_and_commit(order)
            return result.error_class is ErrorClass.NOT_FOUND
        else:
            return True
        self._react_and_commit(order)
        return False

    def amend_not_applied(self, order_id: UUID, report: OrderStatusReport | None) -> None:
        """After an amend whose outcome was unknown, the venue was read and still shows the old quantity (or not
        the order at all): the amend did not take effect. A late one would be reported as a fact, recorded then."""
        order = self.index[order_id]
        if order.amend_pending is None:
            return
        shown = plain(report.quantity) if report is not None and report.quantity is not None else "no change"
        order.amend_rejected(
            error="not applied",
            reason=reason(
                Rule.AMEND_NOT_APPLIED,
                f"after an unknown AmendOrder outcome the venue shows {shown}, not {plain(order.amend_pending)}",
            ),
        )
        self._react_and_commit(order)

    # --- venue facts -----------------------------------------------------------------------------------------

    def on_fill_report(self, fill: FillReport) -> None:
        """One trade of one of our orders (a repeat of a known trade id changes nothing). A fill the ledger cannot
        apply is recorded as a conflict, never an error that stops a worker."""
        order = self.index.find(venue_order_id=fill.venue_order_id, client_order_id=fill.client_order_id)
        if order is None:
            self.unmatched.append(fill)
            return
        try:
            if order.txid is None and order.state is not State.PENDING_SUBMIT:
                order.acknowledge(
                    txid=fill.venue_order_id,
                    at=self.clock.now(),
                    reason=reason(Rule.VENUE_FILL, f"{fill.source} reported a fill", source=fill.source),
                )
            self._apply_fill(order, fill)
        except DomainError as exc:
            self._conflict(order, f"fill {fill.trade_id}", fill.source, exc)
            return
        self._react_and_commit(order)

    def on_status_report(self, report: OrderStatusReport, fills: Iterable[FillReport] = ()) -> bool:
        """An order's state as the venue reports it, with the order's fills that came with it (REST queries) applied
        first. Returns True when the venue reports more filled than the fills we hold (a gap: resync over REST)."""
        order = self.index.find(venue_order_id=report.venue_order_id, client_order_id=report.client_order_id)
        if order is None:
            self.unmatched.append(report)
            return False
        recorded = len(order.pending_events)
        try:
            missing_fills = self._status(order, report, fills)
        except DomainError as exc:
            self._conflict(order, f"status {report.status.value}", report.source, exc)
            return False
        if report.source == "ws" and len(order.pending_events) == recorded:
            # The stream tells what the ledger already holds (pending_new, new after the acknowledgement, filled
            # after the trade): nothing changed, so nothing is decided again. REST passes always react (a net).
            return missing_fills
        self._react_and_commit(order)
        return missing_fills

    def _status(self, order: Order, report: OrderStatusReport, fills: Iterable[FillReport]) -> bool:
        source = report.source
        evidence = _Evidence(report)  # built only when recorded: most stream reports change nothing
        if order.txid is None and order.state is not State.PENDING_SUBMIT:
            order.acknowledge(txid=report.venue_order_id, at=self.clock.now(), reason=evidence.reason)
        for fill in sorted(
            (f for f in fills if f.venue_order_id == report.venue_order_id), key=lambda f: (f.ts_event, f.trade_id)
        ):
            if report.commission_asset and fill.source != "ws":
                # A REST trade names no fee asset; its order does (fcib/fciq): a fill charged in the base must say
                # so whichever path delivered it, or the position and the balances count a base fee as quote.
                fill = replace(fill, commission_asset=report.commission_asset)
            self._apply_fill(order, fill, source=source)
        if (
            report.quantity is not None
            and report.quantity != order.quantity
            and order.state is not State.PENDING_SUBMIT
            and report.quantity >= order.filled_quantity
        ):
            # The venue works the order for another total (our amend, or one whose reply was lost): its fact.
            order.amended(quantity=report.quantity, source=source, reason=evidence.reason)
        missing_fills = report.filled_qty is not None and report.filled_qty > order.filled_quantity
        if not missing_fills and order.state is not State.FILLED:
            self._apply_status(order, report, evidence)
        if not report.is_terminal and order.is_terminal and report.status is not VenueOrderStatus.PENDING:
            # The venue still works an order the ledger holds ended: nobody would manage it. Flag it loudly.
            order.record_conflict(
                key=f"venue_live:{report.venue_order_id}",
                reason=reason(
                    Rule.VENUE_FACT_CONFLICT,
                    f"{source} shows the order {report.status.value} while the ledger holds it {order.state.value}: "
                    f"an operator should cancel it on the venue or resolve it",
                    source=source,
                    venue_status=report.status,
                ),
            )
        return missing_fills

    def record_missing(self, order_id: UUID, strikes: int) -> None:
        """Reconciliation did not find the order on the venue, ``strikes`` times in a row: recorded (once) as lost
        by the venue. Nothing about the order changes; an operator may now resolve it by hand."""
        order = self.index[order_id]
        order.record_conflict(
            key=MISSING_ON_VENUE,
            reason=reason(
                Rule.VENUE_ORDER_MISSING,
                f"neither open nor closed orders of the venue show txid {order.txid} ({strikes} reconciliations in a "
                f"row): the order is kept as it is; an operator may resolve it (execledger resolve)",
                strikes=strikes,
            ),
        )
        self.uow.commit(order)

    def _conflict(self, order: Order, what: str, source: str, exc: Exception) -> None:
        """A venue fact the ledger cannot apply: forget whatever of it was applied in memory, record the conflict
        for an operator (once), and carry on. Inside ``one_commit``: BatchConflict (the block is forgotten)."""
        if self._batch is not None:
            self._batch.append(order)
            raise BatchConflict(f"{what} of order {order.id} from {source}: {exc}") from exc
        log.error("%s of order %s from %s cannot be applied: %s", what, order.id, source, exc)
        self.uow.discard([order])
        order = self.index[order.id]
        order.record_conflict(
            key=f"{what}:{type(exc).__name__}",
            reason=reason(
                Rule.VENUE_FACT_CONFLICT,
                f"{source} reported {what}, which contradicts what the ledger recorded ({exc}): not applied; an "
                f"operator should check the order on the venue",
                source=source,
                error=str(exc),
            ),
        )
        self.uow.commit(order)

    def _apply_status(self, order: Order, report: OrderStatusReport, evidence: _Evidence) -> None:
        if report.status is VenueOrderStatus.CANCELED:
            order.mark_canceled(reason=evidence.reason, venue_reason=report.reason)
        elif report.status is VenueOrderStatus.EXPIRED:
            order.mark_expired(reason=evidence.reason)
        elif (
            report.status is VenueOrderStatus.FILLED
            and report.filled_qty is not None
            and report.filled_qty < order.quantity
        ):
            # Kraken can close a market order a hair short ("Insignificant volume remaining").
            order.mark_canceled(
                reason=reason(
                    Rule.VENUE_CLOSED_SHORT,
                    f"{report.source} shows the order closed with {plain(report.filled_qty)} of "
                    f"{plain(order.quantity)} executed",
                    source=report.source,
                ),
                venue_reason=report.reason or "closed",
            )

    @staticmethod
    def _apply_fill(order: Order, fill: FillReport, source: str | None = None) -> None:
        order.apply_fill(
            trade_id=fill.trade_id,
            quantity=Decimal(fill.last_qty),
            price=Decimal(fill.last_px),
            fee=Decimal(fill.commission),
            fee_asset=fill.commission_asset,
            executed_at=fill.ts_event,
            source=source or fill.source,
        )


class _Evidence:
    """The reason a status report's facts are recorded with (the report's source, status, filled quantity and
    sequence), made on first use and then shared by every event the report records."""

    __slots__ = ("_reason", "_report")

    def __init__(self, report: OrderStatusReport):
        self._report = report
        self._reason: dict[str, Any] | None = None

    @property
    def reason(self) -> dict[str, Any]:
        if self._reason is None:
            report = self._report
            self._reason = reason(
                Rule(f"venue_{report.status.value}"),
                f"{report.source} shows the order {report.status.value}",
                source=report.source,
                venue_status=report.status,
                filled_qty=report.filled_qty,
                sequence=report.sequence,
            )
        return self._reason


def _as_reconciliation(report: OrderStatusReport) -> OrderStatusReport:
    return replace(report, source="reconciliation")


def _add_order_request(order: Order, deadline: datetime, valid_for_s: float) -> OrderRequest:
    """The AddOrder for an order being submitted (a stop-limit or take-profit-limit's limit sits at its trigger)."""
    limit = order.limit_price
    if order.order_type in (OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT):
        limit = order.trigger_price  # the limit sits at the trigger
    return OrderRequest(
        client_order_id=order.cl_ord_id,
        pair=order.pair,
        side=order.side,
        order_type=order.order_type,
        quantity=order.quantity,
        limit_price=limit,
        trigger_price=order.trigger_price,
        deadline=deadline,
        valid_for_s=valid_for_s,
        fee_in_quote=order.role is not OrderRole.ENTRY,
        role=order.role,
    )
