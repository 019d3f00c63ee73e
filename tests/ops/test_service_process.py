"""The operator's surface of a real ``execledger run`` process against a real simulator process: JSON log lines
with the order's ids on disk, health 503 once the venue is SIGKILLed, metrics saying why, a clean SIGTERM."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import aiohttp

from execledger.infrastructure.client import ExecledgerClient
from tests.faults.harness import EXECLEDGER, Process, free_port, wait_until

KEY = "ops-surface-key"
SECRET = base64.b64encode(bytes(range(64))).decode()


def env(tmp: Path, settings, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("EXECLEDGER_")}
    base.update({"EXECLEDGER_DATA_DIR": str(settings.data_dir), **extra})
    if settings.database_url is not None:
        base["EXECLEDGER_DATABASE_URL"] = settings.database_url.get_secret_value()
    return base


def lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


async def test_a_real_service_logs_its_decisions_and_turns_unhealthy_when_the_venue_dies(settings, tmp_path):
    sim_port, api_port = free_port(), free_port()
    sim = Process(
        "simulator",
        [EXECLEDGER, "simulator", "--host", "127.0.0.1", "--port", str(sim_port), "--key", KEY, "--secret", SECRET],
        env(tmp_path, settings),
        tmp_path / "simulator.log",
    )
    log_file = tmp_path / "logs" / "service.jsonl"
    service = Process(
        "service",
        [EXECLEDGER, "run"],
        env(
            tmp_path,
            settings,
            EXECLEDGER_KRAKEN_URL=f"http://127.0.0.1:{sim_port}",
            EXECLEDGER_KRAKEN_WS_URL=f"ws://127.0.0.1:{sim_port}/v2",
            EXECLEDGER_KRAKEN_KEY=KEY,
            EXECLEDGER_KRAKEN_SECRET=SECRET,
            EXECLEDGER_KRAKEN_TIER="none",
            EXECLEDGER_API_PORT=str(api_port),
            EXECLEDGER_LOG_FORMAT="json",
            EXECLEDGER_LOG_FILE=str(log_file),
        ),
        tmp_path / "service.out",
    )
    api = f"http://127.0.0.1:{api_port}"
    sim.start()
    try:
        async with aiohttp.ClientSession() as http:
            await wait_until(
                lambda: http.get(f"http://127.0.0.1:{sim_port}/0/public/Time"), timeout=60, what="sim", process=sim
            )
            service.start()
            async with ExecledgerClient(api, session=http) as client:

                async def recovered():
                    return (await client.health())["trading"]["recovered"] is True

                await wait_until(recovered, timeout=90, what="service recovered", process=service)
                placed = await client.submit_signal(
                    {
                        "signal_id": "proc-1",
                        "pair": "XBT/USD",
                        "side": "buy",
                        "order_type": "market",
                        "quantity": "0.01",
                        "sl_price": "60000",
                        "tp_price": "80000",
                    }
                )

                async def bracketed():
                    return any(line.get("event") == "BracketPlaced" for line in lines(log_file))

                await wait_until(bracketed, timeout=60, what="bracket logged", process=service)
                mine = [line for line in lines(log_file) if line.get("signal_id") == "proc-1"]
                events = {line["event"] for line in mine}
                assert {"Placed", "Submitted", "Acknowledged", "Filled", "BracketPlaced"} <= events
                assert all(line["order_id"] and line["time"].endswith("Z") for line in mine)
                assert next(line for line in mine if line["event"] == "Placed")["order_id"] == placed["order_id"]
                assert (await client.health())["status"] in ("ok", "degraded")

                sim.kill()  # the venue is gone, without a goodbye
                await sim.reap()

                async def unavailable():
                    body = await client.health()
                    return body if body["status"] == "unavailable" else None

                body = await wait_until(unavailable, timeout=120, interval=0.5, what="health 503", process=service)
                assert any("circuit breaker" in p for p in body["problems"]), body
                assert not await client.ready()
                metrics = await (await http.get(f"{api}/metrics")).text()
                assert 'execledger_breaker_state{state="open"} 1.0' in metrics
                assert "execledger_can_trade 0.0" in metrics
        assert await service.terminate() == 0  # SIGTERM during the outage still stops cleanly
        # An outage is a few lines, not two a second: each kind of warning once per minute, then a count.
        outage = [line for line in lines(log_file) if line["level"] == "WARNING" and "proc-1" not in str(line)]
        kinds = {(line["logger"], re.sub(r"\d+(?:\.\d+)?", "#", line["message"])) for line in outage}
        assert len(outage) <= 3 * len(kinds), [line["message"] for line in outage]
        assert SECRET not in log_file.read_text()
    finally:
        for proc in (service, sim):
            proc.kill()
            await proc.reap()
