"""The trading process freezes what it holds after start-up (infrastructure/gcpolicy.py): that is safe for memory
only because what it later lets go of is freed by reference counting, without the cyclic collector."""

import asyncio
import gc
import weakref

from execledger.application.engine import EngineConfig
from execledger.domain.values import OrderRole
from execledger.infrastructure.gcpolicy import freeze_long_lived, keep_frozen
from tests.harness import Harness


async def test_orders_dropped_after_a_freeze_are_freed_without_the_cyclic_collector(ledger, clock):
    h = Harness(ledger, clock, EngineConfig())
    entry = await h.signal(signal_id="gc1")
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    held = list(h.engine.orders.values())
    assert {o.role for o in held} >= {OrderRole.ENTRY, OrderRole.STOP_LOSS}
    refs = [weakref.ref(o) for o in held]
    events = [weakref.ref(e) for e in h.engine.ledger.app.repository.event_store.get(entry.id)]
    del held, entry
    enabled = gc.isenabled()
    gc.disable()
    try:
        freeze_long_lived()
        for oid in list(h.engine.orders):
            h.engine.orders.remove(oid)
        h.engine.contingencies.forget_watches()
        h.reports.clear()
        assert [r for r in refs if r() is not None] == []  # freed by reference counting: no cycle holds them
        assert [r for r in events if r() is not None] == []
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


async def test_keep_frozen_freezes_after_recovery_and_stops_with_the_process():
    recovered, stop, frozen = asyncio.Event(), asyncio.Event(), asyncio.Event()
    pauses: list[float] = []

    def note(took: float) -> None:
        pauses.append(took)
        frozen.set()

    task = asyncio.create_task(keep_frozen(recovered, stop, refreeze_s=3600, on_freeze=note))
    try:
        await asyncio.sleep(0)
        assert pauses == [] and gc.get_freeze_count() == 0  # nothing before the orders are loaded
        recovered.set()
        await asyncio.wait_for(frozen.wait(), 5)
        assert len(pauses) == 1 and gc.get_freeze_count() > 0
        stop.set()
        await asyncio.wait_for(task, 5)  # stops at once, not after refreeze_s
        assert len(pauses) == 1
    finally:
        stop.set()
        gc.unfreeze()
