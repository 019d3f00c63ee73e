"""One public price tick with ``--positions`` open positions whose take-profit the ledger holds (the default
bracket: the stop-loss rests on the venue, the take-profit is an armed trigger on the public price): what
``ExecutionEngine.on_price`` takes on the event loop for a tick that crosses no trigger, and the price watcher's
once-a-second look at which pairs to follow (``ContingencyManager.watched_pairs``). Issue 18's break test found
the tick growing by about 60 us a position (the whole protection policy for each) and the look at the pairs
about 6 us a position every second. Each round runs in a fresh process; the venue is the suite's in-memory one.

Usage: .venv/bin/python bench/price_tick.py [--positions 100,1000,10000] [--ticks 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime
from decimal import Decimal

from bracket_latency import StampingExchange, entry_fill, signal
from common import backend_settings, fmt_spread, peak_rss_mb, rounds, write_result

from execledger.application.ports import PriceTick
from execledger.application.service import ServiceConfig, TradingService
from execledger.domain.values import OrderRole
from execledger.infrastructure.bootstrap import open_ledger

PAIR = "XXBTZUSD"


async def open_positions(lg, n: int) -> TradingService:
    """``n`` limit buys at 60,000 with a stop at 59,000 and a take-profit at 61,000, each filled: the stop rests,
    the take-profit is held by the ledger."""
    exchange = StampingExchange()
    service = TradingService(lg.engine, exchange, ServiceConfig(deadman_enabled=False, retry_min_s=0.0))
    ids = []
    for i in range(n):
        ids.append(lg.engine.control.submit_signal(signal(i, sl_price="59000", tp_price="61000")).order.id)
        if (i + 1) % 50 == 0:  # the engine bounds entries waiting to be sent (max_pending_entries, 100)
            await service.send_pending()
    await service.send_pending()
    for i, entry_id in enumerate(ids):
        await service.apply(entry_fill(i, lg.engine.orders[entry_id]))
        if (i + 1) % 50 == 0:
            await service.send_pending()
    await service.send_pending()
    held = [e for e in (lg.engine.orders[i] for i in ids) if e.brackets and e.brackets[-1].emulated]
    stops = [o for o in lg.engine.orders.values() if o.role is OrderRole.STOP_LOSS and o.txid]
    assert len(held) == n and len(stops) == n, f"{len(held)} emulated take-profits, {len(stops)} stops of {n}"
    return service


async def measure(positions: int, ticks: int) -> dict:
    with backend_settings("sqlite") as settings, open_ledger(settings) as lg:
        await open_positions(lg, positions)
        contingencies = lg.engine.contingencies
        looks = []
        for _ in range(6):  # the first answer builds the watch from the index; the others read it as it is
            started = time.perf_counter()
            contingencies.watched_pairs()
            looks.append(time.perf_counter() - started)
        rebuild, looks = looks[0], looks[1:]
        commits = lg.engine.uow.commits
        took = []
        for k in range(ticks):  # 60,000 +- 0.5: between every stop (59,000) and take-profit (61,000)
            tick = PriceTick(PAIR, Decimal(60000) + Decimal(k % 2) - Decimal("0.5"), datetime.now(UTC))
            started = time.perf_counter()
            lg.engine.on_price(tick)
            took.append(time.perf_counter() - started)
        assert lg.engine.uow.commits == commits, "a tick that crosses no trigger decided something"
        passes = []
        for _ in range(ticks + 1):  # the timer's pass (timeouts, the contingency safety net, retirement)
            started = time.perf_counter()
            lg.engine.tick()
            passes.append(time.perf_counter() - started)
        first_pass, passes = passes[0], passes[1:]
        return {
            "tick_median_ms": round(statistics.median(took) * 1000, 3),
            "tick_max_ms": round(max(took) * 1000, 3),
            "tick_us_per_position": round(statistics.median(took) * 1e6 / positions, 3),
            "watched_pairs_median_ms": round(statistics.median(looks) * 1000, 3),
            "timer_pass_median_ms": round(statistics.median(passes) * 1000, 3),
            "timer_first_pass_ms": round(first_pass * 1000, 3),
            "watched_pairs_rebuild_ms": round(rebuild * 1000, 3),
            "peak_rss_mb": peak_rss_mb(),
        }


def one_round(positions: int, ticks: int) -> dict:
    return asyncio.run(measure(positions, ticks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", default="100,1000,10000")
    parser.add_argument("--ticks", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--name", default="price_tick")
    args = parser.parse_args()
    results = {}
    for n in (int(x) for x in args.positions.split(",")):
        r = rounds(one_round, n, args.ticks, n=args.rounds)
        results[str(n)] = r
        print(
            f"{n:>6} positions with a held take-profit: a tick crossing nothing "
            f"{fmt_spread(r['tick_median_ms'], 3)} ms (max {fmt_spread(r['tick_max_ms'], 3)} ms, "
            f"{fmt_spread(r['tick_us_per_position'], 3)} us a position); watched_pairs "
            f"{fmt_spread(r['watched_pairs_median_ms'], 3)} ms a second (its rebuild every 10 minutes "
            f"{fmt_spread(r['watched_pairs_rebuild_ms'], 1)} ms); the timer's pass "
            f"{fmt_spread(r['timer_pass_median_ms'], 3)} ms (its first {fmt_spread(r['timer_first_pass_ms'], 1)} ms); "
            f"peak RSS {fmt_spread(r['peak_rss_mb'], 1)} MiB"
        )
    print(f"written to {write_result(args.name, results)}")


if __name__ == "__main__":
    main()
