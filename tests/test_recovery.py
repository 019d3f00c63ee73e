"""Restart recovery against the in-memory exchange: nothing lost, nothing sent twice, nothing foreign touched."""

import asyncio
import threading
from decimal import Decimal as D

from execledger.application.ports import ErrorClass, OrderRequest, PlaceResult, PlaceStatus, VenueError
from execledger.application.service import ServiceConfig
from execledger.domain.order import State
from execledger.domain.trading_state import TradingMode
from execledger.domain.values import OrderRole, OrderType, Side
from tests.harness import Harness, limit_buy


def restart(h: Harness, ledger, clock) -> Harness:
    """A new process on the same ledger and the same venue: only the log survives."""
    fresh = Harness(ledger, clock)
    fresh.venue = h.venue
    fresh.service.exchange = h.venue
    fresh.engine.load()
    return fresh


async def test_crash_after_submitted_resolves_by_cl_ord_id_without_resending(ledger, clock):
    h = Harness(ledger, clock)
    order = h.engine.control.submit_signal(limit_buy("c1")).order
    request = h.engine.execution.begin_submission(order.id)
    await h.venue.place(request)  # reached the venue; the process dies before recording the outcome
    h2 = restart(h, ledger, clock)
    report = await h2.service.reconcile()
    order = h2.engine.orders[order.id]
    assert report.stuck_submissions == 1 and order.state is State.OPEN and order.txid
    assert h.venue.add_order_calls[order.cl_ord_id] == 1
    rules = [e.reason["rule"] for e in ledger.order_history(order.id) if e.reason]
    assert "restart_submission_unknown" in rules


async def test_crash_before_the_request_left_is_proven_not_placed_after_the_deadline(ledger, clock):
    h = Harness(ledger, clock)
    order = h.engine.control.submit_signal(limit_buy("c2")).order
    h.engine.execution.begin_submission(order.id)  # dies before sending
    h2 = restart(h, ledger, clock)
    await h2.service.reconcile()
    assert h2.engine.orders[order.id].state is State.OUTCOME_UNKNOWN
    clock.advance(36)
    await h2.settle()
    assert h2.engine.orders[order.id].state is State.REJECTED and h.venue.add_order_calls[order.cl_ord_id] == 0


async def test_a_leg_decided_but_never_sent_before_a_crash_is_sent_again_after_its_short_deadline(ledger, clock):
    """A crash between a stop-loss's Submitted and the wire leaves the position unprotected until "not found"
    proves the leg unplaced: a leg's deadline is exit_submit_deadline_s (10 s), not the entry's 30 s, so the stop
    is sent again 15 s after the crash (deadline + grace), where it took 35 s before."""
    h = Harness(ledger, clock)
    entry = await h.signal(signal_id="c-leg")
    h.venue.fill(h.txid(entry), "1", "100")
    await h.service.apply_all(h.venue.drain())  # the legs are decided and Submitted; the process dies before sending
    stop = h.legs(entry, OrderRole.STOP_LOSS)[0]
    submitted = next(e for e in ledger.order_history(stop.id) if e.name == "Submitted")
    assert (submitted.data["deadline"] - submitted.data["at"]).total_seconds() == 10
    assert submitted.data["reason"]["deadline_s"] == 10  # its reason says the deadline it carries, not the entry's
    h2 = restart(h, ledger, clock)
    await h2.service.reconcile()
    assert h2.engine.orders[stop.id].state is State.OUTCOME_UNKNOWN
    clock.advance(14)
    await h2.settle()
    assert h2.engine.orders[stop.id].state is State.OUTCOME_UNKNOWN  # the deadline and its grace are not over
    clock.advance(2)
    await h2.settle()
    assert h2.engine.orders[stop.id].state is State.REJECTED and h.venue.add_order_calls[stop.cl_ord_id] == 0
    h2.assert_legs_match_position(h2.engine.orders[entry.id])  # a new stop-loss protects the position again
    assert all(o.state is State.OPEN for o in h2.legs(entry, OrderRole.STOP_LOSS) if o.id != stop.id)


async def test_fills_while_down_are_recovered_and_bracketed(ledger, clock):
    h = Harness(ledger, clock)
    entry = await h.signal(signal_id="c3")
    h.venue.fill(h.txid(entry), "0.4", "100")
    h.venue.fill(h.txid(entry), "0.6", "100.5")
    h.venue.drain()  # the process was down: these reports were never seen
    h2 = restart(h, ledger, clock)
    report = await h2.service.reconcile()
    entry = h2.engine.orders[entry.id]
    assert report.changed == [entry.id] and entry.state is State.FILLED and entry.filled_quantity == D("1")
    fill_sources = {e.data["source"] for e in ledger.order_history(entry.id) if e.name in ("PartiallyFilled", "Filled")}
    assert fill_sources == {"reconciliation"}
    h2.assert_legs_match_position(entry)
    assert all(o.state is State.OPEN for o in h2.legs(entry))  # legs sent during recovery


async def test_recovery_twice_adds_nothing(ledger, clock):
    h = Harness(ledger, clock)
    entry = await h.signal(signal_id="c4")
    h.venue.fill(h.txid(entry), "1", "100")
    h.venue.drain()
    h2 = restart(h, ledger, clock)
    await h2.service.reconcile()
    position = ledger.app.recorder.max_notification_id()
    h3 = restart(h2, ledger, clock)
    report = await h3.service.reconcile()
    assert ledger.app.recorder.max_notification_id() == position and report.changed == []
    assert sum(h.venue.add_order_calls.values()) == 2  # entry + stop, each once (the take-profit is held)


async def test_pending_cancel_is_resent_after_restart(ledger, clock):
    h = Harness(ledger, clock)
    entry = await h.signal(signal_id="c5", timeout_s=10)
    clock.advance(11)
    h.engine.tick()  # decided to cancel (CancelRequested) ... and died before sending it
    assert h.engine.orders[entry.id].state is State.CANCEL_PENDING and not h.venue.cancel_calls
    h2 = restart(h, ledger, clock)
    await h2.service.reconcile()
    assert h2.engine.orders[entry.id].state is State.CANCELED and h.venue.cancel_calls[h.txid(entry)] == 1


async def test_foreign_orders_are_reported_not_touched(ledger, clock):
    h = Harness(ledger, clock)
    await h.signal(signal_id="c6")
    await h.venue.place(
        OrderRequest(
            client_order_id="someone-else",
            pair="XXBTZUSD",
            side=Side.SELL,
            order_type=OrderType.LIMIT,
            quantity=D("2"),
            limit_price=D("200"),
        )
    )
    report = await restart(h, ledger, clock).service.reconcile()
    assert [o.client_order_id for o in report.foreign] == ["someone-else"]
    assert not h.venue.cancel_calls


async def test_order_missing_on_the_venue_is_never_made_terminal_by_absence(ledger, clock):
    h = Harness(ledger, clock)
    entry = await h.signal(signal_id="c7")
    del h.venue.orders[h.txid(entry)]  # the venue does not return it (lag, incident)
    h2 = restart(h, ledger, clock)
    for _ in range(3):
        report = await h2.service.reconcile()
    assert report.missing == [entry.id] and h2.service.missing[entry.id] == 3
    assert h2.engine.orders[entry.id].state is State.OPEN


async def test_periodic_reconcile_after_the_stream_writes_nothing(ledger, clock):
    h = Harness(ledger, clock)
    entry = await h.signal(signal_id="c8")
    h.venue.fill(h.txid(entry), "0.5", "100")
    await h.settle()  # the stream delivered it
    before = ledger.app.recorder.max_notification_id()
    report = await h.service.reconcile(quiet_s=10)
    assert report.changed == [] and report.missing == [] and report.checked == 2  # the entry and its stop
    assert ledger.app.recorder.max_notification_id() == before


def unknown_entry_to_cancel(h: Harness, signal_id: str):
    """An entry whose AddOrder is about to go out (the caller decides whether it reaches the venue)."""
    order = h.engine.control.submit_signal(limit_buy(signal_id)).order
    request = h.engine.execution.begin_submission(order.id)
    return order, request


async def test_compensating_cancel_of_an_order_never_placed_ends_after_the_deadline(ledger, clock):
    # Found by the fault suite: CancelOrder by cl_ord_id answered "unknown order", the resync skipped an order
    # without txid, and the sender re-sent the cancel in a tight loop forever (start-up never finished).
    h = Harness(ledger, clock)
    order, _ = unknown_entry_to_cancel(h, "c5")
    h.engine.execution.on_place_result(order.id, PlaceResult(PlaceStatus.UNKNOWN, error="HTTP 502"))
    h.engine.control.set_mode(TradingMode.HALTED, by="test", why="test", cancel_entries=True)
    h.service.config = ServiceConfig(deadman_enabled=False)  # the real backoff
    assert await h.service.send_pending() == 1  # not found, not proven yet...
    assert await h.service.send_pending() == 0  # ...asked again after a backoff, not in a tight loop
    assert h.engine.orders[order.id].state is State.CANCEL_PENDING
    h.service._retry_at.clear()  # the backoff has passed
    clock.advance(36)
    await h.service.send_pending()
    order = h.engine.orders[order.id]
    assert order.state is State.CANCELED and order.txid is None and h.venue.add_order_calls[order.cl_ord_id] == 0
    assert [e.reason["rule"] for e in ledger.order_history(order.id) if e.reason][-1] == "cancel_of_unplaced_order"


async def test_compensating_cancel_by_cl_ord_id_learns_the_txid(ledger, clock):
    h = Harness(ledger, clock)
    order, request = unknown_entry_to_cancel(h, "c6")
    await h.venue.place(request)  # placed; the reply was lost
    h.venue.drain()  # and the stream missed it
    h.engine.execution.on_place_result(order.id, PlaceResult(PlaceStatus.UNKNOWN, error="HTTP 502"))
    h.engine.control.set_mode(TradingMode.HALTED, by="test", why="test", cancel_entries=True)
    await h.service.send_pending()
    order = h.engine.orders[order.id]
    assert order.state is State.CANCELED and order.txid == h.venue.by_client_id(order.cl_ord_id).venue_order_id


class VenueDown(VenueError):
    """What the adapter raises once its retries ran out."""

    def __init__(self, message: str = "venue down") -> None:
        super().__init__(message, ErrorClass.RETRYABLE)


async def test_start_up_recovery_waits_out_a_venue_outage_instead_of_crashing(ledger, clock):
    # Found by the fault suite: a burst of EAPI:Rate limit exceeded on the reconciliation's reads outlasted the
    # adapter's retries during start-up reconciliation and the service died (exit 1) instead of trying again.
    h = Harness(ledger, clock)
    await h.signal(signal_id="c7")
    h2 = restart(h, ledger, clock)
    h2.service.config = ServiceConfig(tick_interval_s=0.01, deadman_enabled=False)
    failures = iter([VenueDown("EAPI:Rate limit exceeded"), VenueDown("EService:Unavailable")])
    query = h2.venue.open_orders

    async def flaky():
        if (exc := next(failures, None)) is not None:
            raise exc
        return await query()

    h2.venue.open_orders = flaky
    task = asyncio.create_task(h2.service.run())
    await asyncio.wait_for(h2.service.recovered.wait(), 5)
    await h2.service.stop()
    await asyncio.wait_for(task, 5)
    assert next(failures, None) is None


async def run_until_recovered(h: Harness) -> None:
    h.service.config = ServiceConfig(tick_interval_s=0.01, deadman_enabled=False)
    task = asyncio.create_task(h.service.run())
    await asyncio.wait_for(h.service.recovered.wait(), 5)
    await h.service.stop()
    await asyncio.wait_for(task, 5)


def count_open_orders_calls(h: Harness) -> list[str]:
    calls: list[str] = []
    query = h.venue.open_orders

    async def counted():
        calls.append("OpenOrders")
        return await query()

    h.venue.open_orders = counted
    return calls


async def test_start_up_reads_the_open_orders_while_the_log_is_loaded_and_reconciles_with_that_answer(ledger, clock):
    # Start-up overlaps the venue's round trips with the fold of the log (in a worker thread). The fold here waits
    # until OpenOrders has been asked: done one after the other, the start would wait for it and never recover.
    h = Harness(ledger, clock)
    entry = await h.signal(signal_id="c8")
    h.venue.fill(h.txid(entry), "1", "100")
    h.venue.drain()  # filled while no process ran
    h2 = restart(h, ledger, clock)
    calls = count_open_orders_calls(h2)
    asked = threading.Event()
    fold = h2.engine.ledger.load_orders
    query = h2.venue.open_orders

    async def asking():
        asked.set()
        return await query()

    def waiting_fold():
        assert asked.wait(5), "the log was loaded before the venue was asked"
        return fold()

    h2.venue.open_orders = asking
    h2.engine.ledger.load_orders = waiting_fold
    await run_until_recovered(h2)
    entry = h2.engine.orders[entry.id]
    assert calls == ["OpenOrders"]  # the answer read meanwhile is the reconciliation's: not read twice
    assert entry.state is State.FILLED and entry.filled_quantity == D("1")
    fill_sources = {e.data["source"] for e in ledger.order_history(entry.id) if e.name in ("PartiallyFilled", "Filled")}
    assert fill_sources == {"reconciliation"}
    h2.assert_legs_match_position(entry)


async def test_start_up_reads_the_open_orders_again_after_looking_up_an_unknown_outcome(ledger, clock):
    h = Harness(ledger, clock)
    order = h.engine.control.submit_signal(limit_buy("c9")).order
    await h.venue.place(h.engine.execution.begin_submission(order.id))  # reached the venue; the process died
    h2 = restart(h, ledger, clock)
    calls = count_open_orders_calls(h2)
    await run_until_recovered(h2)
    order = h2.engine.orders[order.id]
    assert calls == ["OpenOrders", "OpenOrders"]  # once at start, once after the lookup by cl_ord_id, as always
    assert order.state is State.OPEN and order.txid and h.venue.add_order_calls[order.cl_ord_id] == 1
