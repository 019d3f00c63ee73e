"""Load: an open-loop client posts signals to a real ``execledger run`` process trading against a standalone
``execledger simulator`` process, at a chosen rate whatever the answers (issue 14: backpressure).

Per rate it reports: signals offered and accepted per second; the answers by status (201 placed, 503 refused with
Retry-After because the unsent backlog is full or the venue's rate limit would not let the entry out in time, 429,
...); the POST's own latency; the latency from the POST leaving the client to its AddOrder arriving at the venue
(the simulator's request log stamps each request as it arrives, on the same host's wall clock), p50/p99 over every
accepted signal, split into its stages (POST -> Placed, Placed -> Submitted, Submitted -> on the wire); and the
backlog, replayed from the ledger's events after the run: the most entries ever waiting at one moment to be sent
or for the venue's answer (``Placed`` until ``Acknowledged``, ``Rejected``, ...), which must never exceed
``EXECLEDGER_MAX_PENDING_ENTRIES``.

Each signal is a market entry without brackets (one AddOrder each), alternating buy and sell of 0.001 XBT/USD so
the account's balances stay level. ``--tier none`` (default) measures the service itself; ``--tier starter`` puts
Kraken's Starter trading counter on both the adapter and the venue (about one AddOrder a second per pair once the
initial allowance is spent), so most of a high rate is refused with 503, as it would be on a real account.

Usage: .venv/bin/python bench/load.py [--rates 20,50,100] [--duration 20] [--max-pending 100] [--tier none]
       [--backends sqlite,postgres]
Writes bench/results/load.json. Exit 1 when the backlog bound was exceeded or a request failed with 5xx other
than 503.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
from common import backend_settings, percentile, write_result

from execledger.infrastructure.bootstrap import open_ledger
from tests.faults.harness import EXECLEDGER, Process, free_port, wait_until

KEY = "load-bench-key"
SECRET = base64.b64encode(b"load-bench-secret" * 4).decode()
PAIR = "XBT/USD"
QUANTITY = "0.001"
# An entry is in the backlog from Placed until the venue answers its AddOrder (NotSent keeps it there), as
# TradingControl counts it against EXECLEDGER_MAX_PENDING_ENTRIES.
ANSWERS = {"Acknowledged", "Rejected", "SubmissionOutcomeUnknown", "PartiallyFilled", "Filled", "Canceled", "Expired"}


def _env(settings, sim_port: int, api_port: int, tier: str, max_pending: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECLEDGER_")}
    env |= {
        "EXECLEDGER_DATA_DIR": str(settings.data_dir),
        "EXECLEDGER_KRAKEN_URL": f"http://127.0.0.1:{sim_port}",
        "EXECLEDGER_KRAKEN_KEY": KEY,
        "EXECLEDGER_KRAKEN_SECRET": SECRET,
        "EXECLEDGER_KRAKEN_TIER": tier,
        "EXECLEDGER_API_PORT": str(api_port),
        "EXECLEDGER_MAX_PENDING_ENTRIES": str(max_pending),
    }
    if settings.database_url is not None:
        env["EXECLEDGER_DATABASE_URL"] = settings.database_url.get_secret_value()
    return env


class Offered:
    """What the client sent and what came back, per signal."""

    def __init__(self) -> None:
        self.sent_at: dict[str, float] = {}  # signal_id -> wall time the POST left
        self.answer_s: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.cl_ord_id: dict[str, str] = {}  # accepted signal -> its cl_ord_id (from the 201 receipt)
        self.why_refused: Counter[str] = Counter()


async def _post(http: aiohttp.ClientSession, api: str, no: int, offered: Offered) -> None:
    sid = f"load-{no}"
    body = {"signal_id": sid, "pair": PAIR, "side": "buy" if no % 2 else "sell", "order_type": "market"}
    body["quantity"] = QUANTITY
    started = time.monotonic()
    offered.sent_at[sid] = time.time()
    try:
        async with http.post(f"{api}/v1/signals", json=body) as r:
            answer = await r.json(content_type=None)
            offered.statuses[r.status] += 1
            if r.status == 201:
                offered.cl_ord_id[sid] = answer["cl_ord_id"]
            elif r.status in (429, 503):
                offered.why_refused[_why(answer.get("error", ""))] += 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        offered.errors[type(exc).__name__] += 1
    offered.answer_s.append(time.monotonic() - started)


def _why(error: str) -> str:
    """The kind of a refusal, without its numbers."""
    if "entries wait to be sent" in error:
        return "backlog full"
    if "rate limit" in error:
        return "venue rate limit"
    if "venue is unavailable" in error:
        return "venue unavailable"
    return error[:60]


async def _offer(api: str, rate: float, duration: float) -> Offered:
    """Open loop: signal ``i`` leaves at ``start + i / rate``, whether or not earlier ones were answered."""
    offered = Offered()
    connector = aiohttp.TCPConnector(limit=0)  # no client-side queue: the service sees the offered rate
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        tasks = []
        start = time.monotonic()
        for no in range(int(rate * duration)):
            delay = start + no / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule of an open-loop client, not a synchronisation
            tasks.append(asyncio.create_task(_post(http, api, no, offered)))
        await asyncio.gather(*tasks)
    return offered


def _replay(settings) -> tuple[int, int, dict[str, tuple[float, float | None]]]:
    """From the ledger's events: the most entries ever in the backlog at once, the entries withdrawn unsent,
    and per cl_ord_id when it was placed and first submitted (wall seconds)."""
    moves: list[tuple[float, int]] = []
    withdrawn = 0
    stages: dict[str, tuple[float, float | None]] = {}
    with open_ledger(settings) as lg:
        lg.engine.load()
        for order in lg.engine.orders.values():
            waiting = False
            placed = submitted = None
            for h in lg.ledger.order_history(order.id):
                at = h.timestamp.timestamp()
                placed = at if h.name == "Placed" else placed
                submitted = at if h.name == "Submitted" and submitted is None else submitted
                if h.name == "Placed":
                    waiting = True
                    moves.append((at, 1))
                elif waiting and h.name in ANSWERS:
                    waiting = False
                    moves.append((at, -1))
                    withdrawn += submitted is None  # ended before any AddOrder: past its maximum age, halted
            if placed is not None:
                stages[order.cl_ord_id] = (placed, submitted)
    most = level = 0
    for _, step in sorted(moves, key=lambda m: (m[0], m[1])):  # a leave before an arrival at the same instant
        level += step
        most = max(most, level)
    return most, withdrawn, stages


def _ms(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None}
    return {"p50_ms": round(percentile(values, 0.5) * 1000, 1), "p99_ms": round(percentile(values, 0.99) * 1000, 1)}


class Running:
    """A simulator process and an ``execledger run`` process trading against it (``running``)."""

    def __init__(self, http: aiohttp.ClientSession, api: str, sim_url: str, service: Process):
        self.http, self.api, self.sim_url, self.service = http, api, sim_url, service
        self.exit_code: int | None = None  # the service's, once stopped

    async def get(self, url: str, accept=(200,)):
        async with self.http.get(url) as r:
            return await r.json() if r.status in accept else None


@contextlib.asynccontextmanager
async def running(env: dict[str, str], work: Path, *, tier: str, balances: dict[str, str], timeout_s: float = 30):
    """Start the simulator (its account funded with ``balances``), then the service, and wait until the service
    says it is recovered and can trade; both are stopped on the way out (the service by SIGTERM)."""
    sim_port, api_port = int(env["EXECLEDGER_KRAKEN_URL"].rsplit(":", 1)[1]), int(env["EXECLEDGER_API_PORT"])
    sim = Process(
        "simulator",
        [EXECLEDGER, "simulator", "--port", str(sim_port), "--key", KEY, "--secret", SECRET, "--tier", tier],
        env,
        work / "simulator.log",
    )
    service = Process("service", [EXECLEDGER, "run"], env, work / "service.log")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http:
        it = Running(http, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{sim_port}", service)
        try:
            sim.start()
            await wait_until(lambda: it.get(f"{it.sim_url}/_sim/balances"), timeout=30, what="simulator", process=sim)
            async with http.post(f"{it.sim_url}/_sim/balances", json=balances) as r:
                r.raise_for_status()
            service.start()

            async def recovered():
                health = await it.get(f"{it.api}/v1/health", accept=(200, 503))
                return health is not None and health["trading"].get("recovered") and health["can_trade"]

            await wait_until(recovered, timeout=60, what="service recovered", process=service)
            yield it
        finally:
            it.exit_code = await service.terminate(20)
            await sim.terminate(10)


async def run_rate(settings, work: Path, *, rate: float, duration: float, tier: str, max_pending: int) -> dict:
    env = _env(settings, free_port(), free_port(), tier, max_pending)
    balances = {"XXBT": "100000", "ZUSD": "10000000000"}
    async with running(env, work, tier=tier, balances=balances) as it:
        api, sim_url, get = it.api, it.sim_url, it.get
        offered = await _offer(api, rate, duration)
        # Drain: every accepted entry reaches the venue (or is withdrawn unsent past its maximum age).
        await wait_until(
            lambda: _quiet(get, api), timeout=180, interval=0.5, what="nothing left to send", process=it.service
        )
        # orders on either route: WS v2 add_order while the executions socket is healthy, REST AddOrder
        calls = [
            *await get(f"{sim_url}/_sim/requests?method=add_order"),
            *await get(f"{sim_url}/_sim/requests?method=AddOrder"),
        ]
        calls.sort(key=lambda c: c["time"])
    code = it.exit_code
    most, withdrawn, stages = await asyncio.to_thread(_replay, settings)
    first: dict[str, float] = {}
    for c in calls:
        first.setdefault(str(c["params"].get("cl_ord_id")), c["time"])
    wire = [first[c] - offered.sent_at[s] for s, c in offered.cl_ord_id.items() if c in first]
    adds = [c["time"] for c in calls]
    # Where the time goes: POST -> Placed (command log, trading process), Placed -> Submitted (the unsent backlog),
    # Submitted -> on the wire (adapter, HTTP, the venue picking the request up).
    to_placed, to_submitted, to_wire = [], [], []
    for sid, cl in offered.cl_ord_id.items():
        placed, submitted = stages.get(cl, (None, None))
        if placed is None or submitted is None or cl not in first:
            continue
        to_placed.append(placed - offered.sent_at[sid])
        to_submitted.append(submitted - placed)
        to_wire.append(first[cl] - submitted)
    window = (max(adds) - min(adds)) if len(adds) > 1 else 0.0
    ok = offered.statuses.get(201, 0)
    return {
        "rate_offered_per_s": rate,
        "duration_s": duration,
        "signals_offered": len(offered.sent_at),
        "accepted_per_s": round(ok / duration, 1),
        "statuses": {str(k): v for k, v in sorted(offered.statuses.items())},
        "refused_because": dict(offered.why_refused),
        "client_errors": dict(offered.errors),
        "post_p50_ms": round(percentile(offered.answer_s, 0.5) * 1000, 1),
        "post_p99_ms": round(percentile(offered.answer_s, 0.99) * 1000, 1),
        "signal_to_addorder_p50_ms": round(percentile(wire, 0.5) * 1000, 1) if wire else None,
        "signal_to_addorder_p99_ms": round(percentile(wire, 0.99) * 1000, 1) if wire else None,
        "signal_to_addorder_max_ms": round(max(wire) * 1000, 1) if wire else None,
        "accepted_never_sent": len(offered.cl_ord_id) - len(wire),
        "stages": {
            "post_to_placed": _ms(to_placed),
            "placed_to_submitted": _ms(to_submitted),
            "submitted_to_wire": _ms(to_wire),
        },
        "addorders_on_the_wire": len(adds),
        "addorder_per_s_while_sending": round(len(adds) / window, 1) if window else None,
        "backlog_max": most,
        "backlog_bound": max_pending,
        "backlog_bound_held": most <= max_pending,
        "withdrawn_unsent": withdrawn,
        "service_exit_code": code,
    }


async def _quiet(get, api: str) -> bool:
    """No entry waits to be sent or for its outcome: every accepted signal has met the venue."""
    health = await get(f"{api}/v1/health", accept=(200, 503))
    if health is None or health["projection_lag"] != 0:
        return False
    for status in ("pending_submit", "submitting", "outcome_unknown"):
        page = await get(f"{api}/v1/orders?status={status}&limit=1")
        if page is None or page["items"]:
            return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="20,50,100", help="signals per second offered, one run each")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds each rate is offered")
    parser.add_argument("--max-pending", type=int, default=100, help="EXECLEDGER_MAX_PENDING_ENTRIES")
    parser.add_argument("--tier", choices=("none", "starter", "intermediate", "pro"), default="none")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--name", default="load", help="the result file: bench/results/NAME.json")
    args = parser.parse_args()
    results: dict[str, dict] = {}
    for backend in args.backends.split(","):
        for rate in (float(r) for r in args.rates.split(",")):
            with backend_settings(backend) as settings, tempfile.TemporaryDirectory(prefix="execledger-load-") as tmp:
                r = asyncio.run(
                    run_rate(
                        settings,
                        Path(tmp),
                        rate=rate,
                        duration=args.duration,
                        tier=args.tier,
                        max_pending=args.max_pending,
                    )
                )
            results[f"{backend}_{rate:g}"] = {"backend": backend, **r}
            print(
                f"{backend:8s} offered {rate:g}/s for {args.duration:g}s: accepted {r['accepted_per_s']}/s "
                f"{r['statuses']} {r['refused_because']}; signal->AddOrder p50 {r['signal_to_addorder_p50_ms']} ms "
                f"p99 {r['signal_to_addorder_p99_ms']} ms; POST p99 {r['post_p99_ms']} ms; backlog max "
                f"{r['backlog_max']} (bound {r['backlog_bound']})",
                flush=True,
            )
    path = write_result(
        args.name, {"tier": args.tier, "duration_s": args.duration, "max_pending": args.max_pending, "results": results}
    )
    print(f"written to {path}")
    bad = [
        k
        for k, r in results.items()
        if not r["backlog_bound_held"] or r["client_errors"] or any(int(s) >= 500 and s != "503" for s in r["statuses"])
    ]
    if bad:
        print(f"failed: {bad}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
