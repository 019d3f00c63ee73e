"""A stopping service knows which AddOrders never left it: an order whose Submitted is committed but which was never
handed to the adapter (a leg decided together with its fill, say) is recorded NOT_SENT at stop, so the next start
sends it at once; one the adapter may have put on the wire stays SUBMITTING and is resolved by cl_ord_id.
Found by breaking the product with real processes (SIGTERM in the middle of bursts, ``break`` branch): before, each
such order came back as an unknown outcome, refused 35 s later as never placed (an entry the trading system was
told was accepted) or leaving its position naked that long (a leg). The process-level check is
``tests/faults/test_graceful_stop.py``."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from execledger.domain.order import State
from execledger.domain.values import OrderRole
from tests.harness import Harness
from tests.test_group_commits import signal


async def test_a_stop_records_not_sent_for_what_was_never_handed_to_the_adapter(ledger, clock):
    h = Harness(ledger, clock)
    h.service.config = replace(h.service.config, stop_drain_s=0.05)
    never_handed, on_the_wire = (h.engine.control.submit_signal(signal(n)).order for n in range(2))
    requests = h.engine.execution.begin_submissions([never_handed.id, on_the_wire.id])
    assert never_handed.state is State.SUBMITTING and on_the_wire.state is State.SUBMITTING

    async def held_by_the_venue(request, *, still_wanted=None):
        await asyncio.Event().wait()  # signed and sent: the venue holds the reply past the stop

    h.venue.place = held_by_the_venue
    h.service._start_call(on_the_wire.id, h.service._place(on_the_wire.id, requests[on_the_wire.id]))
    await asyncio.sleep(0)  # the call starts: handed to the adapter
    await h.service.stop()
    await h.service.drain_calls()  # what run() does once stopping, before it cancels the workers

    assert never_handed.state is State.PENDING_SUBMIT  # NotSent: sent again at once by the next start
    assert "stopped" in (never_handed.last_error or "")
    assert on_the_wire.state is State.SUBMITTING  # may have reached the venue: never called "not sent"


async def test_a_leg_withdrawn_at_stop_is_not_decided_again_on_the_way_out(ledger, clock):
    """The leg Submitted with its fill but not handed out before protection ended (here: at once, the drain with
    no protection phase): NotSent at the drain, and that NotSent's reaction must not decide a new Submitted for it
    (nobody sends it any more): it stays PENDING_SUBMIT. Seen in ``tests/faults/test_graceful_stop.py``:
    Submitted, NotSent, Submitted again, then unknown at the next start."""
    h = Harness(ledger, clock)
    entry = await h.signal()
    h.venue.fill(h.txid(entry), "1", "100")
    await h.service.apply(h.venue.drain()[0])  # the stop-loss is decided and Submitted with the fill
    stop = h.legs(entry, OrderRole.STOP_LOSS)[0]
    assert stop.state is State.SUBMITTING
    await h.service.stop()  # before the sender handed it to the adapter
    await h.service.drain_calls()

    stop = h.engine.orders[stop.id]
    assert stop.state is State.PENDING_SUBMIT, [e.name for e in h.engine.ledger.order_history(stop.id)]
    assert h.venue.add_order_calls[stop.cl_ord_id] == 0


async def test_a_fill_once_protection_is_over_decides_its_legs_but_no_submission(ledger, clock):
    """Whatever a closing service still records (a fill from the stream, an answer of a call it drains) decides
    legs, but no Submitted: nothing would send it, and a Submitted left behind comes back as an unknown outcome.
    (While it only stops, such legs are still sent: ``tests/test_stop_protects_positions.py``.) Closing: after
    ``protect_positions``, or at once on ``stop_now`` (a second signal)."""
    h = Harness(ledger, clock)
    entry = await h.signal()
    h.service.stop_now()
    h.venue.fill(h.txid(entry), "1", "100")
    await h.service.apply(h.venue.drain()[0])
    await h.service.drain_calls()

    legs = h.legs(entry)
    assert legs and all(leg.state is State.PENDING_SUBMIT for leg in legs)
    assert all(h.venue.add_order_calls[leg.cl_ord_id] == 0 for leg in legs)
