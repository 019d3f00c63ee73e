"""End-to-end order lifecycles per second against the simulator: place a market entry with SL/TP, fill, bracket
(both legs acknowledged), take-profit hit, stop canceled. Everything goes over the wire: the real adapter, REST
for orders, the WS v2 stream for fills; durable commits on the chosen backend.

Usage: .venv/bin/python bench/lifecycles.py [--lifecycles 200] [--concurrency 10] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from common import backend_settings, write_result

from execledger.application.service import ServiceConfig, TradingService
from execledger.domain.values import OrderRole
from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.kraken.adapter import KrakenExchange
from execledger.infrastructure.simulator import KrakenSimulator


async def measure(backend: str, lifecycles: int, concurrency: int) -> dict:
    async with KrakenSimulator(balances={"ZUSD": "100000000", "XXBT": "1000"}, tier=None) as sim:
        with backend_settings(backend) as base:
            settings = base.with_exchange(url=sim.rest_url, ws_url=sim.ws_url, key=sim.key, secret=sim.secret)
            with open_ledger(settings) as lg:
                exchange = KrakenExchange.from_settings(settings, tier=None)
                changed = asyncio.Condition()
                loop = asyncio.get_running_loop()

                async def notify() -> None:
                    async with changed:
                        changed.notify_all()

                lg.engine.on_saved = lambda: loop.create_task(notify())
                service = TradingService(
                    lg.engine,
                    exchange,
                    ServiceConfig(deadman_enabled=False, tick_interval_s=0.2, reconcile_interval_s=3600),
                )
                worker = asyncio.create_task(service.run())

                async def until(predicate) -> None:
                    async with changed:
                        await asyncio.wait_for(changed.wait_for(predicate), 60)

                def legs(entry_id, role=None):
                    return [
                        o
                        for o in lg.engine.orders.values()
                        if o.parent_id == entry_id and (role is None or o.role is role)
                    ]

                try:
                    started = time.perf_counter()
                    done = 0
                    while done < lifecycles:
                        ids = []
                        for _ in range(min(concurrency, lifecycles - done)):
                            ids.append(
                                lg.engine.submit_signal(
                                    {
                                        "signal_id": f"lc{done + len(ids)}",
                                        "pair": "XBT/USD",
                                        "side": "buy",
                                        "order_type": "market",
                                        "quantity": "0.01",
                                        "sl_price": "60000",
                                        "tp_price": "70000",
                                    }
                                ).order.id
                            )
                        service.wake()
                        await until(
                            lambda ids=ids: all(len(legs(i)) == 2 and all(o.txid for o in legs(i)) for i in ids)
                        )
                        sim.set_mark_price("XBT/USD", "70010")
                        await until(lambda ids=ids: all(all(o.is_terminal for o in legs(i)) for i in ids))
                        sim.set_mark_price("XBT/USD", "67000")
                        done += len(ids)
                    seconds = time.perf_counter() - started
                finally:
                    await service.stop()
                    await worker
                    await exchange.close()
                closed = sum(
                    1
                    for o in lg.engine.orders.values()
                    if o.role is OrderRole.TAKE_PROFIT and o.state.value == "filled"
                )
                assert closed == lifecycles, f"{closed} of {lifecycles} lifecycles closed by their take-profit"
                return {
                    "lifecycles": lifecycles,
                    "concurrency": concurrency,
                    "seconds": round(seconds, 2),
                    "lifecycles_per_s": round(lifecycles / seconds, 1),
                    "add_orders": len(sim.requests("AddOrder")),
                    "cancels": len(sim.requests("CancelOrder")),
                }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lifecycles", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    results = {b: asyncio.run(measure(b, args.lifecycles, args.concurrency)) for b in args.backends.split(",")}
    path = write_result("lifecycles", {"results": results})
    for b, r in results.items():
        print(
            f"{b:9s} {r['lifecycles']} lifecycles (place, fill, bracket, TP hit, SL canceled), "
            f"{r['concurrency']} at a time: "
            f"{r['lifecycles_per_s']}/s ({r['add_orders']} AddOrder, {r['cancels']} CancelOrder)"
        )
    print(f"written to {path.relative_to(path.parents[2])}")


if __name__ == "__main__":
    main()
