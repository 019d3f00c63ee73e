"""Backpressure and halts against the venue's rate limit (issue 14 item 3, found again by a hostile tester): a new
entry is refused when the venue would not let it out within a signal's maximum age, and an entry waiting for rate
capacity is not sent once a halt was applied meanwhile."""

import asyncio

import pytest

from execledger.application.engine import EngineConfig
from execledger.application.trading_control import EntriesBusy
from execledger.domain.order import State
from execledger.domain.trading_state import TradingMode
from tests.fakes import FakeExchange
from tests.harness import Harness

MARKET = {"pair": "XBT/USD", "side": "buy", "order_type": "market", "quantity": "1", "sl_price": None}


class RateLimitedVenue(FakeExchange):
    """A venue whose rate limit lets ``capacity`` AddOrders out within the horizon asked, and whose capacity
    waits are released by the test."""

    def __init__(self, clock, capacity: int):
        super().__init__(clock)
        self.capacity = capacity
        self.capacity_free = asyncio.Event()
        self.waiting = asyncio.Event()

    def order_capacity(self, pair, within_s):
        if within_s <= 0 and not self.capacity_free.is_set():
            return 0  # nothing goes out right now: whatever is sent waits for the test to free capacity
        return self.capacity

    async def wait_for_order_capacity(self, pair, max_wait_s=None, *, urgent=False, reserve=None) -> bool:
        self.waiting.set()
        await self.capacity_free.wait()
        return True


def signal(n):
    return {"signal_id": f"s{n}", **{k: v for k, v in MARKET.items() if v is not None}}


async def test_an_entry_is_refused_when_the_rate_limit_would_not_let_it_out_in_time(ledger, clock):
    h = Harness(ledger, clock)
    h.venue = h.service.exchange = RateLimitedVenue(clock, capacity=2)
    h.engine.control.submit_signal(signal(1))
    h.engine.control.submit_signal(signal(2))
    with pytest.raises(EntriesBusy, match="rate limit lets 2 orders on XXBTZUSD out"):
        h.engine.control.submit_signal(signal(3))
    assert h.engine.orders.entry_of_signal("s3") is None  # nothing recorded for it


async def test_a_halt_applied_while_an_entry_waits_for_rate_capacity_is_obeyed(ledger, clock):
    h = Harness(ledger, clock)
    venue = RateLimitedVenue(clock, capacity=10)
    h.venue = h.service.exchange = venue
    entry = h.engine.control.submit_signal(signal(1)).order
    sending = asyncio.create_task(h.service.send_pending())
    await asyncio.wait_for(venue.waiting.wait(), 5)  # the sender waits for the venue's rate limit...
    h.engine.control.set_mode(TradingMode.HALTED, by="ops", why="incident", cancel_entries=True)  # ...meanwhile
    venue.capacity_free.set()
    await asyncio.wait_for(sending, 5)
    assert h.engine.orders[entry.id].state is State.CANCELED and venue.add_order_calls[entry.cl_ord_id] == 0


class HeldReplies(FakeExchange):
    """A venue that holds every AddOrder's reply until the test lets them go."""

    def __init__(self, clock, holding: int):
        super().__init__(clock)
        self.release = asyncio.Event()
        self.all_held = asyncio.Event()  # ``holding`` AddOrders have reached the venue
        self.holding, self.held = holding, 0

    async def place(self, request, *, still_wanted=None):
        self.held += 1
        if self.held == self.holding:
            self.all_held.set()
        await self.release.wait()
        return await super().place(request, still_wanted=still_wanted)


async def test_entries_whose_addorder_is_not_answered_yet_count_toward_the_backlog_bound(ledger, clock):
    """Found by bench/load.py: only unsent entries were counted, so a burst moved the queue into submitted entries
    waiting for the venue and the bound no longer bounded how late an accepted entry reached it."""
    h = Harness(ledger, clock, EngineConfig(max_pending_entries=2))
    venue = HeldReplies(clock, holding=2)
    h.venue = h.service.exchange = venue
    h.engine.control.submit_signal(signal(1))
    h.engine.control.submit_signal(signal(2))
    assert await h.service.send_pending(wait=False) == 2
    await asyncio.wait_for(venue.all_held.wait(), 5)
    assert {o.state for o in h.engine.orders.values()} == {State.SUBMITTING}  # both calls wait on the venue
    with pytest.raises(EntriesBusy, match="2 entries wait to be sent or answered by the venue"):
        h.engine.control.submit_signal(signal(3))
    venue.release.set()
    await h.service.wait_for_calls()
    assert h.engine.control.submit_signal(signal(3)).created  # answered: room again
