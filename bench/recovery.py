"""Recovery time: from ``execledger run`` process start to "reconciled and accepting signals" (GET /v1/health
says trading.recovered) with N open orders in the store and on the venue.

A standalone simulator process holds the venue state; the ledger is populated through the real adapter; then the
service is started as a fresh process against both and timed until its start-up reconciliation is done.

Usage: .venv/bin/python bench/recovery.py [--orders 1000,10000] [--backends sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import ROOT, backend_settings, free_port, place_resting_orders, write_result

from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.kraken.adapter import KrakenExchange

EXECLEDGER = str(Path(sys.executable).with_name("execledger"))
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


async def populate(settings, n: int) -> None:
    with open_ledger(settings) as lg:
        exchange = KrakenExchange.from_settings(settings, tier=None)
        await place_resting_orders(lg.engine, exchange, n, prefix="r")  # 10,000 fit the simulator's 100,000 USD
        await exchange.close()


def measure(backend: str, n: int) -> dict:
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
            started = time.perf_counter()
            asyncio.run(populate(settings, n))
            populate_s = time.perf_counter() - started
            env = {
                **os.environ,
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
            started = time.perf_counter()
            service = subprocess.Popen([EXECLEDGER, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:

                def recovered() -> bool:
                    body = get_json(f"http://127.0.0.1:{api_port}/v1/health")
                    return bool(body and body["trading"].get("recovered"))

                wait_until(recovered, 600, "service recovered")
                recovery_s = time.perf_counter() - started
            finally:
                service.terminate()
                service.wait(30)
    finally:
        sim.kill()
        sim.wait(30)
    return {"open_orders": n, "populate_s": round(populate_s, 1), "start_to_recovered_s": round(recovery_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", default="1000,10000")
    parser.add_argument("--backends", default="sqlite")
    args = parser.parse_args()
    results = {}
    for backend in args.backends.split(","):
        for n in (int(x) for x in args.orders.split(",")):
            r = measure(backend, n)
            results[f"{backend}_{n}"] = r
            print(
                f"{backend:9s} {n:6d} open orders: process start -> reconciled and accepting signals in "
                f"{r['start_to_recovered_s']} s (populating took {r['populate_s']} s)"
            )
    path = write_result("recovery", {"results": results})
    print(f"written to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
