"""Issue 14, items 1-3, with real processes: a venue outage neither floods the log nor takes the service out of
its operators' hands, the service stops promptly in any state, and entries are refused (503) rather than queued
beyond what the venue can take."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from execledger.application.ports import ErrorClass, VenueError
from execledger.domain.order import State
from tests.faults.harness import free_port, wait_until
from tests.harness import Harness
from tests.processes import MARKET_BUY, Deployment

BREAKER_RESET_S = 3.0


async def event_count(d: Deployment, api: str, signal_id: str) -> int:
    page = await d.get(f"{api}/v1/orders", signal_id=signal_id)
    if not page or not page["items"]:
        return 0
    detail = await d.get(f"{api}/v1/orders/{page['items'][0]['order_id']}")
    return len(detail["history"])


async def timed_get(d: Deployment, url: str) -> tuple[float, dict | None]:
    started = time.monotonic()
    body = await d.get(url)
    return time.monotonic() - started, body


async def test_a_venue_outage_neither_floods_the_log_nor_blocks_the_service(tmp_path, settings):
    async with Deployment(tmp_path, settings) as d:
        sim = d.processes[0]
        proc, api = await d.service("service", EXECLEDGER_KRAKEN_BREAKER_RESET_S=str(BREAKER_RESET_S))
        sim.kill()
        await sim.reap()

        async def breaker_open():
            status, _ = await d.post(f"{api}/v1/signals", {"signal_id": f"probe-{time.monotonic()}", **MARKET_BUY})
            return status == 503

        await wait_until(breaker_open, timeout=60, what="entries refused while the venue is down", process=proc)
        async with d.http.post(f"{api}/v1/signals", json={"signal_id": "during", **MARKET_BUY}) as r:
            assert r.status == 503 and int(r.headers["Retry-After"]) >= 1
            assert "venue" in (await r.json())["error"]
        assert await event_count(d, api, "during") == 0  # refused before anything was written

        elapsed, health = await timed_get(d, f"{api}/v1/health")
        assert health is not None and elapsed < 1.0  # the loop is free: no livelock
        before = (await d.get(f"{api}/v1/health"))["projection_position"]
        await asyncio.sleep(2 * BREAKER_RESET_S)  # an outage that outlasts the breaker's open time
        after = (await d.get(f"{api}/v1/health"))["projection_position"]
        assert after - before < 20, f"{after - before} events written while nothing could be sent"

        returned = time.monotonic()
        sim.start()  # the venue comes back on the same port
        await wait_until(d.simulator_up, timeout=30, what="simulator back", process=sim)

        async def accepted():
            status, _ = await d.post(f"{api}/v1/signals", {"signal_id": f"back-{time.monotonic()}", **MARKET_BUY})
            return status == 201

        await wait_until(accepted, timeout=30, what="entries accepted again", process=proc)
        assert time.monotonic() - returned < BREAKER_RESET_S + 10
        assert await proc.terminate(10) == 0


async def test_sigterm_during_a_start_up_venue_outage_stops_within_seconds(tmp_path, settings):
    async with Deployment(tmp_path, settings) as d:
        dead = free_port()  # nothing listens here: every venue call fails
        port = free_port()
        proc = d.start(
            "service",
            ["run"],
            EXECLEDGER_API_PORT=str(port),
            EXECLEDGER_KRAKEN_URL=f"http://127.0.0.1:{dead}",
            EXECLEDGER_KRAKEN_WS_URL=f"ws://127.0.0.1:{dead}/v2",
        )

        async def up():
            return await d.get(f"http://127.0.0.1:{port}/v1/health") is not None

        await wait_until(up, timeout=60, what="service up (recovering)", process=proc)
        await asyncio.sleep(1.0)  # well into the recovery loop against the dead venue
        started = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        code = await proc.reap(20)
        assert code == 0 and time.monotonic() - started < 8, proc.tail()
        assert "Traceback" not in proc.tail(200)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_stopping_with_the_venue_gone_is_quick_and_quiet(tmp_path, settings, sig):
    async with Deployment(tmp_path, settings) as d:
        sim = d.processes[0]
        proc, _api = await d.service("service")
        sim.kill()
        await sim.reap()
        started = time.monotonic()
        proc.proc.send_signal(sig)
        code = await proc.reap(20)
        assert code == 0 and time.monotonic() - started < 8, proc.tail()
        tail = proc.tail(200)
        assert "Traceback" not in tail and "ExceptionGroup" not in tail, tail


async def test_entries_beyond_the_backlog_bound_are_refused_with_503(tmp_path, settings):
    async with Deployment(tmp_path, settings) as d:
        port = free_port()
        proc = d.start("service", ["run"], EXECLEDGER_API_PORT=str(port), EXECLEDGER_MAX_PENDING_ENTRIES="3")
        api = f"http://127.0.0.1:{port}"

        async def recovered():
            health = await d.get(f"{api}/v1/health")
            return health is not None and health["trading"].get("recovered")

        await wait_until(recovered, timeout=60, what="service recovered", process=proc)
        # The venue holds each AddOrder's reply: entries pile up faster than they are sent.
        await d.post(
            f"{d.sim_url}/_sim/faults", {"path": "AddOrder", "kind": "delay_reply", "count": 50, "seconds": 1.0}
        )
        answers = await asyncio.gather(
            *(d.post(f"{api}/v1/signals", {"signal_id": f"burst-{i}", **MARKET_BUY}) for i in range(12))
        )
        statuses = sorted(status for status, _ in answers)
        assert 201 in statuses and 503 in statuses, statuses
        refused = [body for status, body in answers if status == 503]
        assert all("entries wait to be sent" in b["error"] for b in refused), refused
        assert await proc.terminate(15) == 0


class VenueDown(VenueError):
    """What the adapter raises once its retries of a call ran out during an outage (a 502 page, a refused port)."""

    def __init__(self, message: str = "venue down") -> None:
        super().__init__(message, ErrorClass.RETRYABLE)


async def test_a_cancel_the_venue_cannot_take_during_an_outage_waits_and_is_sent_again(ledger, clock):
    """Found by the outage runs of the fault suite: a timeout cancel decided while the venue answered every call
    with a 502 page raised once the adapter's retries ran out, and the trading task died with it."""
    h = Harness(ledger, clock)
    entry = await h.signal(sl_price=None, tp_price=None)
    real_cancel, outage = h.venue.cancel, True

    async def cancel(**ids):
        if outage:
            raise VenueDown("Kraken CancelOrder: HTTP 502 (text/html, 63 bytes) [retryable]")
        return await real_cancel(**ids)

    h.venue.cancel = cancel
    h.engine.control.cancel_order(str(entry.id), by="ops", why="outage test")
    events = len(ledger.order_history(entry.id))
    assert await h.service.send_pending() == 1  # the cancel was started and failed: nothing raised
    assert h.service._failed_calls == []
    assert h.engine.orders[entry.id].state is State.CANCEL_PENDING
    assert len(ledger.order_history(entry.id)) == events  # a failure that changed nothing records nothing
    outage = False
    await h.settle()
    assert h.engine.orders[entry.id].state is State.CANCELED and h.venue.cancel_calls[h.txid(entry)] == 1
