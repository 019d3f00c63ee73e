"""The operator's surface of one service process: log lines, metrics and health, wired to what it runs.

``OperatorSurface.for_ledger`` builds them over an opened ledger and, in the trading process, adds the log-line
and metrics listeners to the engine's unit of work (told after every commit); ``attach_trading`` points the health
monitor at the workers and the adapter; ``notifier`` is the notification follower when one is configured;
``serve_probes`` gives the roles without the API their health and metrics routes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from execledger.infrastructure.eventlog import EventLogger
from execledger.infrastructure.health import HealthMonitor, pending_commands, stored_trading_state
from execledger.infrastructure.metrics import Metrics

log = logging.getLogger("execledger.ops")


@dataclass
class OperatorSurface:
    health: HealthMonitor
    metrics: Metrics
    events: EventLogger

    @classmethod
    def for_ledger(cls, lg: Any, *, role: str, trading: bool) -> OperatorSurface:
        """``lg`` is a ``bootstrap.Ledger``. In the trading process the engine's trading state is the truth; in the
        others it is read from the store at each look (never trusted from start-up)."""
        engine = lg.engine
        state = (lambda: engine.control.state) if trading else stored_trading_state(lg.app)
        health = HealthMonitor(
            role=role,
            trading_state=state,
            projection=lg.projector,
            trades=trading,
            pending=pending_commands(lg.app, lg.commands),
        )
        metrics = Metrics(pairs=lg.pairs, health=health, order_counts=lg.queries.order_counts)
        events = EventLogger(lg.pairs)
        if trading:  # only the writer commits decisions
            engine.uow.add_listener(events)
            engine.uow.add_listener(metrics)
        return cls(health, metrics, events)

    def attach_trading(self, service: Any, exchange: Any) -> None:
        """Health reads recovery, stream, dead-man's switch and reconciliation from the workers, the breaker and
        the stream's last frame from the adapter."""
        self.health.service = service
        self.health.exchange = exchange

    def attach_bus(self, bus: Any) -> None:
        """Health names the process that trades (the writer-lock holder)."""
        if bus is not None:
            self.health.process = bus.trading_process

    @staticmethod
    def notifier(settings: Any, lg: Any) -> Any:
        """The notification follower configured by ``EXECLEDGER_NOTIFY_*``, or None when none is configured."""
        from execledger.infrastructure.notify import NotificationFollower, sinks_from_settings

        sinks = sinks_from_settings(settings)
        if not sinks:
            return None
        return NotificationFollower(lg.app, lg.db, sinks, pairs=lg.pairs)

    async def serve_probes(self, lg: Any, bus: Any, settings: Any, token: str | None) -> Any:
        """Serve /v1/health, /v1/health/live, /v1/health/ready and /metrics on ``EXECLEDGER_OPS_HOST``/``_PORT``
        (for the roles without the API); returns the aiohttp runner to clean up, None when no port is set."""
        if settings.ops_port is None:
            return None
        from aiohttp import web

        from execledger.infrastructure.api import health
        from execledger.infrastructure.api.app import create_api
        from execledger.infrastructure.api.context import ApiContext

        ctx = ApiContext(
            ledger=lg, bus=bus, token=token, service=self.health.service, health=self.health, metrics=self.metrics
        )
        runner = web.AppRunner(create_api(ctx, health.ROUTES))
        await runner.setup()
        await web.TCPSite(runner, settings.ops_host, settings.ops_port).start()
        log.info("probes and metrics on http://%s:%s", settings.ops_host, settings.ops_port)
        return runner
