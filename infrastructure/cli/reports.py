"""Read commands: report, audit, state, replay and projections rebuild (they read the ledger, never write orders).

Every read command takes ``--format table|json|csv`` (``--json`` is kept as a short form of ``--format json``);
tables are one line per row and never wrap (``render.py``); statuses are spelled one way (lower case) and pairs as
signals name them (``XBT/USD``).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from execledger.application.audit import orders_at, signal_timeline
from execledger.application.ledger import OrderNotFound
from execledger.application.replay import PolicyReplay
from execledger.domain.values import plain
from execledger.infrastructure.bootstrap import engine_config
from execledger.infrastructure.cli.common import load, open_or_exit, timestamp
from execledger.infrastructure.cli.exits import Exit, fail
from execledger.infrastructure.commandbus import CommandBus, SignalTrace
from execledger.infrastructure.present import order_brief, pair_name, present_fill, present_order, present_report
from execledger.infrastructure.readmodels.queries import BadQuery, parse_filter
from execledger.infrastructure.render import FORMATS, emit, timeline_rows


def format_option(f):
    f = click.option("--json", "as_json", is_flag=True, hidden=True, help="the same as --format json")(f)
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="table: one line per row (never wrapped); json or csv: every field",
    )(f)


def _fmt(fmt: str, as_json: bool) -> str:
    return "json" if as_json else fmt


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


TABLE_COLUMNS = {
    "reports": [
        "time",
        "signal_id",
        "role",
        "event",
        "pair",
        "side",
        "type",
        "status",
        "qty",
        "filled_qty",
        "avg_px",
        "fee",
        "txid",
        "note",
    ],
    "orders": [
        "created_at",
        "signal_id",
        "role",
        "pair",
        "side",
        "type",
        "qty",
        "limit_px",
        "trigger_px",
        "status",
        "filled_qty",
        "leaves_qty",
        "avg_px",
        "fees",
        "txid",
    ],
    "fills": ["recorded_at", "signal_id", "role", "pair", "side", "qty", "px", "fee", "fee_asset", "trade_id"],
    "signals": [
        "signal_id",
        "pair",
        "side",
        "state",
        "exit_reason",
        "opened_at",
        "closed_at",
        "entry_qty",
        "entry_avg_px",
        "exit_avg_px",
        "position",
        "realised_pnl",
        "fees",
        "net_pnl",
    ],
    "profit": [
        "group",
        "key",
        "quote",
        "trades",
        "wins",
        "losses",
        "win_rate",
        "realised_pnl",
        "fees",
        "net_pnl",
    ],
}
# Kept for callers that named the old columns (the demo prints its own selection).
REPORT_COLUMNS = TABLE_COLUMNS


def signal_totals(items: list[dict]) -> dict[str, Any]:
    """Totals of a page of signal summaries, per quote currency (USD and EUR amounts do not add up)."""
    by_quote: dict[str, dict[str, Any]] = {}
    for s in items:
        q = by_quote.setdefault(
            s["quote"] or "",
            {"signals": 0, "closed": 0, "open": 0, "wins": 0, "realised_pnl": Decimal(0), "fees": Decimal(0)},
        )
        q["signals"] += 1
        q["closed"] += s["state"] == "closed"
        q["open"] += s["state"] == "open"
        q["fees"] += Decimal(s["fees"] or 0)
        if s["realised_pnl"] is not None:
            q["realised_pnl"] += Decimal(s["realised_pnl"])
        if s["state"] == "closed" and s["net_pnl"] is not None and Decimal(s["net_pnl"]) > 0:
            q["wins"] += 1
    return {
        quote: {
            **t,
            "realised_pnl": plain(t["realised_pnl"]),
            "fees": plain(t["fees"]),
            "net_pnl": plain(t["realised_pnl"] - t["fees"]),
        }
        for quote, t in by_quote.items()
    }


def _not_placed(trace: SignalTrace, fmt: str) -> None:
    """A signal recorded as a command that has no entry order: pending, or refused (kind, reason, when)."""
    row = {k: v for k, v in asdict(trace).items() if v is not None}
    what = f"refused ({trace.refusal}) by {trace.refused_by}" if trace.status == "refused" else "pending"
    head = f"signal {trace.signal_id}: recorded as command {trace.command_id}, {what}; times UTC"
    columns = ["status", "recorded_at", "refusal", "refused_at", "reason"]
    emit([row], fmt, columns=[c for c in columns if c in row], title=head)


def register(main: click.Group) -> None:
    @main.command()
    @click.argument("kind", type=click.Choice(sorted(TABLE_COLUMNS)), default="reports")
    @click.option("--signal-id")
    @click.option("--pair", help="XBT/USD, XBTUSD or XXBTZUSD")
    @click.option("--status", help="order status, e.g. filled, open, partially_filled")
    @click.option("--since", help="ISO 8601 time, now, or an offset such as -1h, -2d")
    @click.option("--until", help="ISO 8601 time, now, or an offset such as -1h")
    @click.option("--limit", type=int, default=100, show_default=True)
    @click.option("--offset", type=int, default=0, show_default=True)
    @format_option
    def report(kind, fmt, as_json, **filters):
        """Query the read models (caught up first): reports, orders, fills, signals (one row per signal with its
        outcome and PnL) or profit (totals, win rate, by exit reason, pair and day)."""
        fmt = _fmt(fmt, as_json)
        params = {k: v for k, v in filters.items() if v is not None}
        for key in ("since", "until"):
            if key in params:
                params[key] = timestamp(params[key]).isoformat()
        with open_or_exit(load()) as lg:
            pairs = lg.ledger.pairs
            try:
                f = parse_filter(params, pairs)
            except BadQuery as exc:
                fail(Exit.INPUT, f"invalid query: {exc}")
            lg.projector.catch_up()
            q = lg.queries
            if kind == "profit":
                rows = q.profit(f, pairs)
                emit(rows, fmt, columns=TABLE_COLUMNS[kind], title=f"profit of closed positions: {len(rows)} rows")
                return
            if kind == "signals":
                page = q.signal_summaries(f, pairs)
                items = page.items
                totals = signal_totals(items)
                footer = [
                    f"total {quote or '-'}: {t['signals']} signals, {t['closed']} closed ({t['wins']} won), "
                    f"{t['open']} open; realised {t['realised_pnl']}, fees {t['fees']}, net {t['net_pnl']}"
                    for quote, t in totals.items()
                ]
            elif kind == "reports":
                page = q.execution_reports(f)
                rules = q.cancel_reasons([r["order_id"] for r in page.items if r["event"] in ("Canceled", "Expired")])
                items, totals, footer = [present_report(r, pairs, rules) for r in page.items], None, []
            elif kind == "orders":
                page = q.orders(f)
                items, totals, footer = [present_order(r, pairs) for r in page.items], None, []
            else:
                page = q.fills(f)
                items, totals, footer = [present_fill(r, pairs) for r in page.items], None, []
        extra: dict[str, Any] = {
            "total": page.total,
            "limit": page.limit,
            "offset": page.offset,
            "next_offset": page.next_offset,
        }
        if totals is not None:
            extra["totals"] = totals
        emit(
            items,
            fmt,
            columns=TABLE_COLUMNS[kind],
            title=f"{kind}: {len(items)} of {page.total}",
            extra=extra,
            footer=footer,
        )

    @main.command()
    @click.argument("ident")
    @format_option
    def audit(ident, fmt, as_json):
        """The story of a signal (entry and every bracket leg): facts, decisions with reasons, outcomes, one dated
        line each. IDENT is any of: signal id, order id, Kraken txid, cl_ord_id."""
        fmt = _fmt(fmt, as_json)
        with open_or_exit(load()) as lg:
            lg.projector.catch_up()
            try:
                entry, orders, timeline = signal_timeline(lg.ledger, ident, lg.queries.find_order_id)
            except OrderNotFound as exc:
                trace = CommandBus(lg, role="cli").signal_trace(ident.strip())
                if trace is None:
                    fail(Exit.NOT_FOUND, str(exc))
                _not_placed(trace, fmt)
                return
            pairs = lg.ledger.pairs
        rows = timeline_rows(orders, timeline)
        if fmt == "table":
            shown = [{**r, "order": f"{r['role']} {r['order_id'][:8]}"} for r in rows]
            head = (
                f"signal {entry.signal_id} ({pair_name(pairs, entry.pair)} {entry.side.value}): "
                f"{len(orders)} orders, {len(rows)} events, times UTC"
            )
            emit(shown, fmt, columns=["at", "order", "event", "kind", "details"], title=head)
            return
        emit(
            rows,
            fmt,
            columns=[],
            extra={
                "signal_id": entry.signal_id,
                "entry_order_id": str(entry.id),
                "pair": pair_name(pairs, entry.pair),
                "orders": [order_brief(o, pairs) for o in orders],
            },
        )

    @main.command()
    @click.option("--at", "at", required=True, help="ISO 8601 time, now, or an offset such as -1h, -30m, -2d")
    @format_option
    def state(at, fmt, as_json):
        """Every order as it was at a past moment (folded again from the log)."""
        fmt = _fmt(fmt, as_json)
        when = timestamp(at)
        with open_or_exit(load()) as lg:
            orders = orders_at(lg.ledger, when)
            rows = [order_brief(o, lg.ledger.pairs) for o in orders]
        emit(
            rows,
            fmt,
            columns=["signal_id", "role", "pair", "side", "type", "qty", "status", "filled_qty", "txid", "order_id"],
            title=f"orders as of {when.astimezone(UTC).isoformat()}: {len(rows)}",
            extra={"at": when.isoformat()},
        )

    @main.command()
    @format_option
    def replay(fmt, as_json):
        """Re-run the policies over the recorded log; exit 4 if any recorded decision would differ now."""
        fmt = _fmt(fmt, as_json)
        console = Console(stderr=fmt != "table")
        settings = load()
        with open_or_exit(settings) as lg:
            total = lg.app.recorder.max_notification_id() or 0
            with _progress(console) as progress:
                task = progress.add_task("replaying decisions", total=total)
                result = PolicyReplay(lg.app, lg.ledger.pairs, engine_config(settings).policy).run(
                    progress=lambda n: progress.advance(task, n)
                )
        rows = [
            {
                "order_id": str(d.order_id),
                "version": d.version,
                "event": d.event,
                "rule": d.rule,
                "recorded": d.recorded,
                "replayed": d.replayed,
            }
            for d in result.differences
        ]
        emit(
            rows,
            fmt,
            columns=["order_id", "version", "event", "rule", "recorded", "replayed"],
            title=f"replayed {result.events} events, checked {result.decisions_checked} decisions: "
            f"{len(result.differences)} differ",
            extra={"events": result.events, "decisions_checked": result.decisions_checked, "ok": result.ok},
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
