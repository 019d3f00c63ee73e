"""Memory of the trading process after N completed lifecycles: the orders the engine holds and the process's RSS,
with finished signals retired (the product) and, for comparison, with retirement switched off (every order ever
placed kept, as before issue 18).

Each lifecycle is a limit entry filled, its stop-loss placed and filled (the position is flat), driven in process
against the in-memory exchange of the tests (no wire, no simulator: only the engine's memory is measured). Each
variant runs in its own process; RSS is read after a full collection at each quarter of the run.

Usage: .venv/bin/python bench/retention.py [--lifecycles 2000] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time

from common import backend_settings, rounds, write_result

from execledger.application.ledger import ExecutionLedger
from execledger.domain.values import OrderRole
from execledger.infrastructure.eventstore import open_orders_app
from execledger.infrastructure.pairs import load_default_pairs


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def _lifecycles(settings, n: int, retire: bool) -> dict:
    from tests.conftest import ManualClock
    from tests.harness import Harness

    app = open_orders_app(settings)
    try:
        clock = ManualClock()
        h = Harness(ExecutionLedger(app, load_default_pairs(), clock), clock)
        if not retire:
            h.engine.orders.is_finished = None
        points = []
        started = time.perf_counter()
        for i in range(1, n + 1):
            entry = await h.signal(signal_id=f"life-{i}")
            h.venue.fill(h.txid(entry), "1", "100")
            await h.settle()
            [stop] = h.legs(entry, OrderRole.STOP_LOSS)
            h.venue.fill(h.txid(stop), "1", "90")
            await h.settle()
            h.venue.orders.clear()  # the fake venue's and the harness's own records are not the engine's memory
            h.venue.requests.clear()
            h.venue.trades.clear()
            h.reports.clear()
            if i % max(1, n // 4) == 0:
                gc.collect()
                points.append(
                    {
                        "lifecycles": i,
                        "held_orders": len(h.engine.orders),
                        "rss_mb": rss_mb(),
                        "seconds": round(time.perf_counter() - started, 1),
                    }
                )
        return {"points": points}
    finally:
        app.close()


def measure(backend: str, n: int, retire: bool) -> dict:
    with backend_settings(backend) as settings:
        return asyncio.run(_lifecycles(settings, n, retire))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifecycles", type=int, default=2000)
    parser.add_argument("--backends", default="sqlite")
    args = parser.parse_args()
    results = {}
    for backend in args.backends.split(","):
        for retire in (True, False):
            r = rounds(measure, backend, args.lifecycles, retire, n=1)
            name = f"{backend}_{'retired' if retire else 'all_kept'}"
            results[name] = r
            for p in r["points"]:
                print(
                    f"{name:18s} {p['lifecycles']:6d} lifecycles: {p['held_orders']:6d} orders held, RSS "
                    f"{p['rss_mb']:6.1f} MiB, {p['seconds']:6.1f} s (peak RSS {r['peak_rss_mb']['max']} MiB)",
                    flush=True,
                )
    path = write_result("retention", {"results": results})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
