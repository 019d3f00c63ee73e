"""Recovery time: from ``execledger run`` process start to "reconciled and accepting signals" (GET /v1/health
says trading.recovered) with N open orders in the store and on the venue.

A standalone simulator process holds the venue state; the ledger is populated through the real adapter; then the
service is started as a fresh process against both and timed until its start-up reconciliation is done.

Each round starts a fresh service process on the same store and venue (its peak RSS is read from /proc); the
raw database's part of the work, reading the whole log once with the driver, is timed in the same run.

Populating is not what is measured, and its cost was the durable commits (3 an order, 1 ms each on SQLite: 100,000
orders would take about 15 minutes): the populating process writes the same events without waiting for the disk
(SQLite ``synchronous=OFF``, PostgreSQL ``synchronous_commit=off``), the venue's account is funded for ``n`` orders,
and the service started afterwards is the real one with the backend's default durability.

``--book bracketed``: N filled positions instead, each with its stop-loss resting on the venue and its take-profit
held by the ledger (the default ``resting_leg``), populated through the same adapter (``place_bracketed_positions``).

Usage: .venv/bin/python bench/recovery.py [--orders 1000,10000,100000] [--backends sqlite,postgres] [--rounds 3]
       [--book resting|bracketed]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from common import ROUNDS, backend_settings, fmt_spread, free_port, place_resting_orders, spread, write_result

from execledger.domain.values import OrderRole
from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.kraken.adapter import KrakenExchange

EXECLEDGER = str(Path(sys.executable).with_name("execledger"))
BRACKETED = {
    "pair": "XBT/USD",
    "side": "buy",
    "order_type": "market",
    "quantity": "0.0001",
    "sl_price": "60000",
    "tp_price": "70000",
}
KEY, SECRET = "bench-key", base64.b64encode(b"bench-secret-bytes-0123456789abcdef").decode()


def get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.loads(r.read())
    except OSError:
        return None


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # a process boundary: bounded polling is the only way to observe it
        if predicate():
            return
        time.sleep(0.02)
    raise TimeoutError(what)


async def populate(settings, n: int, book: str = "resting") -> None:
    with open_ledger(settings) as lg:
        exchange = KrakenExchange.from_settings(settings, tier=None)
        if book == "bracketed":
            await place_bracketed_positions(lg.engine, exchange, n)
        else:
            await place_resting_orders(lg.engine, exchange, n, prefix="r")
        await exchange.close()


async def place_bracketed_positions(engine, exchange, n: int) -> None:
    """``n`` positions as the service makes them: a market buy with ``sl_price`` and ``tp_price``, filled by the
    simulator at its mark (65,000), the fill read back over REST (``poll_once``: OpenOrders, TradesHistory,
    QueryOrders), then the protective leg the policy decides sent: with the default ``resting_leg`` the stop-loss
    (60,000) rests on the venue and the take-profit (70,000) is held by the ledger. In batches of 50 (the engine
    bounds entries waiting to be sent)."""
    from execledger.application.service import ServiceConfig, TradingService

    service = TradingService(engine, exchange, ServiceConfig(deadman_enabled=False, retry_min_s=0.0))
    done = 0
    while done < n:
        batch = min(50, n - done)
        for i in range(done, done + batch):
            engine.control.submit_signal({**BRACKETED, "signal_id": f"b{i}"})
        await service.send_pending()
        await service.poll_once()  # the entries' fills: each decides its stop-loss
        await service.send_pending()
        done += batch
    for _ in range(20):  # calls overtaken on the way (EAPI:Invalid nonce) were refused unexecuted: send them again
        if not engine.pending_submissions():
            break
        await service.poll_once()
        await service.send_pending()
    stops = sum(1 for o in engine.orders.values() if o.role is OrderRole.STOP_LOSS and o.txid and not o.is_terminal)
    filled = sum(1 for o in engine.orders.values() if o.role is OrderRole.ENTRY and o.remaining_quantity == 0)
    assert stops == filled == n, f"{filled} of {n} entries filled, {stops} stop-losses resting"


@contextmanager
def commits_without_fsync():
    """In this (populating) process only: SQLite connections with ``synchronous=OFF``, PostgreSQL sessions with
    ``synchronous_commit=off`` (libpq reads ``PGOPTIONS``). The same rows are written; only the wait for the disk
    at each commit is skipped. The service processes timed later are started without either."""
    connect = sqlite3.connect

    def fast(*args, **kwargs):
        conn = connect(*args, **kwargs)
        conn.execute("PRAGMA synchronous=OFF")
        return conn

    before = os.environ.get("PGOPTIONS")
    sqlite3.connect = fast
    os.environ["PGOPTIONS"] = "-c synchronous_commit=off"
    try:
        yield
    finally:
        sqlite3.connect = connect
        if before is None:
            del os.environ["PGOPTIONS"]
        else:
            os.environ["PGOPTIONS"] = before


def sim_post(sim_port: int, path: str, body: dict) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{sim_port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        r.read()


def fund_the_account(sim_port: int, n: int) -> None:
    """Enough USD on the simulator's account for ``n`` buys of up to 6.5 USD (it starts with 100,000)."""
    sim_post(sim_port, "/_sim/balances", {"ZUSD": str(max(100_000, 10 * n))})


def peak_rss_of(pid: int) -> float:
    """A live process's peak resident set (VmHWM), MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def start_to_recovered(env: dict, api_port: int) -> tuple[float, float]:
    started = time.perf_counter()
    service = subprocess.Popen([EXECLEDGER, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def recovered() -> bool:
            if service.poll() is not None:
                raise RuntimeError(f"the service exited with {service.returncode} before it recovered")
            body = get_json(f"http://127.0.0.1:{api_port}/v1/health")
            return bool(body and body["trading"].get("recovered"))

        wait_until(recovered, 900, "service recovered")
        seconds = time.perf_counter() - started
        rss = peak_rss_of(service.pid)
    finally:
        service.terminate()
        service.wait(60)
    return seconds, rss


def compile_sources() -> None:
    """Write the package's bytecode first, as ``pip install`` does in a deployment: with PYTHONDONTWRITEBYTECODE set
    (as on this machine) an editable install otherwise recompiles every module at each start, which cProfile showed
    to be 2.2 s of a 20 s start under load, and is not what recovery costs."""
    import compileall

    root = Path(__file__).resolve().parents[1]
    for package in ("domain", "application", "infrastructure"):
        compileall.compile_dir(root / package, quiet=1)


def measure(backend: str, n: int, n_rounds: int, book: str = "resting") -> dict:
    from projection_rebuild import driver_scan

    compile_sources()

    sim_port, api_port = free_port(), free_port()
    sim = subprocess.Popen(
        [EXECLEDGER, "simulator", "--port", str(sim_port), "--key", KEY, "--secret", SECRET, "--tier", "none"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "EXECLEDGER_DATA_DIR": "/tmp"},
    )
    try:
        wait_until(lambda: get_json(f"http://127.0.0.1:{sim_port}/0/public/Time"), 30, "simulator up")
        with backend_settings(backend) as base:
            settings = base.with_exchange(
                url=f"http://127.0.0.1:{sim_port}", ws_url=f"ws://127.0.0.1:{sim_port}/v2", key=KEY, secret=SECRET
            )
            fund_the_account(sim_port, n)
            if book == "bracketed":  # market entries fill here, between the stop (60,000) and the take-profit
                sim_post(sim_port, "/_sim/price", {"pair": "XBT/USD", "price": "65000"})
            started = time.perf_counter()
            with commits_without_fsync():
                asyncio.run(populate(settings, n, book))
            populate_s = time.perf_counter() - started
            env = {
                **{k: v for k, v in os.environ.items() if k != "PGOPTIONS"},
                "EXECLEDGER_DATA_DIR": str(settings.data_dir),
                "EXECLEDGER_KRAKEN_URL": settings.kraken_url,
                "EXECLEDGER_KRAKEN_WS_URL": settings.kraken_ws_url,
                "EXECLEDGER_KRAKEN_KEY": KEY,
                "EXECLEDGER_KRAKEN_SECRET": SECRET,
                "EXECLEDGER_KRAKEN_TIER": "none",
                "EXECLEDGER_API_PORT": str(api_port),
            }
            if settings.database_url:
                env["EXECLEDGER_DATABASE_URL"] = settings.database_url.get_secret_value()
            figures = [start_to_recovered(env, api_port) for _ in range(n_rounds)]
            with open_ledger(settings) as lg:
                events = lg.app.recorder.max_notification_id()
                started = time.perf_counter()
                driver_scan(settings, lg.app)
                scan_s = time.perf_counter() - started
    finally:
        sim.kill()
        sim.wait(30)
    return {
        "book": book,
        "open_orders": n,
        "events": events,
        "populate_s": round(populate_s, 1),
        "rounds": n_rounds,
        "start_to_recovered_s": spread([round(f[0], 2) for f in figures]),
        "service_peak_rss_mb": spread([f[1] for f in figures]),
        "raw_scan_of_the_log_s": round(scan_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", default="1000,10000,100000")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--name", default="recovery", help="the result file: bench/results/NAME.json")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument(
        "--book",
        choices=("resting", "bracketed"),
        default="resting",
        help="resting: N limit buys resting on the venue; bracketed: N filled positions, each with its stop-loss "
        "resting on the venue and its take-profit held by the ledger",
    )
    args = parser.parse_args()
    results = {}
    for backend in args.backends.split(","):
        for n in (int(x) for x in args.orders.split(",")):
            r = measure(backend, n, args.rounds, args.book)
            results[f"{backend}_{n}"] = r
            what = "open orders" if args.book == "resting" else "bracketed positions"
            print(
                f"{backend:9s} {n:6d} {what} ({r['events']} events): process start -> reconciled and accepting "
                f"signals {fmt_spread(r['start_to_recovered_s'], 2)} s; raw scan of the log "
                f"{r['raw_scan_of_the_log_s']} s; service peak RSS {fmt_spread(r['service_peak_rss_mb'], 1)} MiB "
                f"(populating took {r['populate_s']} s)",
                flush=True,
            )
    path = write_result(args.name, {"results": results})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
