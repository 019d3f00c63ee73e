"""TradingService: the async workers around the ExecutionEngine. Every task is owned and awaited (no
fire-and-forget), and every loop waits on something (a wake-up, a retry time, its interval) before it runs again.

Workers: the sender (AddOrder and CancelOrder for what was decided), the execution stream (WS v2 reports in,
REST polling while it is down or after a gap), the timers (timeouts, unknown outcomes), the reconciler, the
dead-man's switch and the command follower (operator commands from the log). Venue calls happen only here; their
outcomes go back into the engine, which records them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError

from execledger.application.commands import CommandInbox
from execledger.application.engine import ExecutionEngine
from execledger.application.execution import BatchConflict
from execledger.application.ports import (
    AmendResult,
    Correction,
    ErrorClass,
    ExchangePort,
    FillReport,
    OrderRequest,
    OrderStatusReport,
    PlaceResult,
    PlaceStatus,
    ReportsArrivingTogether,
    StreamEvent,
    StreamState,
    VenueError,
    VenueReport,
)
from execledger.application.unit_of_work import Committed
from execledger.domain.order import Order, State
from execledger.domain.trading_state import TRADING_STATE_ID, TradingMode
from execledger.domain.values import OrderRole, OrderType

log = logging.getLogger("execledger.service")


def legs_of(entry: Order) -> int:
    """How many protective legs (AddOrders) an entry places once it fills: its stop-loss and its take-profit."""
    return (entry.sl_price is not None) + (entry.tp_price is not None)


@dataclass(frozen=True)
class _StreamEnd:
    """The execution stream ended (``error``: how it failed)."""

    error: Exception | None


class _Pumped:
    """Any execution stream as a ``ReportsArrivingTogether``: a pump task reads it into a queue of ``size``
    reports, and ``arrived`` hands out what the queue holds; how the stream ended is raised after its reports."""

    def __init__(self, reports: AsyncIterator[VenueReport], size: int):
        self._queue: asyncio.Queue[VenueReport | _StreamEnd] = asyncio.Queue(size)
        self._pump = asyncio.ensure_future(self._read(reports))
        self._end: _StreamEnd | None = None

    async def _read(self, reports: AsyncIterator[VenueReport]) -> None:
        try:
            async for report in reports:
                await self._queue.put(report)
        except Exception as exc:
            await self._queue.put(_StreamEnd(exc))
            return
        await self._queue.put(_StreamEnd(None))

    def __aiter__(self) -> _Pumped:
        return self

    async def __anext__(self) -> VenueReport:
        item = self._end or await self._queue.get()
        if isinstance(item, _StreamEnd):
            self._end = item
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    def arrived(self, limit: int) -> list[VenueReport]:
        out: list[VenueReport] = []
        while self._end is None and len(out) < limit and not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, _StreamEnd):
                self._end = item  # always the last item
            else:
                out.append(item)
        return out

    async def aclose(self) -> None:
        self._pump.cancel()
        await asyncio.gather(self._pump, return_exceptions=True)


@dataclass
class ReconcileReport:
    stuck_submissions: int = 0
    checked: int = 0
    changed: list[UUID] = field(default_factory=list)
    missing: list[UUID] = field(default_factory=list)
    foreign: list[OrderStatusReport] = field(default_factory=list)


@dataclass(frozen=True)
class ServiceConfig:
    tick_interval_s: float = 1.0  # timers and unknown-outcome resolution
    deadman_timeout_s: int = 60  # CancelAllOrdersAfter timeout (Kraken recommends 60 s, refreshed every 15-30 s)
    deadman_refresh_s: float = 20.0
    deadman_enabled: bool = True
    deadman_mode: str = "entries"  # entries: armed only while no exit order lives; all; off
    deadman_disarm_wait_s: float = 5.0  # how long a protective leg waits for the switch's disarm before going anyway
    reconcile_interval_s: float = 60.0  # continuous reconciliation while running
    reconcile_quiet_s: float = 10.0  # missing-order strikes skip orders the stream touched this recently
    poll_when_stream_down_s: float = 2.0  # REST polling cycle while the execution stream is down
    commands_poll_s: float = 0.25  # how often the command log is read when no wake-up arrives
    retry_min_s: float = 0.5  # first wait before sending again what was not sent (the venue unavailable)
    retry_max_s: float = 30.0
    rules_refresh_s: float = 3600.0  # how often the venue's pair rules (AssetPairs) are loaded again
    cancel_confirm_s: float = 2.0  # an accepted cancel's final state is read over REST if the stream says nothing
    price_poll_s: float = 2.0  # REST Ticker cycle for watched pairs while the public price stream is down
    ack_flush_s: float = 0.005  # AddOrder acknowledgements wait at most this long for a commit to join
    stop_drain_s: float = 2.0  # at stop, how long venue calls in flight may take to be answered or withdrawn
    # At stop, how long the protective legs of filled positions are still decided and sent (entries stop at once),
    # before the drain above: until every position's stop-loss is acknowledged, or this runs out.
    stop_protect_s: float = 10.0


class TradingService:
    """Runs until ``stop()``; one pass of each worker is callable on its own (tests, the demo)."""

    # Stream reports that arrived together are applied with one commit (``apply_all``), at most this many: a
    # flood of fills is many bounded blocks, and the event loop (timers, HALT, the API) runs between them.
    REPORTS_A_COMMIT = 64

    def __init__(
        self,
        engine: ExecutionEngine,
        exchange: ExchangePort,
        config: ServiceConfig | None = None,
        *,
        inbox: CommandInbox | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.engine = engine
        self.exchange = exchange
        self.config = config or ServiceConfig()
        self.inbox = inbox
        self._sleep = sleep
        self._work = asyncio.Event()
        self._commands = asyncio.Event()
        self._stopping = asyncio.Event()  # stop asked: no entry is sent any more; protective legs still are
        self._closing = asyncio.Event()  # protection over (or a second signal): nothing more is sent
        self._hurry = asyncio.Event()  # a second signal: calls in flight are not waited for either
        self._committed = asyncio.Event()  # something was recorded (the protection phase looks again)
        self._poll_now = asyncio.Event()
        self._new_price_pair = asyncio.Event()  # a position needs the price of a pair not followed yet
        self._deadman_wake = asyncio.Event()
        self.recovered = asyncio.Event()  # set once the start-up reconciliation is done: signals are then safe
        self.failed = asyncio.Event()  # set at once when a worker fails: the process must not look alive (runner)
        self.failure: BaseException | None = None  # that worker's error
        self.missing: Counter[UUID] = Counter()  # lost-order strikes: never terminal until the venue proves it
        self.stream_seen: dict[UUID, datetime] = {}  # when the live stream last reported on an order
        self.stream_healthy = False
        self.last_reconciliation: datetime | None = None
        self.deadman_expires_at: datetime | None = None
        self._deadman_armed: bool | None = None  # as the venue last confirmed; None: unknown (a previous process)
        self._deadman_lock = asyncio.Lock()  # one CancelAllOrdersAfter at a time: a slow arm never lands after a disarm
        self._last_fill_at: datetime | None = None
        self._retry_at: dict[UUID, float] = {}  # order id -> loop time before which it is not sent again
        self._retries: Counter[UUID] = Counter()
        self._corrections: dict[UUID, Correction] = {}  # what to correct before sending an order again
        self._inflight: dict[UUID, asyncio.Task[None]] = {}  # one venue call in flight per order
        self._awaiting_room: set[UUID] = set()  # entries whose ``_submit`` waits for the rate limit's room
        self._awaiting_venue: set[UUID] = set()  # exits not sent while the breaker was open: they wait for it to close
        self._handed: set[UUID] = set()  # orders whose AddOrder this process handed to the venue adapter
        self._final_state_due: dict[UUID, float] = {}  # canceled orders whose final state the stream should report
        self._failed_calls: list[BaseException] = []  # calls that raised (a bug): the sender re-raises them
        self._answers: list[tuple[UUID, PlaceResult, asyncio.Future[None]]] = []  # AddOrder answers to record
        self._ack_flush: asyncio.TimerHandle | None = None  # commits deferred acknowledgements (UnitOfWork.defer)
        engine.uow.add_listener(self._after_commit)
        engine.control.venue_unavailable = self._venue_unavailable
        engine.execution.send_at_once = self._sendable_now
        engine.contingencies.on_new_pair = self._price_pair_needed
        self._price_queue: asyncio.Queue[Any] | None = None  # what ``_follow_prices`` waits on, while it runs

    # --- wake-ups ------------------------------------------------------------------------------------------------

    def wake(self) -> None:
        """Something may need sending: run the sender now."""
        self._work.set()

    def commands_waiting(self) -> None:
        """A command was recorded (in this process, or a notification said so): read the command log now."""
        self._commands.set()

    def _venue_unavailable(self, pair: str) -> str | None:
        """Why the venue cannot take a new entry on ``pair`` now: it is unavailable, or its rate limit would not let
        the entries already waiting, and this one, out within a signal's maximum age."""
        block = self.exchange.entry_block()
        if block is not None:
            return block.reason
        horizon = self.engine.config.signal_max_age_s * 0.8
        capacity = self.exchange.order_capacity(pair, horizon)
        if capacity is None:
            return None
        pending = [o for o in self.engine.pending_submissions() if o.pair == pair]
        waiting = len(pending)
        needed = waiting + sum(legs_of(o) for o in pending if o.role is OrderRole.ENTRY) + self._legs_owed(pair) + 1
        if needed > capacity:
            return (
                f"Kraken's rate limit lets {capacity} orders on {pair} out within {horizon:g}s and {waiting} already "
                f"wait to be sent (with the protective legs they and the entries in flight will need: {needed - 1})"
            )
        return None

    def _legs_owed(self, pair: str) -> int:
        """The AddOrders that the entries in flight on ``pair`` will need for their protective legs as soon as they
        fill: entries sent and not answered yet, or whose outcome is unknown, and market entries on the book, that
        have no legs yet (``legs_of``). Room for them is kept from other entries, so a burst of market entries
        cannot spend the rate limit's room that their own stop-losses need a moment later (break test 2026-12-02:
        60 entries took Kraken's Starter counter whole and their stops then left one a second, up to 61 s after
        the fills). A resting limit entry keeps nothing: it may never fill, and its legs, once decided, go before
        every entry anyway."""
        owed = 0
        for order in self.engine.orders.in_state(State.SUBMITTING, State.OUTCOME_UNKNOWN, State.OPEN):
            if (
                order.pair == pair
                and order.role is OrderRole.ENTRY
                and not order.brackets
                and (order.state is not State.OPEN or order.order_type is OrderType.MARKET)
            ):
                owed += legs_of(order)
        return owed

    def _after_commit(self, committed: Committed) -> None:
        if self._awaiting_room and any(aggregate.id == TRADING_STATE_ID for aggregate, _ in committed):
            self._halt_entries_awaiting_room()
        self._work.set()
        self._committed.set()
        self._deadman_wake.set()  # an exit order may have started or ended: arm or disarm at once

    def _halt_entries_awaiting_room(self) -> None:
        """Trading left RUNNING (HALT, REDUCING): the entries waiting for the rate limit's room stop waiting now, and
        the send pass this wakes withdraws them with the halt as the reason. Left waiting, they stayed pending up to
        their maximum age, and a RESUME within it sent them after all (break test 2026-12-02: entries of a runaway
        burst reached the venue 61-81 s after the halt's receipt, once the operator resumed)."""
        if self.engine.execution.trading_state().mode is TradingMode.RUNNING:
            return
        for order_id in list(self._awaiting_room):
            task = self._inflight.get(order_id)
            if task is not None:
                task.cancel()

    async def stop(self) -> None:
        """Stop gracefully (SIGTERM): no entry is sent from now on (those queued for the wire are withdrawn as
        NotSent), while the protective legs of filled positions are still decided and sent, for at most
        ``stop_protect_s`` (``protect_positions``); then what is in flight is drained (``drain_calls``)."""
        self._stopping.set()
        self._work.set()
        self._commands.set()

    def stop_now(self) -> None:
        """Stop at once (a second SIGTERM or SIGINT): no more protection, no wait for calls in flight; what never
        left is still recorded NotSent, and a call cut off on the wire is resolved by cl_ord_id at the next start."""
        self._stopping.set()
        self._closing.set()
        self._hurry.set()
        self._work.set()
        self._commands.set()
        self._poll_now.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def closing(self) -> bool:
        """Nothing more is decided for the wire or sent: the protection phase of a stop is over."""
        return self._closing.is_set()

    def _withheld(self, order: Order) -> bool:
        """Whether ``order``'s AddOrder may no longer be decided or sent: an entry once stopping, anything once
        closing (never Submitted with nobody to send it)."""
        return self.closing or (self.stopping and order.role is OrderRole.ENTRY)

    # --- one pass of each worker ---------------------------------------------------------------------------------

    async def send_pending(self, *, wait: bool = True) -> int:
        """Start a call for every due AddOrder (never twice: Submitted is recorded first) and every pending cancel,
        each in its own task, one in flight per order: a reply the venue holds delays no other order's call. The
        AddOrders that need to wait for nothing (``_sendable_now``) are decided together, in one commit, before
        any of them leaves; the others wait for what they need first, each on its own (``_submit``). An order that
        could not be sent, or that the venue refused before executing anything, is sent again after a backoff
        (corrected first when the refusal says how). With ``wait`` the pass waits for the calls it started
        (tests, the harness); the sender loop does not. Returns how many calls were started."""
        started: list[asyncio.Task[None]] = []
        now = _loop_time()
        for order_id, request in self.engine.execution.take_ready().items():  # committed with the fill that caused it
            started.append(self._start_call(order_id, self._place(order_id, request)))
        started += self._start_submissions(now)
        for order in self.engine.pending_amends():
            if order.id in self._inflight or self._retry_at.get(order.id, 0.0) > now:
                continue
            started.append(self._start_call(order.id, self._amend(order.id)))
        for order in self.engine.pending_cancels():
            if order.id in self._inflight or self._retry_at.get(order.id, 0.0) > now:
                continue
            if order.id in self._final_state_due:
                if self._final_state_due[order.id] > now:
                    continue  # the stream reports the canceled order (and any fill that raced it) any moment
                started.append(self._start_call(order.id, self._read_final_state(order.id)))
                continue
            started.append(self._start_call(order.id, self._cancel(order.id)))
        if wait and started:
            await asyncio.gather(*started, return_exceptions=True)
        return len(started)

    def _start_submissions(self, now: float) -> list[asyncio.Task[None]]:
        """The send pass's AddOrders: those that can go at once decided in one commit, the rest one by one."""
        pending = [o for o in self.engine.pending_submissions() if o.id not in self._inflight and not self._withheld(o)]
        if pending and self.engine.execution.trading_state().mode is not TradingMode.RUNNING:
            # Halted: every entry waiting is withdrawn now, with the halt as its reason, whatever room the rate limit
            # has (waiting for room first would keep it pending, and a RESUME meanwhile would send it).
            entries = [o.id for o in pending if o.role is OrderRole.ENTRY]
            if entries:
                self.engine.execution.begin_submissions(entries)
                pending = [o for o in pending if o.role is not OrderRole.ENTRY]
        block = self.exchange.entry_block()
        if block is None:
            self._awaiting_venue.clear()
        else:
            if self.engine.orders.count(State.PENDING_SUBMIT):
                self._poll_now.set()  # a successful read is what closes the breaker again: probe with the poller
            for order in pending:
                if order.role is OrderRole.ENTRY:
                    self.engine.execution.defer_submission(order.id, block)
            # A protective leg still goes: the venue that just filled the position is the one that can protect it,
            # and the breaker lets exits through as it lets cancels (break test 2026-12-02: five slow add_order
            # answers opened it while the venue filled the entries, and their stops waited 29-54 s). One that could
            # not be sent while the breaker was open waits for the venue to answer a read again: trying it on a
            # backoff would record a Submitted and a NotSent every few seconds of an outage (CI 2026-12-02).
            pending = [o for o in pending if o.role is not OrderRole.ENTRY and o.id not in self._awaiting_venue]
        at_once = self._sendable_now(pending)
        requests = self.engine.execution.begin_submissions(o.id for o in at_once) if at_once else {}
        started = [self._start_call(i, self._place(i, request)) for i, request in requests.items()]
        decided = {o.id for o in at_once}
        for order in pending:
            if order.id not in decided and self._retry_at.get(order.id, 0.0) <= now:
                started.append(self._start_call(order.id, self._submit(order.id)))
        return started

    def _sendable_now(self, orders: list[Order]) -> list[Order]:
        """Those of ``orders`` whose AddOrder may be decided and sent at once, waiting for nothing: no call in flight,
        not postponed, no correction first, the venue takes orders, its rate limit lets each of them out now
        (counted per pair, exits first, then in the order given) and, for an exit, no disarm of the dead-man's
        switch must go first. Nothing is taken from the rate limit (``place`` takes it). While the service stops,
        no entry; once its protection phase is over (closing), none: nothing would send it any more, and a
        Submitted left behind comes back as an unknown outcome at the next start (what a closing service still
        records, a fill from the stream or the NotSent of a withdrawn leg, decides its legs but leaves them
        PENDING_SUBMIT, sent at once by the next start)."""
        if not orders or self.closing:
            return []
        if self.exchange.entry_block() is not None:  # the breaker is open: exits only (see _start_submissions)
            orders = [o for o in orders if o.role is not OrderRole.ENTRY and o.id not in self._awaiting_venue]
        disarm_first = (
            self.config.deadman_enabled and self.config.deadman_mode == "entries" and self._deadman_armed is not False
        )
        room: dict[str, int | None] = {}
        owed: dict[str, int] = {}  # per pair: room kept for legs still to come (``_legs_owed``), asked once
        chosen: list[Order] = []
        for order in sorted(orders, key=lambda o: o.role is OrderRole.ENTRY):  # protection takes the room first
            if order.id in self._inflight or order.id in self._corrections or order.id in self._retry_at:
                continue
            if self._withheld(order):
                continue
            if disarm_first and order.role is not OrderRole.ENTRY:
                continue
            if order.pair not in room:
                room[order.pair] = self.exchange.order_capacity(order.pair, 0.0)
            left = room[order.pair]
            if left is not None:
                if order.role is OrderRole.ENTRY:  # itself, its own legs and those of the entries in flight
                    if order.pair not in owed:
                        owed[order.pair] = self._legs_owed(order.pair)
                    if left < 1 + legs_of(order) + owed[order.pair]:
                        continue
                    owed[order.pair] += legs_of(order)
                elif left < 1:
                    continue
            room[order.pair] = None if left is None else left - 1
            chosen.append(order)
        return chosen

    def _start_call(self, order_id: UUID, call: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(call)
        self._inflight[order_id] = task

        def done(t: asyncio.Task[None]) -> None:
            self._inflight.pop(order_id, None)
            error = None if t.cancelled() else t.exception()
            if error is not None:
                self._failed_calls.append(error)
                log.error("a venue call for order %s failed", order_id, exc_info=error)
            self.wake()  # what the outcome decided may need sending

        task.add_done_callback(done)
        return task

    async def _submit(self, order_id: UUID) -> None:
        correction = self._corrections.pop(order_id, None)
        if correction is not None and not await self._correct(order_id, correction):
            self._retry_later(order_id)
            return
        # Wait for the venue's rate limit *before* deciding to send: a halt (or the entry's maximum age) applied
        # meanwhile is then obeyed, where waiting after Submitted would send an entry the operator just stopped.
        order = self.engine.orders[order_id]
        urgent = order.role is not OrderRole.ENTRY  # a protective leg goes before the entries waiting with it
        reserve = None if urgent else (lambda: legs_of(order) + self._legs_owed(order.pair))
        if not urgent:
            self._awaiting_room.add(order_id)  # a halt meanwhile ends the wait (``_halt_entries_awaiting_room``)
        try:
            fits = await self.exchange.wait_for_order_capacity(
                order.pair, self.engine.execution.time_left(order), urgent=urgent, reserve=reserve
            )
        finally:
            self._awaiting_room.discard(order_id)
        if not fits:
            self._retry_later(order_id)  # not within its maximum age: it is withdrawn at its next try
            return
        if order.role is not OrderRole.ENTRY:
            await self._disarm_before_protecting(order)
        # Stopped while it waited: left PENDING_SUBMIT, never Submitted with nobody to send it.
        if self._withheld(order):
            return
        request = self.engine.execution.begin_submission(order_id)
        if request is not None:
            await self._place(order_id, request)

    async def _place(self, order_id: UUID, request: OrderRequest) -> None:
        """Send an AddOrder whose Submitted is committed, and record its outcome."""
        self._handed.add(order_id)  # from here on it may reach the venue: never withdrawn as "not sent"
        try:
            result = await self.exchange.place(request, still_wanted=lambda: self._still_wanted(order_id))
        except Exception as exc:  # anything after Submitted may have reached the venue
            log.exception("AddOrder for %s raised; outcome unknown", request.client_order_id)
            result = PlaceResult(PlaceStatus.UNKNOWN, error=f"{type(exc).__name__}: {exc}")
        await self._record_place_result(order_id, result)
        if result.status is PlaceStatus.NOT_SENT or result.not_executed:
            self._retry_later(order_id, at_once=result.correction in (Correction.FRESH_NONCE, Correction.VENUE_CLOCK))
            if result.status is PlaceStatus.NOT_SENT and self.exchange.entry_block() is not None:
                self._awaiting_venue.add(order_id)  # sent again once a read succeeds (``_start_submissions``)
            if result.correction in (Correction.REROUND, Correction.RESIZE, Correction.VENUE_CLOCK):
                self._corrections[order_id] = result.correction
        else:
            self._retry_at.pop(order_id, None)
            self._retries.pop(order_id, None)

    async def drain_calls(self) -> None:
        """At stop, once protection is over (``protect_positions``), before the workers are cancelled: from now on
        nothing more is sent (closing); calls still queued for the wire are withdrawn (``_still_wanted``) and
        those on it answered, each outcome recorded, for at most ``stop_drain_s`` (not at all after ``stop_now``);
        only a call the venue holds longer is cut off (unknown). Then what never reached the adapter is NOT_SENT."""
        self._closing.set()
        self._poll_now.set()
        if self._inflight and not self._hurry.is_set():
            hurry = asyncio.ensure_future(self._hurry.wait())
            try:
                await asyncio.wait([*self._inflight.values(), hurry], timeout=self.config.stop_drain_s)
            finally:
                hurry.cancel()
        self._withdraw_unsent()
        await self._cancel_calls()

    def _fill_due(self) -> bool:
        """Whether an entry may fill any moment: its AddOrder is on the wire, or it is a market order acknowledged
        whose fill is not reported yet. Its position needs its stop-loss too: seen in the break test, an entry
        answered just after protection ended filled, and its leg was withdrawn at the drain."""
        orders = self.engine.orders
        if any(orders[i].role is OrderRole.ENTRY for i in self._inflight if i in orders):
            return True
        return any(
            o.role is OrderRole.ENTRY and o.order_type == OrderType.MARKET and o.remaining_quantity > 0
            for o in orders.in_state(State.OPEN)
        )

    async def protect_positions(self) -> int:
        """At stop, before ``drain_calls``: entries are no longer sent, but the workers still record fills and
        answers, decide protective legs and send them, until every filled position has its stop-loss acknowledged
        on the venue (``ExecutionEngine.positions_without_stop``) and no entry's fill is due (``_fill_due``),
        ``stop_protect_s`` ran out, or ``stop_now``. Logs one line: how many positions are left without a
        stop-loss, if any. Returns that number."""
        deadline = _loop_time() + self.config.stop_protect_s
        naked = self.engine.positions_without_stop()
        while (naked or self._fill_due()) and not self.closing and (left := deadline - _loop_time()) > 0:
            self._committed.clear()
            await self._wait(self._committed, min(left, self.config.tick_interval_s), until=self._closing)
            naked = self.engine.positions_without_stop()
        if naked:
            log.warning(
                "stopping: %d filled positions left without a stop-loss on the venue (signals %s); the next start "
                "sends their legs at once",
                len(naked),
                ", ".join(e.signal_id for e in naked[:10]) + (", ..." if len(naked) > 10 else ""),
            )
        else:
            log.info("stopping: every filled position has its stop-loss on the venue")
        return len(naked)

    def _withdraw_unsent(self) -> None:
        """At stop: an order whose Submitted is committed (a leg decided with its fill, say) but whose AddOrder was
        never handed to the adapter certainly did not leave; NOT_SENT is recorded, so the next start sends it at
        once instead of resolving an unknown outcome. Skipped after a failed call (the state may be stale)."""
        if self._failed_calls:
            return
        unsent = [o.id for o in self.engine.orders.in_state(State.SUBMITTING) if o.id not in self._handed]
        if not unsent:
            return
        result = PlaceResult(PlaceStatus.NOT_SENT, error="not sent: the service stopped first")
        try:
            self.engine.execution.on_place_results([(order_id, result) for order_id in unsent])
        except Exception:  # nothing recorded: each stays SUBMITTING and is resolved as unknown at the next start
            log.exception("could not record %d AddOrders withdrawn at stop", len(unsent))

    def _still_wanted(self, order_id: UUID) -> str | None:
        """Asked by the adapter when an AddOrder's turn on the wire comes: an entry whose Submitted was recorded
        before a HALT is not sent after it (NOT_SENT, then withdrawn by the next send pass); exits always go.
        While the service stops no entry is signed, and once its protection phase is over (closing) nothing is:
        NOT_SENT is recorded, so the next start sends the order at once instead of resolving an unknown outcome (a
        leg naked, an entry refused, for the submit deadline)."""
        order = self.engine.orders.get(order_id)
        if self.closing or (self.stopping and (order is None or order.role is OrderRole.ENTRY)):
            return "the service is stopping"
        trading = self.engine.control.state
        if order is None or order.role is not OrderRole.ENTRY or trading.mode is TradingMode.RUNNING:
            return None
        return f"trading is {trading.mode.value} ({trading.by}: {trading.why})"

    async def _record_place_result(self, order_id: UUID, result: PlaceResult) -> None:
        """Record an AddOrder's answer together with the other answers that arrived in the same turn of the event
        loop: one commit for them all, at the next turn. Acknowledgements that decide nothing join the next commit
        instead, or are committed ``ack_flush_s`` later (a crash before that loses nothing: the order is found by
        its cl_ord_id, as after a crash before the answer). Returns once recorded; raises what the commit raised."""
        done = asyncio.get_running_loop().create_future()
        self._answers.append((order_id, result, done))
        if len(self._answers) == 1:
            asyncio.get_running_loop().call_soon(self._flush_answers)
        await done

    def _flush_answers(self) -> None:
        answers, self._answers = self._answers, []
        try:
            self.engine.execution.on_place_results([(order_id, result) for order_id, result, _ in answers])
        except BaseException as exc:  # nothing of them was kept: each call fails as it would have on its own
            for *_, done in answers:
                if not done.done():
                    done.set_exception(exc)
            return
        for *_, done in answers:
            if not done.done():  # a call canceled meanwhile (stopping): its answer is recorded all the same
                done.set_result(None)

    def _flush_soon(self) -> None:
        """Acknowledgements were deferred (``ExecutionHandler.on_deferred``): committed ``ack_flush_s`` from now
        unless another commit takes them along first."""
        if self._ack_flush is None:
            self._ack_flush = asyncio.get_running_loop().call_later(self.config.ack_flush_s, self._flush_deferred)

    def _flush_deferred(self) -> None:
        """Commit the acknowledgements no other commit took along (a failure stops the service, as any call's)."""
        self._ack_flush = None
        try:
            self.engine.uow.flush()
        except Exception as exc:
            log.exception("could not record deferred acknowledgements")
            self._failed_calls.append(exc)
            self.wake()

    async def _correct(self, order_id: UUID, correction: Correction) -> bool:
        """Correct a waiting order before it is sent again: the venue's current rules (re-round), what the account
        holds (resize). Returns False when the venue could not be read (the order waits for the next try)."""
        order = self.engine.orders[order_id]
        try:
            if correction is Correction.REROUND:
                self.engine.update_pairs(await self.exchange.asset_pairs(), source="precision refusal")
                touched = self.engine.contingencies.reround(order)
            elif correction is Correction.RESIZE:
                touched = self.engine.contingencies.resize_to_holdings(order, await self.exchange.available_balances())
            elif correction is Correction.VENUE_CLOCK:
                await self._follow_venue_clock()
                touched = []
            else:
                touched = []
        except VenueError as exc:
            if exc.error_class not in (ErrorClass.RETRYABLE, ErrorClass.RATE_LIMITED):
                raise
            log.warning("could not %s order %s now (%s): trying again later", correction.value, order_id, exc)
            self._corrections[order_id] = correction
            return False
        self.engine.uow.commit(*touched)
        return True

    async def _cancel(self, order_id: UUID) -> None:
        """Send a decided cancel. One the venue could not take (unavailable, rate limited: the adapter's retries ran
        out) records nothing: the order stays cancel-pending and the cancel is sent again after a backoff. During an
        outage that outlasts the retries this is the normal case, never a reason to stop the service."""
        if not await self._tolerating_outage(f"CancelOrder for order {order_id}", lambda: self._send_cancel(order_id)):
            self._retry_later(order_id)

    async def _send_cancel(self, order_id: UUID) -> None:
        order = self.engine.orders[order_id]
        version = order.version
        result = await self.exchange.cancel(
            venue_order_id=order.txid, client_order_id=None if order.txid else order.cl_ord_id
        )
        final_state_needed = self.engine.execution.on_cancel_result(order_id, result)
        if final_state_needed and order.txid and result.count > 0 and self.stream_healthy:
            # Accepted: the stream reports the order canceled, with any fill that raced the cancel, within moments;
            # if it does not (a stalled stream), the final state is read over REST then.
            self._final_state_due[order_id] = _loop_time() + self.config.cancel_confirm_s
            return
        if final_state_needed or not order.txid:
            await self.resync([order_id])
        if self.engine.orders[order_id].version == version:
            # The venue left it as it was (cancel pending, or an order not found yet): ask again after a backoff,
            # not in a tight loop.
            self._retry_later(order_id)
        else:
            self._retry_at.pop(order_id, None)
            self._retries.pop(order_id, None)

    async def _amend(self, order_id: UUID) -> None:
        """Send the decided AmendOrder (again after a restart or after a refusal that executed nothing: it is an
        absolute quantity, so a repeat is harmless). An unknown outcome is settled by reading the order: the
        quantity the venue shows is recorded as a fact; the old one means the amend did not take effect."""
        order = self.engine.orders[order_id]
        quantity = order.amend_pending
        if quantity is None or order.txid is None:
            return
        try:
            result = await self.exchange.amend(quantity=quantity, venue_order_id=order.txid)
        except VenueError as exc:
            result = AmendResult(PlaceStatus.UNKNOWN, error=str(exc), error_class=exc.error_class)
        if self.engine.execution.on_amend_result(order_id, result) and await self._tolerating_outage(
            "reading an amended order", lambda: self.resync([order_id])
        ):
            self.engine.execution.amend_not_applied(order_id, None)
        order = self.engine.orders[order_id]
        carried_out = result.status is PlaceStatus.ACKNOWLEDGED
        if order.amend_pending is not None and not order.is_terminal and not carried_out:
            self._retry_later(order_id)  # refused before anything executed, or the venue could not be read
        else:
            # Carried out: an amend its answer decided (the entry filled more meanwhile) is a new decision, sent at
            # once rather than after the backoff of one not carried out (the soak's leg short of its position).
            self._retry_at.pop(order_id, None)
            self._retries.pop(order_id, None)

    async def _read_final_state(self, order_id: UUID) -> None:
        """A cancel the venue accepted whose final state the stream did not report in time: read it over REST."""
        self._final_state_due.pop(order_id, None)
        read = await self._tolerating_outage(f"reading canceled order {order_id}", lambda: self.resync([order_id]))
        if not read or self.engine.orders[order_id].state is State.CANCEL_PENDING:
            self._retry_later(order_id)  # still open on the venue: the cancel is sent again after a backoff

    async def wait_for_calls(self) -> None:
        """Wait for every venue call in flight (tests; a stopping service)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight.values()), return_exceptions=True)

    def _retry_later(self, order_id: UUID, *, at_once: bool = False) -> None:
        """Send the order again after a backoff; ``at_once`` (a nonce overtaken on the way) skips the first wait."""
        self._retries[order_id] += 1
        # The doubling stops at 2**30: a leg is tried for as long as its position is open, and past 1,024 tries
        # (8.5 hours at a 30 s maximum) 2**n no longer converts to a float (OverflowError, the sender dead).
        wait = min(self.config.retry_max_s, self.config.retry_min_s * 2 ** min(self._retries[order_id] - 1, 30))
        if at_once and self._retries[order_id] == 1:
            wait = 0.0
        self._retry_at[order_id] = _loop_time() + wait

    def next_retry_in(self) -> float | None:
        """Seconds until the earliest postponed call is due (None when nothing is postponed)."""
        submissions = [o for o in self.engine.pending_submissions() if not self._withheld(o)]
        waiting = {o.id for o in submissions} | {o.id for o in self.engine.pending_cancels()}
        if not waiting:
            return None
        block = self.exchange.entry_block()
        if block is not None and submissions:
            return max(0.05, block.retry_in_s)
        due = [t for oid, t in self._retry_at.items() if oid in waiting]
        return max(0.0, min(due) - _loop_time()) if due else None

    async def resync(self, order_ids: Iterable[UUID]) -> None:
        """Ask the venue for the orders' final state and fills, and apply them. An order without a venue order id
        (a cancel by cl_ord_id compensating an unknown outcome) is looked up by its cl_ord_id."""
        orders = [self.engine.orders[i] for i in order_ids]
        if not orders:
            return
        with_txid = [o.txid for o in orders if o.txid]
        venue = await self.exchange.query_orders(with_txid) if with_txid else {}
        by_client_id = {o.id: await self.exchange.find_by_client_order_id(o.cl_ord_id) for o in orders if not o.txid}
        found = [*venue.values(), *(f for f in by_client_id.values() if f is not None)]
        ours = {o.txid: o.filled_quantity for o in orders if o.txid}
        # Fills cost a TradesHistory call (2 counter points): read them only when the venue shows more filled.
        more_filled = any((v.filled_qty or 0) > ours.get(v.venue_order_id, 0) for v in found)
        fills = await self.exchange.fills_since(_before(_oldest_submission(orders))) if more_filled else []
        for order in orders:
            if order.txid is None:
                self.engine.execution.resolve_cancel_without_venue_id(order.id, by_client_id[order.id], fills)
                continue
            status = venue.get(order.txid)
            if status is not None:
                self.engine.execution.on_status_report(status, fills)

    async def resolve_unknowns(self) -> None:
        for order in self.engine.unknown_outcomes():
            found = await self.exchange.find_by_client_order_id(order.cl_ord_id)
            fills = await self.exchange.fills_since(_before(order.submitted_at)) if found is not None else []
            self.engine.execution.resolve_unknown(order.id, found, fills)

    async def poll_once(
        self,
        *,
        quiet_s: float = 0.0,
        report: ReconcileReport | None = None,
        source: str = "rest",
        open_orders: list[OrderStatusReport] | None = None,
    ) -> ReconcileReport:
        """One REST look at the venue, flat in the number of open orders: one OpenOrders call (unless its answer
        is given); then, only for orders whose fills or state changed, their fills and (for those that left the
        book) a batched QueryOrders. Orders on the venue this ledger does not know are reported, never touched."""
        report = report or ReconcileReport()
        if open_orders is None:
            open_orders = await self.exchange.open_orders()
        open_now = {o.venue_order_id: o for o in open_orders}
        report.foreign += self._foreign(open_now.values())
        live = [o for o in self.engine.live_orders() if o.txid]
        report.checked = len(live)
        changed = [o for o in live if o.txid not in open_now or (open_now[o.txid].filled_qty or 0) > o.filled_quantity]
        if not changed:
            return report
        fills = await self.exchange.fills_since(_before(self._last_fill_at or _oldest_submission(changed)))
        left = [o.txid for o in changed if o.txid and o.txid not in open_now]
        closed = await self.exchange.query_orders(left) if left else {}
        now = self.engine.clock.now()
        for order in changed:
            version = order.version
            txid = order.txid or ""  # every changed order has one (live orders were chosen by it)
            found = open_now.get(txid) or closed.get(txid)
            if found is None:
                seen = self.stream_seen.get(order.id)
                if seen is None or (now - seen).total_seconds() >= quiet_s:
                    self.missing[order.id] += 1
                    report.missing.append(order.id)
                    log.warning(
                        "order %s (%s) not found on the venue (%d times): kept as is until proven",
                        order.id,
                        order.txid,
                        self.missing[order.id],
                    )
                    if self.missing[order.id] == MISSING_STRIKES:
                        self.engine.execution.record_missing(order.id, self.missing[order.id])
                continue
            self.missing.pop(order.id, None)
            self.engine.execution.on_status_report(replace(found, source=source), fills)
            if self.engine.orders[order.id].version != version:
                report.changed.append(order.id)
        self._note_fills(fills)
        return report

    def _foreign(self, venue_orders: Iterable[OrderStatusReport]) -> list[OrderStatusReport]:
        """The venue's orders this ledger does not know (by venue order id or client order id)."""
        find = self.engine.orders.find
        return [
            o for o in venue_orders if find(venue_order_id=o.venue_order_id, client_order_id=o.client_order_id) is None
        ]

    async def reconcile(
        self, *, quiet_s: float = 0.0, open_orders: list[OrderStatusReport] | None = None
    ) -> ReconcileReport:
        """Bring the ledger in line with the venue: stuck submissions, unknown outcomes, every live order, and
        orders on the venue this ledger does not know (reported only). What it learns becomes ordinary events whose
        reasons say ``source=reconciliation``; applying the same evidence twice writes nothing. ``open_orders``:
        the venue's OpenOrders answer read since the ledger last changed (start-up); it is read again when there
        are outcomes to look up first."""
        report = ReconcileReport()
        report.stuck_submissions = self.engine.execution.recover_after_restart(in_flight=set(self._inflight))
        if report.stuck_submissions or self.engine.unknown_outcomes():
            open_orders = None  # the lookups by cl_ord_id come first, the open orders are read after them
        await self.resolve_unknowns()
        await self.poll_once(quiet_s=quiet_s, report=report, source="reconciliation", open_orders=open_orders)
        for venue_order in report.foreign:
            log.warning(
                "open order %s on the venue is not in this ledger: reported, not touched", venue_order.venue_order_id
            )
        self.last_reconciliation = self.engine.clock.now()
        await self.send_pending()
        return report

    async def run_once(self) -> None:
        """One pass: commands, timers, unknown outcomes, then what those decided to send."""
        self.pull_commands()
        self.engine.tick()
        await self.resolve_unknowns()
        await self.send_pending()

    def pull_commands(self) -> int:
        """Carry out every command recorded in the log since the last one (exactly once each)."""
        return self.inbox.pull() if self.inbox is not None else 0

    # --- venue reports -------------------------------------------------------------------------------------------

    async def apply(self, report: VenueReport) -> None:
        """Apply one report from the execution stream (resyncing the order over REST if it reveals missed
        fills), or react to a change of the stream's health."""
        resync = self._apply_report(report, self.engine.clock.now())
        if resync is not None:
            await self._tolerating_outage("resync", lambda: self.resync([resync]))
        self.wake()

    async def apply_all(self, reports: Sequence[VenueReport]) -> None:
        """Apply reports that arrived together (``apply`` each) with ONE commit for them all
        (``ExecutionHandler.one_commit``), then resync what they revealed missing. When one of them cannot be
        applied, nothing of the block is kept and they are applied again one by one, each with its own commit."""
        if len(reports) == 1:
            await self.apply(reports[0])
            return
        try:
            now = self.engine.clock.now()  # they arrived together: one time for all
            with self.engine.execution.one_commit():
                resync = [order_id for report in reports if (order_id := self._apply_report(report, now)) is not None]
        except BatchConflict:
            for report in reports:
                await self.apply(report)
            return
        if resync:
            await self._tolerating_outage("resync", lambda: self.resync(resync))
        self.wake()

    def _apply_report(self, report: VenueReport, now: datetime) -> UUID | None:
        """Apply one report that arrived at ``now``, awaiting nothing; returns the order to resync over REST
        (missed fills), if any."""
        if isinstance(report, StreamEvent):
            self._on_stream_event(report)
            return None
        order = self.engine.orders.find(venue_order_id=report.venue_order_id, client_order_id=report.client_order_id)
        if isinstance(report, FillReport):
            self.engine.execution.on_fill_report(report)
            self._note_fills([report])
            needs_resync = False
        else:
            needs_resync = self.engine.execution.on_status_report(report)
        order = order or self.engine.orders.find(venue_order_id=report.venue_order_id)
        if order is None:
            return None
        self.stream_seen[order.id] = now
        return order.id if needs_resync else None

    def _on_stream_event(self, event: StreamEvent) -> None:
        # Down: REST takes over now (and polls every cycle until the stream is back). A gap or a (re)connect:
        # what happened meanwhile is read once over REST; the connection itself is as healthy as it was.
        if event.state is StreamState.CONNECTED:
            self.stream_healthy = True
        elif event.state is StreamState.DISCONNECTED:
            self.stream_healthy = False
        self._poll_now.set()

    def _note_fills(self, fills: Sequence[FillReport]) -> None:
        latest = max((f.ts_event for f in fills), default=None)
        if latest is not None and (self._last_fill_at is None or latest > self._last_fill_at):
            self._last_fill_at = latest

    # --- the long-running loops ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run all workers until ``stop()``. A worker that fails stops the service (and the error propagates)."""
        open_now = await self._load_while_asking_the_venue()
        self.pull_commands()  # a halt recorded while no trading process ran applies before anything is sent
        while not self.stopping and not await self._tolerating_outage(
            "start-up reconciliation", partial(self.reconcile, open_orders=open_now)
        ):
            open_now = None  # read again at the next attempt
            await self._wait(None, self.config.tick_interval_s)  # the venue is unavailable: recovery waits for it
        if self.stopping:
            return
        self.recovered.set()
        self.engine.execution.on_deferred = self._flush_soon  # the loops run: a deferred acknowledgement is flushed
        try:
            async with asyncio.TaskGroup() as tg:
                workers = {"sender": self._sender, "stream": self._stream, "rest-poller": self._poller}
                workers |= {"timers": self._timers, "reconciler": self._reconciler, "prices": self._price_watcher}
                workers |= {"commands": self._command_follower}
                if self.config.deadman_enabled:
                    workers["deadman"] = self._deadman
                for name, worker in workers.items():
                    tg.create_task(self._watched(name, worker), name=name)
                self.wake()
                await self._stopping.wait()
                await self.protect_positions()  # entries stopped; the legs of filled positions still go out
                await self.drain_calls()  # here, not in the sender: cancelling the workers would cut it short
                raise _Stop
        except* _Stop:
            pass
        finally:
            self.engine.execution.on_deferred = None
            if self._ack_flush is not None:
                self._ack_flush.cancel()
                self._flush_deferred()

    async def _watched(self, name: str, worker: Callable[[], Awaitable[None]]) -> None:
        """Run one worker; its failure is made known at once (``failed``, ``failure``, one CRITICAL log line)
        instead of when the task group has wound down the others, which a worker slow to cancel (a socket's
        close) can delay without bound: meanwhile the process would answer as if it traded."""
        try:
            await worker()
        except Exception as exc:
            if self.failure is None:
                self.failure = exc
                log.critical(
                    "trading worker %s failed: %s: %s; trading stops (the process exits, and the next start "
                    "reconciles with the venue)",
                    name,
                    type(exc).__name__,
                    exc,
                    exc_info=exc,
                )
                self.failed.set()
            raise

    async def _load_while_asking_the_venue(self) -> list[OrderStatusReport] | None:
        """Start-up: the log is folded into orders in a worker thread (``ledger.load_orders`` only reads the store)
        while this loop anchors the clock, loads the pair rules and reads the venue's open orders; the index and
        the trading state are then built here, after the clock and the rules, as before. Nothing is decided or
        sent meanwhile, so the venue's answer is compared with the same loaded state as if it were read after the
        load. Returns that answer (None: not read, the reconciliation reads it)."""
        venue = asyncio.create_task(self._venue_at_start(), name="venue-at-start")
        try:
            orders = await asyncio.to_thread(self.engine.ledger.load_orders)
        except BaseException:
            venue.cancel()
            await asyncio.gather(venue, return_exceptions=True)
            raise
        open_now = await venue
        self.engine.load(orders)
        return open_now

    async def _venue_at_start(self) -> list[OrderStatusReport] | None:
        await self._anchor_clock()
        if not await self._tolerating_outage("loading the venue's pair rules", self.refresh_pairs):
            return None  # open orders are parsed by the pair rules: the reconciliation reads them later
        try:
            return await self.exchange.open_orders()
        except VenueError:
            return None  # the start-up reconciliation reads them again (and waits for the venue if it must)

    async def refresh_pairs(self, source: str = "venue") -> bool:
        """Load the venue's current pair rules (AssetPairs); the ledger trades by them from now on."""
        return self.engine.update_pairs(await self.exchange.asset_pairs(), source=source)

    async def _follow_venue_clock(self) -> None:
        """The venue refused an AddOrder's deadline (elapsed on arrival, or too far ahead): read its clock (Kraken
        ``GET /0/public/Time``, whole seconds, REFERENCE.md 3.1) and give deadlines on it from now on. An offset
        within ``VENUE_CLOCK_TOLERANCE_S`` is the Time answer's own rounding and the round trip: none is applied,
        and a refusal that came of a slow venue rather than a clock is simply sent again."""
        venue_now = await self.exchange.server_time()
        if venue_now is None:
            return
        offset = venue_now - self.engine.clock.now()
        if abs(offset.total_seconds()) <= VENUE_CLOCK_TOLERANCE_S:
            offset = timedelta(0)
        execution = self.engine.execution
        if offset != execution.venue_clock_offset:
            log.warning(
                "the venue's clock is %.1fs %s the ledger's: AddOrder deadlines are given on the venue's clock",
                abs(offset.total_seconds()),
                "ahead of" if offset > timedelta(0) else "behind",
            )
            execution.venue_clock_offset = offset

    async def _anchor_clock(self) -> None:
        """Follow the venue's clock if the machine's is far off it (before any decision is taken)."""
        anchor = getattr(self.engine.clock, "anchor_to_venue", None)
        if anchor is None:
            return
        try:
            venue_now = await asyncio.wait_for(self.exchange.server_time(), 10)
        except Exception as exc:
            log.warning("could not read the venue's clock at start (%s): keeping the machine's", exc)
            return
        if venue_now is not None:
            anchor(venue_now)

    async def _wait(
        self, event: asyncio.Event | None, timeout: float | None, *, until: asyncio.Event | None = None
    ) -> None:
        """Wait for ``event`` (or stop) at most ``timeout`` seconds; returns early when stopping (or, with
        ``until``, when that is set: the workers that carry on while positions are protected wait for closing)."""
        waiters = [asyncio.ensure_future((until or self._stopping).wait())]
        if event is not None:
            waiters.append(asyncio.ensure_future(event.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _tolerating_outage(self, what: str, work: Callable[[], Awaitable[object]]) -> bool:
        """Run ``work``; a venue call that failed, for whatever reason the venue gave (unavailable, rate limited,
        a refused nonce or permission: the adapter's retries ran out), is logged and tried again at the next turn:
        no error from a housekeeping call stops the service. Anything that is not a venue error (a bug) still
        propagates. Returns whether ``work`` completed."""
        try:
            await work()
            return True
        except VenueError as exc:
            error_class = exc.error_class
            if error_class in (ErrorClass.RETRYABLE, ErrorClass.RATE_LIMITED):
                log.warning("%s: the venue is unavailable for now (%s); trying again at the next turn", what, exc)
            else:
                log.error("%s: the venue refused it (%s); trying again at the next turn", what, exc)
            return False

    async def _sender(self) -> None:
        try:
            while not self.closing:  # a stopping service still sends protective legs (``protect_positions``)
                self._work.clear()
                if self._failed_calls:
                    raise self._failed_calls.pop(0)
                await self.send_pending(wait=False)
                await self._wait(self._work, self.next_retry_in(), until=self._closing)
        finally:
            if not self.stopping:  # a failure: calls in flight are cut off (when stopping, drain_calls ends them)
                await self._cancel_calls()

    async def _cancel_calls(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*list(self._inflight.values()), return_exceptions=True)

    async def _stream(self) -> None:
        """Apply the execution stream's reports: those that arrived together at once (``apply_all``), at most
        ``REPORTS_A_COMMIT`` a block, so no block is long enough to hold the event loop (timers, HALT, the API) for
        more than a block's work. A stream that is no ``ReportsArrivingTogether`` is read by a pump task into a
        queue of that size; the Kraken stream bounds its own queue (``KrakenExecutionsStream.QUEUE_HIGH``). Either way a
        flood of reports waits in the socket (the venue's TCP window), not in memory."""
        reports = self.exchange.executions()
        together = reports if isinstance(reports, ReportsArrivingTogether) else _Pumped(reports, self.REPORTS_A_COMMIT)
        try:
            async for report in together:
                await self.apply_all([report, *together.arrived(self.REPORTS_A_COMMIT - 1)])
                if self.closing:  # while stopping, fills still come in: they decide the legs that protect them
                    return
        finally:
            await together.aclose()

    async def _poller(self) -> None:
        """REST in place of the stream: a cycle every ``poll_when_stream_down_s`` while it is down, and one right
        after a gap or a reconnect (what happened meanwhile), repeated at that interval until it succeeds; nothing
        while the stream is healthy."""
        failed = False
        while not self.closing:  # REST stands in for the stream while positions are protected at stop too
            idle = self.stream_healthy and not failed
            await self._wait(self._poll_now, None if idle else self.config.poll_when_stream_down_s, until=self._closing)
            self._poll_now.clear()
            if self.closing:
                return
            failed = not await self._tolerating_outage("REST polling", self.poll_once)

    async def _price_watcher(self) -> None:
        """Follow the public price of the pairs whose protection depends on it (an emulated leg; a stop whose
        trigger may be crossed): the venue's live price stream while it streams, REST Ticker every
        ``price_poll_s`` while it does not. Idle while no pair is watched; the set is looked at every tick."""
        while not self.stopping:
            self._new_price_pair.clear()
            pairs = self.engine.contingencies.watched_pairs()
            if not pairs:
                await self._wait(self._new_price_pair, self.config.tick_interval_s)
                continue
            await self._follow_prices(pairs)

    def _price_pair_needed(self, pair: str) -> None:
        """A new position needs the price of a pair not followed yet: follow it now, not at the next look."""
        self._new_price_pair.set()
        if self._price_queue is not None:
            self._price_queue.put_nowait(_LOOK_AGAIN)

    async def _follow_prices(self, pairs: set[str]) -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._price_queue = queue

        async def pump() -> None:
            try:
                async for item in self.exchange.price_ticks(sorted(pairs)):
                    queue.put_nowait(item)
            except Exception as exc:  # no stream (or it broke): REST Ticker carries on
                log.debug("public price stream unavailable: %s", exc)
            finally:
                queue.put_nowait(None)

        task = asyncio.ensure_future(pump())
        streaming, polled, looked = False, 0.0, _loop_time()
        try:
            while not self.stopping:
                try:  # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel that lands as the
                    async with asyncio.timeout(self.config.price_poll_s):  # item arrives, and this loop never ends
                        item = await queue.get()
                except TimeoutError:  # a quiet market: nothing changes
                    pass
                else:
                    if item is _LOOK_AGAIN:
                        pass  # the pairs to follow changed: looked at below
                    elif isinstance(item, StreamEvent):
                        streaming = item.state is not StreamState.DISCONNECTED
                    elif item is None:  # the stream ended (or there is none): REST from now on
                        streaming = False
                    else:
                        streaming = True
                        self.engine.on_price(item)
                if not streaming and _loop_time() - polled >= self.config.price_poll_s:
                    polled = _loop_time()
                    await self._tolerating_outage("reading public prices", lambda: self.poll_prices(pairs))
                if self._new_price_pair.is_set() or _loop_time() - looked >= self.config.tick_interval_s:
                    looked = _loop_time()
                    self._new_price_pair.clear()
                    if self.engine.contingencies.watched_pairs() != pairs:
                        return
        finally:
            self._price_queue = None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def poll_prices(self, pairs: set[str]) -> None:
        """One REST Ticker call for the watched pairs; each price goes to the engine."""
        for tick in (await self.exchange.last_prices(sorted(pairs))).values():
            self.engine.on_price(tick)

    async def _timers(self) -> None:
        rules_loaded = _loop_time()
        while not self.stopping:
            self.engine.tick()
            await self._tolerating_outage("resolving unknown outcomes", self.resolve_unknowns)
            if _loop_time() - rules_loaded >= self.config.rules_refresh_s:
                rules_loaded = _loop_time()
                await self._tolerating_outage("reloading the venue's pair rules", self.refresh_pairs)
            await self._wait(None, self.config.tick_interval_s)

    async def _reconciler(self) -> None:
        while not self.stopping:
            await self._wait(None, self.config.reconcile_interval_s)
            if self.stopping:
                return
            await self._tolerating_outage(
                "reconciliation", lambda: self.reconcile(quiet_s=self.config.reconcile_quiet_s)
            )

    async def _command_follower(self) -> None:
        while not self.stopping:
            self._commands.clear()
            try:
                self.pull_commands()
            except (OperationalError, InterfaceError) as exc:  # the command is read again: nothing was kept
                log.warning("commands: the database failed (%s); reading them again shortly", exc)
            await self._wait(self._commands, self.config.commands_poll_s)

    def deadman_wanted(self) -> bool:
        """Whether Kraken's dead-man's switch should be armed now. ``CancelAllOrdersAfter`` cancels *every* order
        of the account when it fires (REFERENCE.md 3.6), protective legs included, so in the ``entries`` mode it is
        armed only while no exit order (stop-loss, take-profit, market exit) is live or about to be sent: a
        service that dies then leaves its legs resting."""
        mode = self.config.deadman_mode
        if mode == "all":
            return True
        if mode == "off":
            return False
        return not self.engine.exit_orders_live()

    async def _disarm_before_protecting(self, order: Order) -> None:
        """In the ``entries`` mode, a protective leg goes out only after the venue confirmed the switch disarmed:
        a leg that rested while the switch was still armed (the disarm slow, refused or not yet sent) would be
        canceled with everything else if the service died then (issue 13 scenario 7). A disarm that fails, or
        takes longer than ``deadman_disarm_wait_s``, is reported and the leg is sent anyway: protection while the
        service lives comes first (the switch loop disarms again once the venue answers)."""
        if not self.config.deadman_enabled or self.config.deadman_mode != "entries" or self._deadman_armed is False:
            return
        try:
            await asyncio.wait_for(self._sync_deadman(refresh=False), self.config.deadman_disarm_wait_s)
        except Exception as exc:  # housekeeping: reported, never a reason to hold a leg back
            log.warning("dead-man's switch: could not disarm before the %s of %s (%s)", order.role.value, order.id, exc)

    async def _sync_deadman(self, *, refresh: bool) -> bool:
        """Arm or disarm the switch as ``deadman_wanted`` says now (read under the lock, so an arm decided before a
        protective leg was decided never lands after it), and re-arm an armed one when ``refresh``. Returns whether
        a call was made; a venue error propagates."""
        async with self._deadman_lock:
            wanted = self.deadman_wanted()
            if wanted == self._deadman_armed and not (wanted and refresh):
                return False
            try:
                self.deadman_expires_at = await self.exchange.cancel_all_after(
                    self.config.deadman_timeout_s if wanted else 0
                )
            except BaseException:
                self._deadman_armed = None  # the call may or may not have landed
                raise
            self._deadman_armed = wanted
            return True

    async def _deadman(self) -> None:
        refreshed = 0.0
        try:
            while not self.stopping:
                try:
                    if await self._sync_deadman(refresh=_loop_time() - refreshed >= self.config.deadman_refresh_s):
                        refreshed = _loop_time()
                except Exception as exc:  # housekeeping: reported, never a reason to stop trading
                    log.warning("dead-man's switch (%s) failed: %s", "arm" if self.deadman_wanted() else "disarm", exc)
                self._deadman_wake.clear()
                await self._wait(self._deadman_wake, self.config.deadman_refresh_s)
        finally:
            # Disarm on a clean stop so a planned shutdown does not cancel every resting order a minute later.
            if self.stopping and self._deadman_armed:
                try:
                    await asyncio.wait_for(self.exchange.cancel_all_after(0), 5.0)
                    self._deadman_armed = False
                except Exception as exc:
                    log.warning("could not disarm the dead-man's switch at shutdown (%s): it fires by itself", exc)


# TradesHistory's start is exclusive and the venue's clock is not ours: ask from a margin before submission
# (fills are matched to orders by venue order id, so extra ones cost only bandwidth).
FILLS_MARGIN = timedelta(seconds=60)
_LOOK_AGAIN: Any = object()  # put in the price queue: the pairs to follow changed
# Kraken's Time answers in whole seconds (REFERENCE.md 3.1): a smaller difference from the venue's clock is its
# rounding and the round trip, not a clock of another time.
VENUE_CLOCK_TOLERANCE_S = 1.5
# How many reconciliations in a row must miss an order before it is recorded as lost by the venue (then, and only
# then, an operator may resolve it by hand).
MISSING_STRIKES = 3


def _before(at: datetime | None) -> datetime | None:
    return None if at is None else at - FILLS_MARGIN


def _oldest_submission(orders: list[Order]) -> datetime | None:
    return min((o.submitted_at for o in orders if o.submitted_at), default=None)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class _Stop(Exception):
    """Raised inside the TaskGroup to cancel the workers on stop()."""
