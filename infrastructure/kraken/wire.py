"""Kraken's WS v2 wire vocabulary shared by the adapter's parser and the simulator (REFERENCE.md 6.2)."""

from __future__ import annotations

from enum import StrEnum


class ExecType(StrEnum):
    """WS v2 ``executions`` ``exec_type`` values: what one execution record says happened."""

    PENDING_NEW = "pending_new"
    NEW = "new"
    TRADE = "trade"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    AMENDED = "amended"
    RESTATED = "restated"
    STATUS = "status"
