"""The pydantic models of the HTTP API's answers (requests use the domain's own models, e.g. ``TradeSignal``).

Row models are generated from the read-model tables (``readmodels/tables.py``), so a column added there appears in
the OpenAPI document without a second declaration. Decimals are exact text; times are ISO 8601 with offset (UTC).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy import DateTime, Integer, Table

from execledger.domain.order import OrderStatus
from execledger.infrastructure.readmodels import tables as t


class FieldProblem(BaseModel):
    field: str = Field(description="the field, parameter or header at fault, e.g. 'quantity' or 'tags.desk'")
    rule: str = Field(description="a stable machine-readable rule, e.g. 'decimal_parsing', 'greater_than'")
    message: str


class ErrorBody(BaseModel):
    """Every error answer: ``error`` in words, ``errors`` (when fields are at fault) one per field."""

    model_config = ConfigDict(extra="allow")

    error: str
    errors: list[FieldProblem] | None = None


class HaltedBody(ErrorBody):
    mode: str = Field(description="running, reducing or halted")
    by: str | None
    why: str | None


class SignalAccepted(BaseModel):
    order_id: UUID = Field(description="the entry order (derived from signal_id: the same signal, the same id)")
    signal_id: str
    status: OrderStatus
    cl_ord_id: str = Field(description="client_order_id sent to Kraken as cl_ord_id")
    created: bool = Field(description="false: this signal was already recorded, nothing was written")


class OrderPath(BaseModel):
    order_id: UUID


def row_model(table: Table, name: str) -> type[BaseModel]:
    """A model of one row of ``table`` as the API returns it: every column present, nullable ones may be null."""
    fields: dict[str, Any] = {}
    for column in table.columns:
        kind: Any = int if isinstance(column.type, Integer) else datetime if isinstance(column.type, DateTime) else str
        fields[str(column.name)] = (kind | None if column.nullable else kind, ...)  # str: not quoted_name
    return create_model(name, **fields)


OrderRow = row_model(t.orders, "OrderRow")
ExecutionReportRow = row_model(t.execution_reports, "ExecutionReportRow")
FillRow = row_model(t.fills, "FillRow")


def page_model(item: type[BaseModel], name: str) -> type[BaseModel]:
    return create_model(
        name,
        items=(list[item], ...),  # type: ignore[valid-type]  # a model made at run time: its item is a value
        total=(int, Field(description="rows matching the filters")),
        limit=(int, ...),
        offset=(int, ...),
        next_offset=(int | None, Field(description="the offset of the next page; null on the last")),
    )


OrderPage = page_model(OrderRow, "OrderPage")
ExecutionReportPage = page_model(ExecutionReportRow, "ExecutionReportPage")
FillPage = page_model(FillRow, "FillPage")


class HistoryEntry(BaseModel):
    version: int
    event: str
    kind: str = Field(description="fact, decision or outcome")
    timestamp: datetime
    data: dict[str, Any]


class OrderDetail(BaseModel):
    order: OrderRow | None  # type: ignore[valid-type]  # OrderRow is made from the table at run time
    projected: bool = Field(description="false: the read models have not caught up with this order yet")
    history: list[HistoryEntry]


class TradingView(BaseModel):
    model_config = ConfigDict(extra="allow")

    mode: str
    by: str | None
    why: str | None
    recovered: bool | None = Field(default=None, description="present when this process trades")


class Health(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str
    projection_lag: int = Field(description="events recorded but not yet in the read models")
    projection_position: int
    trading: TradingView


class OpenApiDocument(BaseModel):
    """This API's own description (OpenAPI 3.1)."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


class CommandBody(BaseModel):
    """An operator command's parameters (who and why, and what the route needs); validated by the command."""

    model_config = ConfigDict(extra="allow")


class CommandAnswer(BaseModel):
    """The receipt of an operator command (or ``status: recorded`` when no trading process confirmed it yet)."""

    model_config = ConfigDict(extra="allow")

    command_id: str | None = None
    command: str | None = None
    status: str | None = None


class SignalPath(BaseModel):
    signal_id: str
