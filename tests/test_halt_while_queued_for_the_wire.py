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
