"""Wiring: builds the ledger, engine and read side from Settings (the one place that knows every adapter)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from execledger.application.engine import EngineConfig, ExecutionEngine
from execledger.application.ledger import ExecutionLedger
from execledger.application.orders_app import OrdersApp
from execledger.application.policies import PolicyConfig
from execledger.application.ports import Clock, SystemClock
from execledger.infrastructure.eventstore import open_orders_app
from execledger.infrastructure.pairs import load_default_pairs
from execledger.infrastructure.readmodels.projector import ReadModelProjector, readmodel_engine
from execledger.infrastructure.readmodels.queries import ReportQueries
from execledger.infrastructure.settings import Settings


@dataclass
class Ledger:
    """The write side and the read side of one ledger, opened from Settings. Close it when done."""

    settings: Settings
    app: OrdersApp
    ledger: ExecutionLedger
    engine: ExecutionEngine
    db: Engine
    projector: ReadModelProjector
    queries: ReportQueries
    closers: list = field(default_factory=list)

    def close(self) -> None:
        self.db.dispose()
        self.app.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        policy=PolicyConfig(default_timeout_s=settings.default_timeout_s), submit_deadline_s=settings.submit_deadline_s
    )


def open_ledger(settings: Settings, *, clock: Clock | None = None, publish=None) -> Ledger:
    app = open_orders_app(settings)
    try:
        ledger = ExecutionLedger(app, load_default_pairs(), clock or SystemClock())
        engine = ExecutionEngine(ledger, engine_config(settings), publish=publish)
        db = readmodel_engine(settings)
    except Exception:
        app.close()
        raise
    projector = ReadModelProjector(app, db)
    return Ledger(settings, app, ledger, engine, db, projector, ReportQueries(db))
