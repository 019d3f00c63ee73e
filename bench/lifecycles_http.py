"""Lifecycles through the product's front door: a real ``execledger run`` process (HTTP API, commands log,
projections, trading) against a standalone ``execledger simulator`` process, driven as a trading system would.
``bench/lifecycles.py`` drives the engine in-process (no HTTP, no commands log, no read models); this one measures
what a client of ``POST /v1/signals`` gets.

Each wave posts ``--concurrency`` market buys of 0.01 XBT/USD with a stop-loss and a take-profit (retrying a 503 or
a 422 after 10 ms), waits until the venue holds every wave's stop-loss, moves the simulator's price through the
take-profit, and waits until the venue holds no open order (each position sold, each stop canceled), then puts the
price back. ``--resting-leg`` is ``EXECLEDGER_RESTING_LEG``: ``stop_loss`` (the default: the ledger holds the
take-profit on the public price) or ``both`` (both legs rest; the account is then funded with base beforehand, as
Kraken holds the base of an untriggered stop and a take-profit beside it needs its own).

Usage: .venv/bin/python bench/lifecycles_http.py [--lifecycles 200] [--concurrency 10,50]
       [--resting-leg stop_loss,both] [--backends sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from common import backend_settings, write_result
from load import _env, running

from tests.faults.harness import free_port

PAIR = "XBT/USD"
LOW, HIGH = "67000.0", "70010.0"


async def _post(http: aiohttp.ClientSession, api: str, sid: str, refused: list[int]) -> None:
    body = {
        "pair": PAIR,
        "side": "buy",
        "order_type": "market",
        "quantity": "0.01",
        "sl_price": "60000",
        "tp_price": "70000",
    }
    for attempt in range(1000):
        async with http.post(f"{api}/v1/signals", json={**body, "signal_id": f"{sid}-{attempt}"}) as r:
            await r.read()
            if r.status == 201:
                return
        refused[0] += 1
        await asyncio.sleep(0.01)
    raise RuntimeError(f"signal {sid} refused 1,000 times")


async def _pause(since: float, what: str) -> None:
    if time.perf_counter() - since > 60:
        raise TimeoutError(f"{what}: not within 60 s")
    await asyncio.sleep(0.005)


async def _waves(http, api: str, sim: str, n: int, c: int) -> dict:
    async def price(p: str) -> None:
        async with http.post(f"{sim}/_sim/price", json={"pair": PAIR, "price": p}) as r:
            r.raise_for_status()

    async def open_orders() -> list[dict]:
        async with http.get(f"{sim}/_sim/orders") as r:
            return (await r.json()).get("XXBTZUSD", {}).get("open", [])

    await price(LOW)
    refused, entered, closed = [0], [], []
    started = time.perf_counter()
    for wave in range(0, n, c):
        t0 = time.perf_counter()
        await asyncio.gather(*(_post(http, api, f"w{wave}-{k}", refused) for k in range(c)))
        while sum(o["ordertype"] == "stop-loss" for o in await open_orders()) < c:
            await _pause(t0, "the wave's stop-losses resting")
        t1 = time.perf_counter()
        await price(HIGH)
        while await open_orders():
            await _pause(t1, "the wave's positions closed")
        t2 = time.perf_counter()
        await price(LOW)
        entered.append(t1 - t0)
        closed.append(t2 - t1)
    took = time.perf_counter() - started
    return {
        "lifecycles_per_s": round(n / took, 1),
        "wave_signals_to_stops_resting_ms": round(statistics.median(entered) * 1000, 1),
        "wave_take_profit_to_flat_ms": round(statistics.median(closed) * 1000, 1),
        "refused_and_posted_again": refused[0],
    }


async def run(backend: str, n: int, c: int, resting_leg: str) -> dict:
    with backend_settings(backend) as settings, tempfile.TemporaryDirectory() as tmp:
        env = _env(settings, free_port(), free_port(), "none", 1000) | {"EXECLEDGER_RESTING_LEG": resting_leg}
        balances = {"XXBT": "1000" if resting_leg == "both" else "0", "ZUSD": "1000000000"}
        async with running(env, Path(tmp), tier="none", balances=balances, timeout_s=60) as it:
            return await _waves(it.http, it.api, it.sim_url, n, c)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifecycles", type=int, default=200)
    parser.add_argument("--concurrency", default="10,50")
    parser.add_argument("--resting-leg", default="stop_loss")
    parser.add_argument("--backends", default="sqlite")
    parser.add_argument("--name", default="lifecycles_http")
    args = parser.parse_args()
    results: dict = {}
    for backend in args.backends.split(","):
        for leg in args.resting_leg.split(","):
            for c in (int(x) for x in args.concurrency.split(",")):
                r = asyncio.run(run(backend, args.lifecycles, c, leg))
                results[f"{backend}/{leg}/{c}"] = r
                print(
                    f"{backend:<8} resting leg {leg:<9} {args.lifecycles} lifecycles, {c} at a time, through HTTP: "
                    f"{r['lifecycles_per_s']}/s (a wave: signals -> stops resting "
                    f"{r['wave_signals_to_stops_resting_ms']} ms, take-profit -> flat "
                    f"{r['wave_take_profit_to_flat_ms']} ms; refused and posted again "
                    f"{r['refused_and_posted_again']})"
                )
    print(f"written to {write_result(args.name, results)}")


if __name__ == "__main__":
    main()
