"""The dead-man's switch never outlives the moment a protective leg rests (issue 13 scenario 7, whole kind).

Kraken's ``CancelAllOrdersAfter`` cancels every order of the account when it fires, legs included. In the
``entries`` mode the switch is armed only while no leg lives; a leg goes out only once the venue has confirmed
the disarm, so a service that dies at any moment after a leg rests leaves it resting.
"""

from __future__ import annotations

import asyncio

from execledger.application.service import ServiceConfig, TradingService
from execledger.domain.values import OrderRole
from tests.harness import Harness


class SlowDisarm:
    """Wraps the fake venue: records CancelAllOrdersAfter and AddOrder in order; a disarm waits for ``release``."""

    def __init__(self, venue):
        self.calls: list[tuple[str, object]] = []
        self.release = asyncio.Event()
        self.disarm_arrived = asyncio.Event()
        self.armed = asyncio.Event()
        self._place = venue.place
        venue.cancel_all_after = self.cancel_all_after
        venue.place = self.place

    async def cancel_all_after(self, timeout_s: int):
        self.calls.append(("CancelAllOrdersAfter", timeout_s))
        if timeout_s > 0:
            self.armed.set()
        else:
            self.disarm_arrived.set()
            await self.release.wait()
            self.calls.append(("disarmed", 0))
        return None

    async def place(self, request, *, still_wanted=None):
        self.calls.append(("AddOrder", request.client_order_id))
        return await self._place(request, still_wanted=still_wanted)


async def test_a_leg_waits_for_the_disarm_the_venue_is_slow_to_take(ledger, clock):
    h = Harness(ledger, clock)
    venue = SlowDisarm(h.venue)
    service = TradingService(h.engine, h.venue, ServiceConfig(retry_min_s=0.0, deadman_disarm_wait_s=30))
    loop = asyncio.create_task(service._deadman())
    try:
        await asyncio.wait_for(venue.armed.wait(), 5)  # armed while no leg lives
        entry = await h.signal(order_type="market", limit_price=None)
        h.venue.fill(h.txid(entry), "1", "100")
        for report in h.venue.drain():
            await service.apply(report)
        [stop] = h.legs(entry, OrderRole.STOP_LOSS)
        sending = asyncio.create_task(service.send_pending())
        await asyncio.wait_for(venue.disarm_arrived.wait(), 5)
        assert ("AddOrder", stop.cl_ord_id) not in venue.calls, "the leg went out while the switch was armed"
        venue.release.set()
        await asyncio.wait_for(sending, 5)
    finally:
        await service.stop()
        venue.release.set()
        await asyncio.wait_for(loop, 5)
    order = [c for c in venue.calls if c[0] in ("disarmed", "AddOrder")]
    assert order.index(("disarmed", 0)) < order.index(("AddOrder", stop.cl_ord_id))
    assert [c for c in venue.calls if c == ("CancelAllOrdersAfter", 60)] == [("CancelAllOrdersAfter", 60)]


async def test_a_disarm_the_venue_refuses_delays_no_leg(ledger, clock):
    """Housekeeping never holds protection back: a refused disarm is reported and the leg is sent."""
    h = Harness(ledger, clock)
    calls: list[str] = []

    async def refused(timeout_s: int):
        calls.append(f"CancelAllOrdersAfter {timeout_s}")
        raise RuntimeError("EService:Unavailable")

    h.venue.cancel_all_after = refused
    service = TradingService(h.engine, h.venue, ServiceConfig(retry_min_s=0.0))
    entry = await h.signal(order_type="market", limit_price=None)
    h.venue.fill(h.txid(entry), "1", "100")
    for report in h.venue.drain():
        await service.apply(report)
    await service.send_pending()
    [stop] = h.legs(entry, OrderRole.STOP_LOSS)
    assert calls == ["CancelAllOrdersAfter 0"] and h.venue.add_order_calls[stop.cl_ord_id] == 1
