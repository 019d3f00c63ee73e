"""ExecutionEngine: the trading process's core, composed of five parts with one job each.

- ``orders`` (``OrderIndex``): every order by id, venue order id, client order id, state and entry;
- ``uow`` (``UnitOfWork``): the one commit path, with the listeners told after each commit;
- ``contingencies`` (``ContingencyManager``): brackets, OCO and closes, from the pure policies;
- ``execution`` (``ExecutionHandler``): venue reports and the outcomes of our calls;
- ``control`` (``TradingControl``): the trading state and the operator's commands.

It is synchronous and does no I/O besides the event store: the async workers in ``application.service`` call the
venue and hand the outcomes to ``execution``. State is the log; ``load()`` rebuilds the index from it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from execledger.application.contingencies import ContingencyManager, needs_attention
from execledger.application.execution import ExecutionHandler
from execledger.application.ledger import ExecutionLedger
from execledger.application.order_index import OrderIndex
from execledger.application.policies import LastPrice, PolicyConfig, timeout_deadline
from execledger.application.ports import PriceTick
from execledger.application.trading_control import TradingControl
from execledger.application.unit_of_work import Committed, Listener, UnitOfWork
from execledger.domain import clock as domain_clock
from execledger.domain.clock import TimestampedEvent
from execledger.domain.events import is_reported
from execledger.domain.order import Order, State
from execledger.domain.pairs import VENUE_RULES_ID, PairRegistry, VenueRules
from execledger.domain.position import exits_of, position_of, required_cover
from execledger.domain.reports import ExecutionReport, execution_report
from execledger.domain.values import ZERO, OrderRole

log = logging.getLogger("execledger.engine")

TICK_COMMIT_ORDERS = 200  # aggregates a transaction when a tick decides for many (bounds one commit's size)


@dataclass(frozen=True)
class EngineConfig:
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    submit_deadline_s: float = 30.0  # AddOrder ``deadline``: after it the venue would reject the request
    # A protective leg's AddOrder ``deadline``: shorter, because after a crash between its Submitted and the wire
    # the position waits this long (plus ``unknown_grace_s``) before "not found" proves the leg was never placed
    # and it is sent again. At least the clock's tolerated offset to the venue (5 s) plus Kraken's minimum (2 s).
    exit_submit_deadline_s: float = 10.0
    unknown_grace_s: float = 5.0  # how long after the deadline "not found" becomes proof of "not placed"
    signal_max_age_s: float = 60.0  # a signal that reaches the trading process later than this is not placed
    max_pending_entries: int = 100  # backpressure: new entries refused while this many wait to be sent/answered


class ExecutionEngine:
    """Not thread-safe: one engine per ledger, driven by one event loop (the trading process is the one writer)."""

    def __init__(
        self,
        ledger: ExecutionLedger,
        config: EngineConfig | None = None,
        *,
        listeners: Sequence[Listener] = (),
        process: str = "trading",
    ):
        self.ledger = ledger
        self.app = ledger.app
        self.pairs = ledger.pairs
        self.clock = ledger.clock
        self.config = config or EngineConfig()
        domain_clock.use(self.clock.now)  # one clock: decisions and the timestamps of their events
        # Holds the signals that can still matter; finished ones are retired and loaded again when asked for.
        self.orders = OrderIndex(
            ledger,
            self._is_flat if ledger.can_retire else None,
            deadline_of=lambda order: timeout_deadline(order, self.config.policy),
            flag=needs_attention,
        )
        self.uow = UnitOfWork(self.app, self.orders, listeners)
        self.contingencies = ContingencyManager(self.orders, self.pairs, self.config.policy, self.clock)
        self.uow.add_listener(self.contingencies.on_committed)  # unparks the entries a commit changed
        self.control = TradingControl(
            ledger,
            self.orders,
            self.uow,
            self.contingencies,
            self.clock,
            process=process,
            signal_max_age_s=self.config.signal_max_age_s,
            max_pending_entries=self.config.max_pending_entries,
        )
        self.execution = ExecutionHandler(
            self.orders,
            self.uow,
            self.contingencies,
            self.clock,
            trading_state=lambda: self.control.state,
            submit_deadline_s=self.config.submit_deadline_s,
            exit_submit_deadline_s=self.config.exit_submit_deadline_s,
            unknown_grace_s=self.config.unknown_grace_s,
            entry_max_age_s=self.config.signal_max_age_s,
        )

    def load(self, orders: Iterable[Order] | None = None) -> int:
        """Rebuild the index and the trading state from the log; returns the number of orders held (retired
        signals are not loaded). ``orders``: what ``ledger.load_orders()`` returned, when the caller folded the log
        itself (in a worker thread while it waited for the venue: ``TradingService.run``)."""
        self.orders.clear()
        self.contingencies.forget_watches()
        for order in self.ledger.load_orders() if orders is None else orders:  # one pass, not a query per order
            self.orders.put(order)
            if order.brackets:
                self.contingencies.watch(order)
        self.control.reload_state()
        self._retire_finished()  # signals that finished before they could be retired (or before this version)
        return len(self.orders)

    def _retire_finished(self) -> None:
        """Memory is bounded by the signals that can still matter: drop the finished ones (see OrderIndex)."""
        try:
            retired = self.orders.retire_finished()
        except Exception:  # the store refused: keep holding them (memory, not correctness), try again next tick
            log.exception("could not retire finished signals; they stay in memory")
            return
        if retired:
            self.contingencies.unwatch(o.id for o in retired)

    def _is_flat(self, entry: Order) -> bool:
        """Whether a signal whose orders are all terminal holds nothing (the one position rule)."""
        try:
            base = self.contingencies.rules(entry).base
        except LookupError:
            return False
        return position_of(entry, self.orders, base).is_flat

    def update_pairs(self, pairs: PairRegistry, *, source: str = "venue") -> bool:
        """The venue's current pair rules (loaded at start, periodically and after a precision refusal): used from
        now on, and kept in the store (a new snapshot only when they changed) for a start without the venue.
        Returns whether they changed."""
        self.pairs = self.ledger.pairs = self.contingencies.pairs = pairs
        self.contingencies.look_at_everything()
        try:
            snapshot: VenueRules = self.app.repository.get(VENUE_RULES_ID)
        except AggregateNotFoundError:
            snapshot = VenueRules()
        changed = snapshot.load(pairs, source=source)
        self.uow.commit(snapshot)
        return changed

    def tick(self) -> None:
        """The time-driven decisions: timeouts of resting limit entries whose deadline passed (``OrderIndex.due``,
        not a scan of every open order), then the contingency safety net over every entry that may need a
        decision. The decisions of one tick are committed together, ``TICK_COMMIT_ORDERS`` orders a transaction
        (one durable commit a second instead of one per order: each commit is an fsync on the loop)."""
        now = self.clock.now()
        reactions = [self.contingencies.timeouts_of(order, now) for order in self.orders.due(now)]
        reactions += self.contingencies.safety_net()
        decided = [[a for a in touched if a.pending_events] for touched in reactions]
        done = 0
        try:
            batch: list[Any] = []  # whole reactions: each one's aggregates stay in one transaction
            for k, touched in enumerate(decided):
                batch += touched
                if len(batch) >= TICK_COMMIT_ORDERS or k == len(decided) - 1:
                    self.uow.commit(*batch)
                    batch, done = [], k + 1
        except BaseException:  # what was decided and not recorded is not kept either
            self.uow.discard(a for touched in decided[done:] for a in touched)
            raise
        self._retire_finished()

    # --- what the workers ask ------------------------------------------------------------------------------------

    def pending_submissions(self) -> list[Order]:
        return self.orders.in_state(State.PENDING_SUBMIT)

    def pending_cancels(self) -> list[Order]:
        """Orders we decided to cancel whose cancel is not confirmed (re-sent after a restart: cancels are
        idempotent)."""
        return self.orders.in_state(State.CANCEL_PENDING)

    def pending_amends(self) -> list[Order]:
        return self.orders.amending()

    def on_price(self, tick: PriceTick) -> None:
        """A pair's last public price: the entries whose protection depends on it decide again (an emulated
        trigger crossed, a refused stop whose trigger is crossed). Observed at the engine's clock."""
        for entry in self.contingencies.note_price(tick.pair, LastPrice(tick.price, self.clock.now())):
            self.uow.commit(*self.contingencies.react(entry))

    def unknown_outcomes(self) -> list[Order]:
        return self.orders.in_state(State.OUTCOME_UNKNOWN)

    def exit_orders_live(self) -> bool:
        """Whether a stop-loss, take-profit or market exit is live or about to be sent (every exit order has its
        entry as parent; the index flags the live ones): O(flagged orders), not a pass over every live order."""
        return any(o.parent_id is not None for o in self.orders.flagged())

    def live_orders(self) -> list[Order]:
        return self.orders.live()

    def positions_without_stop(self) -> list[Order]:
        """The entries holding a position whose stop-loss is not on the venue: the one position rule
        (``domain/position.py``) requires a stop-loss cover above zero, and no stop-loss leg of the entry is
        acknowledged (OPEN) yet. A stop-loss the ledger emulates requires no order. O(flagged orders): the entries
        with live legs or unprotected fills (``ContingencyManager.needing_attention``), in placement order."""
        naked = []
        for entry in self.contingencies.needing_attention():
            try:
                base = self.contingencies.rules(entry).base
            except LookupError:
                base = None
            if required_cover(entry, self.orders, base).get(OrderRole.STOP_LOSS, ZERO) <= ZERO:
                continue
            legs = exits_of(entry, self.orders)
            if not any(o.role is OrderRole.STOP_LOSS and o.state is State.OPEN for o in legs):
                naked.append(entry)
        return naked


class ReportPublisher:
    """A unit-of-work listener: one ExecutionReport per reported event, built from the order as it was right after
    that event (so the in-process pub/sub and the read-model projection produce identical reports)."""

    def __init__(self, ledger: ExecutionLedger, publish: Callable[[ExecutionReport], None]):
        self.ledger = ledger
        self.publish = publish

    def __call__(self, committed: Committed) -> None:
        for aggregate, events in committed:
            if isinstance(aggregate, Order):
                self._report(aggregate, events)

    def _report(self, order: Order, events: Sequence[TimestampedEvent]) -> None:
        reported = [ev for ev in events if is_reported(ev)]
        if not reported:
            return
        if len(reported) == 1 and reported[0] is events[-1]:  # the common case: the current state is the one
            current = execution_report(order, events[-1])
            if current is not None:  # always: the event is reported
                self.publish(current)
            return
        first = events[0].originator_version
        copy: Order | None = self.ledger.app.repository.get(order.id, version=first - 1) if first > 1 else None
        for ev in events:
            copy = ev.mutate(copy)
            report = None if copy is None else execution_report(copy, ev)  # an order's event returns the order
            if report is not None:
                self.publish(report)
