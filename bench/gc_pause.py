"""The cyclic collector's full (generation 2) pause in a trading process holding ``--open`` resting orders loaded
at start-up, as it is (``plain``) and after ``infrastructure/gcpolicy.freeze_long_lived`` (``frozen``): a full
collection runs on the event loop, so a fill arriving then waits for it. Each figure from a fresh process.

Usage: .venv/bin/python bench/gc_pause.py [--open 1000,10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time

from bracket_latency import StampingExchange
from common import backend_settings, fmt_spread, place_resting_orders, rounds, write_result

from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.gcpolicy import freeze_long_lived


async def fill_store(settings, open_orders: int) -> None:
    with open_ledger(settings) as lg:
        await place_resting_orders(lg.engine, StampingExchange(), open_orders, prefix="rest")


def one_round(open_orders: int, frozen: bool) -> dict:
    with backend_settings("sqlite") as settings:
        asyncio.run(fill_store(settings, open_orders))
        gc.collect()
        with open_ledger(settings) as lg:  # a start: the orders loaded from the log, as the trading process holds them
            held = lg.engine.load()
            if frozen:
                freeze_long_lived()
            pauses = []
            for _ in range(5):
                started = time.perf_counter()
                gc.collect()
                pauses.append(time.perf_counter() - started)
            return {"held": held, "full_collection_ms": round(sorted(pauses)[2] * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", default="1000,10000")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    results = {}
    for n in (int(x) for x in args.open.split(",")):
        for frozen in (False, True):
            r = results[f"open{n}_{'frozen' if frozen else 'plain'}"] = rounds(one_round, n, frozen, n=args.rounds)
            print(
                f"{n:6d} open ({r['held']['median']} held), {'frozen' if frozen else 'plain '}: full collection "
                f"{fmt_spread(r['full_collection_ms'], 2)} ms",
                flush=True,
            )
    print(f"written to {write_result('gc_pause', {'results': results})}")


if __name__ == "__main__":
    main()
