"""Commands through the log, measured with real processes: signal accepted by the API -> AddOrder on the wire in
the trading process, and halt command -> the trading process refuses entries (its receipt), in the all-in-one and
the split (trading + api + projections) deployment, on SQLite and PostgreSQL.

Each figure is wall time on one machine: the client notes time.time() before POST /v1/signals and the standalone
simulator notes time.time() when AddOrder arrives (its request log). Signals are posted one after another (latency,
not throughput). Halt latency is POST /v1/trading/halt until its answer, which carries the trading process's
receipt (the moment entries are refused); each halt is followed by a resume.

    .venv/bin/python bench/command_latency.py [--signals 200] [--halts 30] [--backend sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import percentile, write_result
from tests.faults.harness import wait_until
from tests.processes import Deployment, trading_process_seen

TINY_BUY = {"pair": "XBT/USD", "side": "buy", "order_type": "market", "quantity": "0.0001"}


def _pg_url() -> str:
    import os

    return os.environ.get("EXECLEDGER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def measure(backend_name: str, split: bool, signals: int, halts: int) -> dict:
    from tests.faults.harness import Backend

    backend = Backend("sqlite") if backend_name == "sqlite" else Backend("postgres", _pg_url())
    with tempfile.TemporaryDirectory() as tmp:
        settings, schema = backend.settings(Path(tmp) / "data")
        try:
            async with Deployment(Path(tmp), settings) as d:
                if split:
                    trading, _ = await d.service("trading", "--role", "trading")
                    await d.service("projections", "--role", "projections")
                    _, api = await d.service("api", "--role", "api")
                    await wait_until(
                        lambda: trading_process_seen(d, api), timeout=60, what="trading process", process=trading
                    )
                else:
                    _, api = await d.service("service")
                sent: dict[str, float] = {}
                answer_ms = []
                for i in range(signals):
                    body = {"signal_id": f"lat-{i}", **TINY_BUY}
                    started = time.time()
                    status, answer = await d.post(f"{api}/v1/signals", body)
                    answer_ms.append((time.time() - started) * 1000)
                    if status != 201:
                        raise RuntimeError(f"signal {i}: {status} {answer}")
                    sent[answer["cl_ord_id"]] = started

                async def all_arrived():
                    requests = []
                    for method in ("add_order", "AddOrder"):  # either route: WS v2 add_order, REST AddOrder
                        async with d.http.get(f"{d.sim_url}/_sim/requests", params={"method": method}) as r:
                            requests += await r.json()
                    arrived = {q["params"]["cl_ord_id"]: q["time"] for q in requests if q["params"].get("cl_ord_id")}
                    return arrived if set(sent) <= set(arrived) else None

                arrived = await wait_until(all_arrived, timeout=30, what="every AddOrder at the venue")
                signal_ms = [(arrived[c] - t) * 1000 for c, t in sent.items()]
                halt_ms = []
                for i in range(halts):
                    started = time.perf_counter()
                    status, answer = await d.post(f"{api}/v1/trading/halt", {"reason": f"bench {i}", "by": "bench"})
                    halt_ms.append((time.perf_counter() - started) * 1000)
                    if status != 200 or answer.get("outcome") != "applied":
                        raise RuntimeError(f"halt {i}: {status} {answer}")
                    status, _ = await d.post(f"{api}/v1/signals", {"signal_id": f"halted-{i}", **TINY_BUY})
                    if status != 423:
                        raise RuntimeError(f"a signal after halt {i} got {status}, not 423")
                    await d.post(f"{api}/v1/trading/resume", {"reason": "bench", "by": "bench"})
        finally:
            backend.drop(schema)
    return {
        "backend": backend_name,
        "deployment": "split" if split else "all-in-one",
        "signals": len(signal_ms),
        "signal_to_add_order_ms": _summary(signal_ms),
        "signal_answered_ms": _summary(answer_ms),
        "halts": len(halt_ms),
        "halt_to_refusing_ms": _summary(halt_ms),
    }


def _summary(values: list[float]) -> dict:
    return {
        "p50": round(percentile(values, 0.5), 2),
        "p99": round(percentile(values, 0.99), 2),
        "max": round(max(values), 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signals", type=int, default=200)
    parser.add_argument("--halts", type=int, default=30)
    parser.add_argument("--backend", default="sqlite,postgres")
    args = parser.parse_args()
    results = []
    for backend in args.backend.split(","):
        for split in (False, True):
            result = await measure(backend, split, args.signals, args.halts)
            results.append(result)
            s, h = result["signal_to_add_order_ms"], result["halt_to_refusing_ms"]
            print(
                f"{backend:9s} {result['deployment']:10s} signal -> AddOrder p50 {s['p50']} ms p99 {s['p99']} ms; "
                f"halt -> refusing p50 {h['p50']} ms p99 {h['p99']} ms"
            )
    write_result("command_latency", {"args": vars(args), "results": results})
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
