"""Found by the break session (branch ``break``): the periodic reconciliation of a RUNNING service marks the orders
whose AddOrder is in flight in this very process as "outcome unknown (the process stopped during submission)"
(``TradingService.reconcile`` calls ``ExecutionHandler.recover_after_restart`` every cycle: every 60 s, every 2 s
while the stream is down, after a gap or reconnect). When the in-flight call then answers with a refusal that executed
nothing (``EService:Deadline elapsed``, a rate limit, a nonce, funds), ``_record_place_outcome`` only sends again from
SUBMITTING, so the order is recorded Rejected; for a protective leg the contingency then records
``Deferred leg_rejected_not_recreated`` ("refused for what it is ... not sent again") and the position stays
unprotected until an operator acts.

Seen with real processes on PostgreSQL (``.venv/bin/python -m tests.faults.bursts kill --runs 4 --seed 22 --backend
postgres --deadline 10``, run 1): service.log shows ``restart_submission_unknown`` at 10:51:46 with no restart, then
``rejected (not_executed): EService:Deadline elapsed`` for two stop-losses and a take-profit and ``deferred
[leg_rejected_not_recreated]``; after settling, invariant 4: "stop_loss legs work 0, position needs 0.0016"."""

from __future__ import annotations

import asyncio

from execledger.application.ports import ErrorClass, PlaceResult, PlaceStatus
from execledger.domain.order import State
from execledger.domain.values import OrderRole
from tests.harness import Harness


async def test_a_reconciliation_during_an_addorder_in_flight_keeps_a_not_executed_leg_protecting(ledger, clock):
    h = Harness(ledger, clock)
    entry = await h.signal()  # resting limit buy with sl 90 / tp 120
    release = asyncio.Event()
    place = h.venue.place
    held: list[str] = []

    async def slow_then_refused(request, *, still_wanted=None):
        if request.client_order_id in held or held:  # only the first leg's first call is held and refused
            return await place(request, still_wanted=still_wanted)
        held.append(request.client_order_id)
        await release.wait()  # on the wire, the venue slow to answer
        return PlaceResult(PlaceStatus.REJECTED, error="EService:Deadline elapsed", error_class=ErrorClass.NOT_EXECUTED)

    h.venue.place = slow_then_refused
    h.venue.fill(h.txid(entry), "1", "100")
    for report in h.venue.drain():
        await h.service.apply(report)
    sending = asyncio.ensure_future(h.service.send_pending())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    stop = h.legs(entry, OrderRole.STOP_LOSS)[0]
    assert h.engine.orders[stop.id].state is State.SUBMITTING and held  # its AddOrder is in flight

    await h.service.reconcile()  # the periodic reconciliation, while the call is in flight
    release.set()
    await sending
    await h.settle()

    events = [e.name for e in h.engine.ledger.order_history(stop.id)]
    live = h.legs(entry, live_only=True)
    assert live, f"no live exit order protects the filled 1: stop history {events}"
    h.assert_legs_match_position(entry)
