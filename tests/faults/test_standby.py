"""A standby trading process takes over the API key when the lock holder dies: nothing lost, nothing doubled."""

from __future__ import annotations

import random

import aiohttp

from tests.faults.harness import EXECLEDGER, Backend, Process, Session, SoakResult, free_port, wait_until

SEED = 11


async def test_standby_takes_over_when_the_holder_is_killed(tmp_path):
    backend = Backend.from_env()
    if backend.name == "postgres":
        from tests.conftest import require_postgres

        require_postgres()
    rng = random.Random(SEED)
    async with Session(tmp_path, backend, SEED, SoakResult(seed=SEED, backend=backend.name)) as s:
        for _ in range(3):
            await s.post_signal(s.new_signal(rng))
        await s.move_price(rng)
        port = free_port()
        standby = Process("standby", [EXECLEDGER, "run", "--standby"], s._service_env(port), tmp_path / "standby.log")
        standby.start()
        try:

            async def standby_health():
                try:
                    return await s._get(f"http://127.0.0.1:{port}/v1/health")
                except aiohttp.ClientConnectionError:
                    return None  # nothing listens yet

            # While the holder lives the standby waits for the lock and serves nothing (a bug would answer here).
            assert standby.alive and await standby_health() is None
            s.service.kill()  # SIGKILL: the kernel releases the holder's lock, nothing else is cleaned up
            await s.service.reap()
            await wait_until(lambda: _recovered(standby_health), timeout=60, what="standby took over", process=standby)
            s.service, s.api_url = standby, f"http://127.0.0.1:{port}"
            await s.post_signal(s.new_signal(rng))  # the new holder trades
            await s.move_price(rng)
            assert await s.settle(), standby.tail()
            assert await standby.terminate() == 0
            assert await s.check("standby takeover") == []
        finally:
            standby.kill()
            await standby.reap()


async def _recovered(health) -> bool:
    body = await health()
    return bool(body and body["trading"].get("recovered"))
