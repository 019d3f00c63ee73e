"""The timer's pass (``ExecutionEngine.tick``: timeouts, the contingency safety net, retirement) with ``--open``
resting limit entries held and nothing due: what one tick takes on the event loop (a fill arriving meanwhile
waits for it), and the commits it makes; beside it the price watcher's look at which pairs to follow
(``ContingencyManager.watched_pairs``), also once a tick, and the dead-man's switch's question
(``TradingService.deadman_wanted``, each refresh and before a protective leg while armed). Each round runs in a
fresh process.

Usage: .venv/bin/python bench/tick_cost.py [--open 1000,10000] [--ticks 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bracket_latency import StampingExchange
from common import backend_settings, fmt_spread, place_resting_orders, rounds, write_result

from execledger.infrastructure.bootstrap import open_ledger


async def measure(open_orders: int, ticks: int) -> dict:
    with backend_settings("sqlite") as settings, open_ledger(settings) as lg:
        service = await place_resting_orders(lg.engine, StampingExchange(), open_orders, prefix="rest")
        commits = lg.engine.uow.commits
        took = []
        for _ in range(ticks):
            started = time.perf_counter()
            lg.engine.tick()
            took.append(time.perf_counter() - started)
        looks = []
        for _ in range(ticks):
            started = time.perf_counter()
            lg.engine.contingencies.watched_pairs()
            looks.append(time.perf_counter() - started)
        deadman = []
        for _ in range(ticks):
            started = time.perf_counter()
            service.deadman_wanted()
            deadman.append(time.perf_counter() - started)
        return {
            "deadman_wanted_median_ms": round(statistics.median(deadman) * 1000, 3),
            "watched_pairs_median_ms": round(statistics.median(looks) * 1000, 3),
            "tick_median_ms": round(statistics.median(took) * 1000, 3),
            "tick_max_ms": round(max(took) * 1000, 3),
            "commits_per_tick": (lg.engine.uow.commits - commits) / ticks,
        }


def one_round(open_orders: int, ticks: int) -> dict:
    return asyncio.run(measure(open_orders, ticks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", default="1000,10000")
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    results = {}
    for n in (int(x) for x in args.open.split(",")):
        r = results[f"open{n}"] = rounds(one_round, n, args.ticks, n=args.rounds)
        print(
            f"{n:6d} open: tick median {fmt_spread(r['tick_median_ms'], 2)} ms, max {fmt_spread(r['tick_max_ms'], 2)} "
            f"ms, {r['commits_per_tick']['median']} commits a tick; watched_pairs median "
            f"{fmt_spread(r['watched_pairs_median_ms'], 2)} ms; deadman_wanted median "
            f"{fmt_spread(r['deadman_wanted_median_ms'], 2)} ms",
            flush=True,
        )
    print(f"written to {write_result('tick_cost', {'ticks': args.ticks, 'results': results})}")


if __name__ == "__main__":
    main()
