"""``execledger run`` in-process: every role over the built-in simulator, a signal over HTTP to a bracket."""

import asyncio

import aiohttp
import pytest

from execledger.application.engine import ReportPublisher
from execledger.application.service import ServiceConfig
from execledger.infrastructure.runner import Role, run_service
from execledger.infrastructure.writerlock import WriterLockHeld


async def start(settings, **kwargs):
    stop, ready = asyncio.Event(), asyncio.Queue()
    task = asyncio.create_task(
        run_service(
            settings,
            stop=stop,
            on_ready=ready.put_nowait,
            api_port=0,
            service_config=ServiceConfig(tick_interval_s=0.05),
            **kwargs,
        )
    )
    getter = asyncio.create_task(ready.get())
    done, _ = await asyncio.wait({task, getter}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        getter.cancel()
        task.result()  # raises what the service raised
    return stop, task, getter.result()


def when_reported(running, role: str, status: str) -> asyncio.Event:
    """An event set once an execution report of an order of ``role`` with ``order_status`` ``status`` is
    committed."""
    seen = asyncio.Event()
    running.ledger.engine.uow.add_listener(
        ReportPublisher(
            running.ledger.ledger, lambda r: seen.set() if r.role == role and r.order_status == status else None
        )
    )
    return seen


async def test_all_roles_over_the_builtin_simulator(settings):
    stop, task, running = await start(settings)
    try:
        assert running.simulator is not None and running.api_url.startswith("http://127.0.0.1:")
        filled = when_reported(running, "stop_loss", "OPEN")
        async with aiohttp.ClientSession() as http:
            r = await http.post(
                f"{running.api_url}/v1/signals",
                json={
                    "signal_id": "run-1",
                    "pair": "XBT/USD",
                    "side": "buy",
                    "order_type": "market",
                    "quantity": "0.01",
                    "sl_price": "60000",
                    "tp_price": "70000",
                },
            )
            assert r.status == 201
            await asyncio.wait_for(filled.wait(), 20)  # fill on the stream -> bracket -> legs acknowledged
            await running.follower.wait_for(running.ledger.app.recorder.max_notification_id(), 20)
            orders = await (await http.get(f"{running.api_url}/v1/orders", params={"signal_id": "run-1"})).json()
            assert sorted(o["role"] for o in orders["items"]) == ["entry", "stop_loss"]  # the take-profit is held
            health = await (await http.get(f"{running.api_url}/v1/health")).json()
            assert health["trading"]["mode"] == "running" and health["trading"]["recovered"] is True
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def test_second_trading_instance_on_the_same_ledger_refuses_to_start_whatever_its_key(settings):
    stop, task, running = await start(settings, role=Role.TRADING)
    try:
        second = settings.with_exchange(
            url=running.simulator.rest_url,
            ws_url=running.simulator.ws_url,
            key=running.simulator.key,
            secret=running.simulator.secret,
        )
        with pytest.raises(WriterLockHeld, match="refusing to start a second writer"):
            await run_service(second, role=Role.TRADING, stop=asyncio.Event())
        other_key = settings.with_exchange(
            url=running.simulator.rest_url, ws_url=None, key="ANOTHERKEY", secret=running.simulator.secret
        )
        with pytest.raises(WriterLockHeld, match="refusing to start a second writer"):
            await run_service(other_key, role=Role.TRADING, stop=asyncio.Event())
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def test_a_failed_worker_stops_the_service_with_its_error(settings, monkeypatch):
    # Found by the fault suite: the trading task died (an InvalidTransition) and the process kept serving the API,
    # accepting signals it would never send, until someone stopped it.
    from execledger.application.service import TradingService

    async def broken(self):
        raise RuntimeError("worker failed")

    monkeypatch.setattr(TradingService, "run", broken)
    with pytest.raises(RuntimeError, match="worker failed"):
        await asyncio.wait_for(run_service(settings, stop=asyncio.Event(), api_port=0), 20)


async def test_a_second_stop_signal_ends_the_protection_of_a_graceful_stop_at_once(settings):
    """SIGTERM: the stop waits (up to ``stop_protect_s``, here 60 s) for the filled position's stop-loss, which the
    venue holds; a second SIGTERM/SIGINT (``stop_now``, as the CLI sets it) ends the stop at once."""
    stop_now = asyncio.Event()
    stop, task, running = await start(settings, stop_now=stop_now)
    running.service.config = ServiceConfig(tick_interval_s=0.05, stop_protect_s=60.0, stop_drain_s=60.0)
    place = running.exchange.place

    async def legs_held_by_the_venue(request, *, still_wanted=None):
        if request.role.value != "entry":
            await asyncio.Event().wait()
        return await place(request, still_wanted=still_wanted)

    running.exchange.place = legs_held_by_the_venue
    filled = when_reported(running, "entry", "FILLED")
    async with aiohttp.ClientSession() as http:
        body = {"signal_id": "naked", "pair": "XBT/USD", "side": "buy", "order_type": "market", "quantity": "0.01"}
        r = await http.post(f"{running.api_url}/v1/signals", json={**body, "sl_price": "60000"})
        assert r.status == 201
    await asyncio.wait_for(filled.wait(), 20)

    stop.set()
    done, _ = await asyncio.wait({task}, timeout=1.0)
    assert not done  # the first signal: protecting the naked position
    assert running.service.stopping and not running.service.closing
    stop_now.set()
    await asyncio.wait_for(task, 5)  # the second: at once, not after stop_protect_s + stop_drain_s
