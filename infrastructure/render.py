"""Human-readable rendering of decision reasons for the CLI and the demo."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from execledger.domain.values import plain


def _fmt(value: Any) -> str:
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items()) or "{}"
    return str(value)


def reason_text(reason: dict | None) -> str:
    """``[rule] text (what it saw)`` for one decision's reason."""
    if not reason:
        return ""
    seen = "; ".join(
        f"{k}={_fmt(v)}" for k, v in reason.items() if k not in ("rule", "text") and v not in (None, {}, "")
    )
    return f"[{reason.get('rule')}] {reason.get('text')}" + (f" ({seen})" if seen else "")


def print_rows(console: Console, title: str, rows: list[dict], columns: list[str]) -> None:
    console.print(escape(title), soft_wrap=True)
    if not rows:
        return
    table = Table()
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*[escape("" if row.get(c) is None else str(row[c])) for c in columns])
    console.print(table)


def print_timeline(console: Console, entry, orders, timeline) -> None:
    roles = {o.id: o.role.value for o in orders}
    table = Table(
        title=escape(f"signal {entry.signal_id}: {len(orders)} orders, {len(timeline)} events"), title_justify="left"
    )
    for col in ("at (UTC)", "order", "event", "kind", "reason / details"):
        table.add_column(col, overflow="fold")
    for item in timeline:
        h = item.entry
        details = (
            reason_text(h.reason)
            if h.reason
            else ", ".join(
                f"{k}={plain(v) if hasattr(v, 'as_tuple') else v}"
                for k, v in h.data.items()
                if k in ("txid", "trade_id", "quantity", "price", "fee", "error", "venue_reason")
                and v not in (None, "")
            )
        )
        table.add_row(
            h.timestamp.strftime("%H:%M:%S.%f")[:-3],
            f"{roles[item.order_id]} {str(item.order_id)[:8]}",
            h.name,
            h.kind.value,
            escape(details),
        )
    console.print(table)
