"""Group commits (issue 18): a fill and the protective legs it causes share one durable commit, their Submitted
included, so the stop-loss leaves after ONE commit; a send pass decides every AddOrder that waits for nothing in one
commit. Either way each AddOrder leaves only once its Submitted is in the store, and what must wait (the rate limit,
a halt applied meanwhile) still waits."""

from __future__ import annotations

from execledger.application.engine import EngineConfig
from execledger.application.policies import PolicyConfig
from execledger.domain.order import State
from execledger.domain.trading_state import TradingMode
from execledger.domain.values import OrderRole
from tests.harness import Harness


class Recorder:
    """A unit-of-work listener: the event names of each commit, and for each AddOrder the state its order has in
    the store at the moment it leaves."""

    def __init__(self, h: Harness):
        self.h = h
        self.commits: list[list[tuple[object, str]]] = []
        self.stored_at_send: dict[str, State] = {}
        h.engine.uow.add_listener(self.committed)
        self._place = h.venue.place
        h.venue.place = self.place

    def committed(self, committed) -> None:
        self.commits.append([(a.id, type(ev).__name__) for a, events in committed for ev in events])

    async def place(self, request, *, still_wanted=None):
        order = self.h.engine.orders.find(client_order_id=request.client_order_id)
        self.stored_at_send[request.client_order_id] = self.h.engine.app.repository.get(order.id).state
        return await self._place(request, still_wanted=still_wanted)


def signal(n: int, **extra) -> dict:
    return {
        "signal_id": f"g{n}",
        "pair": "XBT/USD",
        "side": "buy",
        "order_type": "limit",
        "quantity": "1",
        "limit_price": "100",
        **extra,
    }


async def test_a_fill_and_the_submission_of_its_legs_are_one_commit_before_the_stop_leaves(ledger, clock):
    h = Harness(ledger, clock, EngineConfig(policy=PolicyConfig(resting_leg="both")))
    entry = await h.signal()
    rec = Recorder(h)
    before = len(rec.commits)
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    stop = h.legs(entry, OrderRole.STOP_LOSS)[0]
    take = h.legs(entry, OrderRole.TAKE_PROFIT)[0]
    fill_commit = next(c for c in rec.commits[before:] if (entry.id, "Filled") in c)
    assert (stop.id, "Submitted") in fill_commit and (take.id, "Submitted") in fill_commit
    assert rec.stored_at_send[stop.cl_ord_id] is State.SUBMITTING  # durable before the AddOrder left
    assert h.engine.orders[stop.id].state is State.OPEN and h.venue.add_order_calls[stop.cl_ord_id] == 1


async def test_a_leg_that_must_wait_for_the_rate_limit_is_decided_only_after_the_wait(ledger, clock):
    h = Harness(ledger, clock)
    entry = await h.signal()
    rec = Recorder(h)
    h.venue.order_capacity = lambda pair, within_s: 0  # nothing may leave right now
    h.venue.fill(h.txid(entry), "1", "100")
    await h.service.apply(h.venue.drain()[0])
    stop = h.legs(entry, OrderRole.STOP_LOSS)[0]
    assert h.engine.orders[stop.id].state is State.PENDING_SUBMIT  # not decided with the fill
    await h.settle()  # the fake's wait_for_order_capacity lets it through: decided, then sent
    assert h.engine.orders[stop.id].state is State.OPEN
    assert rec.stored_at_send[stop.cl_ord_id] is State.SUBMITTING


async def test_a_send_pass_decides_every_entry_that_waits_for_nothing_in_one_commit(ledger, clock):
    h = Harness(ledger, clock)
    entries = [h.engine.control.submit_signal(signal(n)).order for n in range(5)]
    rec = Recorder(h)
    assert await h.service.send_pending() == 5
    submitted = [c for c in rec.commits if any(name == "Submitted" for _, name in c)]
    assert len(submitted) == 1 and {i for i, name in submitted[0] if name == "Submitted"} == {e.id for e in entries}
    assert all(rec.stored_at_send[e.cl_ord_id] is State.SUBMITTING for e in entries)
    assert all(h.engine.orders[e.id].state is State.OPEN for e in entries)


async def test_the_rate_limit_splits_a_send_pass_and_a_halt_meanwhile_still_stops_the_rest(ledger, clock):
    h = Harness(ledger, clock)
    entries = [h.engine.control.submit_signal(signal(n)).order for n in range(3)]
    room = {"n": 1}
    h.venue.order_capacity = lambda pair, within_s: room["n"]  # one AddOrder may leave now

    async def wait_for_order_capacity(pair, max_wait_s=None, *, urgent=False, reserve=None) -> bool:
        h.engine.control.set_mode(TradingMode.HALTED, by="ops", why="incident")  # applied while they wait
        return True

    h.venue.wait_for_order_capacity = wait_for_order_capacity
    await h.service.send_pending()
    first, *rest = (h.engine.orders[e.id] for e in entries)
    assert first.state is State.OPEN and h.venue.add_order_calls[first.cl_ord_id] == 1
    assert all(o.state is State.CANCELED and h.venue.add_order_calls[o.cl_ord_id] == 0 for o in rest)


async def test_answers_that_arrive_in_the_same_turn_are_recorded_in_one_commit(ledger, clock):
    h = Harness(ledger, clock)
    entries = [h.engine.control.submit_signal(signal(n)).order for n in range(4)]
    rec = Recorder(h)
    await h.service.send_pending()
    acknowledged = [c for c in rec.commits if any(name == "Acknowledged" for _, name in c)]
    assert len(acknowledged) == 1 and {i for i, n in acknowledged[0] if n == "Acknowledged"} == {e.id for e in entries}
    assert all(h.engine.orders[e.id].txid for e in entries)
