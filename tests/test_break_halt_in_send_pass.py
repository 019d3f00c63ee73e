"""Found by the break session (branch ``break``): a HALT confirmed while a send pass's entries wait their turn on
the wire (signing and sending are serialised in nonce order) does not stop them. The send pass decides every entry
that "waits for nothing" in one commit (``TradingService._start_submissions`` -> ``begin_submissions``), then each
``_place`` queues for the wire; the halt applied meanwhile withdraws only PENDING_SUBMIT entries, so every entry
still queued behind the first reaches the venue after the operator's halt was confirmed. Against the simulator
(real processes: ``.venv/bin/python -m tests.faults.bursts halt --runs 3 --seed 1 --deadline 30``, and the same with
``--seed 8 --backend postgres --deadline 10``) entries the venue ACCEPTED reached it up to 8.6 s (SQLite) and 7.6 s
(PostgreSQL) after ``POST /v1/trading/halt`` answered 200; the ledger shows their Submitted before ModeChanged, so
invariant 7 of tests/faults/harness.py (Submitted while halted) does not see it. Not new with group commits: the
commit before fbb4634 fails this test the same way (the per-order ``_submit`` path also decides, then queues).

README: "HALT ... New entries are refused; entries not yet sent are withdrawn"; ``_submit`` itself says "waiting
after Submitted would send an entry the operator just stopped"."""

from __future__ import annotations

import asyncio

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

    async def serialised_place(request):
        async with wire:
            await asyncio.sleep(0.01)  # signing and sending this one
            if halted.is_set():
                reached_after_halt.append(request.client_order_id)
            result = await place(request)
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
