"""Human-readable rendering of ledger content for the CLI (rich tables; secrets never reach here)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from application.ledger import HistoryEntry
from domain.order import Order
from domain.values import plain

_SKIP = {"reason", "signal_fingerprint"}


def _fmt(value: Any) -> str:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items()) or "{}"
    return str(value)


def reason_text(reason: dict | None) -> str:
    """``[rule] text (what it saw)`` for one decision's reason."""
    if not reason:
        return ""
    seen = "; ".join(f"{k}={_fmt(v)}" for k, v in reason.items() if k not in ("rule", "text") and v not in (None, {}, ""))
    return f"[{reason.get('rule')}] {reason.get('text')}" + (f" ({seen})" if seen else "")


def order_title(order: Order) -> str:
    price = f" @ {plain(order.limit_price)}" if order.limit_price is not None else ""
    return (f"{order.role.value} {order.side.value} {plain(order.quantity)} {order.pair} {order.order_type.value}{price}"
            f"  status={order.status.value}  signal={order.signal_id}  id={order.id}")


def history_table(order: Order, history: list[HistoryEntry]) -> Table:
    table = Table(title=escape(order_title(order)), title_justify="left", show_lines=False, expand=False)
    table.add_column("v", justify="right")
    table.add_column("at (UTC)")
    table.add_column("event")
    table.add_column("kind")
    table.add_column("details")
    table.add_column("reason")
    for h in history:
        details = "; ".join(f"{k}={_fmt(v)}" for k, v in h.data.items() if k not in _SKIP and v not in (None, {}, ""))
        table.add_row(str(h.version), h.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], h.name, h.kind.value,
                      escape(details), escape(reason_text(h.reason)))
    return table


def print_history(console: Console, order: Order, history: list[HistoryEntry]) -> None:
    console.print(history_table(order, history))
