"""The simulator's book at scale: order entry, a price move that crosses nothing, one that fills many, cancels.

    .venv/bin/python bench/simulator_book.py --orders 10000,100000

In-process (the matching core, no HTTP), one pair, N resting buy limits spread below the mark, each with a
cl_ord_id (the duplicate check is part of order entry). Writes ``bench/results/simulator_book.json``.
"""

from __future__ import annotations

import argparse
import time
from decimal import Decimal

from common import write_result

from execledger.infrastructure.simulator import KrakenSimulator
from execledger.infrastructure.simulator.orderentry import parse_add_order

FROZEN = 1_790_000_000.0


def measure(n: int) -> dict:
    sim = KrakenSimulator(seed=1, clock_start=FROZEN, tier=None, balances={"ZUSD": "1000000000000", "XXBT": "1000000"})
    sim.set_mark_price("XBTUSD", "100000")
    pair = sim.pair("XBTUSD")
    requests = [
        parse_add_order(
            {
                "pair": "XBTUSD",
                "type": "buy",
                "ordertype": "limit",
                "price": str(Decimal(50000) + Decimal(i % 10000)),
                "volume": "0.001",
                "cl_ord_id": f"book-{i}",
            },
            sim.find_pair,
            FROZEN,
            sim.last_price,
        )
        for i in range(n)
    ]
    started = time.perf_counter()
    orders = [sim.engine.place(sim.key, req) for req in requests]
    entry_s = time.perf_counter() - started

    started = time.perf_counter()
    for price in ("100010", "100020", "100030", "100040", "100050"):
        sim.engine.set_mark(pair, Decimal(price))  # crosses nothing
    quiet_move_s = (time.perf_counter() - started) / 5

    crossing = Decimal(59000)  # fills every order priced 59,000 or more: a tenth of the book
    expected = sum(1 for r in requests if r.price >= crossing)
    started = time.perf_counter()
    sim.engine.set_mark(pair, crossing)
    fill_move_s = time.perf_counter() - started
    filled = sum(1 for o in orders if o.status == "closed")
    assert filled == expected, (filled, expected)

    open_orders = [o for o in orders if o.is_open][:1000]
    started = time.perf_counter()
    for order in open_orders:
        sim.engine.cancel(sim.engine.cancel_targets(sim.key, order.txid))
    cancel_s = time.perf_counter() - started
    return {
        "orders": n,
        "entry_us_per_order": round(entry_s / n * 1e6, 1),
        "entry_total_s": round(entry_s, 2),
        "quiet_move_ms": round(quiet_move_s * 1000, 3),
        "fills_in_one_move": filled,
        "fill_move_us_per_fill": round(fill_move_s / max(filled, 1) * 1e6, 1),
        "cancel_us_per_order": round(cancel_s / max(len(open_orders), 1) * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", default="10000,100000", help="comma-separated book sizes")
    args = parser.parse_args()
    rows = [measure(int(n)) for n in args.orders.split(",")]
    for row in rows:
        print(
            f"{row['orders']:>7} open orders: entry {row['entry_us_per_order']} us/order ({row['entry_total_s']} s), "
            f"quiet move {row['quiet_move_ms']} ms, {row['fills_in_one_move']} fills in one move "
            f"{row['fill_move_us_per_fill']} us/fill, cancel {row['cancel_us_per_order']} us/order"
        )
    write_result("simulator_book", {"rows": rows})


if __name__ == "__main__":
    main()
