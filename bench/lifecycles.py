"""End-to-end order lifecycles per second: place a market entry with SL/TP, fill, bracket (both legs acknowledged),
take-profit hit, stop canceled; ``--concurrency`` lifecycles at a time. Three variants in the same run:

- ``wire``: everything over the wire against the in-process simulator (the real adapter, REST for orders, the WS v2
  stream for fills) with durable commits on the chosen backend;
- ``ledger``: the same lifecycle with an in-memory venue (``tests/fakes.py``), so the ledger's own cost is
  separated from the wire's;
- ``raw``: the raw database doing the ledger's durable work: as many insert+commit transactions, with as many
  rows each, as the ledger variant made (counted at the recorder), rows of the same mean size.

Each round runs in a fresh process (its own peak RSS). The waits are event-driven (woken after every save) and
look only at the orders of the current wave, so the harness costs O(1) per check, not O(orders).

Usage: .venv/bin/python bench/lifecycles.py [--lifecycles 200] [--concurrency 10] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from common import backend_settings, fmt_spread, raw_commits, rounds, write_result

from execledger.application.engine import EngineConfig
from execledger.application.policies import PolicyConfig
from execledger.application.ports import SystemClock
from execledger.application.service import ServiceConfig, TradingService
from execledger.domain.position import exits_of
from execledger.domain.values import OrderRole
from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.kraken.adapter import KrakenExchange
from execledger.infrastructure.simulator import KrakenSimulator

SIGNAL = {
    "pair": "XBT/USD",
    "side": "buy",
    "order_type": "market",
    "quantity": "0.01",
    "sl_price": "60000",
    "tp_price": "70000",
}


class CommitCounter:
    """Wraps the recorder's insert_events: how many transactions and events the ledger wrote, and their bytes."""

    def __init__(self, recorder):
        self.batches: list[int] = []
        self.bytes = 0
        self._insert = recorder.insert_events

        def insert_events(stored_events, **kwargs):
            self.batches.append(len(stored_events))
            self.bytes += sum(len(e.state) for e in stored_events)
            return self._insert(stored_events, **kwargs)

        recorder.insert_events = insert_events

    @property
    def events(self) -> int:
        return sum(self.batches)


class Wave:
    """The entries of the current wave; their legs come from each entry's own exit ids (no scan of the index)."""

    def __init__(self, orders):
        self.orders = orders
        self.entries: list = []

    def start(self, entry_ids: list) -> None:
        self.entries = entry_ids

    def legs(self, entry_id) -> list:
        return exits_of(self.orders[entry_id], self.orders)

    def legs_acknowledged(self) -> bool:
        return all(len(legs := self.legs(e)) == 2 and all(o.txid for o in legs) for e in self.entries)

    def legs_terminal(self) -> bool:
        return all(all(o.is_terminal for o in self.legs(e)) for e in self.entries)


async def wire(backend: str, lifecycles: int, concurrency: int) -> dict:
    async with KrakenSimulator(balances={"ZUSD": "100000000", "XXBT": "1000"}, tier=None) as sim:
        with backend_settings(backend) as base:
            settings = base.with_exchange(url=sim.rest_url, ws_url=sim.ws_url, key=sim.key, secret=sim.secret)
            settings = settings.model_copy(update={"resting_leg": "both"})  # the lifecycle: both legs, OCO
            with open_ledger(settings) as lg:
                exchange = KrakenExchange.from_settings(settings, tier=None)
                changed = asyncio.Condition()
                loop = asyncio.get_running_loop()

                async def notify() -> None:
                    async with changed:
                        changed.notify_all()

                lg.engine.uow.add_listener(lambda _committed: loop.create_task(notify()))
                service = TradingService(
                    lg.engine,
                    exchange,
                    ServiceConfig(deadman_enabled=False, tick_interval_s=0.2, reconcile_interval_s=3600),
                )
                worker = asyncio.create_task(service.run())
                await asyncio.wait_for(service.recovered.wait(), 60)

                async def until(predicate) -> None:
                    async with changed:
                        await asyncio.wait_for(changed.wait_for(predicate), 120)

                try:
                    started = time.perf_counter()
                    done = 0
                    while done < lifecycles:
                        wave = Wave(lg.engine.orders)
                        n = min(concurrency, lifecycles - done)
                        ids = [
                            lg.engine.control.submit_signal({**SIGNAL, "signal_id": f"lc{done + k}"}).order.id
                            for k in range(n)
                        ]
                        wave.start(ids)
                        service.wake()
                        await until(wave.legs_acknowledged)
                        sim.set_mark_price("XBT/USD", "70010")
                        await until(wave.legs_terminal)
                        sim.set_mark_price("XBT/USD", "67000")
                        done += n
                    seconds = time.perf_counter() - started
                finally:
                    await service.stop()
                    await worker
                    await exchange.close()
                closed = sum(  # every order in the log: the engine holds only the signals still open
                    1
                    for o in lg.ledger.load_orders(everything=True)
                    if o.role is OrderRole.TAKE_PROFIT and o.state.value == "filled"
                )
                assert closed == lifecycles, f"{closed} of {lifecycles} lifecycles closed by their take-profit"
                return {
                    "lifecycles_per_s": round(lifecycles / seconds, 1),
                    "seconds": round(seconds, 2),
                    "add_orders": len(sim.requests("AddOrder")),
                    "cancels": len(sim.requests("CancelOrder")),
                }


async def ledger_only(backend: str, lifecycles: int, concurrency: int) -> dict:
    from tests.harness import Harness

    with backend_settings(backend) as settings, open_ledger(settings) as lg:
        counter = CommitCounter(lg.app.recorder)
        h = Harness(lg.ledger, SystemClock(), EngineConfig(policy=PolicyConfig(resting_leg="both")))
        started = time.perf_counter()
        done = 0
        while done < lifecycles:
            n = min(concurrency, lifecycles - done)
            entries = [h.engine.control.submit_signal({**SIGNAL, "signal_id": f"lc{done + k}"}).order for k in range(n)]
            await h.settle()
            for entry in entries:
                h.venue.fill(h.txid(entry), "0.01", "65000")
            await h.settle()
            for entry in entries:
                [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
                h.venue.fill(h.txid(tp), "0.01", "70010")
            await h.settle()
            done += n
        seconds = time.perf_counter() - started
        closed = sum(  # every order in the log: the engine holds only the signals still open
            1
            for o in lg.ledger.load_orders(everything=True)
            if o.role is OrderRole.TAKE_PROFIT and o.state.value == "filled"
        )
        assert closed == lifecycles, f"{closed} of {lifecycles} lifecycles closed by their take-profit"
        batches, size = counter.batches, counter.bytes // max(1, counter.events)
    with backend_settings(backend) as settings:
        raw_s = raw_commits(settings, batches, size)
    return {
        "lifecycles_per_s": round(lifecycles / seconds, 1),
        "raw_lifecycles_per_s": round(lifecycles / raw_s, 1),
        "of_raw": round(raw_s / seconds, 3),
        "commits_per_lifecycle": round(len(batches) / lifecycles, 2),
        "events_per_lifecycle": round(sum(batches) / lifecycles, 2),
    }


def one_round(backend: str, lifecycles: int, concurrency: int) -> dict:
    w = asyncio.run(wire(backend, lifecycles, concurrency))
    led = asyncio.run(ledger_only(backend, lifecycles, concurrency))
    return {
        "wire_lifecycles_per_s": w["lifecycles_per_s"],
        "ledger_lifecycles_per_s": led["lifecycles_per_s"],
        "raw_lifecycles_per_s": led["raw_lifecycles_per_s"],
        "ledger_of_raw": led["of_raw"],
        "commits_per_lifecycle": led["commits_per_lifecycle"],
        "events_per_lifecycle": led["events_per_lifecycle"],
        "add_orders": w["add_orders"],
        "cancels": w["cancels"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifecycles", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    results = {}
    for b in args.backends.split(","):
        r = results[b] = rounds(one_round, b, args.lifecycles, args.concurrency, n=args.rounds)
        print(
            f"{b:9s} {args.lifecycles} lifecycles, {args.concurrency} at a time: over the wire "
            f"{fmt_spread(r['wire_lifecycles_per_s'], 1)}/s; "
            f"ledger only {fmt_spread(r['ledger_lifecycles_per_s'], 1)}/s "
            f"vs raw {fmt_spread(r['raw_lifecycles_per_s'], 1)}/s "
            f"({fmt_spread(r['ledger_of_raw'], 3)} of raw; "
            f"{r['commits_per_lifecycle']['median']} commits, {r['events_per_lifecycle']['median']} events each); "
            f"peak RSS {fmt_spread(r['peak_rss_mb'], 1)} MiB",
            flush=True,
        )
    path = write_result(
        "lifecycles", {"lifecycles": args.lifecycles, "concurrency": args.concurrency, "results": results}
    )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
