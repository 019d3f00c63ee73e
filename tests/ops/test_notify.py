"""Notifications: a tracked follower of the log delivers fills, brackets, rejections, halts and reconciliation
findings to webhooks and apprise targets, at least once and in order, across failures and restarts."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from execledger.domain.trading_state import TradingMode
from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.notify import AppriseSink, NotificationFollower, WebhookSink, sinks_from_settings
from execledger.infrastructure.settings import Settings
from tests.harness import Harness
from tests.ops.scenario import scripted_lifecycle


class Receiver:
    """A webhook endpoint on loopback that answers ``statuses`` in turn (then 200) and keeps every body."""

    def __init__(self, statuses: list[int] | None = None):
        self.statuses = list(statuses or [])
        self.bodies: list[dict] = []
        self.refused = 0
        self.got = asyncio.Event()
        app = web.Application()
        app.router.add_post("/hook/{token}", self.hook)
        self.server = TestServer(app, host="127.0.0.1")

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.statuses:
            self.refused += 1
            return web.Response(status=self.statuses.pop(0))
        if "id" in body:  # our webhook; apprise's JSON body has no id
            assert request.headers["Idempotency-Key"] == body["id"]
        self.bodies.append(body)
        self.got.set()
        return web.json_response({"ok": True})

    @property
    def url(self) -> str:
        return str(self.server.make_url("/hook/T0K3N"))

    async def __aenter__(self) -> Receiver:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.server.close()


@pytest.fixture
def lg(settings, clock):
    ledger = open_ledger(settings, clock=clock)
    yield ledger
    ledger.close()


def follower(lg, *sinks, **kw) -> NotificationFollower:
    return NotificationFollower(lg.app, lg.db, sinks, pairs=lg.ledger.pairs, retry_initial_s=0.01, **kw)


async def test_lifecycle_notified_once_each_in_order_despite_a_failing_webhook(lg, clock):
    async with Receiver(statuses=[503, 502, 429]) as hook:
        f = follower(lg, WebhookSink(hook.url))
        start = f.position()  # first start: from now on
        await scripted_lifecycle(Harness(lg.ledger, clock), clock)
        delivered = await f.catch_up()
        await f.sinks[0].close()
    kinds = [b["kind"] for b in hook.bodies]
    assert kinds == ["fill", "bracket", "fill", "rejection", "trading_mode", "trading_mode"]
    assert delivered == 6 and hook.refused == 3
    assert len({b["id"] for b in hook.bodies}) == 6
    positions = [b["position"] for b in hook.bodies]
    assert positions == sorted(positions) and positions[0] > start
    fill, bracket, tp_fill, rejection, halt, resume = hook.bodies
    assert fill["signal_id"] == "life-tp" and fill["data"]["pair"] == "XBT/USD" and fill["data"]["px"] == "100"
    assert fill["text"] == "entry buy 1 XBT/USD @ 100 (fee 0.16); 1 of 1 filled"
    assert bracket["text"] == "XBT/USD: protecting 1 with stop 90 and take-profit 120"
    assert tp_fill["data"]["role"] == "take_profit"
    assert rejection["data"]["error"] == "EOrder:Insufficient funds" and rejection["signal_id"] == "life-rejected"
    assert halt["text"] == "trading HALTED by ops-test: maintenance window" and resume["data"]["mode"] == "running"
    assert f.position() == lg.app.recorder.max_notification_id()


async def test_restart_resumes_from_the_tracking_position(lg, clock):
    async with Receiver() as hook:
        first = follower(lg, WebhookSink(hook.url))
        first.position()
        lg.engine.control.set_mode(TradingMode.HALTED, by="a", why="one")
        assert await first.catch_up() == 1
        await first.sinks[0].close()
        again = follower(lg, WebhookSink(hook.url))  # a new process, same tracking table
        assert await again.catch_up() == 0
        lg.engine.control.set_mode(TradingMode.RUNNING, by="a", why="two")
        assert await again.catch_up() == 1
        await again.sinks[0].close()
    assert [b["text"] for b in hook.bodies] == ["trading HALTED by a: one", "trading resumed by a: two"]


async def test_a_crash_after_delivery_delivers_again_never_loses(lg, clock, monkeypatch):
    async with Receiver() as hook:
        crashing = follower(lg, WebhookSink(hook.url))
        crashing.position()
        lg.engine.control.set_mode(TradingMode.HALTED, by="a", why="one")
        lg.engine.control.set_mode(TradingMode.RUNNING, by="a", why="two")

        def crash(position: int, *, new: bool = False) -> None:
            raise RuntimeError("killed between the delivery and the tracking write")

        monkeypatch.setattr(crashing, "_save", crash)
        with pytest.raises(RuntimeError, match="killed"):
            await crashing.catch_up()
        await crashing.sinks[0].close()
        restarted = follower(lg, WebhookSink(hook.url))
        assert await restarted.catch_up() == 2
        await restarted.sinks[0].close()
    texts = [b["text"] for b in hook.bodies]
    assert texts == ["trading HALTED by a: one", "trading HALTED by a: one", "trading resumed by a: two"]
    assert hook.bodies[0]["id"] == hook.bodies[1]["id"]  # the receiver can tell it is the same notification


async def test_a_message_the_webhook_will_never_accept_is_logged_and_skipped(lg, caplog):
    async with Receiver(statuses=[400]) as hook:
        f = follower(lg, WebhookSink(hook.url))
        f.position()
        lg.engine.control.set_mode(TradingMode.HALTED, by="a", why="refused")
        lg.engine.control.set_mode(TradingMode.RUNNING, by="a", why="accepted")
        with caplog.at_level(logging.ERROR, logger="execledger.notify"):
            await f.catch_up()
        await f.sinks[0].close()
    assert [b["text"] for b in hook.bodies] == ["trading resumed by a: accepted"]
    assert "dropped by webhook 127.0.0.1" in caplog.text and "T0K3N" not in caplog.text


async def test_reconciliation_findings_are_notified(lg, clock):
    async with Receiver() as hook:
        f = follower(lg, WebhookSink(hook.url))
        f.position()
        h = Harness(lg.ledger, clock)
        entry = await h.signal(signal_id="recon")
        h.venue.fill(h.txid(entry), "1", "100")
        h.venue.drain()  # the stream lost it
        await h.service.reconcile()
        await f.catch_up()
        await f.sinks[0].close()
    [finding] = [b for b in hook.bodies if b["kind"] == "reconciliation"]
    assert finding["title"] == "execledger: fill found by reconciliation recon" and finding["data"]["qty"] == "1"


async def test_apprise_targets_get_title_and_text(lg):
    async with Receiver() as hook:
        url = hook.url.replace("http://", "json://")  # apprise's generic JSON webhook
        f = follower(lg, AppriseSink([url]))
        f.position()
        lg.engine.control.set_mode(TradingMode.HALTED, by="ops", why="exchange maintenance")
        assert await asyncio.wait_for(f.catch_up(), 60) == 1  # a refusing target would be retried: bound it
    [body] = hook.bodies
    assert body["title"] == "execledger: trading halted"
    assert body["message"] == "trading HALTED by ops: exchange maintenance"


async def test_follower_runs_until_stopped_and_wakes_on_a_nudge(lg):
    async with Receiver() as hook:
        f = follower(lg, WebhookSink(hook.url), poll_interval_s=60)
        f.position()
        stop = asyncio.Event()
        task = asyncio.create_task(f.run(stop))
        lg.engine.control.set_mode(TradingMode.HALTED, by="a", why="now")
        f.nudge()  # the poll interval is a minute: only the nudge can deliver this quickly
        await asyncio.wait_for(hook.got.wait(), 20)
        stop.set()
        f.nudge()
        await asyncio.wait_for(task, 20)
    assert [b["kind"] for b in hook.bodies] == ["trading_mode"]


def test_sinks_come_from_settings(tmp_path):
    s = Settings(
        data_dir=tmp_path,
        notify_webhook_urls="https://a.example/hook/1, https://b.example/hook/2",
        notify_apprise_urls="json://127.0.0.1:9/x",
    )
    sinks = sinks_from_settings(s)
    assert [type(x).__name__ for x in sinks] == ["WebhookSink", "WebhookSink", "AppriseSink"]
    assert sinks[0].name == "webhook a.example"  # never the path, which may hold a token
    assert sinks_from_settings(Settings(data_dir=tmp_path)) == []
    with pytest.raises(ValueError, match="apprise"):
        sinks_from_settings(Settings(data_dir=tmp_path, notify_apprise_urls="not a url at all"))
