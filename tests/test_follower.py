"""The projection follower: woken by LISTEN/NOTIFY on PostgreSQL, by in-process nudges, else by polling."""

import asyncio

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
