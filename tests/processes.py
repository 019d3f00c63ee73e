"""Real processes for tests and benchmarks: a standalone simulator and execledger services over one store."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import aiohttp

from tests.faults.harness import EXECLEDGER, Process, free_port, wait_until

KEY = "operator-test-key"
SECRET = base64.b64encode(b"k" * 64).decode()
LIMIT_BUY = {"pair": "XBT/USD", "side": "buy", "order_type": "limit", "quantity": "0.01", "limit_price": "50000"}
MARKET_BUY = {"pair": "XBT/USD", "side": "buy", "order_type": "market", "quantity": "0.01"}


NO_LIMITS = ("--tier", "none")


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
            # no rate limits on either side (the service models none, EXECLEDGER_KRAKEN_TIER above): what these
            # processes measure is the ledger, not Kraken's counters (tests/simulator covers those)
            [
                "simulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.sim_port),
                "--key",
                KEY,
                "--secret",
                SECRET,
                *NO_LIMITS,
            ],
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
        async with self.http.get(url, params=params) as r:  # a 503 health still says who trades and why not
            return await r.json() if r.status in (200, 503) else None

    async def post(self, url: str, body: dict) -> tuple[int, dict]:
        async with self.http.post(url, json=body) as r:
            return r.status, await r.json()

    async def service(self, name: str, *argv: str, recovered: bool = True, **env: str) -> tuple[Process, str]:
        port = free_port()
        proc = self.start(name, ["run", *argv], EXECLEDGER_API_PORT=str(port), **env)
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


async def venue_status(d: Deployment, cl_ord_id: str, status: str) -> bool:
    return any(o["cl_ord_id"] == cl_ord_id and o["status"] == status for o in await d.venue_orders())


async def trading_process_seen(d: Deployment, api: str) -> bool:
    health = await d.get(f"{api}/v1/health")
    return bool(health and health["trading"].get("process"))


def lock_held(settings) -> bool:
    from execledger.infrastructure.writerlock import WriterLock

    return WriterLock(settings).holder() is not None
