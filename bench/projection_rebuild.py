"""Projection rebuild throughput against the raw speed of reading the same log (ratio measured in one run).

A synthetic but complete log is generated through the domain model: per signal an entry that fills in two
parts, a bracket, a take-profit that fills and a stop-loss that is canceled (18 events per signal).

Usage: .venv/bin/python bench/projection_rebuild.py [--signals 3000] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal as D

from common import backend_settings, write_result

from execledger.domain.order import Order
from execledger.domain.reasons import reason
from execledger.domain.values import OrderRole, OrderType, Side
from execledger.infrastructure.bootstrap import open_ledger

R = reason("bench", "synthetic")
T = datetime(2026, 1, 1, tzinfo=UTC)


def signal_orders(i: int) -> list[Order]:
    entry = Order.place(
        order_id=uuid.uuid4(),
        signal_id=f"s{i}",
        role=OrderRole.ENTRY,
        pair="XXBTZUSD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D("0.02"),
        limit_price=D("60000"),
        sl_price=D("59000"),
        tp_price=D("61000"),
        cl_ord_id=str(uuid.uuid4()),
        reason=R,
    )
    entry.submit(at=T, deadline=None, reason=R)
    entry.acknowledge(txid=f"OE{i:06d}", at=T, reason=R)
    entry.apply_fill(trade_id=f"TE{i}a", quantity=D("0.01"), price=D("60000"), fee=D("0.1"), fee_asset="ZUSD")
    entry.apply_fill(trade_id=f"TE{i}b", quantity=D("0.01"), price=D("59990"), fee=D("0.1"), fee_asset="ZUSD")
    legs = []
    for role, otype, price in (
        (OrderRole.STOP_LOSS, OrderType.STOP_LOSS, D("59000")),
        (OrderRole.TAKE_PROFIT, OrderType.TAKE_PROFIT, D("61000")),
    ):
        leg = Order.place(
            order_id=uuid.uuid4(),
            signal_id=f"s{i}",
            role=role,
            pair="XXBTZUSD",
            side=Side.SELL,
            order_type=otype,
            quantity=D("0.02"),
            trigger_price=price,
            cl_ord_id=str(uuid.uuid4()),
            parent_id=entry.id,
            reason=R,
        )
        leg.submit(at=T, deadline=None, reason=R)
        leg.acknowledge(txid=f"O{role.value[:2]}{i:06d}", at=T, reason=R)
        legs.append(leg)
    sl, tp = legs
    entry.record_bracket(
        quantity=D("0.02"),
        stop_loss_order_id=sl.id,
        take_profit_order_id=tp.id,
        sl_price=D("59000"),
        tp_price=D("61000"),
        reason=R,
    )
    tp.apply_fill(trade_id=f"TT{i}", quantity=D("0.02"), price=D("61000"), fee=D("0.2"), fee_asset="ZUSD")
    sl.request_cancel(reason=R)
    sl.mark_canceled(reason=R)
    return [entry, sl, tp]


def measure(backend: str, signals: int) -> dict:
    with backend_settings(backend) as settings, open_ledger(settings) as lg:
        batch: list[Order] = []
        for i in range(signals):
            batch += signal_orders(i)
            if len(batch) >= 150:
                lg.app.save(*batch)
                batch = []
        if batch:
            lg.app.save(*batch)
        events = lg.app.recorder.max_notification_id()
        started = time.perf_counter()
        start, read = 1, 0
        while True:
            rows = lg.app.recorder.select_notifications(start=start, limit=1000)
            if not rows:
                break
            read += len(rows)
            start = rows[-1].id + 1
        raw_s = time.perf_counter() - started
        started = time.perf_counter()
        projected = lg.projector.rebuild()
        rebuild_s = time.perf_counter() - started
        assert read == projected == events
        return {
            "events": events,
            "raw_read_events_per_s": round(events / raw_s),
            "rebuild_events_per_s": round(events / rebuild_s),
            "ratio": round(raw_s / rebuild_s, 4),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--signals", type=int, default=3000)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    results = {b: measure(b, args.signals) for b in args.backends.split(",")}
    path = write_result("projection_rebuild", {"signals": args.signals, "results": results})
    for b, r in results.items():
        print(
            f"{b:9s} {r['events']} events: rebuild {r['rebuild_events_per_s']} ev/s, raw read "
            f"{r['raw_read_events_per_s']} ev/s, ratio {r['ratio']}"
        )
    print(f"written to {path.relative_to(path.parents[2])}")


if __name__ == "__main__":
    main()
