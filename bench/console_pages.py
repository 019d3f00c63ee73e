"""What a console page costs against the JSON it is made from: each open console tab asks for its page once a
second (``POLL_MS``), so a page must stay cheap as the ledger grows.

N bracketed lifecycles run through the engine against the in-memory FakeExchange (as in operator_surface.py); the
read models catch up; then the API application (the api role: no venue, so no price reads) answers over HTTP on
loopback: ``GET /v1/orders?limit=50`` (the JSON baseline) and the console's orders list (50 rows), signals list
(50 signals with their outcome) and one signal's page (timeline, chart, health header), each ``--requests``
times, and the signals page polled while nothing changed (the script's ``X-Console-Version``: a 204).
Reported: p50/p99 in ms and each page's p50 as a ratio of the JSON baseline's.

Usage: .venv/bin/python bench/console_pages.py --signals 300 [--requests 40] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time

from aiohttp.test_utils import TestClient, TestServer
from common import backend_settings, summary_ms, write_result
from operator_surface import lifecycles

from execledger.application.engine import EngineConfig
from execledger.application.policies import PolicyConfig
from execledger.infrastructure.api import ApiContext, create_api
from execledger.infrastructure.api.console.sessions import COOKIE
from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.commandbus import CommandBus
from tests.conftest import ManualClock
from tests.harness import Harness


async def one_backend(backend: str, n: int, requests: int) -> dict:
    with backend_settings(backend) as settings:
        clock = ManualClock()
        lg = open_ledger(settings, clock=clock)
        try:
            h = Harness(lg.ledger, clock, EngineConfig(policy=PolicyConfig(resting_leg="both")))
            await lifecycles(h, n, "s")
            lg.projector.catch_up()
            client = TestClient(TestServer(create_api(ApiContext(ledger=lg, bus=CommandBus(lg, role="api")))))
            await client.start_server()
            try:
                first = await client.get("/console/signals")  # no token: the first page gives the session
                cookie = {"Cookie": f"{COOKIE}={first.cookies[COOKIE].value}"}
                routes = {
                    "json_orders_50": "/v1/orders?limit=50",
                    "console_orders_50": "/console/orders",
                    "console_signals_50": "/console/signals",
                    "console_signal_page": f"/console/signals/s-{n // 2}",
                }
                page = await (await client.get("/console/signals", headers=cookie)).text()
                version = re.search(r'data-version="([0-9a-f]+)"', page).group(1)
                unchanged = {**cookie, "X-Console-Version": version}
                routes["console_signals_poll_unchanged"] = "/console/signals"
                timings: dict[str, list[float]] = {name: [] for name in routes}
                for _ in range(requests):
                    for name, path in routes.items():
                        t0 = time.perf_counter()
                        r = await client.get(path, headers=unchanged if name.endswith("_unchanged") else cookie)
                        await r.read()
                        timings[name].append(time.perf_counter() - t0)
                        assert r.status == (204 if name.endswith("_unchanged") else 200), (path, r.status)
            finally:
                await client.close()
        finally:
            lg.close()
    result = {name: summary_ms(values) for name, values in timings.items()}
    base = result["json_orders_50"]["p50_ms"]
    return {
        "backend": backend,
        "signals": n,
        "requests": requests,
        **result,
        "ratios_p50_vs_json": {k: round(v["p50_ms"] / base, 2) for k, v in result.items() if k != "json_orders_50"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=300)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--backends", default="sqlite")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        result = asyncio.run(one_backend(backend, args.signals, args.requests))
        write_result(f"console_pages_{backend}", result)
        print(result)


if __name__ == "__main__":
    main()
