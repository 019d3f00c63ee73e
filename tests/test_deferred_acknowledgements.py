"""Deferred acknowledgements (issue 18): an AddOrder's acknowledgement decides nothing and the venue can tell it again
(the order is found by its cl_ord_id), so while the service's loops run it joins the next commit instead of costing
one of its own; ``ack_flush_s`` later it is committed anyway, and at stop. Until then the store holds the order as
a crash right after sending would have left it (Submitted, no txid), which start-up recovery resolves
(tests/test_recovery.py::test_crash_after_submitted_resolves_by_cl_ord_id_without_resending)."""

from __future__ import annotations

from execledger.domain.order import State
from tests.harness import Harness, limit_buy


def stored_state(h: Harness, order) -> State:
    return h.engine.app.repository.get(order.id).state


def deferring(h: Harness) -> list[int]:
    """Let the handler defer (as the running service does); returns the list each deferral appends to."""
    deferrals: list[int] = []
    h.engine.execution.on_deferred = lambda: deferrals.append(1)
    return deferrals


async def test_acknowledgements_alone_wait_and_the_next_commit_records_them_first(ledger, clock):
    h = Harness(ledger, clock)
    deferrals = deferring(h)
    entries = [h.engine.control.submit_signal(limit_buy(f"ack{n}")).order for n in range(3)]
    commits: list[list[str]] = []
    h.engine.uow.add_listener(lambda c: commits.append([type(e).__name__ for _, events in c for e in events]))
    await h.service.send_pending()
    held = [h.engine.orders[e.id] for e in entries]
    assert deferrals and all(o.state is State.OPEN and o.txid for o in held)
    assert [stored_state(h, o) for o in held] == [State.SUBMITTING] * 3  # as after a crash right after sending
    assert all("Acknowledged" not in names for names in commits)
    assert [h.engine.orders.find(venue_order_id=o.txid) for o in held] == held  # a REST fill names only the txid

    h.venue.fill(held[0].txid, "1", "100")
    await h.service.apply(h.venue.drain()[0])
    fill_commit = next(names for names in commits if "Filled" in names)
    assert fill_commit[:2] == ["Acknowledged", "Filled"]  # the filled order's own, in version order: no gap
    assert fill_commit.count("Acknowledged") == 3  # and the two others' deferred ones: nothing left behind
    assert [stored_state(h, o) for o in held] == [State.FILLED, State.OPEN, State.OPEN]


async def test_flush_records_what_was_deferred_and_nothing_twice(ledger, clock):
    h = Harness(ledger, clock)
    deferring(h)
    entry = h.engine.control.submit_signal(limit_buy("ack1")).order
    await h.service.send_pending()
    assert h.engine.uow.has_deferred and stored_state(h, entry) is State.SUBMITTING
    (committed,) = h.engine.uow.flush()
    assert [type(e).__name__ for e in committed[1]] == ["Acknowledged"]
    assert stored_state(h, entry) is State.OPEN and not h.engine.uow.has_deferred
    assert h.engine.uow.flush() == []


async def test_an_order_reloaded_after_a_refused_commit_drops_what_it_deferred(ledger, clock):
    h = Harness(ledger, clock)
    deferring(h)
    entry = h.engine.control.submit_signal(limit_buy("ack1")).order
    await h.service.send_pending()
    held = h.engine.orders[entry.id]
    h.engine.uow.discard([held])  # a failed transaction reloads the order from the log
    assert not h.engine.uow.has_deferred and h.engine.uow.flush() == []
    reloaded = h.engine.orders[entry.id]
    assert reloaded.state is State.SUBMITTING and reloaded.txid is None  # the log's state; recovery resolves it


async def test_without_a_flusher_every_acknowledgement_is_committed_at_once(ledger, clock):
    h = Harness(ledger, clock)  # tests, tools and the harness drive passes by hand: nothing may wait for a timer
    entry = h.engine.control.submit_signal(limit_buy("ack1")).order
    await h.service.send_pending()
    assert not h.engine.uow.has_deferred and stored_state(h, entry) is State.OPEN
