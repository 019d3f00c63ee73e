"""``execledger replay`` after execution reports that arrived together (break test, issue 18).

A WS proxy between the service and the simulator holds about a third of the executions stream's update frames until
the next one has been passed on (so two frames arrive together, the held one second; the sequence check sees a gap
and the service resyncs over REST, which brings an entry's fills together). The group commit then
stores a block's events aggregate by aggregate (``UnitOfWork.commit``), so a leg's ``AmendRequested`` decided after
its entry's first fill is stored after that entry's later ``Filled`` too; ``execledger replay`` re-runs the
policies in log order and reports the decision as differing (seen: 1, 3, 12 and 20 decisions differ, exit 4, every
other invariant of the harness holding)."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess

import aiohttp
from aiohttp import web

from tests.faults.bursts import BurstSession
from tests.faults.harness import EXECLEDGER, Backend, SoakResult, free_port

SEED = 61


class _PairingProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream
        self.rng = random.Random(1)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async with aiohttp.ClientSession() as http, http.ws_connect(self.upstream + request.path_qs) as up:

            async def to_venue() -> None:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        await up.send_str(msg.data)
                await up.close()

            async def to_service() -> None:
                held: str | None = None
                async for msg in up:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    frame = json.loads(msg.data)
                    update = frame.get("channel") == "executions" and frame.get("type") == "update"
                    if update and held is None and self.rng.random() < 0.3:
                        held = msg.data
                        continue
                    await ws.send_str(msg.data)
                    if held is not None:
                        await ws.send_str(held)
                        held = None
                await ws.close()

            await asyncio.gather(to_venue(), to_service(), return_exceptions=True)
        return ws


class _Paired(BurstSession):
    proxy_port = 0

    def _service_env(self, port: int) -> dict[str, str]:
        return super()._service_env(port) | {"EXECLEDGER_KRAKEN_WS_URL": f"ws://127.0.0.1:{self.proxy_port}/v2"}


async def test_replay_agrees_after_reports_that_arrived_together(tmp_path):
    _Paired.proxy_port = free_port()
    session = _Paired(tmp_path, Backend("sqlite"), SEED, SoakResult(seed=SEED, backend="sqlite"))
    app = web.Application()
    app.router.add_get("/{tail:.*}", _PairingProxy(f"ws://127.0.0.1:{session.sim_port}").handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", _Paired.proxy_port).start()
    try:
        async with session as s:
            for run in range(3):
                rng = random.Random(run)
                await s.burst(rng, 10)
                await asyncio.gather(s.burst(rng, 20), s.fill_wave(rng))
                await s.fill_wave(rng)
                for _ in range(4):
                    await s.move_price(rng)
                    await asyncio.sleep(0.3)
                assert await s.settle(timeout=45)
                s.protection.service_down()
                assert await s.service.terminate() == 0
                assert await s.check(f"run {run}") == []
                if run < 2:
                    await s.start_service()
            replay = await asyncio.to_thread(
                subprocess.run,
                [EXECLEDGER, "replay"],
                env=s._env(EXECLEDGER_DATA_DIR=str(s.settings.data_dir)),
                capture_output=True,
                text=True,
                timeout=120,
            )
            summary = [line for line in replay.stdout.splitlines() if "differ" in line]
            assert replay.returncode == 0, f"execledger replay exited {replay.returncode}: {summary}"
    finally:
        await runner.cleanup()
