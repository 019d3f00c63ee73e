"""Shared helpers for benchmarks: isolated ledgers on each backend, timing, and writing results."""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = Path(os.environ.get("EXECLEDGER_BENCH_RESULTS", ROOT / "bench" / "results"))
PG_URL = os.environ.get("EXECLEDGER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")

from execledger.infrastructure.eventstore import parse_postgres_url, prepare_database
from execledger.infrastructure.settings import Settings


@contextmanager
def backend_settings(backend: str):
    """Settings for a fresh, throw-away store: a temp SQLite dir or a temp PostgreSQL schema."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="execledger-bench-") as tmp:
            yield Settings(data_dir=Path(tmp))
        return
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield Settings(data_dir=Path(tempfile.mkdtemp()), database_url=f"{PG_URL}{sep}schema={schema}")
    finally:
        t = parse_postgres_url(PG_URL)
        with psycopg.connect(
            host=t.host, port=t.port, dbname=t.dbname, user=t.user, password=t.password, autocommit=True
        ) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary_ms(values: list[float]) -> dict:
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 0.50), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "max_ms": round(max(ms), 3),
    }


ROUNDS = int(os.environ.get("EXECLEDGER_BENCH_ROUNDS", "3"))


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _child(conn, func, args) -> None:
    try:
        result = func(*args)
        result = {**result, "peak_rss_mb": peak_rss_mb()} if isinstance(result, dict) else result
        conn.send(("ok", result))
    except BaseException as exc:  # reported to the parent, which raises
        import traceback

        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def isolated(func: Callable, *args):
    """Run ``func(*args)`` in a fresh (spawned) process and return its result dict with the child's
    ``peak_rss_mb``: each measurement starts from a clean interpreter, so peak memory is its own."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, func, args))
    proc.start()
    child.close()
    try:
        status, value = parent.recv()
    except EOFError:
        proc.join()
        raise RuntimeError(f"benchmark process died (exit code {proc.exitcode})") from None
    proc.join()
    if status != "ok":
        raise RuntimeError(value)
    return value


def spread(values: list[float]) -> dict:
    """min / median / max of one figure over the rounds."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def rounds(func: Callable, *args, n: int | None = None) -> dict:
    """``func(*args)`` ``n`` times (default ``EXECLEDGER_BENCH_ROUNDS``, 3), each in its own process; every numeric
    figure of its result becomes min / median / max over the rounds, and ``rounds`` keeps the raw results."""
    results = [isolated(func, *args) for _ in range(n or ROUNDS)]
    summary: dict = {"rounds": len(results)}
    for key, value in results[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            summary[key] = spread([r[key] for r in results])
        else:
            summary[key] = value
    summary["each_round"] = results
    return summary


def fmt_spread(s, digits: int = 0, unit: str = "") -> str:
    """``min-max (median m)`` of a spread, or the plain value, with ``digits`` decimals."""

    def f(v):
        return f"{v:,.{digits}f}"

    if not isinstance(s, dict):
        return f"{f(s)}{unit}"
    if s["min"] == s["max"]:
        return f"{f(s['min'])}{unit}"
    return f"{f(s['min'])}-{f(s['max'])}{unit} (median {f(s['median'])})"


def write_result(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "command": " ".join([".venv/bin/python", os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        **data,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


def free_port() -> int:
    """A loopback port nothing listens on right now (also used as a deliberately dead endpoint)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def place_resting_orders(engine, exchange, n: int, *, prefix: str):
    """``n`` resting limit buys far below the market (3 USD each), placed through ``exchange``. Returns the
    TradingService that placed them (the one service of ``engine``)."""
    from execledger.application.service import ServiceConfig, TradingService

    service = TradingService(engine, exchange, ServiceConfig(deadman_enabled=False, retry_min_s=0.0))
    for i in range(n):
        engine.control.submit_signal(
            {
                "signal_id": f"{prefix}{i}",
                "pair": "XBT/USD",
                "side": "buy",
                "order_type": "limit",
                "quantity": "0.0001",
                "limit_price": "30000",
                "timeout_s": 86400,
            }
        )
        if (i + 1) % 50 == 0:  # the engine bounds entries waiting to be sent (max_pending_entries, 100)
            await service.send_pending()
    await service.send_pending()
    for _ in range(20):  # calls overtaken on the way (EAPI:Invalid nonce) were refused unexecuted: send them again
        if not engine.pending_submissions():
            break
        await service.send_pending()
    placed = sum(1 for o in engine.orders.values() if o.txid)
    assert placed == n, f"only {placed} of {n} orders were placed: " + next(
        (o.last_error for o in engine.orders.values() if o.last_error), ""
    )
    return service


def raw_insert(
    backend: str, rows: int, table: str = "raw", columns: str = "originator_id, version, topic, state"
) -> str:
    """The raw side's best form of a durable save: ONE multi-row ``INSERT`` of ``rows`` rows, run alone in
    autocommit (one statement, one transaction, one round trip on PostgreSQL; no BEGIN/COMMIT statements), which is
    how the ledger's recorders save too. ``backend``: ``sqlite`` (``?`` parameters) or ``postgres`` (``%s``)."""
    mark = "?" if backend == "sqlite" else "%s"
    row = "(" + ", ".join([mark, "1", mark, mark]) + ")"
    return f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([row] * rows)


def raw_commits(settings, batches: list[int], size: int) -> float:
    """Seconds for the raw driver to make the same durable writes: one transaction per entry of ``batches``, each
    inserting that many rows of ``size`` bytes into a table shaped like the event store's (unique originator and
    version) with one multi-row ``INSERT`` in autocommit (``raw_insert``), committed with the backend's default
    durability (SQLite WAL; PostgreSQL fsync on)."""
    import sqlite3

    payload = b"x" * size
    if settings.database_url is None:
        conn = sqlite3.connect(settings.data_dir / "raw.sqlite", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE raw (id INTEGER PRIMARY KEY, originator_id TEXT, version INTEGER, topic TEXT,"
                " state BLOB, UNIQUE (originator_id, version))"
            )
            rows = [[x for _ in range(n) for x in (uuid.uuid4().hex, "order:Order.Placed", payload)] for n in batches]
            started = time.perf_counter()
            for n, values in zip(batches, rows, strict=True):
                conn.execute(raw_insert("sqlite", n), values)
            return time.perf_counter() - started
        finally:
            conn.close()
    import psycopg

    t = parse_postgres_url(settings.database_url.get_secret_value())
    prepare_database(t)  # creates the schema
    with psycopg.connect(
        host=t.host, port=t.port, dbname=t.dbname, user=t.user, password=t.password, autocommit=True
    ) as conn:
        conn.execute(f'SET search_path TO "{t.schema}"')
        conn.execute(
            "CREATE TABLE raw (id bigserial PRIMARY KEY, originator_id uuid, version int, topic text,"
            " state bytea, UNIQUE (originator_id, version))"
        )
        rows = [[x for _ in range(n) for x in (uuid.uuid4(), "order:Order.Placed", payload)] for n in batches]
        started = time.perf_counter()
        for n, values in zip(batches, rows, strict=True):
            conn.execute(raw_insert("postgres", n), values, prepare=True)
        return time.perf_counter() - started
