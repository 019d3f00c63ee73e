"""What the operator's surface costs: log lines and metrics on every commit, and the read queries over many signals.

N bracketed lifecycles (limit entry filled, bracket placed, take-profit filled, stop canceled) run through the
engine against the in-memory FakeExchange, once without and once with the EventLogger and Metrics listeners (JSON
log lines written to a file); then ``report signals`` (one page of 100), ``report profit`` (all signals), a
``/metrics`` render and a health snapshot are timed over the resulting read models.

Usage: .venv/bin/python bench/operator_surface.py --signals 300 [--rounds 3] [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path

from common import backend_settings, summary_ms, write_result

from execledger.application.engine import EngineConfig
from execledger.application.policies import PolicyConfig
from execledger.domain.values import OrderRole
from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.eventlog import EventLogger
from execledger.infrastructure.health import HealthMonitor
from execledger.infrastructure.logconfig import configure_logging
from execledger.infrastructure.metrics import Metrics
from execledger.infrastructure.readmodels.queries import ListFilter
from tests.conftest import ManualClock
from tests.harness import Harness


async def lifecycles(h: Harness, n: int, prefix: str) -> float:
    started = time.perf_counter()
    for i in range(n):
        entry = await h.signal(
            signal_id=f"{prefix}-{i}", quantity="0.01", limit_price="100", sl_price="90", tp_price="120"
        )
        h.venue.fill(h.txid(entry), "0.01", "100", fee="0.0016")
        await h.settle()
        [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
        h.venue.fill(h.txid(tp), "0.01", "120" if i % 3 else "119", fee="0.0019")
        await h.settle()
    return time.perf_counter() - started


async def one_pass(backend: str, n: int, observed: bool, reads: bool = False) -> tuple[float, dict]:
    """n lifecycles on a fresh store, with or without the listeners; with ``reads`` the read side is timed after."""
    with backend_settings(backend) as settings, tempfile.TemporaryDirectory() as tmp:
        clock = ManualClock()
        lg = open_ledger(settings, clock=clock)
        handler = None
        try:
            h = Harness(lg.ledger, clock, EngineConfig(policy=PolicyConfig(resting_leg="both")))
            metrics = Metrics(pairs=lg.pairs, order_counts=lg.queries.order_counts)
            committed: list = []
            if observed:
                handler = configure_logging(fmt="json", file=Path(tmp) / "bench.log")
                h.engine.uow.add_listener(EventLogger(lg.pairs))
                h.engine.uow.add_listener(metrics)
                h.engine.uow.add_listener(committed.append)
            seconds = await lifecycles(h, n, "s")
            extra: dict = {}
            if observed:
                extra["log_lines"] = sum(1 for _ in (Path(tmp) / "bench.log").open())
                # The listeners alone, on what was committed: CPU per event, free of the store's noise.
                events = sum(len(evs) for batch in committed for _, evs in batch)
                listeners = [EventLogger(lg.pairs), Metrics(pairs=lg.pairs)]
                t0 = time.perf_counter()
                for batch in committed:
                    for listener in listeners:
                        listener(batch)
                extra["listeners_us_per_event"] = round((time.perf_counter() - t0) / events * 1e6, 1)
                extra["events_per_lifecycle"] = round(events / n, 1)
            if reads:
                lg.projector.catch_up()
                page, profit, scrape, health = [], [], [], []
                monitor = HealthMonitor(trading_state=lambda: h.engine.control.state, projection=lg.projector)
                metrics.health = monitor
                for _ in range(5):
                    t0 = time.perf_counter()
                    lg.queries.signal_summaries(ListFilter(limit=100), lg.pairs)
                    t1 = time.perf_counter()
                    rows = lg.queries.profit(ListFilter(), lg.pairs)
                    t2 = time.perf_counter()
                    metrics.render()
                    t3 = time.perf_counter()
                    monitor.assess()
                    t4 = time.perf_counter()
                    page.append(t1 - t0)
                    profit.append(t2 - t1)
                    scrape.append(t3 - t2)
                    health.append(t4 - t3)
                extra |= {
                    "report_signals_page_100": summary_ms(page),
                    "report_profit_all": summary_ms(profit),
                    "metrics_render": summary_ms(scrape),
                    "health_assess": summary_ms(health),
                    "profit_trades": next(r for r in rows if r["group"] == "total")["trades"],
                }
            return seconds, extra
        finally:
            if handler is not None:
                logging.getLogger().removeHandler(handler)
                handler.close()
            lg.close()


async def run(backend: str, n: int, rounds: int) -> dict:
    """Alternating passes on fresh stores; the best of each kind (this machine is shared: the best is the cost)."""
    await one_pass(backend, min(n, 20), False)  # warm-up: imports, first connections
    plain, observed, extra = [], [], {}
    for i in range(rounds):
        plain.append((await one_pass(backend, n, False))[0])
        seconds, more = await one_pass(backend, n, True, reads=i == rounds - 1)
        observed.append(seconds)
        extra |= more
    return {
        "backend": backend,
        "signals": n,
        "rounds": rounds,
        "lifecycles_per_s_without_listeners": round(n / min(plain), 1),
        "lifecycles_per_s_with_log_and_metrics": round(n / min(observed), 1),
        "overhead_ratio": round(min(observed) / min(plain), 3),
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--signals", type=int, default=500, help="lifecycles per pass (one pass per store)")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=3, help="alternating passes of each kind")
    args = parser.parse_args()
    result = asyncio.run(run(args.backend, args.signals, args.rounds))
    write_result(f"operator_surface_{args.backend}", result)
    print(result)


if __name__ == "__main__":
    main()
