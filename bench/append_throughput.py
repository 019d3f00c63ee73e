"""Ledger append throughput against the raw database with the same batch size (ratio measured in one run).

Ledger: Order aggregates saved through the eventsourcing application (mapper, JSON transcoder, optimistic
concurrency), ``batch`` events per save. Raw: a plain insert + commit loop of rows of the same size into a
table of the same shape, ``batch`` rows per commit, on the same database file / server.

Each round runs in a fresh process (its own peak RSS); min / median / max over the rounds.

Usage: .venv/bin/python bench/append_throughput.py [--events 3000] [--batches 1,10] [--backends sqlite,postgres]
       [--rounds 3]
"""

from __future__ import annotations

import argparse
import sqlite3
import time
import uuid
from decimal import Decimal as D

from common import backend_settings, fmt_spread, rounds, write_result

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


def ledger_rate(settings, events: int, batch: int) -> tuple[float, int]:
    app = open_orders_app(settings)
    try:
        pending = orders(events)
        size = len(app.mapper.to_stored_event(pending[0].pending_events[0]).state)
        started = time.perf_counter()
        for i in range(0, events, batch):
            app.save(*pending[i : i + batch])
        return events / (time.perf_counter() - started), size
    finally:
        app.close()


def raw_rate(settings, events: int, batch: int, size: int) -> float:
    payload = b"x" * size
    if settings.database_url is None:
        conn = sqlite3.connect(settings.data_dir / "raw.sqlite", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE raw (id INTEGER PRIMARY KEY, originator_id TEXT, version INTEGER, topic TEXT,"
            " state BLOB, UNIQUE (originator_id, version))"
        )
        started = time.perf_counter()
        for _ in range(0, events, batch):
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO raw (originator_id, version, topic, state) VALUES (?, 1, 'domain.order:Order.Placed', ?)",
                [(uuid.uuid4().hex, payload) for _ in range(batch)],
            )
            conn.execute("COMMIT")
        rate = events / (time.perf_counter() - started)
        conn.close()
        return rate
    import psycopg

    t = parse_postgres_url(settings.database_url.get_secret_value())
    with psycopg.connect(host=t.host, port=t.port, dbname=t.dbname, user=t.user, password=t.password) as conn:
        conn.execute(f'SET search_path TO "{t.schema}"')
        conn.execute(
            "CREATE TABLE raw (id bigserial PRIMARY KEY, originator_id uuid, version int, topic text,"
            " state bytea, UNIQUE (originator_id, version))"
        )
        conn.commit()
        started = time.perf_counter()
        for _ in range(0, events, batch):
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO raw (originator_id, version, topic, state) "
                    "VALUES (%s, 1, 'domain.order:Order.Placed', %s)",
                    [(uuid.uuid4(), payload) for _ in range(batch)],
                )
            conn.commit()
        return events / (time.perf_counter() - started)


def one_round(backend: str, events: int, batch: int) -> dict:
    with backend_settings(backend) as settings:
        ledger, size = ledger_rate(settings, events, batch)
        raw = raw_rate(settings, events, batch, size)
    return {
        "ledger_events_per_s": round(ledger),
        "raw_rows_per_s": round(raw),
        "of_raw": round(ledger / raw, 3),
        "event_bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--batches", default="1,10")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    results: dict = {}
    for backend in args.backends.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            r = results[f"{backend}_batch{batch}"] = rounds(one_round, backend, args.events, batch, n=args.rounds)
            print(
                f"{backend:9s} {batch:3d} events a save: ledger {fmt_spread(r['ledger_events_per_s'])} ev/s, "
                f"raw {fmt_spread(r['raw_rows_per_s'])} rows/s: {fmt_spread(r['of_raw'], 3)} of raw; "
                f"peak RSS {fmt_spread(r['peak_rss_mb'], 1)} MiB",
                flush=True,
            )
    path = write_result("append_throughput", {"events": args.events, "results": results})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
