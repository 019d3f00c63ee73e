"""The trading process's memory of orders: loaded from the log in one pass (identical to ``repository.get``), and
holding only the signals that can still matter; a retired signal is loaded again from the store whenever anything
asks for it (a late venue fact, a repeated signal, a command by any of its ids, audit)."""

import json
import uuid
from dataclasses import replace
from decimal import Decimal as D

import pytest
from eventsourcing.persistence import StoredEvent, Tracking

from execledger.application.ledger import SignalConflict, entry_order_id
from execledger.application.orders_app import COMMANDS
from execledger.domain.commands import Command, CommandKind, Outcome, Refusal
from execledger.domain.order import State
from execledger.domain.values import OrderRole
from tests.harness import Harness


def _store_v1_placed(ledger) -> uuid.UUID:
    """A Placed event as version 1 stored it (no tags, no timeout_s): the bulk load must upcast it too."""
    order_id = uuid.uuid4()
    state = {
        "timestamp": {"_type_": "datetime_iso", "_data_": "2025-06-01T12:00:00+00:00"},
        "originator_topic": "domain.order:Order",
        "signal_id": "legacy-1",
        "role": "entry",
        "pair": "XXBTZUSD",
        "side": "buy",
        "order_type": "limit",
        "quantity": {"_type_": "decimal_str", "_data_": "0.5"},
        "limit_price": {"_type_": "decimal_str", "_data_": "30000.0"},
        "trigger_price": None,
        "cl_ord_id": "2f0e8a4e-3f55-4f0e-a4f6-2f2ab0e1d3c1",
        "parent_id": None,
        "sl_price": None,
        "tp_price": None,
        "signal_fingerprint": "",
        "reason": {"rule": "approved_signal", "text": "legacy"},
    }
    stored = StoredEvent(order_id, 1, "domain.order:Order.Placed", json.dumps(state).encode())
    ledger.app.recorder.insert_events([stored])
    return order_id


async def test_the_bulk_load_builds_exactly_what_repository_get_builds(ledger, clock):
    h = Harness(ledger, clock)
    legacy = _store_v1_placed(ledger)
    busy = await h.signal(signal_id="many", quantity="2")
    for i in range(40):  # an order with many events: partial fills, each bracketed
        h.venue.fill(h.txid(busy), "0.01", str(100 + i))
        await h.settle()
    done = await h.signal(signal_id="done")
    h.venue.fill(h.txid(done), "1", "100")
    await h.settle()
    await h.signal(signal_id="resting")
    loaded = {o.id: o for o in ledger.load_orders(page=7)}  # small pages: the fold must span page boundaries
    ids = list(ledger.order_ids())
    assert list(loaded) == ids and legacy in loaded and len(ids) >= 6
    for order_id in ids:
        expected = ledger.app.repository.get(order_id)
        assert vars(loaded[order_id]) == vars(expected), order_id
    assert loaded[legacy].tags == {} and loaded[legacy].timeout_s is None and loaded[legacy].quantity == D("0.5")
    assert loaded[busy.id].version > 40


async def _finished_and_live(h, clock):
    """Two finished signals (an entry that timed out unfilled; an entry filled and stopped out) and two that still
    matter (a resting entry; a filled entry with its stop working)."""
    gone = await h.signal(signal_id="gone", timeout_s=10)
    stopped = await h.signal(signal_id="stopped")
    h.venue.fill(h.txid(stopped), "1", "100")
    await h.settle()
    [stop] = h.legs(stopped, OrderRole.STOP_LOSS)
    resting = await h.signal(signal_id="resting", timeout_s=3600)
    held = await h.signal(signal_id="held")
    h.venue.fill(h.txid(held), "1", "100")
    clock.advance(11)  # "gone" times out
    await h.settle()
    h.venue.fill(h.txid(stop), "1", "90")  # "stopped" is flat
    await h.settle()
    return gone, stopped, resting, held


def _held(h) -> set[str]:
    return {o.signal_id for o in h.engine.orders.values()}


async def test_finished_signals_are_retired_and_not_loaded_at_start(ledger, clock):
    h = Harness(ledger, clock)
    gone, stopped, *_ = await _finished_and_live(h, clock)
    assert _held(h) == {"resting", "held"}  # the held signal with its legs, filled or not
    assert h.engine.orders.get(gone.id) is None and gone.id not in h.engine.orders
    h2 = Harness(ledger, clock)
    h2.engine.load()
    assert _held(h2) == {"resting", "held"}
    assert {o.id for o in h2.engine.orders.values()} == {o.id for o in h.engine.orders.values()}
    # asked for, a retired order is loaded with its whole signal, exactly as the log has it
    again = h2.engine.orders[stopped.id]
    assert vars(again) == vars(ledger.app.repository.get(stopped.id)) and again.state is State.FILLED
    assert _held(h2) == {"resting", "held", "stopped"} and h2.position(again) == 0
    h2.engine.tick()  # nothing changed: retired again
    assert _held(h2) == {"resting", "held"}


async def test_a_late_fill_for_a_retired_order_is_applied_and_its_signal_is_held_again(ledger, clock):
    h = Harness(ledger, clock)
    gone, *_ = await _finished_and_live(h, clock)
    txid = ledger.get_order(gone.id).txid
    h.venue.fill(txid, "0.5", "100")  # the venue reports a fill for the order canceled long ago
    await h.settle()
    entry = h.engine.orders.get(gone.id)
    assert entry is not None and entry.filled_quantity == D("0.5") and not h.engine.execution.unmatched
    assert ledger.get_order(gone.id).filled_quantity == D("0.5")
    h.assert_legs_match_position(entry)  # not flat any more: protected, and held
    h2 = Harness(ledger, clock)
    h2.engine.load()  # an event after its retirement: loaded at start again
    assert "gone" in _held(h2) and h2.position(entry) == D("0.5")


async def test_a_status_report_for_a_retired_order_finds_it_and_changes_nothing(ledger, clock):
    h = Harness(ledger, clock)
    gone, stopped, *_ = await _finished_and_live(h, clock)
    position = ledger.app.recorder.max_notification_id()
    for order in (gone, ledger.get_order(h.legs(stopped, OrderRole.STOP_LOSS)[0].id)):
        report = replace(h.venue.orders[order.txid], source="ws", ts_last=clock.now())
        await h.service.apply(report)
        await h.service.apply(replace(report, venue_order_id=None))  # by cl_ord_id alone
    assert not h.engine.execution.unmatched and ledger.app.recorder.max_notification_id() == position
    assert h.engine.orders.find(client_order_id=gone.cl_ord_id).id == gone.id


async def test_a_repeated_signal_of_a_retired_signal_answers_the_same_order_and_writes_nothing(ledger, clock):
    h = Harness(ledger, clock)
    gone, *_ = await _finished_and_live(h, clock)
    position = ledger.app.recorder.max_notification_id()
    same = {
        "signal_id": "gone",
        "pair": "XBT/USD",
        "side": "buy",
        "order_type": "limit",
        "quantity": "1",
        "limit_price": "100",
        "sl_price": "90",
        "tp_price": "120",
        "timeout_s": 10,
    }
    result = h.engine.control.submit_signal(same)
    assert not result.created and result.order.id == gone.id == entry_order_id("gone")
    with pytest.raises(SignalConflict):
        h.engine.control.submit_signal({**same, "quantity": "2"})
    assert ledger.app.recorder.max_notification_id() == position


async def test_commands_and_audit_find_a_retired_order_by_any_of_its_ids(ledger, clock):
    h = Harness(ledger, clock)
    gone, stopped, *_ = await _finished_and_live(h, clock)
    gone = ledger.get_order(gone.id)
    tracked = iter(range(1, 100))

    def run(kind, **payload):
        command = Command.issue(kind=kind, payload=payload, by="test", why="retired", origin="test")
        receipt = h.engine.control.handle(command, Tracking(COMMANDS, next(tracked)))
        h.engine.tick()  # whatever was loaded to answer is retired again
        return receipt

    for ref in (str(gone.id), gone.txid, gone.cl_ord_id):
        for kind, extra in ((CommandKind.CANCEL_ORDER, {}), (CommandKind.RESOLVE_ORDER, {"resolution": "canceled"})):
            receipt = run(kind, order=ref, **extra)
            assert receipt.refusal is Refusal.NOT_ALLOWED and "already canceled" in receipt.detail["message"], ref
            assert receipt.detail["order_id"] == str(gone.id)
    assert run(CommandKind.CANCEL_ORDER, order="nobody").refusal is Refusal.NOT_FOUND
    closed = run(CommandKind.CLOSE_POSITION, signal_id="stopped")
    assert closed.outcome is Outcome.UNCHANGED and closed.detail["entry_order_id"] == str(stopped.id)
    assert [e.name for e in ledger.order_history(gone.id)][-1] == "Canceled"
    assert _held(h) == {"resting", "held"}
    assert h.engine.orders.resolve(gone.txid).id == gone.id and "gone" in _held(h)


async def test_memory_is_bounded_by_the_signals_that_can_still_matter(ledger, clock):
    h = Harness(ledger, clock)
    for i in range(15):
        entry = await h.signal(signal_id=f"life{i}")
        h.venue.fill(h.txid(entry), "1", "100")
        await h.settle()
        [stop] = h.legs(entry, OrderRole.STOP_LOSS)
        h.venue.fill(h.txid(stop), "1", "90")
        await h.settle()
        assert len(h.engine.orders) == 0, i
        assert not h.engine.contingencies._emulating  # nor does the price watch keep the retired entries' ids
    assert sum(1 for _ in ledger.load_orders()) == 0 and len(list(ledger.load_orders(everything=True))) >= 30


async def test_a_store_that_refuses_the_retirement_keeps_the_signal_held_and_trading_goes_on(ledger, clock):
    h = Harness(ledger, clock)
    refuse = True
    retire = ledger.retire

    def flaky_retire(orders):
        if refuse:
            raise OSError("disk full")
        retire(orders)

    ledger.retire = flaky_retire
    gone, *_ = await _finished_and_live(h, clock)  # the timer ran: it logged, nothing was dropped
    assert "gone" in _held(h) and "stopped" in _held(h)
    refuse = False
    h.engine.tick()
    assert _held(h) == {"resting", "held"}
    h2 = Harness(ledger, clock)
    h2.engine.load()
    assert _held(h2) == {"resting", "held"} and h2.engine.orders[gone.id].state is State.CANCELED
