"""TradingService: the async workers around the ExecutionEngine. Every task is owned and awaited (no
fire-and-forget): submissions, cancels, the execution stream, timers and the dead-man's switch.

Exchange calls happen only here; their outcomes go back into the engine, which records them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from execledger.application.engine import ExecutionEngine
from execledger.application.exchange import ErrorClass, ExchangePort, PlaceResult, PlaceStatus, VenueOrder

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    stuck_submissions: int = 0
    checked: int = 0
    changed: list[UUID] = field(default_factory=list)
    missing: list[UUID] = field(default_factory=list)
    foreign: list[VenueOrder] = field(default_factory=list)


@dataclass(frozen=True)
class ServiceConfig:
    tick_interval_s: float = 1.0  # timers and unknown-outcome resolution
    deadman_timeout_s: int = 60  # CancelAllOrdersAfter timeout (Kraken recommends 60 s, refreshed every 15-30 s)
    deadman_refresh_s: float = 20.0
    deadman_enabled: bool = True
    reconcile_interval_s: float = 60.0  # continuous reconciliation while running
    reconcile_quiet_s: float = 10.0  # skip orders the stream touched this recently


class TradingService:
    """Runs until ``stop()``; ``run_once()`` performs one pass of every worker (used by tests and the demo)."""

    def __init__(
        self,
        engine: ExecutionEngine,
        exchange: ExchangePort,
        config: ServiceConfig | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.engine = engine
        self.exchange = exchange
        self.config = config or ServiceConfig()
        self._sleep = sleep
        self._work = asyncio.Event()
        self._stopping = asyncio.Event()
        self.recovered = asyncio.Event()  # set once the start-up reconciliation is done: signals are then safe
        self.missing: Counter[UUID] = Counter()  # lost-order strikes: never terminal until the venue proves it
        self.stream_seen: dict[UUID, datetime] = {}  # when the live stream last reported on an order

    def wake(self) -> None:
        """Something may need sending: run the submission/cancel worker now."""
        self._work.set()

    async def stop(self) -> None:
        self._stopping.set()
        self._work.set()

    # --- one pass of each worker -----------------------------------------------------------------------

    async def send_pending(self) -> int:
        """Send every pending AddOrder (never twice: Submitted is recorded first) and every pending cancel."""
        sent = 0
        for order in self.engine.pending_submissions():
            request = self.engine.begin_submission(order.id)
            if request is None:
                continue
            try:
                result = await self.exchange.place(request)
            except Exception as exc:
                log.exception("AddOrder for %s raised; outcome unknown", order.cl_ord_id)
                result = PlaceResult(PlaceStatus.UNKNOWN, error=f"{type(exc).__name__}: {exc}")
            self.engine.record_place_result(order.id, result)
            sent += 1
        for order in self.engine.pending_cancels():
            version = order.version
            result = await self.exchange.cancel(txid=order.txid, cl_ord_id=None if order.txid else order.cl_ord_id)
            if self.engine.record_cancel_result(order.id, result) or not order.txid:
                await self.resync([order.id])
            # Only a cancel that changed something counts: one the venue leaves as it was (pending, or an order
            # not found yet) is retried at the next wake-up, not in a tight loop.
            sent += self.engine.orders[order.id].version != version
        return sent

    async def resync(self, order_ids) -> None:
        """Ask the venue for the orders' final state and trades, and apply them. An order without a txid (a cancel
        by cl_ord_id compensating an unknown outcome) is looked up by its cl_ord_id."""
        orders = [self.engine.orders[i] for i in order_ids]
        if not orders:
            return
        with_txid = [o.txid for o in orders if o.txid]
        venue = await self.exchange.query_orders(with_txid) if with_txid else {}
        by_cl_ord_id = {o.id: await self.exchange.find_by_cl_ord_id(o.cl_ord_id) for o in orders if not o.txid}
        trades = await self.exchange.trades_since(
            _before(min((o.submitted_at for o in orders if o.submitted_at), default=None))
        )
        for order in orders:
            if order.txid is None:
                self.engine.resolve_cancel_without_txid(order.id, by_cl_ord_id[order.id], trades)
                continue
            found = venue.get(order.txid)
            if found is not None:
                self.engine.apply_venue_order(found, trades)

    async def resolve_unknowns(self) -> None:
        for order in self.engine.unknown_outcomes():
            found = await self.exchange.find_by_cl_ord_id(order.cl_ord_id)
            trades = await self.exchange.trades_since(_before(order.submitted_at)) if found is not None else []
            self.engine.resolve_unknown(order.id, found, trades)

    async def reconcile(self, *, quiet_s: float = 0.0) -> ReconcileReport:
        """Bring the ledger in line with the venue: stuck submissions, unknown outcomes, every live order (batched
        QueryOrders + trades since the oldest), and orders on the venue this ledger does not know (reported only).

        ``quiet_s`` skips orders the live stream touched that recently, so periodic runs do not fight the stream.
        What it learns becomes ordinary events whose reasons say ``source=reconciliation``; applying the same
        evidence twice writes nothing (fills are keyed by trade id, state changes are idempotent)."""
        report = ReconcileReport()
        report.stuck_submissions = self.engine.recover_after_restart()
        await self.resolve_unknowns()
        now = self.engine.clock.now()
        live = [
            o
            for o in self.engine.live_orders()
            if o.txid and (o.id not in self.stream_seen or (now - self.stream_seen[o.id]).total_seconds() >= quiet_s)
        ]
        if live:
            versions = {o.id: o.version for o in live}
            venue = await self.exchange.query_orders([o.txid for o in live])
            trades = await self.exchange.trades_since(
                _before(min((o.submitted_at for o in live if o.submitted_at), default=None))
            )
            for order in live:
                found = venue.get(order.txid)
                if found is None:
                    self.missing[order.id] += 1
                    report.missing.append(order.id)
                    log.warning(
                        "order %s (%s) not found on the venue (%d times): kept as is until proven",
                        order.id,
                        order.txid,
                        self.missing[order.id],
                    )
                    continue
                self.missing.pop(order.id, None)
                self.engine.apply_venue_order(found, trades, source="reconciliation")
                if self.engine.orders[order.id].version != versions[order.id]:
                    report.changed.append(order.id)
            report.checked = len(live)
        for venue_order in await self.exchange.open_orders():
            if self.engine.find(txid=venue_order.txid, cl_ord_id=venue_order.cl_ord_id) is None:
                report.foreign.append(venue_order)
                log.warning("open order %s on the venue is not in this ledger: reported, not touched", venue_order.txid)
        while await self.send_pending():
            pass
        return report

    async def run_once(self) -> None:
        """One pass: timers, unknown outcomes, then everything those decided to send (until nothing is left)."""
        self.engine.tick()
        await self.resolve_unknowns()
        while await self.send_pending():
            pass

    # --- the long-running loops ------------------------------------------------------------------------

    async def run(self) -> None:
        """Run all workers until ``stop()``. A worker that fails stops the service (and the error propagates)."""
        self.engine.load()
        while not await self._tolerating_outage("start-up reconciliation", self.reconcile):
            await self._sleep(self.config.tick_interval_s)  # the venue is unavailable: recovery waits for it
        self.recovered.set()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._sender())
                tg.create_task(self._stream())
                tg.create_task(self._timers())
                tg.create_task(self._reconciler())
                if self.config.deadman_enabled:
                    tg.create_task(self._deadman())
                self.wake()
                await self._stopping.wait()
                raise _Stop
        except* _Stop:
            pass

    async def _send_all(self) -> None:
        while await self.send_pending():
            pass

    async def _tolerating_outage(self, what: str, work: Callable[[], Awaitable[object]]) -> bool:
        """Run ``work``; a venue call that failed for a passing reason (unavailable, rate limited: the adapter's
        retries ran out) is logged and tried again at the next turn instead of stopping the service. Anything
        else (a bug) still propagates. Returns whether ``work`` completed."""
        try:
            await work()
            return True
        except Exception as exc:
            if getattr(exc, "error_class", None) not in (ErrorClass.RETRYABLE, ErrorClass.RATE_LIMITED):
                raise
            log.warning("%s: the venue is unavailable for now (%s); trying again at the next turn", what, exc)
            return False

    async def _sender(self) -> None:
        while not self._stopping.is_set():
            await self._work.wait()
            self._work.clear()
            await self._tolerating_outage("sending", self._send_all)

    async def _stream(self) -> None:
        async for obs in self.exchange.executions():
            await self.apply(obs)

    async def apply(self, obs) -> None:
        """Apply one execution observation (resyncing the order over REST if it reveals missed trades)."""
        needs_resync = self.engine.apply_observation(obs)
        order = self.engine.find(txid=obs.txid, cl_ord_id=obs.cl_ord_id)
        if order is not None:
            self.stream_seen[order.id] = self.engine.clock.now()
            if needs_resync:
                await self._tolerating_outage("resync", lambda: self.resync([order.id]))
        self.wake()

    async def _timers(self) -> None:
        while not self._stopping.is_set():
            self.engine.tick()
            await self._tolerating_outage("resolving unknown outcomes", self.resolve_unknowns)
            self.wake()
            await self._sleep(self.config.tick_interval_s)

    async def _reconciler(self) -> None:
        while not self._stopping.is_set():
            await self._sleep(self.config.reconcile_interval_s)
            await self._tolerating_outage(
                "reconciliation", lambda: self.reconcile(quiet_s=self.config.reconcile_quiet_s)
            )

    async def _deadman(self) -> None:
        try:
            while not self._stopping.is_set():
                await self._tolerating_outage(
                    "dead-man's switch", lambda: self.exchange.cancel_all_after(self.config.deadman_timeout_s)
                )
                await self._sleep(self.config.deadman_refresh_s)
        finally:
            # Disarm on a clean stop so a planned shutdown does not cancel every resting order a minute later.
            if self._stopping.is_set():
                await self.exchange.cancel_all_after(0)


# TradesHistory's start is exclusive and the venue's clock is not ours: ask from a margin before submission
# (trades are matched to orders by txid, so extra ones cost only bandwidth).
TRADES_MARGIN = timedelta(seconds=60)


def _before(at: datetime | None) -> datetime | None:
    return None if at is None else at - TRADES_MARGIN


class _Stop(Exception):
    """Raised inside the TaskGroup to cancel the workers on stop()."""
