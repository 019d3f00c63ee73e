"""The one composition root: every role, the demo, the CLI and the test harnesses build execledger here.

``open_ledger`` opens what every process needs (the two stores, the log reader, the read models); ``build_trading``
adds the trading process's parts around a venue (the engine with its listeners, the command inbox, the workers).
Tests inject fakes through the same functions (a ``FakeExchange``, a manual clock), in the spirit of cosmicpython's
``bootstrap`` and ``bootstrap_test_app``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from eventsourcing.application import AggregateNotFoundError
from sqlalchemy import Engine

from execledger.application.commands import CommandInbox
from execledger.application.engine import EngineConfig, ExecutionEngine, ReportPublisher
from execledger.application.ledger import ExecutionLedger
from execledger.application.orders_app import CommandsApp, OrdersApp
from execledger.application.policies import PolicyConfig
from execledger.application.ports import Clock, ExchangePort
from execledger.application.service import ServiceConfig, TradingService
from execledger.application.unit_of_work import Listener
from execledger.domain.pairs import VENUE_RULES_ID, PairRegistry
from execledger.domain.reports import ExecutionReport
from execledger.infrastructure.clock import MonotonicClock
from execledger.infrastructure.eventstore import open_commands_app, open_orders_app
from execledger.infrastructure.pairs import load_default_pairs
from execledger.infrastructure.readmodels.projector import ReadModelProjector, readmodel_engine
from execledger.infrastructure.readmodels.queries import ReportQueries
from execledger.infrastructure.settings import Settings


def process_name(role: str) -> str:
    """How receipts and logs name this process."""
    return f"{role} pid {os.getpid()} on {socket.gethostname()}"


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        policy=PolicyConfig(default_timeout_s=settings.default_timeout_s, resting_leg=settings.resting_leg),
        submit_deadline_s=settings.submit_deadline_s,
        exit_submit_deadline_s=settings.exit_submit_deadline_s,
        signal_max_age_s=settings.signal_max_age_s,
        max_pending_entries=settings.max_pending_entries,
    )


def stored_pairs(app: OrdersApp) -> PairRegistry | None:
    """The venue's pair rules as the trading process last loaded them (None before it ever did)."""
    try:
        return app.repository.get(VENUE_RULES_ID).registry()
    except AggregateNotFoundError:
        return None


@dataclass
class Ledger:
    """The stores and the read side of one ledger, opened from Settings, plus the write side's engine (only the
    trading process, holding the writer lock, writes with it). Close it when done."""

    settings: Settings
    app: OrdersApp
    commands: CommandsApp
    ledger: ExecutionLedger
    engine: ExecutionEngine
    db: Engine
    projector: ReadModelProjector
    queries: ReportQueries
    closers: list = field(default_factory=list)

    @property
    def pairs(self) -> PairRegistry:
        return self.ledger.pairs

    def close(self) -> None:
        self.db.dispose()
        self.app.close()
        self.commands.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_ledger(
    settings: Settings,
    *,
    clock: Clock | None = None,
    publish: Callable[[ExecutionReport], None] | None = None,
    listeners: Sequence[Listener] = (),
    pairs: PairRegistry | None = None,
    process: str | None = None,
) -> Ledger:
    """Open a ledger's stores and read side. ``publish`` receives every ExecutionReport the engine commits;
    ``listeners`` every commit (see ``UnitOfWork``)."""
    app = open_orders_app(settings)
    commands = None
    try:
        commands = open_commands_app(settings)
        ledger = ExecutionLedger(app, pairs or stored_pairs(app) or load_default_pairs(), clock or MonotonicClock())
        all_listeners = list(listeners)
        if publish is not None:
            all_listeners.insert(0, ReportPublisher(ledger, publish))
        engine = ExecutionEngine(
            ledger, engine_config(settings), listeners=all_listeners, process=process or process_name("trading")
        )
        db = readmodel_engine(settings)
    except Exception:
        app.close()
        if commands is not None:
            commands.close()
        raise
    projector = ReadModelProjector(app, db)
    return Ledger(settings, app, commands, ledger, engine, db, projector, ReportQueries(db))


@dataclass
class Trading:
    """The trading process's parts around one venue."""

    engine: ExecutionEngine
    inbox: CommandInbox
    service: TradingService
    exchange: ExchangePort


def build_trading(ledger: Ledger, exchange: ExchangePort, service_config: ServiceConfig | None = None) -> Trading:
    """The one writer: the command inbox following the commands log, and the workers around the venue."""
    inbox = CommandInbox(ledger.app, ledger.commands, ledger.engine.control)
    config = service_config or ServiceConfig(
        deadman_mode=ledger.settings.deadman, stop_protect_s=ledger.settings.stop_protect_s
    )
    if ledger.settings.database_url is None:
        # SQLite has no NOTIFY: another process's command is seen by polling, which costs one indexed read.
        config = replace(config, commands_poll_s=min(config.commands_poll_s, 0.02))
    service = TradingService(ledger.engine, exchange, config, inbox=inbox)
    return Trading(ledger.engine, inbox, service, exchange)
