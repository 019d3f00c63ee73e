"""What every route of the HTTP API reaches through ``request.app[CTX]``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from execledger.application.engine import ExecutionEngine
from execledger.infrastructure.readmodels.projector import ReadModelProjector
from execledger.infrastructure.readmodels.queries import ReportQueries


@dataclass
class ApiContext:
    engine: ExecutionEngine
    queries: ReportQueries
    projector: ReadModelProjector
    token: str | None = None
    on_signal: Callable[[], None] | None = None  # wakes the submission worker
    recovered: Callable[[], bool] | None = None  # trading role in this process: start-up reconciliation done?


CTX = web.AppKey("ctx", ApiContext)
