"""The Kraken adapter against the built-in simulator: a frozen-clock ``KrakenSimulator`` on 127.0.0.1:0 and a
``KrakenExchange`` pointed at it, with every clock and sleep the adapter lets us inject driven by simulator time
(a wait of the breaker, the limiters or the retries advances the simulator's clock instead of wall time).

``trading`` adds the production wiring around that adapter (``open_ledger`` + ``build_trading``: the engine and the
``TradingService``) on a SQLite ledger whose clock is the simulator's, so AddOrder deadlines are set and checked on
one time line. Tests drive it one worker pass at a time, or run all its workers (``start``/``stop``).

Tests change the set-up by parametrizing ``sim_options`` (``KrakenSimulator`` fields), ``venue_options``
(``rest_tier``/``trading_tier`` of the adapter's limiters, ``timeout_s``, ``attempts``) or ``service_options``
(``ServiceConfig`` fields).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest
from pydantic import SecretStr

from execledger.application.ports import (
    FillReport,
    OrderRequest,
    OrderStatusReport,
    StreamEvent,
    StreamState,
    VenueOrderStatus,
    VenueReport,
)
from execledger.application.service import ServiceConfig, TradingService
from execledger.domain.order import Order
from execledger.domain.values import OrderType, Side
from execledger.infrastructure.bootstrap import Ledger, build_trading, open_ledger
from execledger.infrastructure.kraken.adapter import KrakenExchange
from execledger.infrastructure.kraken.breaker import BreakerState, CircuitBreaker
from execledger.infrastructure.kraken.credentials import KrakenCredentials
from execledger.infrastructure.kraken.ratelimit import RestCallLimiter, Tier, TradingRateLimiter
from execledger.infrastructure.kraken.rest import KrakenRestClient
from execledger.infrastructure.kraken.retry import RetryPolicy
from execledger.infrastructure.kraken.ws import KrakenExecutionsStream
from execledger.infrastructure.settings import Settings
from execledger.infrastructure.simulator import KrakenSimulator
from execledger.infrastructure.simulator.catalog import shipped_asset_pairs

FROZEN_AT = 1_750_000_000.0
PAIR = "XXBTZUSD"
BREAKER_THRESHOLD = 3
BREAKER_RESET_S = 30.0


class SimTime:
    """A monotonic clock that is the simulator's clock, and a sleep that advances it (and yields to the loop)."""

    def __init__(self, sim: KrakenSimulator):
        self.sim = sim
        self.slept: list[float] = []

    def now(self) -> float:
        return self.sim.clock.now()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.sim.advance_time(max(0.0, seconds))
        await asyncio.sleep(0)


@dataclass
class Venue:
    sim: KrakenSimulator
    exchange: KrakenExchange
    breaker: CircuitBreaker
    time: SimTime
    transitions: list[tuple[BreakerState, BreakerState, float]] = field(default_factory=list)  # old, new, when
    streams: list[KrakenExecutionsStream] = field(default_factory=list)  # made by exchange.executions()
    _ids: int = 0

    def at(self, seconds_from_now: float) -> datetime:
        """A datetime ``seconds_from_now`` of simulator time ahead."""
        return datetime.fromtimestamp(self.sim.clock.now(), tz=UTC) + timedelta(seconds=seconds_from_now)

    def limit_buy(self, price: str = "60000", quantity: str = "0.01", deadline_in: float | None = 30.0) -> OrderRequest:
        """A resting limit buy (below the 67000 mark) with a fresh cl_ord_id and a deadline in simulator time."""
        self._ids += 1
        return OrderRequest(
            client_order_id=str(uuid.UUID(int=self._ids)),
            pair=PAIR,
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=Decimal(quantity),
            limit_price=Decimal(price),
            deadline=None if deadline_in is None else self.at(deadline_in),
        )

    def add_orders(self, cl_ord_id: str) -> list:
        """The AddOrder calls the simulator received for this cl_ord_id."""
        return self.sim.requests("AddOrder", cl_ord_id=cl_ord_id)

    def stream(self, **options) -> KrakenExecutionsStream:
        """An executions stream on the simulator's WS (it only streams: REST is the trading service's job)."""
        values = {"heartbeat_timeout_s": 0.25, "reconnect_delay_s": 0.01, "sleep": pace}
        values.update(options)
        return KrakenExecutionsStream(self.exchange, self.sim.ws_url, **values)


async def pace(seconds: float) -> None:
    """The stream's sleep between reconnect attempts: a token real pause, whatever the back-off asks, so the loop
    turns without spinning. It synchronises nothing: tests await conditions."""
    await asyncio.sleep(0.005)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Await a condition that other tasks bring about (checked every loop turn; the timeout only bounds a bug)."""

    async def check() -> None:
        while not condition():
            await asyncio.sleep(0)

    await asyncio.wait_for(check(), timeout)


class Collector:
    """Consumes ``exchange.executions()`` in a task; ``seen`` grows as reports and stream events arrive."""

    def __init__(self, reports):
        self.reports = reports
        self.seen: list[VenueReport] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for report in self.reports:
            self.seen.append(report)

    def of(self, venue_order_id: str) -> list[FillReport | OrderStatusReport]:
        """Every report about one order, in arrival order."""
        return [r for r in self.seen if not isinstance(r, StreamEvent) and r.venue_order_id == venue_order_id]

    def fills(self, venue_order_id: str | None = None) -> list[FillReport]:
        """The fills yielded, of one order or (None) of every order."""
        return [r for r in self.seen if isinstance(r, FillReport) and venue_order_id in (None, r.venue_order_id)]

    def statuses(self, venue_order_id: str, status: VenueOrderStatus | None = None) -> list[OrderStatusReport]:
        return [r for r in self.of(venue_order_id) if isinstance(r, OrderStatusReport) and status in (None, r.status)]

    def events(self, state: StreamState | None = None) -> list[StreamEvent]:
        return [r for r in self.seen if isinstance(r, StreamEvent) and state in (None, r.state)]

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.reports.aclose()


@pytest.fixture
def sim_options() -> dict:
    return {}


@pytest.fixture
def venue_options() -> dict:
    return {}


@pytest.fixture
async def sim(sim_options):
    # The two pairs these tests trade: the full 1,434-pair AssetPairs is 1 MB to parse, long enough on a loaded
    # machine to trip the 0.25 s heartbeat watchdog these tests run the stream with.
    two_pairs = {k: v for k, v in shipped_asset_pairs().items() if k in ("XXBTZUSD", "XETHZUSD")}
    options = {
        "seed": 1,
        "clock_start": FROZEN_AT,
        "heartbeat_interval": 0.05,
        "tier": None,
        "asset_pairs": two_pairs,
    }
    options.update(sim_options)
    async with KrakenSimulator(**options) as simulator:
        yield simulator


@pytest.fixture
async def venue(sim, venue_options, tmp_path):
    options = {"rest_tier": None, "trading_tier": Tier.PRO, "timeout_s": 2.0, "attempts": 4}
    options.update(venue_options)
    time = SimTime(sim)
    breaker = CircuitBreaker(failure_threshold=BREAKER_THRESHOLD, reset_timeout_s=BREAKER_RESET_S, clock=time.now)
    limiter = RestCallLimiter(options["rest_tier"], clock=time.now, sleep=time.sleep) if options["rest_tier"] else None
    rest = KrakenRestClient(
        sim.rest_url,
        KrakenCredentials(key=sim.key, secret=SecretStr(sim.secret)),
        data_dir=tmp_path,
        breaker=breaker,
        limiter=limiter,
        timeout_s=options["timeout_s"],
    )
    trading = (
        TradingRateLimiter(options["trading_tier"], clock=time.now, sleep=time.sleep)
        if options["trading_tier"]
        else None
    )

    def stream_factory(exchange: KrakenExchange) -> KrakenExecutionsStream:
        venue.streams.append(venue.stream())
        return venue.streams[-1]

    exchange = KrakenExchange(
        rest,
        pairs=sim.pairs,
        ws_url=sim.ws_url,
        trading_limiter=trading,
        stream_factory=stream_factory,
        retry=RetryPolicy(attempts=options["attempts"], sleep=time.sleep, wall_clock=time.now),
    )
    venue = Venue(sim, exchange, breaker, time)
    breaker.add_listener(lambda old, new, reason: venue.transitions.append((old, new, time.now())))
    yield venue
    await exchange.close()


# --- the trading service on the real adapter ----------------------------------------------------------------------

DEADLINE_S = 10.0  # the engine's AddOrder deadline (Settings.submit_deadline_s), in simulator time
GRACE_S = 5.0  # EngineConfig.unknown_grace_s: "not found" proves "not placed" this long after the deadline


class SimClock:
    """The ledger's clock: the simulator's time as a datetime, ``behind_s`` seconds behind it (a test sets it to
    give the venue a clock of its own: a venue clock step, or a ledger anchored to a wrong one)."""

    def __init__(self, sim: KrakenSimulator):
        self.sim = sim
        self.behind_s = 0.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.sim.clock.now() - self.behind_s, tz=UTC)


@dataclass
class Trading:
    venue: Venue
    ledger: Ledger
    service: TradingService
    running: asyncio.Task | None = None
    polls: list[bool] = field(default_factory=list)  # per finished REST poll: was the stream healthy when it began
    _signals: int = 0

    @property
    def engine(self):
        return self.ledger.engine

    def buy(self, price: str = "60000", quantity: str = "0.01") -> UUID:
        """Record a limit-buy signal (an entry without brackets); the sender places it. Returns the order id."""
        self._signals += 1
        result = self.engine.control.submit_signal(
            {
                "signal_id": f"signal-{self._signals}",
                "pair": PAIR,
                "side": "buy",
                "order_type": "limit",
                "quantity": quantity,
                "limit_price": price,
            }
        )
        return result.order.id

    def order(self, order_id: UUID) -> Order:
        return self.engine.orders[order_id]

    def fills(self, order_id: UUID) -> list:
        """The fill events recorded for the order (each trade is recorded once, whatever delivered it)."""
        return [e for e in self.ledger.ledger.order_history(order_id) if e.name in ("PartiallyFilled", "Filled")]

    def history(self, order_id: UUID) -> list[str]:
        return [e.name for e in self.ledger.ledger.order_history(order_id)]

    async def start(self) -> None:
        """Run every worker (start-up reconciliation first), as the trading process does."""
        self.running = asyncio.create_task(self.service.run(), name="trading-service")
        recovered = asyncio.ensure_future(self.service.recovered.wait())
        await asyncio.wait({recovered, self.running}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        recovered.cancel()
        if self.running.done():
            self.running.result()  # a worker failed: raise its error here
        assert self.service.recovered.is_set(), "the start-up reconciliation did not finish"

    async def stop(self) -> None:
        if self.running is not None:
            await self.service.stop()
            await asyncio.wait_for(self.running, 10)
            self.running = None


@pytest.fixture
def service_options() -> dict:
    return {}


@pytest.fixture
async def trading(venue, service_options, tmp_path, monkeypatch):
    for key in list(os.environ):
        if key.startswith("EXECLEDGER_") and key != "EXECLEDGER_SHARED_DIR":
            monkeypatch.delenv(key)
    settings = Settings(
        data_dir=tmp_path / "ledger",
        submit_deadline_s=DEADLINE_S,
        default_timeout_s=86_400.0,  # resting entries never time out here, however far simulator time moves
    )
    config = {
        "deadman_enabled": False,
        "tick_interval_s": 0.05,
        "reconcile_interval_s": 3600.0,
        "poll_when_stream_down_s": 0.05,
        "retry_min_s": 0.0,
    }
    config.update(service_options)
    ledger = open_ledger(settings, clock=SimClock(venue.sim), pairs=venue.sim.pairs)
    parts = build_trading(ledger, venue.exchange, ServiceConfig(**config))
    trading = Trading(venue, ledger, parts.service)
    poll_once = parts.service.poll_once

    async def recording_poll_once(**kwargs):  # a spy: the service's own poll, noted once it has finished
        healthy = parts.service.stream_healthy
        report = await poll_once(**kwargs)
        trading.polls.append(healthy)
        return report

    parts.service.poll_once = recording_poll_once
    yield trading
    try:
        await trading.stop()
    finally:
        ledger.close()
