"""A save the database refuses for a moment must not leave a process that answers as if it traded (break test,
issue 18). PostgreSQL refuses every new event for 2 s (a ``CHECK (false) NOT VALID`` constraint on the events
table, as a read-only failover or a full disk would) while the venue fills the positions' stop-losses; then the
database takes saves again. Expected: the trading process either goes on (records the fills) or stops (exits, so
its supervisor restarts it and recovery reconciles). Seen on 897af73 and on f3ff4c8 alike: the trading task dies
with the ``IntegrityError`` silently, the process keeps answering ``/v1/health`` 200 with ``recovered: true``,
takes signals (202, never carried out), the ledger shows the stops open while the venue filled them, and the error
is logged only at SIGTERM (exit 1).

Why (a task dump at that moment): the runner waits for ``TradingService.run``, whose TaskGroup cancelled its other
workers when ``_stream`` failed; every one ended but ``prices``. ``_follow_prices`` waits with
``asyncio.wait_for(queue.get(), ...)``, and Python 3.11's ``wait_for`` returns the item instead of raising when the
cancellation arrives as the item does (the fill wave brings price ticks), so the cancellation is lost and the loop
(``while not self.stopping``) runs on. With two positions the process exited; with eight it failed 4 runs of 4."""

from __future__ import annotations

import asyncio
import time

import psycopg
from psycopg import sql

from tests.conftest import TEST_DATABASE_URL, require_postgres
from tests.faults.harness import PAIR, Backend, Session, SoakResult

SEED = 31
POSITIONS = 8  # more fills in the wave: more price ticks arriving with them (the race below)


def _execute(statement: sql.Composed) -> None:
    with psycopg.connect(TEST_DATABASE_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(statement)


async def _stops(s: Session) -> list[str]:
    return sorted(o["status"] for o in await s.api_orders() if o["role"] == "stop_loss")


async def test_a_save_refused_for_a_moment_leaves_no_process_that_looks_alive(tmp_path):
    require_postgres()
    backend = Backend("postgres", TEST_DATABASE_URL)
    async with Session(tmp_path, backend, SEED, SoakResult(seed=SEED, backend=backend.name)) as s:
        for i in range(POSITIONS):
            body = {"signal_id": f"m{i}", "pair": PAIR, "side": "buy", "order_type": "market", "quantity": "0.004"}
            await s.post_signal(body | {"sl_price": "66000.0"})
        deadline = time.monotonic() + 15
        while await _stops(s) != ["open"] * POSITIONS and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert await _stops(s) == ["open"] * POSITIONS
        await asyncio.sleep(1)
        table = sql.Identifier(s.schema, "orders_events")
        refuse = sql.SQL("ALTER TABLE {} ADD CONSTRAINT breaker_refuse CHECK (false) NOT VALID").format(table)
        await asyncio.to_thread(_execute, refuse)
        try:
            await s.sim_post("price", {"pair": PAIR, "price": "65900.0"})  # both stops fill on the venue
            await asyncio.sleep(3)
        finally:
            drop = sql.SQL("ALTER TABLE {} DROP CONSTRAINT breaker_refuse").format(table)
            await asyncio.to_thread(_execute, drop)
        deadline = time.monotonic() + 20
        while s.service.alive and time.monotonic() < deadline:
            if await _stops(s) == ["filled"] * POSITIONS:
                return  # it went on
            await asyncio.sleep(0.5)
        health = await s._get(f"{s.api_url}/v1/health", accept=(200, 503)) if s.service.alive else None
        assert not s.service.alive, (
            f"20 s after the database took saves again the process still runs, the ledger's stops are "
            f"{await _stops(s)} (the venue filled them all) and /v1/health says {health}"
        )
