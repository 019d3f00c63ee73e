"""A graceful stop (SIGTERM) protects filled positions before it exits: entries stop at once (those queued for the
wire are withdrawn NotSent, those waiting stay PENDING_SUBMIT), while the protective legs of filled positions are
still decided and sent until each position's stop-loss is acknowledged, or ``stop_protect_s`` runs out
(``TradingService.protect_positions``); only then is the rest withdrawn (``drain_calls``). Found by the break test
``burst.py t1 200 term 1.0``: 39 positions filled, 11 with a stop on the venue, 27 stop-losses withdrawn NotSent."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from execledger.domain.order import State
from execledger.domain.values import OrderRole
from tests.harness import Harness
from tests.test_group_commits import signal


async def test_a_fill_before_the_stop_still_gets_its_stop_loss_and_a_queued_entry_is_withdrawn(ledger, clock):
    h = Harness(ledger, clock)
    entry = await h.signal()
    waiting = h.engine.control.submit_signal(signal(1)).order  # an entry not sent yet
    queued = h.engine.control.submit_signal(signal(2)).order  # an entry Submitted, queued for the wire
    requests = h.engine.execution.begin_submissions([queued.id])
    h.venue.fill(h.txid(entry), "1", "100")
    await h.service.apply(h.venue.drain()[0])  # the stop-loss is decided with the fill
    await h.service.stop()
    assert h.engine.positions_without_stop() == [h.engine.orders[entry.id]]

    protect = asyncio.create_task(h.service.protect_positions())
    await asyncio.sleep(0)
    assert not protect.done()  # waits for the stop-loss's acknowledgement
    await h.service.send_pending()  # the sender still runs while stopping
    await h.service._place(queued.id, requests[queued.id])  # its turn on the wire comes after the stop
    assert await asyncio.wait_for(protect, 1) == 0
    await h.service.drain_calls()

    stop = h.legs(entry, OrderRole.STOP_LOSS)[0]
    assert stop.state is State.OPEN and h.venue.add_order_calls[stop.cl_ord_id] == 1
    assert h.engine.positions_without_stop() == []
    assert waiting.state is State.PENDING_SUBMIT and h.venue.add_order_calls[waiting.cl_ord_id] == 0
    assert queued.state is State.PENDING_SUBMIT and h.venue.add_order_calls[queued.cl_ord_id] == 0
    assert "stopping" in (queued.last_error or "")  # NotSent: the next start sends it at once


async def test_a_fill_during_the_stop_decides_and_sends_its_legs(ledger, clock):
    """The stream still delivers fills while the service stops: their legs are Submitted and sent, not left
    PENDING_SUBMIT for the next start (before, a stopping service decided no Submitted at all)."""
    h = Harness(ledger, clock)
    entry = await h.signal()
    await h.service.stop()
    protect = asyncio.create_task(h.service.protect_positions())
    h.venue.fill(h.txid(entry), "1", "100")
    await h.service.apply(h.venue.drain()[0])
    await h.service.send_pending()
    assert await asyncio.wait_for(protect, 1) == 0
    await h.service.drain_calls()

    for leg in h.legs(entry):
        assert h.venue.add_order_calls[leg.cl_ord_id] == 1, leg.role
    assert h.legs(entry, OrderRole.STOP_LOSS)[0].state is State.OPEN


async def test_protection_is_bounded_and_the_naked_positions_are_logged(ledger, clock, caplog):
    """A stop-loss the venue does not take within ``stop_protect_s``: the stop goes on, withdraws the leg NotSent
    (never Submitted with nobody to send it) and says, in one line, how many positions are left naked."""
    h = Harness(ledger, clock)
    h.service.config = replace(h.service.config, stop_protect_s=0.05, stop_drain_s=0.05)
    entry = await h.signal()

    async def held_by_the_venue(request, *, still_wanted=None):
        await asyncio.Event().wait()  # the venue never answers

    h.venue.place = held_by_the_venue
    await h.service.stop()
    h.venue.fill(h.txid(entry), "1", "100")
    await h.service.apply(h.venue.drain()[0])
    await h.service.send_pending(wait=False)
    with caplog.at_level(logging.WARNING, logger="execledger.service"):
        assert await h.service.protect_positions() == 1
    await h.service.drain_calls()

    assert any("1 filled positions left without a stop-loss" in r.getMessage() for r in caplog.records)
    assert not h.service._inflight
    assert h.legs(entry, OrderRole.STOP_LOSS)[0].state is not State.PENDING_SUBMIT  # handed out: may have left


async def test_stop_now_does_not_wait_for_calls_in_flight(ledger, clock):
    h = Harness(ledger, clock)
    h.service.config = replace(h.service.config, stop_drain_s=30.0, stop_protect_s=30.0)
    entry = await h.signal()

    async def held_by_the_venue(request, *, still_wanted=None):
        await asyncio.Event().wait()

    h.venue.place = held_by_the_venue
    h.venue.fill(h.txid(entry), "1", "100")
    await h.service.apply(h.venue.drain()[0])
    await h.service.send_pending(wait=False)
    await h.service.stop()
    protect = asyncio.create_task(h.service.protect_positions())
    await asyncio.sleep(0)
    started = time.monotonic()
    h.service.stop_now()
    assert await asyncio.wait_for(protect, 1) == 1
    await asyncio.wait_for(h.service.drain_calls(), 1)
    assert time.monotonic() - started < 1.0
    assert not h.service._inflight


async def test_a_protective_leg_takes_the_rate_limits_room_before_an_entry_placed_earlier(ledger, clock):
    """At any time, not only at stop: with room for one AddOrder on the pair, the stop-loss goes, not the entry
    that was placed before it (``_sendable_now`` counts exits first; before, the entry took the room)."""
    h = Harness(ledger, clock)
    entry = await h.signal()
    earlier = h.engine.control.submit_signal(signal(1)).order  # an entry waiting to be sent
    room = [0]
    h.venue.order_capacity = lambda pair, within_s: room[0]
    h.venue.fill(h.txid(entry), "1", "100")
    await h.service.apply(h.venue.drain()[0])  # no room: the stop-loss waits, PENDING_SUBMIT
    stop = h.legs(entry, OrderRole.STOP_LOSS)[0]
    assert [o.id for o in h.engine.pending_submissions()] == [earlier.id, stop.id]

    room[0] = 1
    assert h.service._sendable_now(h.engine.pending_submissions()) == [h.engine.orders[stop.id]]


async def test_protection_waits_for_a_market_entry_on_the_wire_at_the_stop(ledger, clock):
    """Seen in the break test: a market entry whose answer came just after every position had its stop filled
    then, and its stop-loss was withdrawn at the drain. Protection goes on while an entry's AddOrder is on the wire
    or an acknowledged market entry's fill is due (``_fill_due``)."""
    h = Harness(ledger, clock)
    entry = h.engine.control.submit_signal(
        {"signal_id": "m", "pair": "XBT/USD", "side": "buy", "order_type": "market", "quantity": "1", "sl_price": "90"}
    ).order
    requests = h.engine.execution.begin_submissions([entry.id])
    answer, place = asyncio.Event(), h.venue.place

    async def answered_late(request, *, still_wanted=None):
        result = await place(request, still_wanted=still_wanted)  # on the wire before the stop
        await answer.wait()
        return result

    h.venue.place = answered_late
    h.service._start_call(entry.id, h.service._place(entry.id, requests[entry.id]))
    await asyncio.sleep(0)
    await h.service.stop()
    protect = asyncio.create_task(h.service.protect_positions())
    await asyncio.sleep(0.05)
    assert not protect.done()  # its answer is due
    answer.set()
    await h.service.wait_for_calls()
    assert h.engine.orders[entry.id].state is State.OPEN
    await asyncio.sleep(0.05)
    assert not protect.done()  # acknowledged: its fill is due
    h.venue.fill(h.txid(entry), "1", "100")
    for report in h.venue.drain():
        await h.service.apply(report)
    await h.service.send_pending()
    assert await asyncio.wait_for(protect, 1) == 0
    stop = h.legs(entry, OrderRole.STOP_LOSS)[0]
    assert stop.state is State.OPEN and h.venue.add_order_calls[stop.cl_ord_id] == 1
