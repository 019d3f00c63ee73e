"""The projection follower: woken by LISTEN/NOTIFY on PostgreSQL, by in-process nudges, else by polling."""

import asyncio
import threading

import pytest

from execledger.application.engine import ExecutionEngine
from execledger.infrastructure.readmodels.follower import ProjectionFollower, notify_channel
from execledger.infrastructure.readmodels.projector import ReadModelProjector, readmodel_engine

SIGNAL = {"signal_id": "f-1", "pair": "XBT/USD", "side": "buy", "order_type": "market", "quantity": "0.01"}


@pytest.fixture
def projector(orders_app, settings):
    engine = readmodel_engine(settings)
    yield ReadModelProjector(orders_app, engine)
    engine.dispose()


async def run_follower(follower):
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    return stop, task


async def test_nudge_catches_up_without_waiting_for_the_poll(ledger, projector):
    follower = ProjectionFollower(projector, poll_interval_s=3600)  # polling would never come in time
    stop, task = await run_follower(follower)
    ExecutionEngine(ledger).control.submit_signal(SIGNAL)
    follower.nudge()
    await follower.wait_for(ledger.app.recorder.max_notification_id(), timeout=10)
    assert projector.lag() == 0
    stop.set()
    follower.nudge()
    await task


async def test_listen_notify_wakes_the_follower_on_postgres(ledger, projector, settings):
    channel = notify_channel(ledger.app)
    if settings.database_url is None:
        assert channel is None  # SQLite has no NOTIFY: its follower polls (and is nudged in-process)
        return
    follower = ProjectionFollower(
        projector, poll_interval_s=3600, database_url=settings.database_url.get_secret_value(), channel=channel
    )
    stop, task = await run_follower(follower)
    await asyncio.wait_for(follower.listening.wait(), 10)  # set once the LISTEN is in place
    ExecutionEngine(ledger).control.submit_signal(SIGNAL)  # another writer: no nudge, only the database's NOTIFY
    await follower.wait_for(ledger.app.recorder.max_notification_id(), timeout=10)
    stop.set()
    follower.nudge()
    await task


async def test_polling_fallback(ledger, projector):
    follower = ProjectionFollower(projector, poll_interval_s=0.05)
    stop, task = await run_follower(follower)
    ExecutionEngine(ledger).control.submit_signal(SIGNAL)
    await follower.wait_for(ledger.app.recorder.max_notification_id(), timeout=10)
    stop.set()
    await task


async def test_in_the_trading_process_the_first_catch_up_waits_for_the_start_up_reconciliation(ledger, projector):
    ExecutionEngine(ledger).control.submit_signal(SIGNAL)  # written before the process started
    recovered = asyncio.Event()
    catch_up = projector.catch_up
    seen_recovered: list[bool] = []
    called = threading.Event()

    def watched_catch_up():
        seen_recovered.append(recovered.is_set())
        called.set()
        return catch_up()

    projector.catch_up = watched_catch_up
    follower = ProjectionFollower(projector, poll_interval_s=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop, after=recovered, head_start_s=3600))
    follower.nudge()  # nudged and polled (every 10 ms), it still leaves the log to trading's recovery
    assert not await asyncio.to_thread(called.wait, 0.5)  # a negative: what it did within a window of 50 polls
    recovered.set()
    await follower.wait_for(ledger.app.recorder.max_notification_id(), timeout=10)
    stop.set()
    await task
    assert seen_recovered and all(seen_recovered)


async def test_a_recovery_that_takes_long_holds_the_read_models_back_only_for_the_head_start(ledger, projector):
    ExecutionEngine(ledger).control.submit_signal(SIGNAL)
    follower = ProjectionFollower(projector, poll_interval_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop, after=asyncio.Event(), head_start_s=0.1))  # never recovers
    await follower.wait_for(ledger.app.recorder.max_notification_id(), timeout=10)
    stop.set()
    await task
