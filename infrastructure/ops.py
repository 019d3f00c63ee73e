"""The operator's surface of one service process: log lines, metrics and health, wired to what it runs.

``OperatorSurface.for_ledger`` builds them over an opened ledger; ``attach_trading`` connects them to the trading
role's adapter and workers (breaker listener, executions stream, dead-man's switch, reconciliation, recovery).

The engine does not call listeners itself yet, and the service has no hooks for the dead-man's switch or
reconciliation: until it does, this module wraps ``ledger.save`` (``observers.observe_saves``) and the two
service/adapter calls on these instances. Each wrapper only records what happened and never changes a result.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from execledger.infrastructure.eventlog import EventLogger
from execledger.infrastructure.health import HealthMonitor, stored_trading_state
from execledger.infrastructure.metrics import Metrics
from execledger.infrastructure.observers import observe_saves

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
        state = (lambda: engine.trading) if trading else stored_trading_state(lg.app)
        health = HealthMonitor(role=role, trading_state=state, projection=lg.projector, trades=trading)
        metrics = Metrics(pairs=lg.ledger.pairs, health=health, order_counts=lg.queries.order_counts)
        events = EventLogger(lg.ledger.pairs)
        if trading:
            observe_saves(lg.ledger, events, metrics)  # only the writer records decisions
        return cls(health, metrics, events)

    @staticmethod
    def notifier(settings: Any, lg: Any) -> Any:
        """The notification follower configured by ``EXECLEDGER_NOTIFY_*``, or None when none is configured."""
        from execledger.infrastructure.notify import NotificationFollower, sinks_from_settings

        sinks = sinks_from_settings(settings)
        if not sinks:
            return None
        return NotificationFollower(lg.app, lg.db, sinks, pairs=lg.ledger.pairs)

    async def serve_probes(self, lg: Any, settings: Any, token: str | None) -> Any:
        """Serve /v1/health, /v1/health/live, /v1/health/ready and /metrics on ``EXECLEDGER_OPS_HOST``/``_PORT``
        (for the roles without the API); returns the aiohttp runner to clean up, None when no port is set."""
        if settings.ops_port is None:
            return None
        from aiohttp import web

        from execledger.infrastructure.api.context import ApiContext
        from execledger.infrastructure.api.health import create_ops_app

        ctx = ApiContext(
            engine=lg.engine,
            queries=lg.queries,
            projector=lg.projector,
            token=token,
            recovered=self.health.recovered,
            health=self.health,
            metrics=self.metrics,
        )
        runner = web.AppRunner(create_ops_app(ctx))
        await runner.setup()
        await web.TCPSite(runner, settings.ops_host, settings.ops_port).start()
        log.info("probes and metrics on http://%s:%s", settings.ops_host, settings.ops_port)
        return runner

    def attach_trading(self, service: Any, exchange: Any) -> None:
        """Follow the trading role: recovery, breaker, stream, dead-man's switch and reconciliation."""
        health = self.health
        health.recovered = service.recovered.is_set
        breaker = getattr(getattr(exchange, "rest", None), "breaker", None)
        if breaker is not None:
            health.breaker_changed(None, breaker.state)
            breaker.add_listener(health.breaker_changed)
        factory = getattr(exchange, "_stream_factory", None)
        if hasattr(exchange, "_stream_factory"):

            def capturing(ex: Any) -> Any:
                if factory is not None:
                    stream = factory(ex)
                else:
                    from execledger.infrastructure.kraken.ws import KrakenExecutionsStream

                    stream = KrakenExecutionsStream(ex, ex.ws_url)
                health.attach_stream(stream)
                return stream

            exchange._stream_factory = capturing
        arm = exchange.cancel_all_after

        @functools.wraps(arm)
        async def cancel_all_after(timeout_s: int):
            expires = await arm(timeout_s)
            health.deadman_armed(expires)
            return expires

        exchange.cancel_all_after = cancel_all_after
        reconcile = service.reconcile

        @functools.wraps(reconcile)
        async def reconciled(*args: Any, **kwargs: Any):
            report = await reconcile(*args, **kwargs)
            health.reconciled()
            if report.missing or report.foreign:
                log.warning(
                    "reconciliation: %d order(s) missing on the venue, %d open order(s) unknown to this ledger",
                    len(report.missing),
                    len(report.foreign),
                )
            return report

        service.reconcile = reconciled
