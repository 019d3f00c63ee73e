"""Shared helpers for benchmarks: isolated ledgers on each backend, timing, and writing results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
PG_URL = os.environ.get("EXECLEDGER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")

from execledger.infrastructure.eventstore import parse_postgres_url  # noqa: E402
from execledger.infrastructure.settings import Settings  # noqa: E402


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


def write_result(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
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


async def place_resting_orders(engine, exchange, n: int, *, prefix: str) -> None:
    """``n`` resting limit buys far below the market (3 USD each), placed through ``exchange``."""
    from execledger.application.service import ServiceConfig, TradingService

    service = TradingService(engine, exchange, ServiceConfig(deadman_enabled=False))
    for i in range(n):
        engine.submit_signal(
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
        if (i + 1) % 500 == 0:
            await service.send_pending()
    await service.send_pending()
    placed = sum(1 for o in engine.orders.values() if o.txid)
    assert placed == n, f"only {placed} of {n} orders were placed: " + next(
        (o.last_error for o in engine.orders.values() if o.last_error), ""
    )
