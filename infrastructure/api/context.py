"""What every route of the HTTP API reaches through ``request.app[CTX]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from eventsourcing.application import AggregateNotFoundError

from execledger.domain.pairs import PairRegistry
from execledger.domain.trading_state import TRADING_STATE_ID, TradingState

if TYPE_CHECKING:
    from execledger.infrastructure.bootstrap import Ledger
    from execledger.infrastructure.commandbus import CommandBus
    from execledger.infrastructure.health import HealthMonitor
    from execledger.infrastructure.metrics import Metrics
    from execledger.infrastructure.readmodels.projector import ReadModelProjector
    from execledger.infrastructure.readmodels.queries import ReportQueries


@dataclass
class ApiContext:
    ledger: Ledger  # the stores (read) and the read models
    bus: CommandBus  # commands to the trading process
    token: str | None = None
    service: Any = None  # the TradingService when this process runs the trading role (health)
    receipt_timeout_s: float = 5.0  # how long a POST waits for the trading process to carry its command out
    health: HealthMonitor | None = None  # what this process knows about the venue (None: built from the store)
    metrics: Metrics | None = None  # this process's Prometheus registry (None: created on first use)

    @property
    def queries(self) -> ReportQueries:
        return self.ledger.queries

    @property
    def projector(self) -> ReadModelProjector:
        return self.ledger.projector

    @property
    def pairs(self) -> PairRegistry:
        return self.ledger.pairs

    def trading_state(self) -> TradingState:
        """The trading state as the log has it now (never a copy read once at start)."""
        try:
            return self.ledger.app.repository.get(TRADING_STATE_ID)
        except AggregateNotFoundError:
            return TradingState()


CTX = web.AppKey("ctx", ApiContext)
