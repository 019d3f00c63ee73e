"""Fill-to-stop-submission latency: from a fill report arriving to the stop-loss AddOrder leaving, with every
durable commit in between (fill + bracket decision + legs in one transaction, then the stop's Submitted), with
``--open`` resting orders already in the ledger. In the same run, the raw database makes the same commits (as many
transactions, with as many rows each, as the ledger made for that sample, counted at the recorder) and its latency
is reported beside ours: that is the floor. Each round runs in a fresh process (its own peak RSS).

``--freeze``: after the set-up, freeze what the process holds as the trading process does once start-up has
loaded its orders (``infrastructure/gcpolicy.py``); without it the cyclic collector walks the resting orders.

Usage: .venv/bin/python bench/bracket_latency.py [--brackets 1000] [--open 0] [--backends sqlite,postgres]
       [--rounds 3] [--freeze]        (a curve: --open 100,1000,10000 --brackets 300 --rounds 1)
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from common import backend_settings, fmt_spread, percentile, rounds, write_result

from execledger.application.ports import FillReport, SystemClock
from execledger.application.service import ServiceConfig, TradingService
from execledger.domain.position import exits_of
from execledger.domain.values import OrderRole
from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.eventstore import parse_postgres_url, prepare_database
from execledger.infrastructure.gcpolicy import freeze_long_lived
from tests.fakes import FakeExchange


class StampingExchange(FakeExchange):
    """The suite's in-memory venue (``tests/fakes.py``, the whole ExchangePort) that stamps when each AddOrder
    leaves: the stop-loss leg's stamp ends a sample."""

    def __init__(self):
        super().__init__(SystemClock())
        self.sent_at: dict[str, float] = {}

    async def place(self, request, *, still_wanted=None):
        self.sent_at[request.client_order_id] = time.perf_counter()
        return await super().place(request, still_wanted=still_wanted)


def signal(i: int, **extra) -> dict:
    return {
        "signal_id": f"b{i}",
        "pair": "XBT/USD",
        "side": "buy",
        "order_type": "limit",
        "quantity": "0.01",
        "limit_price": "60000",
        **extra,
    }


def entry_fill(i: int, entry) -> FillReport:
    """The stream's report of ``entry`` filling whole at 60,000 (trade ``T<i>``)."""
    return FillReport(
        trade_id=f"T{i:06d}",
        venue_order_id=entry.txid,
        last_qty=Decimal("0.01"),
        last_px=Decimal("60000"),
        commission=Decimal("0"),
        commission_asset="ZUSD",
        ts_event=datetime.now(UTC),
        source="ws",
        client_order_id=entry.cl_ord_id,
    )


async def measure(
    backend: str, brackets: int, open_orders: int, freeze: bool = False
) -> tuple[list[float], list[list[int]], int]:
    with backend_settings(backend) as settings, open_ledger(settings) as lg:
        exchange = StampingExchange()
        service = TradingService(lg.engine, exchange, ServiceConfig(deadman_enabled=False))
        for i in range(open_orders):  # resting entries without brackets: the book the engine carries meanwhile
            lg.engine.control.submit_signal(signal(i, signal_id=f"rest{i}", limit_price="30000", timeout_s=86400))
            if (i + 1) % 50 == 0:  # the engine bounds entries waiting to be sent (max_pending_entries, 100)
                await service.send_pending()
        entries = []
        for i in range(brackets):
            entries.append(lg.engine.control.submit_signal(signal(i, sl_price="59000", tp_price="61000")).order.id)
            if (i + 1) % 50 == 0:
                await service.send_pending()
        await service.send_pending()
        batches: list[tuple[float, int]] = []  # (when the insert began, events): commits before the stamp count
        stored_bytes = [0, 0]
        insert = lg.app.recorder.insert_events

        def counting(stored_events, **kwargs):
            batches.append((time.perf_counter(), len(stored_events)))
            stored_bytes[0] += sum(len(e.state) for e in stored_events)
            stored_bytes[1] += len(stored_events)
            return insert(stored_events, **kwargs)

        lg.app.recorder.insert_events = counting
        insert_rows = getattr(lg.app.recorder, "insert_rows", None)
        if insert_rows is not None:  # the unit of work's save path: four values an event, state last

            def counting_rows(rows, tracking=None):
                batches.append((time.perf_counter(), len(rows) // 4))
                stored_bytes[0] += sum(len(state) for state in rows[3::4])
                stored_bytes[1] += len(rows) // 4
                return insert_rows(rows, tracking)

            lg.app.recorder.insert_rows = counting_rows
        if freeze:
            freeze_long_lived()
        samples, per_sample = [], []
        for i, entry_id in enumerate(entries):
            fill = entry_fill(i, lg.engine.orders[entry_id])
            batches.clear()
            started = time.perf_counter()
            await service.apply(fill)
            await service.send_pending()
            stop = next(
                o for o in exits_of(lg.engine.orders[entry_id], lg.engine.orders) if o.role is OrderRole.STOP_LOSS
            )
            sent = exchange.sent_at[stop.cl_ord_id]
            samples.append(sent - started)
            per_sample.append([n for at, n in batches if at < sent])
        return samples, per_sample, stored_bytes[0] // max(1, stored_bytes[1])


def raw_latencies(backend: str, per_sample: list[list[int]], size: int) -> list[float]:
    """Each sample's commits made by the raw driver, timed like the ledger's sample."""
    payload = b"x" * size
    out = []
    with backend_settings(backend) as settings:
        if settings.database_url is None:
            conn = sqlite3.connect(settings.data_dir / "raw.sqlite", isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE raw (id INTEGER PRIMARY KEY, oid TEXT, v INTEGER, state BLOB, UNIQUE (oid, v))")
            for batches in per_sample:
                started = time.perf_counter()
                for n in batches:
                    conn.execute("BEGIN")
                    conn.executemany(
                        "INSERT INTO raw (oid, v, state) VALUES (?, 1, ?)",
                        [(uuid.uuid4().hex, payload) for _ in range(n)],
                    )
                    conn.execute("COMMIT")
                out.append(time.perf_counter() - started)
            conn.close()
            return out
        import psycopg

        t = parse_postgres_url(settings.database_url.get_secret_value())
        prepare_database(t)
        with psycopg.connect(host=t.host, port=t.port, dbname=t.dbname, user=t.user, password=t.password) as conn:
            conn.execute(f'SET search_path TO "{t.schema}"')
            conn.execute("CREATE TABLE raw (id bigserial PRIMARY KEY, oid uuid, v int, state bytea, UNIQUE (oid, v))")
            conn.commit()
            for batches in per_sample:
                started = time.perf_counter()
                for n in batches:
                    with conn.cursor() as cur:
                        cur.executemany(
                            "INSERT INTO raw (oid, v, state) VALUES (%s, 1, %s)",
                            [(uuid.uuid4(), payload) for _ in range(n)],
                        )
                    conn.commit()
                out.append(time.perf_counter() - started)
        return out


def one_round(backend: str, brackets: int, open_orders: int, freeze: bool = False) -> dict:
    samples, per_sample, size = asyncio.run(measure(backend, brackets, open_orders, freeze))
    raw = raw_latencies(backend, per_sample, size)

    def ms(values, q):
        return round(percentile(values, q) * 1000, 3)

    return {
        "open_orders": open_orders,
        "p50_ms": ms(samples, 0.5),
        "p99_ms": ms(samples, 0.99),
        "raw_p50_ms": ms(raw, 0.5),
        "raw_p99_ms": ms(raw, 0.99),
        "commits_per_sample": round(sum(len(b) for b in per_sample) / len(per_sample), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brackets", type=int, default=1000)
    parser.add_argument("--open", default="0", help="comma-separated numbers of resting orders (a curve)")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--name", default="bracket_latency", help="the result file: bench/results/NAME.json")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--freeze", action="store_true", help="freeze what the set-up left, as start-up does")
    args = parser.parse_args()
    results = {}
    for backend in args.backends.split(","):
        for n in (int(x) for x in args.open.split(",")):
            r = results[f"{backend}_open{n}"] = rounds(one_round, backend, args.brackets, n, args.freeze, n=args.rounds)
            print(
                f"{backend:9s} {n:6d} open, {args.brackets} fills -> stop AddOrder: "
                f"p50 {fmt_spread(r['p50_ms'], 2)} ms, p99 {fmt_spread(r['p99_ms'], 2)} ms; "
                f"raw same commits p50 {fmt_spread(r['raw_p50_ms'], 2)} ms, "
                f"p99 {fmt_spread(r['raw_p99_ms'], 2)} ms ({r['commits_per_sample']['median']} commits); "
                f"peak RSS {fmt_spread(r['peak_rss_mb'], 1)} MiB",
                flush=True,
            )
    path = write_result(args.name, {"brackets": args.brackets, "results": results})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
