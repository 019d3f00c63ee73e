"""``execledger run``: the service by role over one ledger. ``all`` (the default) runs every role in one process.

- trading: the one writer of the ledger (writer lock), the engine, its workers, the command inbox and the adapter;
- projections: the read-model follower (LISTEN/NOTIFY on PostgreSQL, polling on SQLite);
- api: the reporting, signal and operator-command HTTP API; commands go through the log to the trading process.

With no ``EXECLEDGER_KRAKEN_URL`` the built-in simulator is started in-process and traded against; with
``EXECLEDGER_PAPER`` its matching core takes live public prices (paper trading, ``simulator/embedded.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aiohttp import web

from execledger.application.ports import ExchangePort
from execledger.application.service import ServiceConfig, TradingService
from execledger.infrastructure.api import ApiContext, create_api, require_token_for
from execledger.infrastructure.bootstrap import Ledger, build_trading, open_ledger, process_name
from execledger.infrastructure.commandbus import CommandBus
from execledger.infrastructure.gcpolicy import keep_frozen
from execledger.infrastructure.ops import OperatorSurface
from execledger.infrastructure.pgnotify import listen, notify_channel
from execledger.infrastructure.readmodels.follower import ProjectionFollower
from execledger.infrastructure.settings import Settings
from execledger.infrastructure.writerlock import WriterLock, WriterLockHeld

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from execledger.infrastructure.kraken.adapter import KrakenExchange


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
    bus: CommandBus | None = None
    api_url: str | None = None
    simulator: Any = None
    exchange: Any = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


async def _start_simulator(settings: Settings):
    from execledger.infrastructure.simulator.embedded import start_embedded

    return await start_embedded(settings)  # (simulator, settings pointing at it, the tier it enforces)


def _adapter(settings: Settings, simulator: Any, simulator_tier: str | None = None) -> KrakenExchange:
    from execledger.infrastructure.kraken.adapter import KrakenExchange
    from execledger.infrastructure.kraken.ratelimit import Tier

    # The adapter models the limits of the venue it trades on: the built-in simulator's tier (the one it
    # enforces), or the configured one for a real venue.
    venue_tier = simulator_tier if simulator is not None else settings.kraken_tier
    tier = None if venue_tier in (None, "none") else Tier(venue_tier)
    return KrakenExchange.from_settings(settings, tier=tier)


async def run_service(
    settings: Settings,
    *,
    role: Role = Role.ALL,
    stop: asyncio.Event,
    stop_now: asyncio.Event | None = None,
    on_ready: Callable[[RunningService], None] | None = None,
    standby: bool = False,
    service_config: ServiceConfig | None = None,
    api_port: int | None = None,
    exchange: ExchangePort | None = None,
    freeze_gc: bool = False,
) -> None:
    """Run the given role(s) until ``stop`` is set (a graceful stop: the trading service still protects filled
    positions for up to ``stop_protect_s``); ``stop_now`` set afterwards (a second signal) ends that at once.
    Raises WriterLockHeld if another trading process writes the ledger (unless ``standby``: then wait for the lock
    and take over when the holder dies). ``exchange`` replaces the Kraken adapter (tests). ``freeze_gc`` (the
    process's own entry point, not an embedding test): the trading process freezes what it holds after start-up so
    collections do not walk it (``infrastructure/gcpolicy.py``)."""
    async with contextlib.AsyncExitStack() as stack:
        trading = role in (Role.ALL, Role.TRADING)
        if trading:
            lock = await _acquire_writer_lock(settings, standby=standby, stop=stop)
            if lock is None:
                return
            stack.callback(lock.release)
        simulator = simulator_tier = None
        if trading and exchange is None and (not settings.kraken_url or settings.paper):
            simulator, settings, simulator_tier = await _start_simulator(settings)
            stack.push_async_callback(simulator.stop)
        ledger = open_ledger(settings, process=process_name(role.value))
        stack.callback(ledger.close)
        running = RunningService(ledger=ledger, simulator=simulator)
        surface = OperatorSurface.for_ledger(ledger, role=role.value, trading=trading)
        tasks: list[asyncio.Task] = []
        helpers: list[asyncio.Task] = []  # wake-up sources: canceled at stop
        db_url = settings.database_url.get_secret_value() if settings.database_url else None
        if trading:
            if exchange is None:
                adapter = _adapter(settings, simulator, simulator_tier)
                stack.push_async_callback(adapter.close)
                exchange = adapter
            running.exchange = exchange
            parts = build_trading(ledger, exchange, service_config)
            running.service = parts.service
            surface.attach_trading(parts.service, exchange)
            tasks.append(asyncio.create_task(parts.service.run(), name="trading"))
            if freeze_gc:
                helpers.append(asyncio.create_task(keep_frozen(parts.service.recovered, stop), name="gc-freeze"))
            channel = notify_channel(ledger.commands)
            if db_url and channel:  # commands recorded by other processes wake the inbox at once
                helpers.append(
                    asyncio.create_task(listen(db_url, channel, parts.service.commands_waiting, stop), name="listen")
                )
        running.bus = CommandBus(ledger, role=role.value, local_trading=running.service)
        surface.attach_bus(running.bus)
        if role in (Role.ALL, Role.PROJECTIONS, Role.API):
            running.follower = ProjectionFollower(
                ledger.projector, poll_interval_s=1.0, database_url=db_url, channel=notify_channel(ledger.app)
            )
            if role is not Role.API:
                recovered = running.service.recovered if running.service is not None else None
                tasks.append(asyncio.create_task(running.follower.run(stop, after=recovered), name="projections"))
                if (notifier := OperatorSurface.notifier(settings, ledger)) is not None:
                    tasks.append(asyncio.create_task(notifier.run(stop), name="notifications"))
        if role in (Role.ALL, Role.API):
            token = require_token_for(
                settings.api_host, settings.api_token.get_secret_value() if settings.api_token else None
            )
            ctx = ApiContext(
                ledger=ledger,
                bus=running.bus,
                token=token,
                service=running.service,
                health=surface.health,
                metrics=surface.metrics,
            )
            runner = web.AppRunner(create_api(ctx))
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, settings.api_host, settings.api_port if api_port is None else api_port)
            await site.start()
            # aiohttp types its private _server as Optional; after start() it is the listening server.
            host, port = site._server.sockets[0].getsockname()[:2]  # type: ignore[union-attr]
            running.api_url = f"http://{host}:{port}"
        if role in (Role.TRADING, Role.PROJECTIONS):
            token = settings.api_token.get_secret_value() if settings.api_token else None
            if (probes := await surface.serve_probes(ledger, running.bus, settings, token)) is not None:
                stack.push_async_callback(probes.cleanup)
        if trading and running.follower is not None:
            follower = running.follower
            ledger.engine.uow.add_listener(lambda committed: follower.nudge())  # read models follow each commit
        running.ready.set()
        if on_ready:
            on_ready(running)
        try:
            # Until stopped, or until a worker fails: a process whose trading (or projection) task died must not
            # keep answering the API as if it traded. The failure propagates from the gather below.
            stopped = asyncio.create_task(stop.wait())
            watch = {stopped, *tasks}
            if running.service is not None:  # a failed worker: at once, not once its task group has wound down
                watch.add(asyncio.create_task(running.service.failed.wait()))
            await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
            for waiter in watch - set(tasks):
                waiter.cancel()
        finally:
            stop.set()
            grace, hurry = STOP_GRACE_S, None
            if running.service is not None:
                await running.service.stop()
                if running.service.failure is None:  # a failed service protects nothing more: no protection phase
                    grace += running.service.config.stop_protect_s + running.service.config.stop_drain_s
                if stop_now is not None:
                    hurry = asyncio.create_task(_on_set(stop_now, running.service.stop_now), name="stop-now")
            if running.follower is not None:
                running.follower.nudge()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            try:
                await _stop_within(tasks, grace)
                if running.service is not None and running.service.failure is not None:
                    raise running.service.failure  # its task may have been canceled before it could raise it
            finally:
                if hurry is not None:
                    hurry.cancel()
                    await asyncio.gather(hurry, return_exceptions=True)


# SIGTERM/SIGINT: how long workers may take to finish what they are doing, beyond the trading service's protection
# phase and drain (``ServiceConfig.stop_protect_s`` + ``stop_drain_s``).
STOP_GRACE_S = 5.0


async def _on_set(event: asyncio.Event, then: Callable[[], None]) -> None:
    await event.wait()
    then()


async def _stop_within(tasks: list[asyncio.Task], grace_s: float) -> None:
    """Let the workers finish for ``grace_s``; cancel what is still running (a venue call that hangs) with one
    log line, then re-raise the first failure of a worker, if any."""
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=grace_s)
    if pending:
        log.warning(
            "stopping: %s did not finish within %.0fs (a venue call in flight?); canceled",
            ", ".join(t.get_name() for t in pending),
            grace_s,
        )
        for task in pending:
            task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result


async def _acquire_writer_lock(
    settings: Settings, *, standby: bool, stop: asyncio.Event, poll_s: float = 1.0
) -> WriterLock | None:
    while True:
        try:
            return WriterLock(settings).acquire()
        except WriterLockHeld:
            if not standby:
                raise
            log.info("standby: another trading process holds the writer lock; waiting to take over")
            try:
                async with asyncio.timeout(poll_s):  # not wait_for: 3.11's can swallow a cancel
                    await stop.wait()
                return None
            except TimeoutError:
                continue
