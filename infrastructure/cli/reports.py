"""Read commands: report, audit, state, replay and projections rebuild (they read the ledger, never write orders)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from execledger.application.audit import orders_at, signal_timeline
from execledger.application.ledger import OrderNotFound
from execledger.application.replay import PolicyReplay
from execledger.domain.values import plain
from execledger.infrastructure.bootstrap import engine_config
from execledger.infrastructure.cli.common import load, open_or_exit, timestamp
from execledger.infrastructure.cli.exits import Exit, fail
from execledger.infrastructure.readmodels.queries import BadQuery, parse_filter
from execledger.infrastructure.render import print_rows, print_timeline


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


REPORT_COLUMNS = {
    "reports": [
        "timestamp",
        "signal_id",
        "role",
        "event",
        "trading_pair",
        "side",
        "order_type",
        "order_status",
        "quantity_ordered",
        "quantity_filled",
        "average_fill_price",
        "commission",
        "exchange_order_id",
        "error_message",
    ],
    "orders": [
        "created_at",
        "signal_id",
        "role",
        "pair",
        "side",
        "order_type",
        "quantity",
        "limit_price",
        "trigger_price",
        "status",
        "filled_quantity",
        "average_fill_price",
        "fees",
        "txid",
    ],
    "fills": ["recorded_at", "signal_id", "role", "pair", "side", "quantity", "price", "fee", "fee_asset", "trade_id"],
    "signals": [
        "signal_id",
        "pair",
        "side",
        "entry_status",
        "entry_filled",
        "entry_average_price",
        "exit_filled",
        "position",
        "realised_pnl",
        "fees",
        "open_legs",
        "legs",
    ],
}


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
        with open_or_exit(load()) as lg:
            try:
                f = parse_filter(params, lg.ledger.pairs)
            except BadQuery as exc:
                fail(Exit.INPUT, f"invalid query: {exc}")
            lg.projector.catch_up()
            query = {
                "reports": lg.queries.execution_reports,
                "orders": lg.queries.orders,
                "fills": lg.queries.fills,
                "signals": lg.queries.signals,
            }[kind]
            page = query(f)
        if as_json:
            click.echo(
                json.dumps({"items": page.items, "total": page.total, "next_offset": page.next_offset}, default=str)
            )
            return
        print_rows(console, f"{kind}: {len(page.items)} of {page.total}", page.items, REPORT_COLUMNS[kind])

    @main.command()
    @click.argument("ident")
    def audit(ident):
        """The story of an order or a signal (entry and every bracket leg): facts, decisions with reasons, outcomes."""
        console = Console()
        with open_or_exit(load()) as lg:
            try:
                entry, orders, timeline = signal_timeline(lg.ledger, ident)
            except OrderNotFound as exc:
                fail(Exit.NOT_FOUND, str(exc))
        print_timeline(console, entry, orders, timeline)

    @main.command()
    @click.option("--at", "at", required=True, help="ISO 8601 time, e.g. 2026-11-24T18:00:00Z")
    def state(at):
        """Every order as it was at a past moment (folded again from the log)."""
        console = Console()
        when = timestamp(at)
        with open_or_exit(load()) as lg:
            orders = orders_at(lg.ledger, when)
        rows = [
            {
                "order_id": str(o.id),
                "signal_id": o.signal_id,
                "role": o.role.value,
                "pair": o.pair,
                "side": o.side.value,
                "quantity": plain(o.quantity),
                "status": o.status.value,
                "filled": plain(o.filled_quantity),
                "version": o.version,
            }
            for o in orders
        ]
        print_rows(
            console, f"orders as of {when.isoformat()}: {len(rows)}", rows, list(rows[0]) if rows else ["order_id"]
        )

    @main.command()
    def replay():
        """Re-run the policies over the recorded log; exit 4 if any recorded decision would differ now."""
        console = Console()
        settings = load()
        with open_or_exit(settings) as lg:
            total = lg.app.recorder.max_notification_id() or 0
            with _progress(console) as progress:
                task = progress.add_task("replaying decisions", total=total)
                result = PolicyReplay(lg.app, lg.ledger.pairs, engine_config(settings).policy).run(
                    progress=lambda n: progress.advance(task, n)
                )
        console.print(
            f"replayed {result.events} events, checked {result.decisions_checked} decisions: "
            f"{len(result.differences)} differ"
        )
        for d in result.differences:
            console.print(
                f"  [red]differs[/red] order {d.order_id} v{d.version} {d.event} [{escape(str(d.rule))}]: "
                f"recorded {escape(d.recorded)!s}; policies now decide {escape(d.replayed)}"
            )
        if not result.ok:
            raise SystemExit(int(Exit.DIFFERENCES))

    @main.group()
    def projections():
        """Manage the read models."""

    @projections.command("rebuild")
    def projections_rebuild():
        """Drop the read-model tables' rows and rebuild them from the log."""
        console = Console()
        with open_or_exit(load()) as lg:
            total = lg.app.recorder.max_notification_id() or 0
            started = datetime.now(UTC)
            with _progress(console) as progress:
                task = progress.add_task("rebuilding read models", total=total)
                n = lg.projector.rebuild(progress=lambda k: progress.advance(task, k))
            seconds = (datetime.now(UTC) - started).total_seconds()
        console.print(f"rebuilt from {n} events in {seconds:.2f}s; position {total}")
