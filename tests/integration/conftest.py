"""The Kraken adapter against the built-in simulator: a frozen-clock ``KrakenSimulator`` on 127.0.0.1:0 and a
``KrakenExchange`` pointed at it, with every clock and sleep the adapter lets us inject driven by simulator time
(a wait of the breaker, the limiters or the retries advances the simulator's clock instead of wall time).

Tests change the set-up by parametrizing ``sim_options`` (``KrakenSimulator`` fields) or ``venue_options``
(``rest_tier``/``trading_tier`` of the adapter's limiters, ``timeout_s``, ``attempts``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import SecretStr

from execledger.application.exchange import ExecutionObservation, OrderRequest
from execledger.domain.values import OrderType, Side
from execledger.infrastructure.kraken.adapter import KrakenExchange
from execledger.infrastructure.kraken.breaker import BreakerState, CircuitBreaker
from execledger.infrastructure.kraken.credentials import KrakenCredentials
from execledger.infrastructure.kraken.ratelimit import RestCallLimiter, Tier, TradingRateLimiter
from execledger.infrastructure.kraken.rest import KrakenRestClient
from execledger.infrastructure.kraken.retry import RetryPolicy
from execledger.infrastructure.kraken.ws import KrakenExecutionsStream
from execledger.infrastructure.simulator import KrakenSimulator

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

    def limit_buy(self, price: str = "60000", volume: str = "0.01", deadline_in: float | None = 30.0) -> OrderRequest:
        """A resting limit buy (below the 67000 mark) with a fresh cl_ord_id and a deadline in simulator time."""
        self._ids += 1
        return OrderRequest(
            cl_ord_id=str(uuid.UUID(int=self._ids)),
            pair=PAIR,
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            volume=Decimal(volume),
            price=Decimal(price),
            deadline=None if deadline_in is None else self.at(deadline_in),
        )

    def add_orders(self, cl_ord_id: str) -> list:
        """The AddOrder calls the simulator received for this cl_ord_id."""
        return self.sim.requests("AddOrder", cl_ord_id=cl_ord_id)

    def stream(self, **options) -> KrakenExecutionsStream:
        """An executions stream on the simulator's WS, reading REST from the simulator's start."""
        values = {
            "heartbeat_timeout_s": 0.25,
            "reconnect_delay_s": 0.01,
            "poll_when_down_s": 0.05,
            "poll_when_healthy_s": HEALTHY_POLL_S,
            "sleep": pace,
            "since": datetime.fromtimestamp(FROZEN_AT - 60, tz=UTC),
        }
        values.update(options)
        return KrakenExecutionsStream(self.exchange, self.sim.ws_url, **values)


HEALTHY_POLL_S = 3600.0


async def pace(seconds: float) -> None:
    """The stream's sleep. The healthy-time polling interval blocks (until the stream goes down and wakes the
    poller, or the test ends); the short waits (reconnect back-off, polling while down) take a token real pause so
    the loop turns without spinning. It synchronises nothing: tests await conditions."""
    if seconds >= HEALTHY_POLL_S:
        await asyncio.Event().wait()
    await asyncio.sleep(0.005)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Await a condition that other tasks bring about (checked every loop turn; the timeout only bounds a bug)."""

    async def check() -> None:
        while not condition():
            await asyncio.sleep(0)

    await asyncio.wait_for(check(), timeout)


class Collector:
    """Consumes ``exchange.executions()``-style iterators in a task; ``seen`` grows as observations arrive."""

    def __init__(self, observations):
        self.observations = observations
        self.seen: list[ExecutionObservation] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for observation in self.observations:
            self.seen.append(observation)

    def of(self, txid: str, kind=None) -> list[ExecutionObservation]:
        return [o for o in self.seen if o.txid == txid and (kind is None or o.kind == kind)]

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.observations.aclose()


@pytest.fixture
def sim_options() -> dict:
    return {}


@pytest.fixture
def venue_options() -> dict:
    return {}


@pytest.fixture
async def sim(sim_options):
    options = {"seed": 1, "clock_start": FROZEN_AT, "heartbeat_interval": 0.05}
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
