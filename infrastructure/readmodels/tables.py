"""The read-model tables. Money and quantities are stored as exact decimal text; times as naive UTC."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.sql.elements import quoted_name

metadata = MetaData()


def _dec(name: str, **kw: Any) -> Column[str]:
    """A decimal column: its exact text (``plain``), never a float."""
    return Column(name, String(64), **kw)


execution_reports = Table(
    "execution_reports",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("order_id", String(36), nullable=False),
    Column("version", Integer, nullable=False),
    Column("event", String(40), nullable=False),
    Column("timestamp", DateTime, nullable=False),
    Column("signal_id", String(64), nullable=False),
    Column("role", String(20), nullable=False),
    Column("exchange_order_id", String(40)),
    Column("client_order_id", String(64), nullable=False),
    Column("trading_pair", String(20), nullable=False),
    Column("exchange", String(20), nullable=False),
    Column("order_status", String(20), nullable=False),
    Column("order_type", String(24), nullable=False),
    Column("side", String(4), nullable=False),
    _dec("quantity_ordered", nullable=False),
    _dec("quantity_filled", nullable=False),
    _dec("limit_price"),
    _dec("trigger_price"),
    _dec("average_fill_price"),
    _dec("commission", nullable=False),
    Column("commission_asset", String(16)),
    Column("timestamp_exchange", DateTime),
    Column("error_message", Text),
    Index("ix_reports_pair_time", "trading_pair", "timestamp"),
    Index("ix_reports_signal", "signal_id"),
    Index("ix_reports_order", "order_id", "version"),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", String(36), primary_key=True),
    Column("signal_id", String(64), nullable=False),
    Column("role", String(20), nullable=False),
    Column("parent_id", String(36)),
    Column("pair", String(20), nullable=False),
    Column("side", String(4), nullable=False),
    Column("order_type", String(24), nullable=False),
    _dec("quantity", nullable=False),
    _dec("limit_price"),
    _dec("trigger_price"),
    Column("status", String(20), nullable=False),
    _dec("filled_quantity", nullable=False),
    _dec("average_fill_price"),
    _dec("fees", nullable=False),
    Column("fee_asset", String(16)),
    Column("txid", String(40)),
    Column("cl_ord_id", String(64), nullable=False),
    Column("last_error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_orders_signal", "signal_id"),
    Index("ix_orders_pair_status", "pair", "status"),
    Index("ix_orders_created", "created_at"),
)

fills = Table(
    "fills",
    metadata,
    Column("order_id", String(36), primary_key=True),
    Column("trade_id", String(64), primary_key=True),
    Column("signal_id", String(64), nullable=False),
    Column("role", String(20), nullable=False),
    Column("pair", String(20), nullable=False),
    Column("side", String(4), nullable=False),
    _dec("quantity", nullable=False),
    _dec("price", nullable=False),
    _dec("fee", nullable=False),
    Column("fee_asset", String(16)),
    Column("executed_at", DateTime),
    Column("recorded_at", DateTime, nullable=False),
    Column("source", String(20)),
    Index("ix_fills_pair_time", "pair", "recorded_at"),
    Index("ix_fills_signal", "signal_id"),
)

signals = Table(
    "signals",
    metadata,
    Column("signal_id", String(64), primary_key=True),
    Column("entry_order_id", String(36)),
    Column("pair", String(20)),
    Column("side", String(4)),
    Column("entry_status", String(20)),
    _dec("entry_filled"),
    _dec("entry_average_price"),
    _dec("exit_filled"),
    _dec("exit_average_price"),
    _dec("position"),
    _dec("realised_pnl"),
    _dec("fees"),
    Column("open_legs", Integer),
    Column("legs", Integer),
    Column("updated_at", DateTime),
)

decisions = Table(
    "decisions",
    metadata,
    Column("order_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("signal_id", String(64), nullable=False),
    Column("event", String(40), nullable=False),
    Column("kind", String(12), nullable=False),
    Column("rule", String(80)),
    Column("text", Text),
    Column("reason_json", Text),
    Column("recorded_at", DateTime, nullable=False),
    Index("ix_decisions_signal", "signal_id"),
    Index("ix_decisions_rule", "rule"),
)

projection_tracking = Table(
    "projection_tracking",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
)

# The batch a projection could not apply, and why (one row per projection while it fails; deleted by the next batch
# it applies). Any process of the deployment reads it, so the api role's health names a projections role's failure.
projection_failures = Table(
    "projection_failures",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", Integer, nullable=False),  # the batch after this position was not applied
    Column("error", Text, nullable=False),
    Column("failed_at", DateTime, nullable=False),  # naive UTC
    Column("attempts", Integer, nullable=False),
)

VIEW_TABLES = (execution_reports, orders, fills, signals, decisions)


class TableSet:
    """One complete set of read-model tables: the live ones, or a shadow set a rebuild fills before swapping in."""

    def __init__(self, suffix: str = ""):
        self.suffix = suffix
        if not suffix:
            self.metadata = metadata
            source = {tb.name: tb for tb in VIEW_TABLES}
        else:
            self.metadata = MetaData()
            source = {}
            for live in VIEW_TABLES:
                copy = live.to_metadata(self.metadata, name=live.name + suffix)
                for index in copy.indexes:
                    index.name = quoted_name(f"{index.name}{suffix}", None)  # index names are schema-wide: apart
                source[live.name] = copy
        self.execution_reports = source["execution_reports"]
        self.orders = source["orders"]
        self.fills = source["fills"]
        self.signals = source["signals"]
        self.decisions = source["decisions"]
        self.views = tuple(source[tb.name] for tb in VIEW_TABLES)
        self.projection_tracking = projection_tracking  # one tracking table; each set has its own row


LIVE = TableSet()
