"""Operator commands on an existing ledger: report, audit, state, replay, projections rebuild, halt, resume.

Exit codes (stable, for scripts): 0 ok, 1 unexpected failure, 2 invalid input, 3 configuration or store
unusable, 4 replay found differences, 5 not found.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from execledger.application.audit import orders_at, signal_timeline
from execledger.application.ledger import OrderNotFound
from execledger.application.replay import PolicyReplay
from execledger.domain.trading_state import TradingMode
from execledger.domain.values import plain
from execledger.infrastructure.bootstrap import Ledger, engine_config, open_ledger
from execledger.infrastructure.readmodels.queries import BadQuery, parse_filter
from execledger.infrastructure.render import reason_text
from execledger.infrastructure.settings import Settings

EXIT_INPUT, EXIT_CONFIG, EXIT_DIFFERENCES, EXIT_NOT_FOUND = 2, 3, 4, 5


def _settings() -> Settings:
    from execledger.infrastructure.cli import _settings as cli_settings

    return cli_settings()


def _open(settings: Settings) -> Ledger:
    from execledger.infrastructure.eventstore import StoreConfigError, StoreUnreachable

    try:
        return open_ledger(settings)
    except (StoreConfigError, StoreUnreachable) as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_CONFIG)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def _timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time (e.g. 2026-11-24T18:00:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


REPORT_COLUMNS = {
    "reports": ["timestamp", "signal_id", "role", "event", "trading_pair", "side", "order_type", "order_status",
                "quantity_ordered", "quantity_filled", "average_fill_price", "commission", "exchange_order_id",
                "error_message"],
    "orders": ["created_at", "signal_id", "role", "pair", "side", "order_type", "quantity", "limit_price",
               "trigger_price", "status", "filled_quantity", "average_fill_price", "fees", "txid"],
    "fills": ["recorded_at", "signal_id", "role", "pair", "side", "quantity", "price", "fee", "fee_asset", "trade_id"],
    "signals": ["signal_id", "pair", "side", "entry_status", "entry_filled", "entry_average_price", "exit_filled",
                "position", "realised_pnl", "fees", "open_legs", "legs"],
}


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


def register(main: click.Group) -> None:
    @main.command()
    @click.argument("kind", type=click.Choice(sorted(REPORT_COLUMNS)), default="reports")
    @click.option("--signal-id")
    @click.option("--pair", help="XBT/USD, XBTUSD or XXBTZUSD")
    @click.option("--status", help="order status, e.g. filled, open, partially_filled")
    @click.option("--since", help="ISO 8601 time")
    @click.option("--until", help="ISO 8601 time")
    @click.option("--limit", type=int, default=100, show_default=True)
    @click.option("--offset", type=int, default=0, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
    def report(kind, as_json, **filters):
        """Query the read models (caught up first): reports, orders, fills or signals."""
        console = Console()
        params = {k: v for k, v in filters.items() if v is not None}
        with _open(_settings()) as lg:
            try:
                f = parse_filter(params, lg.ledger.pairs)
            except BadQuery as exc:
                console.print(f"[red]invalid query:[/red] {escape(str(exc))}")
                sys.exit(EXIT_INPUT)
            lg.projector.catch_up()
            query = {"reports": lg.queries.execution_reports, "orders": lg.queries.orders, "fills": lg.queries.fills,
                     "signals": lg.queries.signals}[kind]
            page = query(f)
        if as_json:
            click.echo(json.dumps({"items": page.items, "total": page.total, "next_offset": page.next_offset}, default=str))
            return
        print_rows(console, f"{kind}: {len(page.items)} of {page.total}", page.items, REPORT_COLUMNS[kind])

    @main.command()
    @click.argument("ident")
    def audit(ident):
        """The story of an order or a signal (entry and every bracket leg): facts, decisions with reasons, outcomes."""
        console = Console()
        with _open(_settings()) as lg:
            try:
                entry, orders, timeline = signal_timeline(lg.ledger, ident)
            except OrderNotFound as exc:
                console.print(f"[red]{escape(str(exc))}[/red]")
                sys.exit(EXIT_NOT_FOUND)
        print_timeline(console, entry, orders, timeline)

    @main.command()
    @click.option("--at", "at", required=True, help="ISO 8601 time, e.g. 2026-11-24T18:00:00Z")
    def state(at):
        """Every order as it was at a past moment (folded again from the log)."""
        console = Console()
        when = _timestamp(at)
        with _open(_settings()) as lg:
            orders = orders_at(lg.ledger, when)
        rows = [{"order_id": str(o.id), "signal_id": o.signal_id, "role": o.role.value, "pair": o.pair,
                 "side": o.side.value, "quantity": plain(o.quantity), "status": o.status.value,
                 "filled": plain(o.filled_quantity), "version": o.version} for o in orders]
        print_rows(console, f"orders as of {when.isoformat()}: {len(rows)}", rows, list(rows[0]) if rows else ["order_id"])

    @main.command()
    def replay():
        """Re-run the policies over the recorded log; exit 4 if any recorded decision would differ now."""
        console = Console()
        settings = _settings()
        with _open(settings) as lg:
            total = lg.app.recorder.max_notification_id() or 0
            with _progress(console) as progress:
                task = progress.add_task("replaying decisions", total=total)
                result = PolicyReplay(lg.app, lg.ledger.pairs, engine_config(settings).policy).run(
                    progress=lambda n: progress.advance(task, n))
        console.print(f"replayed {result.events} events, checked {result.decisions_checked} decisions: "
                      f"{len(result.differences)} differ")
        for d in result.differences:
            console.print(f"  [red]differs[/red] order {d.order_id} v{d.version} {d.event} [{escape(str(d.rule))}]: "
                          f"recorded {escape(d.recorded)!s}; policies now decide {escape(d.replayed)}")
        if not result.ok:
            sys.exit(EXIT_DIFFERENCES)

    @main.group()
    def projections():
        """Manage the read models."""

    @projections.command("rebuild")
    def projections_rebuild():
        """Drop the read-model tables' rows and rebuild them from the log."""
        console = Console()
        with _open(_settings()) as lg:
            total = lg.app.recorder.max_notification_id() or 0
            started = datetime.now(timezone.utc)
            with _progress(console) as progress:
                task = progress.add_task("rebuilding read models", total=total)
                n = lg.projector.rebuild(progress=lambda k: progress.advance(task, k))
            seconds = (datetime.now(timezone.utc) - started).total_seconds()
        console.print(f"rebuilt from {n} events in {seconds:.2f}s; position {total}")

    def _mode(mode: TradingMode, reason: str, by: str, cancel_entries: bool = False) -> None:
        console = Console()
        with _open(_settings()) as lg:
            changed = lg.engine.set_mode(mode, by=by, why=reason, cancel_entries=cancel_entries)
        console.print(f"trading is {mode.value}" + ("" if changed else " (unchanged)") + f": {escape(reason)} (by {escape(by)})")

    @main.command()
    @click.option("--reason", required=True, help="why trading stops (recorded)")
    @click.option("--by", default="cli", show_default=True, help="who halts (recorded)")
    @click.option("--cancel-entries", is_flag=True, help="also cancel every resting entry order")
    @click.option("--reducing", is_flag=True, help="REDUCING instead of HALTED: no new entries, resting ones keep working")
    def halt(reason, by, cancel_entries, reducing):
        """Stop new entries (exits keep being managed)."""
        _mode(TradingMode.REDUCING if reducing else TradingMode.HALTED, reason, by, cancel_entries)

    @main.command()
    @click.option("--reason", default="resumed", show_default=True)
    @click.option("--by", default="cli", show_default=True)
    def resume(reason, by):
        """Accept new entries again."""
        _mode(TradingMode.RUNNING, reason, by)


def print_timeline(console: Console, entry, orders, timeline) -> None:
    roles = {o.id: o.role.value for o in orders}
    table = Table(title=escape(f"signal {entry.signal_id}: {len(orders)} orders, {len(timeline)} events"),
                  title_justify="left")
    for col in ("at (UTC)", "order", "event", "kind", "reason / details"):
        table.add_column(col, overflow="fold")
    for item in timeline:
        h = item.entry
        details = reason_text(h.reason) if h.reason else ", ".join(
            f"{k}={plain(v) if hasattr(v, 'as_tuple') else v}" for k, v in h.data.items()
            if k in ("txid", "trade_id", "quantity", "price", "fee", "error", "venue_reason") and v not in (None, ""))
        table.add_row(h.timestamp.strftime("%H:%M:%S.%f")[:-3], f"{roles[item.order_id]} {str(item.order_id)[:8]}",
                      h.name, h.kind.value, escape(details))
    console.print(table)
