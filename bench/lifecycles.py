"""End-to-end order lifecycles per second: place a market entry with SL/TP, fill, bracket (both legs acknowledged),
take-profit hit, stop canceled; ``--concurrency`` lifecycles at a time. Four variants in the same run:

- ``wire``: everything over the wire (the real adapter, REST for orders, the WS v2 stream for fills) with durable
  commits on the chosen backend, against a standalone ``execledger simulator`` process, as in production, where
  the venue's work is done on another host's CPU;
- ``wire_one_process``: the same with the simulator inside the ledger's process (its Python on the ledger's core);
- ``ledger``: the same lifecycle with an in-memory venue (``tests/fakes.py``), so the ledger's own cost is
  separated from the wire's;
- ``raw``: the raw database doing the ledger's durable work: as many insert+commit transactions, with as many
  rows each, as the ledger variant made (counted at the recorder), rows of the same mean size.

The wire variant also reports, per lifecycle, the CPU the ledger's process spent (getrusage) and the simulator
process's (``/proc/PID/stat``), both in ms, the requests the venue logged (REST calls and WS trading requests, the
latter also apart) and the ledger's durable commits: with the wall time, they say which process bounds the rate.

Each round runs in a fresh process (its own peak RSS). The waits are event-driven: a listener counts the
current wave's legs acknowledged and terminal from each commit's orders, so the harness costs O(orders committed),
not O(wave) per commit.

Usage: .venv/bin/python bench/lifecycles.py [--lifecycles 200] [--concurrency 10] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from common import backend_settings, fmt_spread, free_port, raw_commits, rounds, write_result

from execledger.application.engine import EngineConfig
from execledger.application.policies import PolicyConfig
from execledger.application.ports import SystemClock
from execledger.application.service import ServiceConfig, TradingService
from execledger.domain.values import OrderRole
from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.kraken.adapter import KrakenExchange
from execledger.infrastructure.simulator import KrakenSimulator

EXECLEDGER = str(Path(sys.executable).with_name("execledger"))
SIM_KEY, SIM_SECRET = "bench-key", base64.b64encode(b"bench-secret-bytes-0123456789abcdef").decode()
BALANCES = {"ZUSD": "100000000", "XXBT": "1000"}
SIGNAL = {
    "pair": "XBT/USD",
    "side": "buy",
    "order_type": "market",
    "quantity": "0.01",
    "sl_price": "60000",
    "tp_price": "70000",
}


class CommitCounter:
    """Wraps the recorder's insert_events and insert_rows: how many transactions and events the ledger wrote,
    and their bytes."""

    def __init__(self, recorder):
        self.batches: list[int] = []
        self.bytes = 0
        self._insert = recorder.insert_events

        def insert_events(stored_events, **kwargs):
            self.batches.append(len(stored_events))
            self.bytes += sum(len(e.state) for e in stored_events)
            return self._insert(stored_events, **kwargs)

        recorder.insert_events = insert_events
        if hasattr(recorder, "insert_rows"):  # the unit of work's save path: four values an event, state last
            insert_rows = recorder.insert_rows

            def counted_rows(rows, tracking=None):
                self.batches.append(len(rows) // 4)
                self.bytes += sum(len(state) for state in rows[3::4])
                return insert_rows(rows, tracking)

            recorder.insert_rows = counted_rows

    @property
    def events(self) -> int:
        return sum(self.batches)


class Wave:
    """The legs of the current wave, counted from the committed events as they come (a unit of work's listener):
    a wait looks at two counters, O(1), instead of every leg of the wave after every commit. Reading a finished
    entry through the engine's index would also load its retired signal back from the store (the index holds
    again what it is asked for) and make the engine retire it once more: work of the bench, not the product's."""

    def __init__(self):
        self.entries: set = set()
        self.legs: dict = {}  # leg id -> (acknowledged, terminal), for the legs of this wave's entries
        self.per_entry: dict = {}  # entry id -> how many legs it has
        self.acknowledged = self.terminal = 0
        self.reached = asyncio.Event()
        self.predicate = lambda: False

    def start(self, entry_ids: list) -> None:
        self.entries, self.legs, self.per_entry = set(entry_ids), {}, {}
        self.acknowledged = self.terminal = 0

    def on_committed(self, committed) -> None:
        for order, _ in committed:
            if getattr(order, "parent_id", None) not in self.entries:
                continue
            was = self.legs.get(order.id)
            if was is None:
                self.per_entry[order.parent_id] = self.per_entry.get(order.parent_id, 0) + 1
                was = (False, False)
            now = (bool(order.txid), order.is_terminal)
            self.acknowledged += now[0] - was[0]
            self.terminal += now[1] - was[1]
            self.legs[order.id] = now
        if self.predicate():
            self.reached.set()

    def legs_acknowledged(self) -> bool:
        n = len(self.entries)
        return len(self.legs) == 2 * n and self.acknowledged == 2 * n and len(self.per_entry) == n

    def legs_terminal(self) -> bool:
        return self.terminal == len(self.legs) == 2 * len(self.entries)

    async def until(self, predicate, timeout: float = 120) -> None:
        self.predicate = predicate
        self.reached.clear()
        if not predicate():
            await asyncio.wait_for(self.reached.wait(), timeout)
        self.predicate = lambda: False


class InProcessVenue:
    """The simulator in the ledger's own process (``wire_one_process``): its Python shares the ledger's core."""

    async def __aenter__(self):
        self.sim = await KrakenSimulator(balances=BALANCES, tier=None).__aenter__()
        self.url, self.ws_url, self.key, self.secret = self.sim.rest_url, self.sim.ws_url, self.sim.key, self.sim.secret
        return self

    async def __aexit__(self, *exc) -> None:
        await self.sim.__aexit__(*exc)

    async def set_mark(self, price: str) -> None:
        self.sim.set_mark_price("XBT/USD", price)

    async def count(self, method: str | None = None) -> int:
        return len(self.sim.requests(method))

    def cpu_s(self) -> float | None:
        return None  # its CPU is the ledger's process's


class SimulatorProcess:
    """A standalone ``execledger simulator`` process (``wire``), as a venue is in production: another host's
    CPU. Driven through its ``/_sim`` control routes."""

    async def __aenter__(self):
        port = free_port()
        self.url, self.ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/v2"
        self.key, self.secret = SIM_KEY, SIM_SECRET
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXECLEDGER_")}
        argv = [
            EXECLEDGER,
            "simulator",
            "--port",
            str(port),
            "--key",
            SIM_KEY,
            "--secret",
            SIM_SECRET,
            "--tier",
            "none",
        ]
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        deadline = time.monotonic() + 30
        while True:  # a process boundary: bounded polling is the only way to see it listening
            if self.process.poll() is not None or time.monotonic() > deadline:
                await self.__aexit__(None, None, None)
                raise RuntimeError("the simulator process did not start")
            try:
                async with self.http.post(f"{self.url}/_sim/balances", json=BALANCES) as r:
                    r.raise_for_status()
                    return self
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)

    async def __aexit__(self, *exc) -> None:
        await self.http.close()
        self.process.terminate()
        self.process.wait(10)

    async def set_mark(self, price: str) -> None:
        async with self.http.post(f"{self.url}/_sim/price", json={"pair": "XBT/USD", "price": price}) as r:
            r.raise_for_status()

    async def count(self, method: str | None = None) -> int:
        """How many requests the simulator logged (of ``method``; None: every method)."""
        params = {"method": method} if method else {}
        async with self.http.get(f"{self.url}/_sim/requests", params=params) as r:
            return len(await r.json())

    def cpu_s(self) -> float | None:
        """The simulator process's user + system CPU seconds so far (Linux ``/proc/PID/stat``)."""
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_s() -> float:
    """This process's user + system CPU seconds so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def wire(backend: str, lifecycles: int, concurrency: int, venue_kind=SimulatorProcess) -> dict:
    async with venue_kind() as venue:
        with backend_settings(backend) as base:
            settings = base.with_exchange(url=venue.url, ws_url=venue.ws_url, key=venue.key, secret=venue.secret)
            settings = settings.model_copy(update={"resting_leg": "both"})  # the lifecycle: both legs, OCO
            with open_ledger(settings) as lg:
                exchange = KrakenExchange.from_settings(settings, tier=None)
                wave = Wave()
                lg.engine.uow.add_listener(wave.on_committed)
                service = TradingService(
                    lg.engine,
                    exchange,
                    ServiceConfig(deadman_enabled=False, tick_interval_s=0.2, reconcile_interval_s=3600),
                )
                worker = asyncio.create_task(service.run())
                await asyncio.wait_for(service.recovered.wait(), 60)

                try:
                    calls0 = await venue.count()  # every method
                    started, cpu0, venue_cpu0, commits0 = (
                        time.perf_counter(),
                        cpu_s(),
                        venue.cpu_s(),
                        lg.engine.uow.commits,
                    )
                    done = 0
                    while done < lifecycles:
                        n = min(concurrency, lifecycles - done)
                        ids = [
                            lg.engine.control.submit_signal({**SIGNAL, "signal_id": f"lc{done + k}"}).order.id
                            for k in range(n)
                        ]
                        wave.start(ids)
                        service.wake()
                        await wave.until(wave.legs_acknowledged)
                        await venue.set_mark("70010")
                        await wave.until(wave.legs_terminal)
                        await venue.set_mark("67000")
                        # The service's next look at the watched pairs (every tick) forgets the take-profit's
                        # 70,010 of a pair it no longer follows; look now, or the next wave's tp 70,000 is refused.
                        lg.engine.contingencies.watched_pairs()
                        done += n
                    seconds = time.perf_counter() - started
                    cpu, venue_cpu, commits = cpu_s() - cpu0, venue.cpu_s(), lg.engine.uow.commits - commits0
                    calls = await venue.count() - calls0
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
                    "ledger_cpu_ms_per_lifecycle": round(cpu / lifecycles * 1000, 2),
                    "venue_cpu_ms_per_lifecycle": None
                    if venue_cpu is None or venue_cpu0 is None
                    else round((venue_cpu - venue_cpu0) / lifecycles * 1000, 2),
                    "wall_ms_per_lifecycle": round(seconds / lifecycles * 1000, 2),
                    "venue_requests_per_lifecycle": round(calls / lifecycles, 2),
                    "ws_requests_per_lifecycle": round(
                        (await venue.count("add_order") + await venue.count("cancel_order")) / lifecycles, 2
                    ),
                    "commits_per_lifecycle": round(commits / lifecycles, 2),
                    "add_orders": await venue.count("AddOrder") + await venue.count("add_order"),
                    "cancels": await venue.count("CancelOrder") + await venue.count("cancel_order"),
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
    one = asyncio.run(wire(backend, lifecycles, concurrency, InProcessVenue))
    led = asyncio.run(ledger_only(backend, lifecycles, concurrency))
    return {
        "wire_lifecycles_per_s": w["lifecycles_per_s"],
        "wire_ledger_cpu_ms_per_lifecycle": w["ledger_cpu_ms_per_lifecycle"],
        "wire_venue_cpu_ms_per_lifecycle": w["venue_cpu_ms_per_lifecycle"],
        "wire_wall_ms_per_lifecycle": w["wall_ms_per_lifecycle"],
        "wire_venue_requests_per_lifecycle": w["venue_requests_per_lifecycle"],
        "wire_ws_requests_per_lifecycle": w["ws_requests_per_lifecycle"],
        "wire_commits_per_lifecycle": w["commits_per_lifecycle"],
        "wire_one_process_lifecycles_per_s": one["lifecycles_per_s"],
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
            f"{fmt_spread(r['wire_lifecycles_per_s'], 1)}/s "
            f"(simulator in the same process {fmt_spread(r['wire_one_process_lifecycles_per_s'], 1)}/s); "
            f"ledger only {fmt_spread(r['ledger_lifecycles_per_s'], 1)}/s "
            f"vs raw {fmt_spread(r['raw_lifecycles_per_s'], 1)}/s "
            f"({fmt_spread(r['ledger_of_raw'], 3)} of raw; "
            f"{r['commits_per_lifecycle']['median']} commits, {r['events_per_lifecycle']['median']} events each); "
            f"peak RSS {fmt_spread(r['peak_rss_mb'], 1)} MiB",
            flush=True,
        )
        print(
            f"{'':9s} over the wire, a lifecycle (medians): {r['wire_wall_ms_per_lifecycle']['median']:.2f} ms wall, "
            f"ledger CPU {r['wire_ledger_cpu_ms_per_lifecycle']['median']:.2f} ms, simulator CPU "
            f"{r['wire_venue_cpu_ms_per_lifecycle']['median']:.2f} ms, "
            f"{r['wire_venue_requests_per_lifecycle']['median']:.2f} venue requests "
            f"({r['wire_ws_requests_per_lifecycle']['median']:.2f} of them on the WS socket), "
            f"{r['wire_commits_per_lifecycle']['median']:.2f} commits",
            flush=True,
        )
    path = write_result(
        "lifecycles", {"lifecycles": args.lifecycles, "concurrency": args.concurrency, "results": results}
    )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
