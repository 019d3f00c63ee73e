"""The read models store whatever text the log holds, and a batch they cannot apply is reported, not fatal.

The hostile tester's finding: an operator reason with a NUL was applied, and on PostgreSQL the projection then died
on ``psycopg.DataError: PostgreSQL text fields cannot contain NUL``, could not restart, ``projections rebuild``
failed too, and ``/v1/health`` said ok. Commands now refuse control characters (``test_command_text.py``); these
tests cover what is already in a log (old events, other writers): NUL and lone surrogates are stored escaped, text
longer than its column is cut to it, on both backends, live and rebuilt alike; and a batch the database refuses
for any reason makes health ``degraded`` (naming the error and the lag) while the follower keeps trying.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, text

from execledger.domain.reasons import reason
from execledger.domain.values import OrderRole
from execledger.infrastructure.api import ApiContext, create_api
from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.commandbus import CommandBus
from execledger.infrastructure.readmodels import tables as t
from execledger.infrastructure.readmodels.database import storable
from execledger.infrastructure.readmodels.follower import ProjectionFollower
from tests.faults.harness import EXECLEDGER, Process, free_port, wait_until
from tests.harness import Harness
from tests.test_projections import snapshot

LONG_RULE = "r" * 100  # the decisions.rule column is String(80)


async def write_hostile_text(lg, clock) -> dict:
    """A traded signal, then what a careless writer can leave in a log: a NUL in an operator's name and reason (the
    engine's direct API does not go through Command), and an event from another writer whose JSON carries a lone
    surrogate (``\\ud800``) and a rule longer than its column."""
    h = Harness(lg.ledger, clock)
    entry = await h.signal(signal_id="txt-1")
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    closed = h.engine.control.close_position("txt-1", by="ev\x00e", why="x\x00y")
    assert closed.outcome.value == "applied"
    [stop] = h.legs(entry, OrderRole.STOP_LOSS)
    order = lg.ledger.get_order(stop.id)
    order.note_operator_resolution(reason=reason("PLACEHOLDER_RULE", "PLACEHOLDER_TEXT"))
    [event] = order.collect_events()
    stored = lg.app.mapper.to_stored_event(event)
    assert b"PLACEHOLDER_TEXT" in stored.state  # plain JSON: the replacement below is what another writer stores
    state = stored.state.replace(b"PLACEHOLDER_TEXT", b"lone \\ud800 surrogate").replace(
        b"PLACEHOLDER_RULE", LONG_RULE.encode()
    )
    lg.app.recorder.insert_events([dataclasses.replace(stored, state=state)])
    return {"entry": entry, "stop": stop, "version": event.originator_version}


def decision_texts(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(t.decisions.c.rule, t.decisions.c.text))]


def test_storable_leaves_ordinary_batches_alone_and_fixes_only_the_cells_that_need_it():
    table = t.decisions  # order_id String(36), ..., rule String(80), text Text, reason_json Text
    plain_row = ("o" * 36, 1, "s1", "Placed", "decision", "rule", "ok", "{}", "2026-01-01 00:00:00.000000")
    rows = [plain_row] * 1000
    assert storable(table, rows) is rows  # nothing to do: the very same list, no copy
    hostile = [*rows[:500], (*plain_row[:5], "r" * 81, "a\x00b", "\ud800"), *rows[500:], (*plain_row[:6], 5, "{}")]
    fixed = storable(table, hostile)
    assert fixed[500][5:8] == ("r" * 80, "a\\u0000b", "\\ud800")  # cut to the column, escaped
    assert fixed[:500] == rows[:500] and fixed[501:1001] == rows[500:]
    assert fixed[1001][6] == 5  # not text: left as it is
    accented = [(*plain_row[:6], "café", "{}")]
    assert storable(table, accented) == accented  # not ASCII but storable: unchanged


async def test_nul_surrogates_and_overlong_text_are_stored_escaped_live_and_rebuilt(settings, clock):
    with open_ledger(settings, clock=clock) as lg:
        written = await write_hostile_text(lg, clock)
        assert lg.projector.catch_up() == lg.app.recorder.max_notification_id()
        rows = decision_texts(lg.db)
        assert any("ev\\u0000e" in (text or "") and "x\\u0000y" in (text or "") for _rule, text in rows), rows
        assert (LONG_RULE[:80], "lone \\ud800 surrogate") in rows
        assert not any("\x00" in (text or "") for _rule, text in rows)
        with lg.db.connect() as conn:
            version = conn.execute(
                select(t.decisions.c.version).where(t.decisions.c.order_id == str(written["stop"].id))
            ).all()
        assert (written["version"],) in version
        live = snapshot(lg.db)
        assert lg.projector.rebuild() == lg.app.recorder.max_notification_id()
        assert snapshot(lg.db) == live


def refuse_poison(engine) -> None:
    """A database that refuses one row (a trigger): a batch the projection cannot apply, whatever the cause."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON decisions WHEN NEW.text LIKE '%poison%' "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN IF NEW.text LIKE '%poison%' THEN "
                    "RAISE EXCEPTION 'refused by the test trigger'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON decisions FOR EACH ROW EXECUTE FUNCTION "
                    "refuse_poison()"
                )
            )


def accept_poison(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse_poison" + ("" if conn.dialect.name == "sqlite" else " ON decisions")))


async def health_of(client) -> dict:
    r = await client.get("/v1/health")
    assert r.status == 200  # degraded or ok: the service can still trade
    return await r.json()


async def test_a_batch_the_database_refuses_makes_health_degraded_and_the_follower_keeps_trying(settings, clock):
    # Two "processes" over one store: the projections role runs the follower, the api role answers /v1/health.
    with open_ledger(settings, clock=clock) as projections, open_ledger(settings, clock=clock) as api:
        h = Harness(projections.ledger, clock)
        await h.signal(signal_id="p-1")
        projections.projector.catch_up()
        stopped_at = projections.projector.position()
        refuse_poison(projections.db)
        assert h.engine.control.close_position("p-1", by="ops", why="poison").outcome.value == "applied"

        follower = ProjectionFollower(projections.projector, poll_interval_s=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(follower.run(stop))
        async with TestClient(TestServer(create_api(ApiContext(ledger=api, bus=CommandBus(api, role="api"))))) as c:

            async def reported() -> bool:
                return (await health_of(c))["projection_failure"] is not None

            await wait_until(reported, timeout=30, what="the failure in /v1/health")
            health = await health_of(c)
            lag = api.app.recorder.max_notification_id() - stopped_at
            assert health["status"] == "degraded" and health["projection_lag"] == lag > 0
            failure = health["projection_failure"]
            assert failure["position"] == stopped_at and "refused by the test trigger" in failure["error"]
            [warning] = [w for w in health["warnings"] if "read models" in w]
            assert "refused by the test trigger" in warning and f"{lag} events behind" in warning
            assert not task.done()  # the follower did not die with the batch

            accept_poison(projections.db)
            await follower.wait_for(api.app.recorder.max_notification_id(), timeout=60)
            health = await health_of(c)
            assert health["status"] == "ok" and health["projection_failure"] is None and health["projection_lag"] == 0
        stop.set()
        await asyncio.wait_for(task, 30)


def test_a_real_projections_process_and_rebuild_get_through_a_log_with_hostile_text(tmp_path, settings, clock):
    async def prepare() -> int:
        with open_ledger(settings, clock=clock) as lg:
            await write_hostile_text(lg, clock)
            return lg.app.recorder.max_notification_id()

    events = asyncio.run(prepare())
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECLEDGER_")}
    env["EXECLEDGER_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url is not None:
        env["EXECLEDGER_DATABASE_URL"] = settings.database_url.get_secret_value()
    port = free_port()
    proc = Process(
        "projections",
        [EXECLEDGER, "run", "--role", "projections"],
        {**env, "EXECLEDGER_OPS_PORT": str(port)},
        tmp_path / "projections.log",
    )
    proc.start()

    async def followed() -> None:
        import aiohttp

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:

            async def caught_up() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/v1/health") as r:
                        body = await r.json()
                except aiohttp.ClientError:
                    return False
                return body["projection_position"] == events and body["projection_failure"] is None

            await wait_until(caught_up, timeout=60, what="the projections process caught up", process=proc)
        assert await proc.terminate() == 0, proc.tail()

    try:
        asyncio.run(followed())
    finally:
        proc.kill()
    rebuilt = subprocess.run(
        [EXECLEDGER, "projections", "rebuild"], env=env, capture_output=True, text=True, timeout=120
    )
    assert rebuilt.returncode == 0 and "rebuilt from" in rebuilt.stdout, rebuilt.stderr


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("process tests assume Linux")
