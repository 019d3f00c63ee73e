"""Projection rebuild against the raw database reading the same log and writing the same rows (same run).

A synthetic but complete log is generated through the domain model: per signal an entry that fills in two parts,
a bracket, a take-profit that fills and a stop-loss that is canceled (15 events per signal). Then, each round in a
fresh process (peak RSS is its own), on the same log:

- ``driver_scan``: the stored rows (id, originator, version, topic, JSON state) paged through the raw driver
  (sqlite3 / psycopg), 5,000 a page: the physical cost of reading the log;
- ``library_scan``: the same through eventsourcing's ``select_notifications`` (1,000 a page; the issue's "raw");
- ``rebuild``: ``execledger projections rebuild`` (``ReadModelProjector.rebuild``): shadow tables, swap;
- ``rebuild_events_per_cpu_s``: the same per second of this process's CPU time (on SQLite all the work is in
  it; on PostgreSQL the server's is not), steadier than wall time while other work shares the machine;
- ``floor``: driver scan + the raw driver writing exactly the rows the rebuild writes (executemany / COPY, one
  commit per 5,000 events, indexes after), with every Python cost of computing them left out: what the
  database itself needs for the rebuild's durable work.

Usage: .venv/bin/python bench/projection_rebuild.py [--events 45000] [--curve 10000,100000,1000000]
       [--backends sqlite,postgres] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sqlite3
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

from common import backend_settings, fmt_spread, peak_rss_mb, rounds, write_result

from execledger.domain.order import Order
from execledger.domain.reasons import reason
from execledger.domain.values import OrderRole, OrderType, Side
from execledger.infrastructure.eventstore import open_orders_app, parse_postgres_url
from execledger.infrastructure.settings import Settings

R = reason("bench", "synthetic")
T = datetime(2026, 1, 1, tzinfo=UTC)
EVENTS_PER_SIGNAL = 15
PAGE = 5000


def signal_orders(i: int) -> list[Order]:
    entry = Order.place(
        order_id=uuid.uuid4(),
        signal_id=f"s{i}",
        role=OrderRole.ENTRY,
        pair="XXBTZUSD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D("0.02"),
        limit_price=D("60000"),
        sl_price=D("59000"),
        tp_price=D("61000"),
        cl_ord_id=str(uuid.uuid4()),
        reason=R,
    )
    entry.submit(at=T, deadline=None, reason=R)
    entry.acknowledge(txid=f"OE{i:06d}", at=T, reason=R)
    entry.apply_fill(trade_id=f"TE{i}a", quantity=D("0.01"), price=D("60000"), fee=D("0.1"), fee_asset="ZUSD")
    entry.apply_fill(trade_id=f"TE{i}b", quantity=D("0.01"), price=D("59990"), fee=D("0.1"), fee_asset="ZUSD")
    legs = []
    for role, otype, price in (
        (OrderRole.STOP_LOSS, OrderType.STOP_LOSS, D("59000")),
        (OrderRole.TAKE_PROFIT, OrderType.TAKE_PROFIT, D("61000")),
    ):
        leg = Order.place(
            order_id=uuid.uuid4(),
            signal_id=f"s{i}",
            role=role,
            pair="XXBTZUSD",
            side=Side.SELL,
            order_type=otype,
            quantity=D("0.02"),
            trigger_price=price,
            cl_ord_id=str(uuid.uuid4()),
            parent_id=entry.id,
            reason=R,
        )
        leg.submit(at=T, deadline=None, reason=R)
        leg.acknowledge(txid=f"O{role.value[:2]}{i:06d}", at=T, reason=R)
        legs.append(leg)
    sl, tp = legs
    entry.record_bracket(
        quantity=D("0.02"),
        stop_loss_order_id=sl.id,
        take_profit_order_id=tp.id,
        sl_price=D("59000"),
        tp_price=D("61000"),
        reason=R,
    )
    tp.apply_fill(trade_id=f"TT{i}", quantity=D("0.02"), price=D("61000"), fee=D("0.2"), fee_asset="ZUSD")
    sl.request_cancel(reason=R)
    sl.mark_canceled(reason=R)
    return [entry, sl, tp]


def populate(settings: Settings, events: int) -> int:
    app = open_orders_app(settings)
    try:
        batch: list[Order] = []
        for i in range(max(1, events // EVENTS_PER_SIGNAL)):
            batch += signal_orders(i)
            if len(batch) >= 150:
                app.save(*batch)
                batch = []
        if batch:
            app.save(*batch)
        return app.recorder.max_notification_id()
    finally:
        app.close()


def _settings(data_dir: str, url: str | None) -> Settings:
    return Settings(data_dir=Path(data_dir), database_url=url)


def driver_scan(settings: Settings, app) -> int:
    """Page through the stored events with the raw driver; returns the rows read."""
    n, last = 0, 0
    if settings.database_url is None:
        conn = sqlite3.connect(settings.data_dir / "orders.sqlite")
        try:
            while True:
                rows = conn.execute(
                    "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events "
                    "WHERE rowid > ? ORDER BY rowid LIMIT ?",
                    (last, PAGE),
                ).fetchall()
                if not rows:
                    return n
                n += len(rows)
                last = rows[-1][0]
        finally:
            conn.close()
    import psycopg

    t = parse_postgres_url(settings.database_url.get_secret_value())
    table = f'"{t.schema or "public"}"."{app.recorder.events_table_name}"'
    with psycopg.connect(host=t.host, port=t.port, dbname=t.dbname, user=t.user, password=t.password) as conn:
        while True:
            rows = conn.execute(
                f"SELECT notification_id, originator_id, originator_version, topic, state FROM {table} "
                "WHERE notification_id > %s ORDER BY notification_id LIMIT %s",
                (last, PAGE),
            ).fetchall()
            if not rows:
                return n
            n += len(rows)
            last = rows[-1][0]


def library_scan(app) -> int:
    n, start = 0, 1
    while True:
        rows = app.recorder.select_notifications(start=start, limit=1000)
        if not rows:
            return n
        n += len(rows)
        start = rows[-1].id + 1


def raw_write(lg) -> float:
    """Seconds the raw driver needs to write the rows a rebuild writes (their computation is not timed)."""
    from execledger.infrastructure.readmodels import tables as t
    from execledger.infrastructure.readmodels.database import append_rows, create_shadow, finish_load, read_records
    from execledger.infrastructure.readmodels.projection import OrdersProjection

    raw = t.TableSet(suffix="__raw")
    with lg.db.begin() as conn:
        for table in raw.views:
            table.drop(conn, checkfirst=True)
    load = create_shadow(lg.db, raw, "bench_raw")  # the same key-less load the rebuild does
    with lg.db.begin() as conn:
        for table in raw.views:
            for index in table.indexes:
                index.drop(conn, checkfirst=True)
    projection = OrdersProjection(lambda ids: {}, lambda ids: {}, max_cached=10**9)
    final_orders: dict[str, tuple] = {}
    final_signals: dict[str, tuple] = {}
    spent, last = 0.0, 0
    while True:
        records = read_records(lg.app, last, PAGE)
        if not records:
            break
        last = records[-1].id
        rows = projection.stage(records)
        projection.commit()
        final_orders.update((r[0], r) for r in rows.orders)
        final_signals.update((r[0], r) for r in rows.signals)
        started = time.perf_counter()
        with lg.db.begin() as conn:
            append_rows(conn, load.execution_reports, rows.reports, fresh=True)
            append_rows(conn, load.fills, rows.fills, fresh=True)
            append_rows(conn, load.decisions, rows.decisions, fresh=True)
        spent += time.perf_counter() - started
    started = time.perf_counter()
    finish_load(lg.db, load)
    with lg.db.begin() as conn:
        append_rows(conn, raw.orders, list(final_orders.values()), fresh=True)  # each order once: a lower bound
        append_rows(conn, raw.signals, list(final_signals.values()), fresh=True)
        for table in raw.views:
            for index in table.indexes:
                index.create(conn)
    spent += time.perf_counter() - started
    with lg.db.begin() as conn:
        for table in raw.views:
            table.drop(conn)
    return spent


def one_round(data_dir: str, url: str | None) -> dict:
    from execledger.infrastructure.bootstrap import open_ledger

    settings = _settings(data_dir, url)
    with open_ledger(settings) as lg:
        events = lg.app.recorder.max_notification_id()
        started = time.perf_counter()
        assert driver_scan(settings, lg.app) == events
        driver_s = time.perf_counter() - started
        started = time.perf_counter()
        assert library_scan(lg.app) == events
        library_s = time.perf_counter() - started
        started, cpu = time.perf_counter(), time.process_time()
        assert lg.projector.rebuild() == events
        rebuild_s, rebuild_cpu_s = time.perf_counter() - started, time.process_time() - cpu
        rebuild_rss = peak_rss_mb()  # before the floor's writer, which keeps every order's final row in memory
        write_s = raw_write(lg)
    floor_s = driver_s + write_s
    return {
        "events": events,
        "rebuild_s": round(rebuild_s, 3),
        "rebuild_events_per_s": round(events / rebuild_s),
        # this process's CPU only (PostgreSQL's server work is not in it): steadier than wall time on a shared box
        "rebuild_events_per_cpu_s": round(events / rebuild_cpu_s),
        "driver_scan_events_per_s": round(events / driver_s),
        "library_scan_events_per_s": round(events / library_s),
        "floor_events_per_s": round(events / floor_s),
        "rebuild_peak_rss_mb": rebuild_rss,
        "of_driver_scan": round(driver_s / rebuild_s, 3),
        "of_library_scan": round(library_s / rebuild_s, 3),
        "of_floor": round(floor_s / rebuild_s, 3),
    }


def measure(backend: str, events: int, n_rounds: int | None) -> dict:
    with backend_settings(backend) as settings:
        started = time.perf_counter()
        stored = populate(settings, events)
        populate_s = time.perf_counter() - started
        url = settings.database_url.get_secret_value() if settings.database_url else None
        result = rounds(one_round, str(settings.data_dir), url, n=n_rounds)
    return {"backend": backend, "populate_s": round(populate_s, 1), "stored_events": stored, **result}


def line(r: dict) -> str:
    return (
        f"{r['backend']:9s} {r['stored_events']:>9,} events: rebuild {fmt_spread(r['rebuild_s'], 2)} s, "
        f"{fmt_spread(r['rebuild_events_per_s'])} ev/s ({fmt_spread(r['rebuild_events_per_cpu_s'])} per CPU s); "
        f"{fmt_spread(r['of_library_scan'], 3)} of the library scan, {fmt_spread(r['of_driver_scan'], 3)} of the "
        f"driver scan, {fmt_spread(r['of_floor'], 3)} of the raw floor; peak RSS by the end of the rebuild "
        f"{fmt_spread(r['rebuild_peak_rss_mb'], 1)} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="45000", help="comma-separated log sizes (events)")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--name", default="projection_rebuild", help="the result file: bench/results/NAME.json")
    parser.add_argument("--rounds", type=int, default=None, help="default EXECLEDGER_BENCH_ROUNDS or 3")
    args = parser.parse_args()
    results = {}
    for backend in args.backends.split(","):
        for events in (int(x) for x in args.events.split(",")):
            r = measure(backend, events, args.rounds)
            results[f"{backend}_{r['stored_events']}"] = r
            print(line(r), flush=True)
    path = write_result(args.name, {"results": results})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
