"""A HALT confirmed while a send pass's entries wait their turn on the wire (signing and sending are serialised in
nonce order) stops every entry not yet sent: the adapter asks ``still_wanted`` when a call's turn comes, the
service answers with the halt for an entry, and the AddOrder is NOT_SENT (then withdrawn by the next send pass).
Found by breaking the product with real processes (``tests.faults.bursts halt`` on the ``break`` branch): before,
entries whose Submitted was recorded just before the halt reached the venue, and were accepted, up to 8.6 s after
``POST /v1/trading/halt`` answered 200 (README: "entries not yet sent are withdrawn")."""

from __future__ import annotations

import asyncio

from execledger.application.ports import PlaceStatus
from execledger.domain.order import State
from execledger.domain.trading_state import TradingMode
from tests.harness import Harness
from tests.test_group_commits import signal


async def test_a_halt_applied_while_a_send_pass_waits_for_the_wire_stops_the_entries_not_yet_sent(ledger, clock):
    h = Harness(ledger, clock)
    entries = [h.engine.control.submit_signal(signal(n)).order for n in range(5)]
    wire = asyncio.Lock()  # the adapter signs and sends one call at a time (nonce order)
    halted = asyncio.Event()
    reached_after_halt: list[str] = []
    place = h.venue.place

    async def serialised_place(request, *, still_wanted=None):
        async with wire:  # as the adapter: the call's turn comes, ``still_wanted`` is asked, then it is signed
            await asyncio.sleep(0.01)  # another call being signed and sent
            result = await place(request, still_wanted=still_wanted)
            if halted.is_set() and result.status is not PlaceStatus.NOT_SENT:
                reached_after_halt.append(request.client_order_id)
        if not halted.is_set():  # the operator's halt lands while the others wait their turn
            h.engine.control.set_mode(TradingMode.HALTED, by="ops", why="incident")
            halted.set()
        return result

    h.venue.place = serialised_place
    await h.service.send_pending()
    assert halted.is_set()
    assert reached_after_halt == [], (
        f"{len(reached_after_halt)} of {len(entries) - 1} entries queued behind the first reached the venue after the "
        "halt was applied"
    )
    # Nothing of them left: each is back to waiting (NotSent, with the halt as its reason), and withdrawn by the
    # next send pass; the first one, sent before the halt, is resting.
    assert [o.state for o in entries[1:]] == [State.PENDING_SUBMIT] * (len(entries) - 1)
    assert all("halted" in (o.last_error or "") for o in entries[1:])
    h.service._retry_at.clear()  # the backoff before sending again, skipped
    await h.service.send_pending()
    assert [o.state for o in entries[1:]] == [State.CANCELED] * (len(entries) - 1)
    assert entries[0].state is State.OPEN


async def test_a_halt_withdraws_the_entries_waiting_for_the_rate_limits_room_and_a_resume_does_not_send_them(
    ledger, clock
):
    """Entries that wait for room on the venue's rate limit (``_submit``) are withdrawn when the halt is recorded,
    not at the end of their wait: before, they stayed pending up to their maximum age, and a RESUME meanwhile sent
    them (break test 2026-12-02: a runaway burst's queued entries reached the venue 61-81 s after the halt's 200)."""
    h = Harness(ledger, clock)
    room = asyncio.Event()  # the rate limit has no room until the test says so
    waiting: list[str] = []

    async def wait_for_order_capacity(pair, max_wait_s=None, *, urgent=False, reserve=None):
        waiting.append(pair)
        await room.wait()
        return True

    h.venue.wait_for_order_capacity = wait_for_order_capacity
    h.venue.order_capacity = lambda pair, within_s: 0 if within_s == 0.0 else 1000  # none now, plenty later
    entries = [h.engine.control.submit_signal(signal(n)).order for n in range(3)]
    await h.service.send_pending(wait=False)
    while len(waiting) < len(entries):  # each entry's call waits for room
        await asyncio.sleep(0)
    h.engine.control.set_mode(TradingMode.HALTED, by="ops", why="runaway strategy")
    await h.service.wait_for_calls()  # the waits ended at the halt
    await h.service.send_pending()
    assert [o.state for o in entries] == [State.CANCELED] * 3
    h.engine.control.set_mode(TradingMode.RUNNING, by="ops", why="fixed")
    room.set()
    await h.service.send_pending()
    assert h.venue.requests == {}, "an entry queued before the halt reached the venue after the resume"
