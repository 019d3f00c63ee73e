"""REST calls spent per minute to monitor 1, 10 and 100 open orders, with the WS stream healthy and with it down.

The whole service runs (WS stream + REST poller + periodic reconciliation) against the in-process simulator with
the adapter modelling Kraken's Starter tier (REST counter 15, decay 0.33/s). After start-up recovery, the
simulator's request log is counted over a window of real time and scaled to a minute: calls by method, and the
points they cost on Kraken's REST counter (TradesHistory 2, AddOrder/CancelOrder 0: they use the trading counter).
"WS down" points the stream at a closed port, so REST polling carries the monitoring alone.

The window starts when start-up recovery is done and lasts ``--cycles`` whole reconciliation intervals plus 5 s, so
it holds exactly that many periodic reconciliations (a 60 s window after a 60 s reconciliation missed it, and
understated the cost). Calls are reported per minute and per reconciliation cycle.

Usage: .venv/bin/python bench/rest_monitoring.py [--orders 100,1000] [--cycles 2] [--reconcile-interval 60]
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter

from common import backend_settings, free_port, place_resting_orders, write_result

from execledger.application.service import ServiceConfig, TradingService
from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.kraken.adapter import KrakenExchange
from execledger.infrastructure.kraken.ratelimit import Tier
from execledger.infrastructure.simulator import KrakenSimulator

COST = {"TradesHistory": 2, "Ledgers": 2, "QueryLedgers": 2, "AddOrder": 0, "CancelOrder": 0}


async def measure(n: int, ws_healthy: bool, cycles: int, interval: float) -> dict:
    window = cycles * interval + 5.0
    async with KrakenSimulator(balances={"ZUSD": "10000000"}, tier=None) as sim:
        with backend_settings("sqlite") as base:
            ws_url = sim.ws_url if ws_healthy else f"ws://127.0.0.1:{free_port()}/v2"
            settings = base.with_exchange(url=sim.rest_url, ws_url=ws_url, key=sim.key, secret=sim.secret)
            with open_ledger(settings) as lg:
                filler = KrakenExchange.from_settings(settings, tier=None)
                await place_resting_orders(lg.engine, filler, n, prefix="m")
                await filler.close()
                exchange = KrakenExchange.from_settings(settings, tier=Tier.STARTER)
                service = TradingService(
                    lg.engine, exchange, ServiceConfig(deadman_enabled=True, reconcile_interval_s=interval)
                )
                worker = asyncio.create_task(service.run())
                await asyncio.wait_for(service.recovered.wait(), 120)
                start_at = sim.clock.now()
                await asyncio.sleep(window)  # measuring a rate over real time: the window *is* the measurement
                calls = Counter(r.method for r in sim.requests() if r.time >= start_at and r.method)
                await service.stop()
                await worker
                await exchange.close()
    scale = 60.0 / window
    per_minute = {m: round(c * scale, 1) for m, c in sorted(calls.items())}
    points = round(sum(c * COST.get(m, 1) for m, c in calls.items()) * scale, 1)
    return {
        "open_orders": n,
        "ws": "healthy" if ws_healthy else "down",
        "window_s": window,
        "reconciliations": cycles,
        "calls_per_min": round(sum(calls.values()) * scale, 1),
        "calls_per_cycle": {m: round(c / cycles, 1) for m, c in sorted(calls.items())},
        "counter_points_per_min": points,
        "by_method_per_min": per_minute,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", default="100,1000")
    parser.add_argument("--cycles", type=int, default=2, help="whole reconciliation intervals in the window")
    parser.add_argument("--reconcile-interval", type=float, default=60.0, help="the service's, 60 s by default")
    args = parser.parse_args()
    results = {}
    for healthy in (True, False):
        for n in (int(x) for x in args.orders.split(",")):
            r = asyncio.run(measure(n, healthy, args.cycles, args.reconcile_interval))
            results[f"{r['ws']}_{n}"] = r
            print(
                f"WS {r['ws']:8s} {n:4d} open orders: {r['calls_per_min']} REST calls/min, "
                f"{r['counter_points_per_min']} counter points/min  {r['by_method_per_min']}; "
                f"per reconciliation cycle {r['calls_per_cycle']}",
                flush=True,
            )
    path = write_result(
        "rest_monitoring",
        {"cycles": args.cycles, "reconcile_interval_s": args.reconcile_interval, "results": results},
    )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
