"""Bursts against the group-commit write path (issue 18), with real processes.

Each run of a ``BurstSession`` fires a burst of signals at once (market and limit entries with brackets), moves the
price so that many resting limits fill in one go (a burst of fills -> legs + their Submitted in one commit), and
during the burst does one of:

- ``kill``: SIGKILL the service at a random moment of the burst, restart it;
- ``halt``: POST a HALT in the middle of the burst (with more signals and fills behind it); checks that no entry
  AddOrder reached the venue after the halt's receipt;
- ``venue``: the venue refuses (insufficient funds, rate limit, nonce) or holds (delay_reply, hold_request, 502 after
  execute) the next AddOrders;
- ``rebuild``: ``execledger projections rebuild`` as its own process while the service trades.

Then it settles, stops the service with SIGTERM and checks the harness's invariants (``Session.check``).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp

from tests.faults.harness import EXECLEDGER, PAIR, START_PRICE, Session

SCENARIOS = ("kill", "halt", "venue", "rebuild")


class BurstSession(Session):
    scenario = "kill"

    async def burst(self, rng: random.Random, n: int) -> None:
        bodies = [self.new_signal(rng) for _ in range(n)]
        results = await asyncio.gather(*(self.post_signal(b) for b in bodies), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, (TimeoutError, aiohttp.ClientError)):
                raise r

    async def fill_wave(self, rng: random.Random) -> None:
        """Sweep the price down and up so that resting buy and sell limits fill at about the same moment."""
        for f in ("0.994", "1.006", "1.0"):
            marks = (await self.sim_post("price", {"pair": PAIR, "price": self._price(START_PRICE * Decimal(f))}))[
                "marks"
            ]
        self.mark = Decimal(next(iter(marks.values())))

    async def halt(self, rng: random.Random) -> float:
        body = {"reason": "burst halt", "by": "break", "cancel_entries": rng.random() < 0.5}
        t0 = time.monotonic()
        async with self.http.post(
            f"{self.api_url}/v1/trading/halt", json=body, timeout=aiohttp.ClientTimeout(total=120)
        ) as r:
            text = await r.text()
        took = time.monotonic() - t0
        print(f"  halt answered {r.status} in {took:.2f}s", flush=True)
        self.halt_took = took
        assert r.status in (200, 202), f"halt: {r.status} {text}"
        return time.time()

    async def resume(self) -> None:
        async with self.http.post(f"{self.api_url}/v1/trading/resume", json={"reason": "burst", "by": "break"}) as r:
            await r.text()

    async def venue_faults(self, rng: random.Random) -> None:
        kind = rng.choice(
            (
                "insufficient_funds",
                "order_rate_limit",
                "invalid_nonce",
                "delay_reply",
                "hold_request",
                "http_502_after_execute",
                "delayed_acceptance",
            )
        )
        seconds = rng.uniform(1.0, 4.0)
        count = rng.randint(3, 12)
        await self.inject_write_fault("AddOrder", kind, count, seconds)
        self.result.faults[kind] += 1
        print(f"  venue fault: AddOrder {kind} x{count} {seconds:.1f}s", flush=True)

    async def rebuild_process(self) -> int:
        env = self._service_env(0)
        proc = await asyncio.create_subprocess_exec(
            EXECLEDGER,
            "projections",
            "rebuild",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        self.rebuild_out = out.decode(errors="replace")[-2000:]
        return proc.returncode

    async def run(self, rng: random.Random, label: str, *, last: bool) -> list[str]:
        problems: list[str] = []
        scenario = self.scenario
        halted_at = None
        await self.burst(rng, rng.randint(4, 10))  # some resting limits to fill in one wave
        if scenario == "kill":
            delay = rng.uniform(0.0, 1.5)
            timer = asyncio.get_running_loop().call_later(delay, self._kill)
            try:
                await asyncio.gather(self.burst(rng, rng.randint(10, 25)), self.fill_wave(rng), return_exceptions=True)
                await asyncio.sleep(1.6)
            finally:
                timer.cancel()
            self._kill()
            await self.service.reap()
            self.result.kills += 1
            if rng.random() < 0.5:
                await self.fill_wave(rng)
            await self.start_service()
        elif scenario == "halt":
            task = asyncio.gather(self.burst(rng, rng.randint(10, 25)), self.fill_wave(rng))
            await asyncio.sleep(rng.uniform(0.0, 0.4))
            halted_at = await self.halt(rng)
            await asyncio.gather(task, self.burst(rng, 5), self.fill_wave(rng), return_exceptions=True)
        elif scenario == "venue":
            await self.venue_faults(rng)
            await asyncio.gather(self.burst(rng, rng.randint(10, 25)), self.fill_wave(rng))
            await self.fill_wave(rng)
        elif scenario == "rebuild":
            burst = asyncio.gather(self.burst(rng, rng.randint(10, 25)), self.fill_wave(rng), self.fill_wave(rng))
            code = await self.rebuild_process()
            await burst
            if code != 0:
                problems.append(f"[{label}] rebuild exited {code}: {self.rebuild_out}")
        if not self.service.alive:
            problems.append(f"[{label}] the service died on its own:\n{self.service.tail()}")
        settled = await self.settle(timeout=45)
        if halted_at is not None:
            problems += await self.check_after_halt(label, halted_at)
            if self.halt_took > 5:
                problems.append(f"[{label}] the halt took {self.halt_took:.1f}s to be confirmed during the burst")
        self.protection.service_down()
        code = await self.service.terminate()
        if code != 0:
            problems.append(f"[{label}] the service exited with {code} on SIGTERM:\n{self.service.tail()}")
        problems += await self.check(label)
        problems += self.check_log_flood(label)
        if problems and not settled:
            problems.append(f"[{label}] (ledger and venue did not settle within the bound)")
        self.result.runs += 1
        if not last:
            await self.start_service()
            if halted_at is not None:
                await self.resume()
        return problems

    async def check_after_halt(self, label: str, halted_at: float) -> list[str]:
        """No entry AddOrder reached the venue after the halt was confirmed (its 200)."""
        adds = await self.order_calls()
        ours = {o["cl_ord_id"]: o for o in await self.api_orders()}
        late = [
            a
            for a in adds
            if a["time"] > halted_at + 0.001
            and a.get("status") == 200
            and not a.get("error")
            and ours.get(str(a["params"].get("cl_ord_id")), {}).get("role") == "entry"
        ]
        return [
            f"[{label}] invariant halt: entry AddOrder {a['params'].get('cl_ord_id')} reached the venue "
            f"{a['time'] - halted_at:.3f}s after the halt was confirmed"
            for a in late
        ]

    def check_log_flood(self, label: str) -> list[str]:
        path = self.work_dir / "service.log"
        try:
            lines = path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        if len(lines) > 20000:
            return [f"[{label}] log flood: {len(lines)} lines in service.log"]
        return []


async def main(scenario: str, runs: int, seed: int, backend_name: str, work_dir) -> list[str]:
    from tests.faults.harness import Backend, SoakResult

    url = os.environ.get("EXECLEDGER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    backend = Backend(backend_name, url if backend_name == "postgres" else None)
    result = SoakResult(seed=seed, backend=backend.name)
    kind = type(f"Burst_{scenario}", (BurstSession,), {"scenario": scenario})
    problems: list[str] = []
    async with kind(work_dir, backend, seed, result) as session:
        for i in range(runs):
            label = f"{scenario} seed {seed} run {i + 1} {backend_name} {datetime.now(UTC):%H:%M:%S}"
            found = await session.run(random.Random(f"{seed}:{i}"), label, last=i == runs - 1)
            print(label, "->", len(found), "problems", flush=True)
            for p in found:
                print("   ", p[:3000], flush=True)
            problems += found
    return problems


if __name__ == "__main__":
    import argparse
    import pathlib
    import tempfile

    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=SCENARIOS)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--backend", default="sqlite")
    p.add_argument("--deadline", type=float, default=None, help="EXECLEDGER_SUBMIT_DEADLINE_S (harness: 2.0)")
    a = p.parse_args()
    if a.deadline is not None:
        import tests.faults.harness as harness

        harness.SUBMIT_DEADLINE_S = a.deadline
    d = pathlib.Path(tempfile.mkdtemp(prefix=f"burst-{a.scenario}-"))
    print("work dir", d, flush=True)
    asyncio.run(main(a.scenario, a.runs, a.seed, a.backend, d))
