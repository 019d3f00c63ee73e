"""Fill-to-stop-submission latency: from a fill report arriving to the stop-loss AddOrder leaving, with every
durable commit in between (fill + bracket decision + legs in one transaction, then the stop's Submitted).

Usage: .venv/bin/python bench/bracket_latency.py [--brackets 1000] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from decimal import Decimal

from common import backend_settings, summary_ms, write_result

from execledger.application.ports import (
    ExecutionObservation,
    ObservationKind,
    PlaceResult,
    PlaceStatus,
    VenueOrderStatus,
)
from execledger.application.service import ServiceConfig, TradingService
from execledger.domain.values import OrderRole
from execledger.infrastructure.bootstrap import open_ledger


class StampingExchange:
    """Acknowledges every AddOrder and stamps when each one leaves (the stop-loss leg's stamp ends a sample)."""

    def __init__(self):
        self.sent_at: dict[str, float] = {}
        self.n = 0

    async def place(self, request):
        self.sent_at[request.cl_ord_id] = time.perf_counter()
        self.n += 1
        return PlaceResult(PlaceStatus.ACKNOWLEDGED, txid=f"O{self.n:06d}-BENCH-ORDER")


async def measure(backend: str, brackets: int) -> dict:
    with backend_settings(backend) as settings, open_ledger(settings) as lg:
        exchange = StampingExchange()
        service = TradingService(lg.engine, exchange, ServiceConfig(deadman_enabled=False))
        entries = []
        for i in range(brackets):
            result = lg.engine.submit_signal(
                {
                    "signal_id": f"b{i}",
                    "pair": "XBT/USD",
                    "side": "buy",
                    "order_type": "limit",
                    "quantity": "0.01",
                    "limit_price": "60000",
                    "sl_price": "59000",
                    "tp_price": "61000",
                }
            )
            entries.append(result.order.id)
        await service.send_pending()
        samples = []
        for i, entry_id in enumerate(entries):
            entry = lg.engine.orders[entry_id]
            obs = ExecutionObservation(
                kind=ObservationKind.TRADE,
                txid=entry.txid,
                cl_ord_id=entry.cl_ord_id,
                order_status=VenueOrderStatus.FILLED,
                source="ws",
                trade_id=f"T{i:06d}",
                last_qty=Decimal("0.01"),
                last_price=Decimal("60000"),
                cum_qty=Decimal("0.01"),
            )
            started = time.perf_counter()
            await service.apply(obs)
            await service.send_pending()
            stop = next(
                o for o in lg.engine.orders.values() if o.parent_id == entry_id and o.role is OrderRole.STOP_LOSS
            )
            samples.append(exchange.sent_at[stop.cl_ord_id] - started)
        return summary_ms(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--brackets", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    results = {b: asyncio.run(measure(b, args.brackets)) for b in args.backends.split(",")}
    path = write_result("bracket_latency", {"brackets": args.brackets, "results": results})
    for backend, r in results.items():
        print(f"{backend:9s} fill->stop AddOrder over {r['n']} brackets: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms")
    print(f"written to {path.relative_to(path.parents[2])}")


if __name__ == "__main__":
    main()
