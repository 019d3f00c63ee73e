"""TradingService: the async workers around the ExecutionEngine. Every task is owned and awaited (no
fire-and-forget): submissions, cancels, the execution stream, timers and the dead-man's switch.

Exchange calls happen only here; their outcomes go back into the engine, which records them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from application.engine import ExecutionEngine
from application.exchange import ExchangePort, PlaceResult, PlaceStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    tick_interval_s: float = 1.0  # timers and unknown-outcome resolution
    deadman_timeout_s: int = 60  # CancelAllOrdersAfter timeout (Kraken recommends 60 s, refreshed every 15-30 s)
    deadman_refresh_s: float = 20.0
    deadman_enabled: bool = True


class TradingService:
    """Runs until ``stop()``; ``run_once()`` performs one pass of every worker (used by tests and the demo)."""

    def __init__(self, engine: ExecutionEngine, exchange: ExchangePort, config: ServiceConfig | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.engine = engine
        self.exchange = exchange
        self.config = config or ServiceConfig()
        self._sleep = sleep
        self._work = asyncio.Event()
        self._stopping = asyncio.Event()

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
            except Exception as exc:  # noqa: BLE001 - anything after Submitted may have reached the venue
                log.exception("AddOrder for %s raised; outcome unknown", order.cl_ord_id)
                result = PlaceResult(PlaceStatus.UNKNOWN, error=f"{type(exc).__name__}: {exc}")
            self.engine.record_place_result(order.id, result)
            sent += 1
        for order in self.engine.pending_cancels():
            result = await self.exchange.cancel(txid=order.txid, cl_ord_id=None if order.txid else order.cl_ord_id)
            if self.engine.record_cancel_result(order.id, result):
                await self.resync([order.id])
            sent += 1
        return sent

    async def resync(self, order_ids) -> None:
        """Ask the venue for the orders' final state and trades, and apply them."""
        orders = [self.engine.orders[i] for i in order_ids if self.engine.orders[i].txid]
        if not orders:
            return
        venue = await self.exchange.query_orders([o.txid for o in orders])
        since = min((o.submitted_at for o in orders if o.submitted_at), default=None)
        trades = await self.exchange.trades_since(since)
        for order in orders:
            found = venue.get(order.txid)
            if found is not None:
                self.engine.apply_venue_order(found, trades)

    async def resolve_unknowns(self) -> None:
        for order in self.engine.unknown_outcomes():
            found = await self.exchange.find_by_cl_ord_id(order.cl_ord_id)
            trades = await self.exchange.trades_since(order.submitted_at) if found is not None else []
            self.engine.resolve_unknown(order.id, found, trades)

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
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._sender())
                tg.create_task(self._stream())
                tg.create_task(self._timers())
                if self.config.deadman_enabled:
                    tg.create_task(self._deadman())
                self.wake()
                await self._stopping.wait()
                raise _Stop
        except* _Stop:
            pass

    async def _sender(self) -> None:
        while not self._stopping.is_set():
            await self._work.wait()
            self._work.clear()
            while await self.send_pending():
                pass

    async def _stream(self) -> None:
        async for obs in self.exchange.executions():
            if self.engine.apply_observation(obs):
                order = self.engine.find(txid=obs.txid, cl_ord_id=obs.cl_ord_id)
                if order is not None:
                    await self.resync([order.id])
            self.wake()

    async def _timers(self) -> None:
        while not self._stopping.is_set():
            self.engine.tick()
            await self.resolve_unknowns()
            self.wake()
            await self._sleep(self.config.tick_interval_s)

    async def _deadman(self) -> None:
        try:
            while not self._stopping.is_set():
                await self.exchange.cancel_all_after(self.config.deadman_timeout_s)
                await self._sleep(self.config.deadman_refresh_s)
        finally:
            # Disarm on a clean stop so a planned shutdown does not cancel every resting order a minute later.
            if self._stopping.is_set():
                await self.exchange.cancel_all_after(0)


class _Stop(Exception):
    """Raised inside the TaskGroup to cancel the workers on stop()."""
