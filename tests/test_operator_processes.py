"""Issue 12 with real OS processes, on both backends: operator commands reach a running service through the log,
the split deployment (trading + api + projections processes) places what the api process accepted, and one
ledger has one writer whatever its API key."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.faults.harness import EXECLEDGER, Process, free_port, wait_until

KEY = "operator-test-key"
SECRET = base64.b64encode(b"k" * 64).decode()
LIMIT_BUY = {"pair": "XBT/USD", "side": "buy", "order_type": "limit", "quantity": "0.01", "limit_price": "50000"}
MARKET_BUY = {"pair": "XBT/USD", "side": "buy", "order_type": "market", "quantity": "0.01"}


class Deployment:
    """A simulator process and execledger processes over one store, all killed at the end."""

    def __init__(self, tmp_path: Path, settings):
        self.tmp, self.settings = tmp_path, settings
        self.sim_port = free_port()
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"
        self.processes: list[Process] = []
        self.http: aiohttp.ClientSession | None = None

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXECLEDGER_")}
        env |= {
            "EXECLEDGER_DATA_DIR": str(self.settings.data_dir),
            "EXECLEDGER_KRAKEN_URL": self.sim_url,
            "EXECLEDGER_KRAKEN_WS_URL": f"ws://127.0.0.1:{self.sim_port}/v2",
            "EXECLEDGER_KRAKEN_KEY": KEY,
            "EXECLEDGER_KRAKEN_SECRET": SECRET,
            "EXECLEDGER_KRAKEN_TIER": "none",
        }
        if self.settings.database_url is not None:
            env["EXECLEDGER_DATABASE_URL"] = self.settings.database_url.get_secret_value()
        return env | extra

    def start(self, name: str, argv: list[str], **env: str) -> Process:
        proc = Process(name, [EXECLEDGER, *argv], self.env(**env), self.tmp / f"{name}.log")
        proc.start()
        self.processes.append(proc)
        return proc

    async def __aenter__(self) -> Deployment:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        sim = self.start(
            "simulator",
            ["simulator", "--host", "127.0.0.1", "--port", str(self.sim_port), "--key", KEY, "--secret", SECRET],
        )
        await wait_until(self.simulator_up, timeout=30, what="simulator", process=sim)
        return self

    async def __aexit__(self, *exc) -> None:
        for proc in reversed(self.processes):
            await proc.terminate(10)
        await self.http.close()

    async def simulator_up(self) -> bool:
        async with self.http.get(f"{self.sim_url}/_sim/faults") as r:
            return r.status == 200

    async def get(self, url: str, **params):
        async with self.http.get(url, params=params) as r:
            return await r.json() if r.status == 200 else None

    async def post(self, url: str, body: dict) -> tuple[int, dict]:
        async with self.http.post(url, json=body) as r:
            return r.status, await r.json()

    async def service(self, name: str, *argv: str, recovered: bool = True) -> tuple[Process, str]:
        port = free_port()
        proc = self.start(name, ["run", *argv], EXECLEDGER_API_PORT=str(port))
        api = f"http://127.0.0.1:{port}"

        async def up():
            health = await self.get(f"{api}/v1/health")
            return health is not None and (not recovered or health["trading"].get("recovered") is not False)

        if "--role" not in argv or "api" in argv or "all" in argv:
            await wait_until(up, timeout=60, what=f"{name} health", process=proc)
        return proc, api

    def cli(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [EXECLEDGER, *argv], env=self.env(), capture_output=True, text=True, timeout=60, cwd=self.tmp
        )

    async def venue_orders(self) -> list[dict]:
        async with self.http.get(f"{self.sim_url}/_sim/history") as r:
            return await r.json()


async def test_cli_halt_reaches_the_running_service_and_resume_lets_entries_through(tmp_path, settings):
    async with Deployment(tmp_path, settings) as d:
        proc, api = await d.service("service")
        status, body = await d.post(f"{api}/v1/signals", {"signal_id": "resting", **LIMIT_BUY})
        assert status == 201, body
        await wait_until(
            lambda: _venue_status(d, body["cl_ord_id"], "open"), timeout=20, what="entry resting", process=proc
        )

        halt = d.cli("halt", "--reason", "incident 7", "--by", "alice", "--cancel-entries")
        assert halt.returncode == 0, halt.stderr
        assert "halt applied by all pid" in halt.stdout  # the running process carried it out and said so
        started = time.monotonic()
        status, refused = await d.post(f"{api}/v1/signals", {"signal_id": "after-halt", **MARKET_BUY})
        assert status == 423 and refused["why"] == "incident 7" and time.monotonic() - started < 1.0
        health = await d.get(f"{api}/v1/health")
        assert health["trading"]["mode"] == "halted" and health["trading"]["by"] == "alice"
        await wait_until(
            lambda: _venue_status(d, body["cl_ord_id"], "canceled"), timeout=20, what="entry canceled", process=proc
        )

        resume = d.cli("resume", "--reason", "incident over", "--by", "alice")
        assert resume.returncode == 0 and "resume applied by" in resume.stdout, resume.stderr
        status, placed = await d.post(f"{api}/v1/signals", {"signal_id": "after-resume", **MARKET_BUY})
        assert status == 201, placed
        await wait_until(
            lambda: _venue_status(d, placed["cl_ord_id"], "closed"), timeout=20, what="market filled", process=proc
        )
        assert await proc.terminate() == 0


async def test_commands_recorded_while_no_trading_process_runs_apply_at_its_start(tmp_path, settings):
    async with Deployment(tmp_path, settings) as d:
        halt = d.cli("halt", "--reason", "before start", "--by", "bob")
        assert halt.returncode == 0 and "no trading process is running" in halt.stdout, halt.stderr
        proc, api = await d.service("service")
        health = await d.get(f"{api}/v1/health")
        assert health["trading"]["mode"] == "halted" and health["trading"]["why"] == "before start"
        status, _ = await d.post(f"{api}/v1/signals", {"signal_id": "x", **MARKET_BUY})
        assert status == 423
        assert await proc.terminate() == 0


async def test_split_deployment_places_fills_and_brackets_a_signal_posted_to_the_api_process(tmp_path, settings):
    async with Deployment(tmp_path, settings) as d:
        trading, _ = await d.service("trading", "--role", "trading")
        projections, _ = await d.service("projections", "--role", "projections")
        api_proc, api = await d.service("api", "--role", "api")
        await wait_until(
            lambda: _trading_process(d, api), timeout=60, what="trading process seen by the api", process=trading
        )
        signal = {"signal_id": "split-1", **MARKET_BUY, "sl_price": "60000", "tp_price": "70000"}
        status, body = await d.post(f"{api}/v1/signals", signal)
        assert status == 201 and body["applied_by"].startswith("trading pid"), body

        async def bracketed():
            page = await d.get(f"{api}/v1/orders", signal_id="split-1")
            roles = {o["role"]: o["status"] for o in (page or {"items": []})["items"]}
            return roles == {"entry": "filled", "stop_loss": "open", "take_profit": "open"}

        await wait_until(bracketed, timeout=30, what="entry filled and bracketed (read models)", process=projections)
        venue = {o["cl_ord_id"]: o for o in await d.venue_orders()}
        assert venue[body["cl_ord_id"]]["status"] == "closed" and len(venue) == 3
        for proc in (api_proc, projections, trading):
            assert await proc.terminate() == 0, proc.tail()


async def test_a_second_trading_process_on_the_same_ledger_exits_3_whatever_its_key(tmp_path, settings):
    async with Deployment(tmp_path, settings) as d:
        first, _ = await d.service("trading", "--role", "trading")
        await wait_until(
            lambda: asyncio.to_thread(_lock_held, settings), timeout=60, what="writer lock taken", process=first
        )
        other_key = base64.b64encode(b"z" * 64).decode()
        env = d.env(EXECLEDGER_KRAKEN_KEY="another-key", EXECLEDGER_KRAKEN_SECRET=other_key)
        second = subprocess.run(
            [EXECLEDGER, "run", "--role", "trading"], env=env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 3, second.stderr
        # The key is checked with Kraken before the lock is tried (preflight): the simulator knows only its own key,
        # so this one is refused first; a key the venue accepted would meet the writer lock instead.
        assert ("refusing to start a second writer" in second.stderr and "pid" in second.stderr) or (
            "EXECLEDGER_KRAKEN_KEY" in second.stderr and "Invalid key" in second.stderr
        )
        assert len(second.stderr.strip().splitlines()) == 1  # one line naming the holder, no traceback
        assert first.alive


async def _venue_status(d: Deployment, cl_ord_id: str, status: str) -> bool:
    return any(o["cl_ord_id"] == cl_ord_id and o["status"] == status for o in await d.venue_orders())


async def _trading_process(d: Deployment, api: str) -> bool:
    health = await d.get(f"{api}/v1/health")
    return bool(health and health["trading"].get("process"))


def _lock_held(settings) -> bool:
    from execledger.infrastructure.writerlock import WriterLock

    return WriterLock(settings).holder() is not None


if sys.platform != "linux":  # pragma: no cover - flock and process groups as on Linux
    pytestmark = pytest.mark.skip("process tests assume Linux")
