"""Ledger append throughput against the raw database with the same batch size (ratio measured in one run).

Ledger: Order aggregates committed through the product's one commit path (``UnitOfWork.commit`` ->
``app.events.put`` -> the Orders recorder: mapper, JSON transcoder, optimistic concurrency on (originator_id,
version), notification ids in commit order, NOTIFY on PostgreSQL), ``batch`` events a commit. Raw: the driver's
own insert + commit loop of rows of the same size into a table with the same columns and the same two unique
indexes ((originator_id, version) and the notification id), ``batch`` rows a commit, on the same database file
directory / server, with the same durability (SQLite WAL with its default synchronous=FULL; PostgreSQL fsync on).
Each side's ids are made before it is timed (the ledger's orders, the raw rows' originator ids): generating a
UUID costs 1.5-2.5 us (os.urandom), which the raw side paid inside its timing until 2026-12-02.

The two sides run interleaved in one process (``--segments`` alternating slices of the events, the order swapped
every slice), so a machine that drifts slows both alike and the ratio holds. Each round runs in a fresh process
(its own peak RSS); min / median / max over the rounds.

Usage: .venv/bin/python bench/append_throughput.py [--events 3000] [--batches 1,10] [--backends sqlite,postgres]
       [--rounds 3] [--segments 10]
"""

from __future__ import annotations

import argparse
import sqlite3
import time
import uuid
from collections.abc import Callable
from decimal import Decimal as D

from common import backend_settings, fmt_spread, raw_insert, rounds, write_result

from execledger.application.order_index import OrderIndex
from execledger.application.unit_of_work import UnitOfWork
from execledger.domain.order import Order
from execledger.domain.reasons import reason
from execledger.domain.values import OrderRole, OrderType, Side
from execledger.infrastructure.eventstore import open_orders_app, parse_postgres_url

R = reason("bench", "append")


def orders(n: int) -> list[Order]:
    return [
        Order.place(
            order_id=uuid.uuid4(),
            signal_id=f"a{i}",
            role=OrderRole.ENTRY,
            pair="XXBTZUSD",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=D("0.01"),
            limit_price=D("60000"),
            cl_ord_id=str(uuid.uuid4()),
            reason=R,
        )
        for i in range(n)
    ]


Writer = Callable[[int], None]  # writes the next ``n`` events / rows, ``batch`` a transaction


def ledger_writer(app, events: int, batch: int) -> Writer:
    """Commits prepared orders through the unit of work, ``batch`` a commit."""
    uow = UnitOfWork(app, OrderIndex())
    pending = orders(events)
    done = 0

    def write(n: int) -> None:
        nonlocal done
        for i in range(done, done + n, batch):
            uow.commit(*pending[i : min(i + batch, done + n)])
        done += n

    return write


COLUMNS = "originator_id, originator_version, topic, state"  # the raw tables' columns, as the event store's


def raw_sqlite_writer(settings, batch: int, size: int, topic: str, events: int):
    conn = sqlite3.connect(settings.data_dir / "raw.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE raw (originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB, "
        "PRIMARY KEY (originator_id, originator_version))"  # a rowid table: the rowid is the notification id
    )
    payload = b"x" * size
    ids = iter([uuid.uuid4().hex for _ in range(events)])  # made beforehand, as the ledger's orders are

    def write(n: int) -> None:  # one multi-row INSERT in autocommit a save, as the ledger's recorder does
        for i in range(0, n, batch):
            k = min(batch, n - i)
            conn.execute(
                raw_insert("sqlite", k, columns=COLUMNS), [x for _ in range(k) for x in (next(ids), topic, payload)]
            )

    return write, conn


def raw_postgres_writer(settings, batch: int, size: int, topic: str, events: int):
    import psycopg

    t = parse_postgres_url(settings.database_url.get_secret_value())
    conn = psycopg.connect(host=t.host, port=t.port, dbname=t.dbname, user=t.user, password=t.password, autocommit=True)
    conn.execute(f'SET search_path TO "{t.schema}"')
    conn.execute(
        "CREATE TABLE raw (originator_id uuid NOT NULL, originator_version bigint NOT NULL, topic text, state bytea,"
        " notification_id bigserial, PRIMARY KEY (originator_id, originator_version))"
    )
    conn.execute("CREATE UNIQUE INDEX raw_notification_id ON raw (notification_id)")
    payload = b"x" * size
    ids = iter([uuid.uuid4() for _ in range(events)])  # made beforehand, as the ledger's orders are

    def write(n: int) -> None:  # one multi-row INSERT in autocommit a save: one round trip, as the ledger's saves
        for i in range(0, n, batch):
            k = min(batch, n - i)
            values = [x for _ in range(k) for x in (next(ids), topic, payload)]
            conn.execute(raw_insert("postgres", k, columns=COLUMNS), values, prepare=True)

    return write, conn


def interleaved(ledger: Writer, raw: Writer, events: int, segments: int) -> dict[str, float]:
    """Wall and this process's CPU seconds each side took for ``events``, written in ``segments`` alternating
    slices (ABBA order): keys ``ledger``, ``raw``, ``ledger_cpu``, ``raw_cpu``."""
    took = {"ledger": 0.0, "raw": 0.0, "ledger_cpu": 0.0, "raw_cpu": 0.0}
    sides = [("ledger", ledger), ("raw", raw)]
    step = -(-events // segments)
    for k, start in enumerate(range(0, events, step)):
        n = min(step, events - start)
        for name, write in sides if k % 2 == 0 else sides[::-1]:
            began, began_cpu = time.perf_counter(), time.process_time()
            write(n)
            took[name] += time.perf_counter() - began
            took[f"{name}_cpu"] += time.process_time() - began_cpu
    return took


def one_round(backend: str, events: int, batch: int, segments: int = 10) -> dict:
    with backend_settings(backend) as settings:
        app = open_orders_app(settings)
        try:
            sample = orders(1)[0].pending_events[0]
            stored = app.mapper.to_stored_event(sample)
            size = len(stored.state)
            make_raw = raw_sqlite_writer if settings.database_url is None else raw_postgres_writer
            raw, conn = make_raw(settings, batch, size, stored.topic, events)
            try:
                took = interleaved(ledger_writer(app, events, batch), raw, events, segments)
            finally:
                conn.close()
        finally:
            app.close()
    return {
        "ledger_events_per_s": round(events / took["ledger"]),
        "raw_rows_per_s": round(events / took["raw"]),
        "of_raw": round(took["raw"] / took["ledger"], 3),
        # CPU of this process a row (the database server's own CPU is not in it): the ledger's Python cost,
        # which the commit latency of a loaded machine hides in the rates.
        "ledger_cpu_us_per_event": round(took["ledger_cpu"] / events * 1e6, 1),
        "raw_cpu_us_per_row": round(took["raw_cpu"] / events * 1e6, 1),
        "event_bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--batches", default="1,10")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--segments", type=int, default=10, help="alternating ledger/raw slices a round")
    args = parser.parse_args()
    results: dict = {}
    for backend in args.backends.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            r = results[f"{backend}_batch{batch}"] = rounds(
                one_round, backend, args.events, batch, args.segments, n=args.rounds
            )
            print(
                f"{backend:9s} {batch:3d} events a save: ledger {fmt_spread(r['ledger_events_per_s'])} ev/s, "
                f"raw {fmt_spread(r['raw_rows_per_s'])} rows/s: {fmt_spread(r['of_raw'], 3)} of raw; CPU "
                f"{fmt_spread(r['ledger_cpu_us_per_event'], 1)} vs {fmt_spread(r['raw_cpu_us_per_row'], 1)} us; "
                f"peak RSS {fmt_spread(r['peak_rss_mb'], 1)} MiB",
                flush=True,
            )
    path = write_result("append_throughput", {"events": args.events, "segments": args.segments, "results": results})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
