"""OCO latency on the wire: the real adapter and the real ``TradingService`` (all its workers, the WS v2 executions
stream on) against the built-in simulator in the same process, ``resting_leg=both`` (stop-loss and take-profit
both rest on the venue). Every time is stamped on the simulator's side with ``time.perf_counter``:

- **fill -> legs resting**: from the market entry's fill (the simulator's engine emitting the trade, the moment its
  WS ``executions`` record is queued) to the simulator booking the second protective leg (its ``new`` record);
- **OCO**: once the ledger holds both legs, the price is moved through the take-profit, which fills; from that
  fill to the stop's ``CancelOrder`` (or ``AmendOrder``) reaching the simulator's request handler.

The OCO figure is measured twice in each round: ``plain``, and ``held``: with another call hung all the while (the
simulator's ``hold_request`` fault, ``--hold`` seconds, on the AddOrder (WS ``add_order`` on route ws) of another
entry, a limit buy far below the market; a new one is hung before the current one has less than 2 s left, counted
to the service's own 10 s request timeout when the hold is longer). A sample counts as covered when the simulator
held that AddOrder from the fill to the cancel's arrival and the ledger still showed its entry ``submitting`` (the
service awaiting the reply) at both instants. A held reply must block no other call. Each round runs in a fresh
process (its own peak RSS).

Usage: .venv/bin/python bench/oco_latency.py [--samples 200] [--hold 15] [--backends sqlite,postgres] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

from common import backend_settings, fmt_spread, percentile, rounds, write_result

from execledger.application.ports import FillReport
from execledger.application.service import ServiceConfig, TradingService
from execledger.domain.order import State
from execledger.domain.position import exits_of
from execledger.domain.values import OrderRole
from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.kraken.adapter import KrakenExchange
from execledger.infrastructure.kraken.wire import ExecType
from execledger.infrastructure.simulator import FaultKind, KrakenSimulator

MARK = "65000"
SIGNAL = {"pair": "XBT/USD", "side": "buy", "order_type": "market", "quantity": "0.01", "sl_price": "60000",
          "tp_price": "70000"}  # fmt: skip
THROUGH_TP = "70010"
HELD_ENTRY = {"pair": "XBT/USD", "side": "buy", "order_type": "limit", "quantity": "0.0001", "limit_price": "30000",
              "timeout_s": 86400}  # fmt: skip
OCO_METHODS = ("CancelOrder", "AmendOrder", "cancel_order", "amend_order")


class Stamps:
    """The simulator's side of every sample: engine executions by cl_ord_id and kind, OCO calls by the order they
    name, and the held requests (start, end)."""

    def __init__(self, sim: KrakenSimulator):
        self.executions: dict[tuple[str, str], float] = {}  # (cl_ord_id, exec kind) -> first time seen
        self.oco_calls: dict[str, tuple[str, float, bool]] = {}  # txid or cl_ord_id -> (method, arrival, hung)
        self.hung = lambda: False  # whether one of the service's calls is waiting for a held reply right now
        self.holds: list[list[float | None]] = []  # [start, end or None while held]
        self.changed = asyncio.Event()
        sim.engine.listeners.append(self._on_execution)
        record = sim.request_log.record

        def recording(at, path, params):
            entry = record(at, path, params)
            if entry.method in OCO_METHODS:
                ref = params.get("txid") or params.get("order_id") or params.get("cl_ord_id") or ""
                ref = str(ref[0] if isinstance(ref, list) and ref else ref)  # WS cancel_order names a list
                self.oco_calls.setdefault(ref, (entry.method, time.perf_counter(), self.hung()))
                self.changed.set()
            return entry

        sim.request_log.record = recording
        hold = sim.hold_reply

        async def holding(seconds: float) -> None:
            span: list[float | None] = [time.perf_counter(), None]
            self.holds.append(span)
            self.changed.set()
            try:
                await hold(seconds)
            finally:
                span[1] = time.perf_counter()

        sim.hold_reply = holding

    def _on_execution(self, execution) -> None:
        cl_ord_id = execution.order.request.cl_ord_id
        if cl_ord_id:
            self.executions.setdefault((cl_ord_id, str(execution.kind)), time.perf_counter())
            self.changed.set()

    def held_throughout(self, start: float, end: float) -> bool:
        return any(s is not None and s <= start and (e is None or e >= end) for s, e in self.holds)

    def hold_left(self, seconds: float) -> float:
        """The longest time a hold still in progress has left, of ``seconds`` from its start (0 when none is)."""
        now = time.perf_counter()
        return max((s + seconds - now for s, e in self.holds if e is None and s is not None), default=0.0)

    async def until(self, predicate, timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            while True:
                self.changed.clear()
                if predicate():
                    return
                await self.changed.wait()


async def measure(backend: str, samples: int, hold_s: float) -> dict:
    async with KrakenSimulator(balances={"ZUSD": "100000000", "XXBT": "1000"}, tier=None) as sim:
        sim.set_mark_price("XBT/USD", MARK)
        stamps = Stamps(sim)
        with backend_settings(backend) as base:
            settings = base.with_exchange(url=sim.rest_url, ws_url=sim.ws_url, key=sim.key, secret=sim.secret)
            settings = settings.model_copy(update={"resting_leg": "both"})
            with open_ledger(settings) as lg:
                exchange = KrakenExchange.from_settings(settings, tier=None)
                changed = asyncio.Condition()
                loop = asyncio.get_running_loop()

                async def notify() -> None:
                    async with changed:
                        changed.notify_all()

                lg.engine.uow.add_listener(lambda _committed: loop.create_task(notify()))
                service = TradingService(lg.engine, exchange, ServiceConfig())  # the service's defaults
                # Where the OCO time goes (diagnostic, the service's side): the fill report reaching the service
                # from the stream, and the commit of that fill (with the cancel decided in it) done.
                # The stream applies what arrived together at once (TradingService.apply_all), in one commit.
                seen: dict[str, float] = {}
                apply_all = service.apply_all

                async def applying(reports) -> None:
                    fills = [r.client_order_id for r in reports if isinstance(r, FillReport) and r.client_order_id]
                    for ref in fills:
                        seen.setdefault(f"in:{ref}", time.perf_counter())
                    await apply_all(reports)
                    for ref in fills:
                        seen.setdefault(f"committed:{ref}", time.perf_counter())

                service.apply_all = applying
                worker = asyncio.create_task(service.run())
                await asyncio.wait_for(service.recovered.wait(), 60)
                async with asyncio.timeout(30):  # fills come over the stream, not the REST poller
                    while not service.stream_healthy:
                        await asyncio.sleep(0.01)

                async def until(predicate) -> None:
                    async with changed:
                        await asyncio.wait_for(changed.wait_for(predicate), 60)

                def legs(entry_id) -> list:
                    return exits_of(lg.engine.orders[entry_id], lg.engine.orders)

                held_entries: list = []
                # The service waits for a held reply until its own request timeout (10 s): a hold longer than that
                # leaves the service with no call in flight for its last seconds, so a new one is hung before.
                hung_for = min(hold_s, exchange.rest.timeout.total or hold_s)
                stamps.hung = lambda: any(lg.engine.orders[h].state is State.SUBMITTING for h in held_entries)

                async def keep_a_call_hung() -> None:
                    """Hang another entry's AddOrder unless one in progress covers the next sample with margin."""
                    if stamps.hold_left(hung_for) > min(2.0, hung_for / 2):
                        return
                    before = len(stamps.holds)
                    # the route the service places orders on (WS add_order while the stream is healthy, as here)
                    method = "add_order" if exchange.order_entry == "ws" else "AddOrder"
                    sim.inject_fault(method, FaultKind.HOLD_REQUEST, count=1, seconds=hold_s)
                    signal = {**HELD_ENTRY, "signal_id": f"hung{len(held_entries)}"}
                    held_entries.append(lg.engine.control.submit_signal(signal).order.id)
                    service.wake()
                    await stamps.until(lambda: len(stamps.holds) > before)

                out: dict = {}
                try:
                    for variant in ("plain", "held"):
                        to_legs, oco, covered, methods = [], [], 0, set()
                        stream_hop, fill_commit, to_wire = [], [], []
                        uncovered: Counter[str] = Counter()
                        for i in range(samples):
                            if variant == "held":
                                await keep_a_call_hung()
                            entry_id = lg.engine.control.submit_signal(
                                {**SIGNAL, "signal_id": f"{variant}{i}"}
                            ).order.id
                            service.wake()

                            def resting(entry_id=entry_id) -> bool:
                                pair = legs(entry_id)
                                return len(pair) == 2 and all(o.txid and o.state.value == "open" for o in pair)

                            await until(resting)
                            entry, pair = lg.engine.orders[entry_id], legs(entry_id)
                            filled_at = stamps.executions[(entry.cl_ord_id, ExecType.TRADE.value)]
                            booked = [stamps.executions[(o.cl_ord_id, ExecType.NEW.value)] for o in pair]
                            to_legs.append(max(booked) - filled_at)
                            [tp] = [o for o in pair if o.role is OrderRole.TAKE_PROFIT]
                            [stop] = [o for o in pair if o.role is OrderRole.STOP_LOSS]
                            sim.set_mark_price("XBT/USD", THROUGH_TP)  # fills the take-profit, synchronously
                            hung_at_fill = stamps.hung()
                            tp_filled = stamps.executions[(tp.cl_ord_id, ExecType.TRADE.value)]
                            refs = (stop.txid, stop.cl_ord_id)
                            await stamps.until(lambda refs=refs: any(r in stamps.oco_calls for r in refs))
                            method, arrived, hung_at_cancel = next(
                                stamps.oco_calls[r] for r in refs if r in stamps.oco_calls
                            )
                            methods.add(method)
                            oco.append(arrived - tp_filled)
                            got, committed = seen[f"in:{tp.cl_ord_id}"], seen[f"committed:{tp.cl_ord_id}"]
                            stream_hop.append(got - tp_filled)
                            fill_commit.append(committed - got)
                            to_wire.append(arrived - committed)
                            spanned = stamps.held_throughout(tp_filled, arrived)
                            covered += hung_at_fill and hung_at_cancel and spanned
                            if variant == "held" and not (hung_at_fill and hung_at_cancel and spanned):
                                why = "not hung at fill" if not hung_at_fill else "not hung at cancel"
                                uncovered[why if spanned or not hung_at_fill else "no hold spans"] += 1
                            await until(lambda entry_id=entry_id: all(o.is_terminal for o in legs(entry_id)))
                            sim.set_mark_price("XBT/USD", MARK)
                        out[variant] = {
                            "to_legs": to_legs,
                            "oco": oco,
                            "covered": covered,
                            "methods": sorted(methods),
                            "stream_hop": stream_hop,
                            "fill_commit": fill_commit,
                            "to_wire": to_wire,
                            "uncovered": dict(uncovered),
                        }
                finally:
                    await service.stop()
                    await worker
                    await exchange.close()
                out["held_entries"] = len(held_entries)
                out["add_orders"] = len(sim.requests("AddOrder")) + len(sim.requests("add_order"))
                out["held_requests"] = len(stamps.holds)
                return out


def one_round(backend: str, samples: int, hold_s: float) -> dict:
    r = asyncio.run(measure(backend, samples, hold_s))

    def ms(values, q):
        return round(percentile(values, q) * 1000, 3)

    result: dict = {"samples": samples, "hold_s": hold_s}
    for variant in ("plain", "held"):
        v = r[variant]
        result |= {
            f"{variant}_legs_p50_ms": ms(v["to_legs"], 0.5),
            f"{variant}_legs_p99_ms": ms(v["to_legs"], 0.99),
            f"{variant}_legs_max_ms": ms(v["to_legs"], 1.0),
            f"{variant}_oco_p50_ms": ms(v["oco"], 0.5),
            f"{variant}_oco_p99_ms": ms(v["oco"], 0.99),
            f"{variant}_oco_max_ms": ms(v["oco"], 1.0),
            f"{variant}_oco_methods": ",".join(v["methods"]),
            # the OCO time in three parts: sim fill -> the service has the report (WS hop, the loop's queue),
            # -> the fill and the cancel decision committed, -> the CancelOrder at the simulator (REST hop)
            **{
                f"{variant}_{part}_{q}_ms": ms(v[part], level)
                for part in ("stream_hop", "fill_commit", "to_wire")
                for q, level in (("p50", 0.5), ("p99", 0.99))
            },
        }
    result["held_covered_samples"] = r["held"]["covered"]
    result["held_uncovered_why"] = r["held"]["uncovered"]
    result["held_entries"] = r["held_entries"]
    result["held_requests"] = r["held_requests"]
    result["add_orders"] = r["add_orders"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="brackets per variant (plain, held)")
    parser.add_argument("--hold", type=float, default=15.0, help="seconds the other call is hung")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    results = {}
    for backend in args.backends.split(","):
        r = results[backend] = rounds(one_round, backend, args.samples, args.hold, n=args.rounds)

        def f(key, r=r):
            return fmt_spread(r[key], 1)

        print(
            f"{backend:9s} {args.samples} samples each: fill -> both legs resting p50 {f('plain_legs_p50_ms')} ms, "
            f"p99 {f('plain_legs_p99_ms')} ms, max {f('plain_legs_max_ms')} ms; take-profit fill -> stop "
            f"{r['plain_oco_methods']} p50 {f('plain_oco_p50_ms')} ms, p99 {f('plain_oco_p99_ms')} ms, "
            f"max {f('plain_oco_max_ms')} ms; with another call hung {args.hold:g} s "
            f"({fmt_spread(r['held_covered_samples'])} of {args.samples} covered, "
            f"{fmt_spread(r['held_requests'])} held): p50 {f('held_oco_p50_ms')} ms, p99 {f('held_oco_p99_ms')} ms, "
            f"max {f('held_oco_max_ms')} ms (legs p99 {f('held_legs_p99_ms')} ms); "
            f"peak RSS {fmt_spread(r['peak_rss_mb'], 1)} MiB",
            flush=True,
        )
        print(
            "          where the OCO time goes (p50 / p99 ms), plain | held: "
            + "; ".join(
                f"{part} {f(f'plain_{part}_p50_ms')} / {f(f'plain_{part}_p99_ms')} | "
                f"{f(f'held_{part}_p50_ms')} / {f(f'held_{part}_p99_ms')}"
                for part in ("stream_hop", "fill_commit", "to_wire")
            ),
            flush=True,
        )
    path = write_result("oco_latency", {"samples": args.samples, "hold_s": args.hold, "results": results})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
