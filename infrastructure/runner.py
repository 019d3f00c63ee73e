"""``execledger run``: the service by role over one ledger. ``all`` (the default) runs every role in one process.

- trading: the single writer for one API key (writer lock), the engine, its workers and the Kraken adapter;
- projections: the read-model follower (LISTEN/NOTIFY on PostgreSQL, polling on SQLite);
- api: the reporting and signal HTTP API.

With no ``EXECLEDGER_KRAKEN_URL`` the built-in simulator is started in-process and traded against (paper trading).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from aiohttp import web

from execledger.application.service import ServiceConfig, TradingService
from execledger.infrastructure.api import ApiContext, create_api, require_token_for
from execledger.infrastructure.bootstrap import Ledger, open_ledger
from execledger.infrastructure.readmodels.follower import ProjectionFollower, notify_channel
from execledger.infrastructure.settings import Settings
from execledger.infrastructure.writerlock import WriterLock, WriterLockHeld

log = logging.getLogger(__name__)


class Role(StrEnum):
    ALL = "all"
    TRADING = "trading"
    PROJECTIONS = "projections"
    API = "api"


@dataclass
class RunningService:
    """What a running service exposes to its caller (the CLI, the demo, tests)."""

    ledger: Ledger
    service: TradingService | None = None
    follower: ProjectionFollower | None = None
    api_url: str | None = None
    simulator: object | None = None
    exchange: object | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


async def _start_simulator(settings: Settings):
    from execledger.infrastructure.simulator import KrakenSimulator

    sim = await KrakenSimulator().start()
    settings = settings.with_exchange(url=sim.rest_url, ws_url=sim.ws_url, key=sim.key, secret=sim.secret)
    return sim, settings


async def run_service(
    settings: Settings,
    *,
    role: Role = Role.ALL,
    stop: asyncio.Event,
    on_ready: Callable[[RunningService], None] | None = None,
    standby: bool = False,
    service_config: ServiceConfig | None = None,
    api_port: int | None = None,
) -> None:
    """Run the given role(s) until ``stop`` is set. Raises WriterLockHeld if another process trades on the key
    (unless ``standby``: then wait for the lock and take over when the holder dies)."""
    async with contextlib.AsyncExitStack() as stack:
        simulator = None
        trading = role in (Role.ALL, Role.TRADING)
        if trading and not settings.kraken_url:
            simulator, settings = await _start_simulator(settings)
            stack.push_async_callback(simulator.stop)
        lock = None
        if trading:
            key = settings.kraken_key.get_secret_value() if settings.kraken_key else None
            lock = await _acquire_writer_lock(settings, key, standby=standby, stop=stop)
            if lock is None:
                return
            stack.callback(lock.release)
        ledger = open_ledger(settings)
        stack.callback(ledger.close)
        running = RunningService(ledger=ledger, simulator=simulator)
        tasks: list[asyncio.Task] = []
        if trading:
            from execledger.infrastructure.kraken.adapter import KrakenExchange
            from execledger.infrastructure.kraken.ratelimit import Tier

            # The built-in simulator counts nothing by default; a real venue is modelled at the configured tier.
            tier = None if simulator is not None or settings.kraken_tier == "none" else Tier(settings.kraken_tier)
            exchange = KrakenExchange.from_settings(settings, tier=tier)
            stack.push_async_callback(exchange.close)
            running.exchange = exchange
            running.service = TradingService(ledger.engine, exchange, service_config or ServiceConfig())
            tasks.append(asyncio.create_task(running.service.run(), name="trading"))
        if role in (Role.ALL, Role.PROJECTIONS, Role.API):
            db_url = settings.database_url.get_secret_value() if settings.database_url else None
            running.follower = ProjectionFollower(
                ledger.projector, poll_interval_s=1.0, database_url=db_url, channel=notify_channel(ledger.app)
            )
            if role is not Role.API:
                tasks.append(asyncio.create_task(running.follower.run(stop), name="projections"))
        if role in (Role.ALL, Role.API):
            token = require_token_for(
                settings.api_host, settings.api_token.get_secret_value() if settings.api_token else None
            )
            wake = (lambda: (running.service.wake(), running.follower.nudge())) if running.service else None
            ctx = ApiContext(
                engine=ledger.engine,
                queries=ledger.queries,
                projector=ledger.projector,
                token=token,
                on_signal=wake,
                recovered=running.service.recovered.is_set if running.service else None,
            )
            runner = web.AppRunner(create_api(ctx))
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, settings.api_host, settings.api_port if api_port is None else api_port)
            await site.start()
            host, port = site._server.sockets[0].getsockname()[:2]  # type: ignore[union-attr]
            running.api_url = f"http://{host}:{port}"
        if role in (Role.ALL, Role.TRADING) and running.follower is not None:
            ledger.engine.on_saved = running.follower.nudge  # the read models follow each save at once
        running.ready.set()
        if on_ready:
            on_ready(running)
        try:
            # Until stopped, or until a worker fails: a process whose trading (or projection) task died must not
            # keep answering the API as if it traded. The failure propagates from the gather below.
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({stopped, *tasks}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
        finally:
            stop.set()
            if running.service is not None:
                await running.service.stop()
            if running.follower is not None:
                running.follower.nudge()
            await asyncio.gather(*tasks)


async def _acquire_writer_lock(
    settings: Settings, key: str | None, *, standby: bool, stop: asyncio.Event, poll_s: float = 1.0
) -> WriterLock | None:
    while True:
        try:
            return WriterLock(settings, key).acquire()
        except WriterLockHeld:
            if not standby:
                raise
            log.info("standby: another instance holds the writer lock; waiting to take over")
            try:
                await asyncio.wait_for(stop.wait(), poll_s)
                return None
            except TimeoutError:
                continue
