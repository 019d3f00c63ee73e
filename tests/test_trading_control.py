"""Operator commands carried out by the trading process (TradingControl), on both backends: exactly once from the
log, every refusal with its reason, and the close and resolve flows end to end against the fake venue."""

from datetime import timedelta
from decimal import Decimal as D

import pytest

from execledger.application.orders_app import COMMANDS
from execledger.application.policies import LastPrice
from execledger.domain.commands import Command, CommandKind, CommandReceipt, Outcome, Refusal
from execledger.domain.order import State
from execledger.domain.position import position_of
from execledger.domain.values import OrderRole
from execledger.infrastructure.bootstrap import build_trading, open_ledger
from execledger.infrastructure.commandbus import CommandBus
from execledger.infrastructure.writerlock import WriterLock
from tests.fakes import FakeExchange
from tests.harness import Harness


@pytest.fixture
def h(ledger, clock):
    return Harness(ledger, clock)


async def filled_entry(h, **fields):
    entry = await h.signal(**fields)
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    return h.engine.orders[entry.id]


async def test_close_cancels_the_legs_then_exits_what_is_held_at_market(h):
    entry = await filled_entry(h)
    assert [o.role for o in h.legs(entry, live_only=True)] == [OrderRole.STOP_LOSS]  # the take-profit is held
    decision = h.engine.control.close_position("sig", by="alice", why="news")
    assert decision.outcome is Outcome.APPLIED and decision.detail["held"] == "1"
    await h.settle()
    entry = h.engine.orders[entry.id]
    [exit_order] = [o for o in h.legs(entry) if o.role is OrderRole.EXIT]
    assert all(o.state is State.CANCELED for o in h.legs(entry) if o.role is not OrderRole.EXIT)
    assert exit_order.order_type.value == "market" and exit_order.quantity == D("1")
    h.venue.fill(h.txid(exit_order), "1", "101")
    await h.settle()
    assert position_of(h.engine.orders[entry.id], h.engine.orders).is_flat
    assert h.engine.control.close_position("sig", by="alice", why="again").outcome is Outcome.UNCHANGED
    history = [e.name for e in h.engine.ledger.order_history(entry.id)]
    assert "CloseRequested" in history and "PositionExitAdded" in history


async def test_close_of_a_resting_entry_cancels_it_and_sends_no_exit(h):
    entry = await h.signal()
    h.engine.control.close_position("sig", by="ops", why="signal withdrawn")
    await h.settle()
    entry = h.engine.orders[entry.id]
    assert entry.state is State.CANCELED and h.legs(entry) == []


async def test_cancel_refuses_a_protective_leg_of_an_open_position_and_unknown_orders(h):
    from execledger.application.trading_control import CommandRefused

    entry = await filled_entry(h)
    [stop] = h.legs(entry, OrderRole.STOP_LOSS)
    with pytest.raises(CommandRefused, match="close the position instead") as info:
        h.engine.control.cancel_order(str(stop.id), by="ops", why="oops")
    assert info.value.decision.detail["refusal"] == Refusal.NOT_ALLOWED
    with pytest.raises(CommandRefused, match="no order"):
        h.engine.control.cancel_order("no-such-order", by="ops", why="typo")


async def test_cancel_by_txid_or_cl_ord_id_of_a_resting_entry(h):
    entry = await h.signal()
    decision = h.engine.control.cancel_order(h.txid(entry), by="ops", why="changed my mind")
    assert decision.outcome is Outcome.APPLIED
    await h.settle()
    assert h.engine.orders[entry.id].state is State.CANCELED
    reasons = [e.reason for e in h.engine.ledger.order_history(entry.id) if e.name == "CancelRequested"]
    assert reasons[0]["rule"] == "operator_cancel" and reasons[0]["by"] == "ops"


async def lose_on_the_venue(h, order):
    """The venue stops knowing the order; reconciliation misses it three times in a row and records so."""
    del h.venue.orders[h.txid(order)]
    for _ in range(3):
        await h.service.reconcile()
    assert "missing_on_venue" in h.engine.orders[order.id].conflicts


async def test_resolve_refuses_an_order_the_venue_still_has(h):
    from execledger.application.trading_control import CommandRefused

    entry = await filled_entry(h)
    [stop] = h.legs(entry, OrderRole.STOP_LOSS)
    for resolution in ("canceled", "filled"):
        with pytest.raises(CommandRefused, match="the venue has not lost this order"):
            h.engine.control.resolve_order(str(stop.id), resolution, by="ops", why="oops")
    await h.settle()
    assert len(h.legs(entry, OrderRole.STOP_LOSS, live_only=True)) == 1  # no second stop beside the real one


async def test_resolve_as_filled_records_who_and_why_and_brackets_the_position(h):
    entry = await h.signal()
    await lose_on_the_venue(h, entry)
    decision = h.engine.control.resolve_order(str(entry.id), "filled", by="ops", why="venue lost it", price=D("99"))
    assert decision.outcome is Outcome.APPLIED
    await h.settle()
    entry = h.engine.orders[entry.id]
    assert entry.state is State.FILLED and entry.average_fill_price == D("99")
    assert [o.role for o in h.legs(entry, live_only=True)] == [OrderRole.STOP_LOSS]  # protected like any fill
    names = [e.name for e in h.engine.ledger.order_history(entry.id)]
    assert names.index("OperatorResolved") < names.index("Filled")


async def test_resolve_rounds_and_bounds_what_it_records(h):
    from execledger.application.trading_control import CommandRefused

    entry = await h.signal()
    await lose_on_the_venue(h, entry)
    for bad in ({"quantity": D("1E-30")}, {"price": D("1E+30")}, {"quantity": D("5")}):
        with pytest.raises(CommandRefused):
            h.engine.control.resolve_order(str(entry.id), "filled", by="ops", why="typo", **bad)
    assert h.engine.orders[entry.id].filled_quantity == 0


async def test_a_command_from_the_log_is_carried_out_exactly_once_with_its_receipt(settings, clock):
    # The trading process holds the writer lock, so another process's bus records without checking first.
    with WriterLock(settings), open_ledger(settings, clock=clock) as lg:
        trading = build_trading(lg, FakeExchange(clock))
        bus = CommandBus(lg, role="test")
        halt = bus.issue(CommandKind.HALT, {"cancel_entries": False}, by="alice", why="incident")
        bogus = bus.issue(CommandKind.CANCEL_ORDER, {"order": "nope"}, by="alice", why="typo")
        assert trading.service.pull_commands() == 2
        assert trading.service.pull_commands() == 0  # the tracking position moved with the receipts
        receipt = bus.find_receipt(halt.id)
        assert isinstance(receipt, CommandReceipt) and receipt.outcome is Outcome.APPLIED
        assert receipt.process == lg.engine.control.process and lg.engine.control.state.mode.value == "halted"
        refused = bus.find_receipt(bogus.id)
        assert refused.outcome is Outcome.REFUSED and refused.refusal is Refusal.NOT_FOUND
        assert lg.app.recorder.max_tracking_id(COMMANDS) == lg.commands.recorder.max_notification_id()


async def test_a_stale_signal_command_is_refused_not_placed(settings, clock):
    with open_ledger(settings, clock=clock) as lg:
        trading = build_trading(lg, FakeExchange(clock))
        command = Command.issue(
            kind=CommandKind.SUBMIT_SIGNAL,
            payload={
                "signal": {
                    "signal_id": "old",
                    "pair": "XBT/USD",
                    "side": "buy",
                    "order_type": "market",
                    "quantity": "1",
                }
            },
            by="api",
            why="test",
            origin="test",
        )
        lg.commands.save(command)
        clock.set(command.created_on + timedelta(seconds=lg.engine.config.signal_max_age_s + 1))
        trading.service.pull_commands()
        receipt = CommandBus(lg, role="test").find_receipt(command.id)
        assert receipt.refusal is Refusal.STALE and lg.engine.orders.entry_of_signal("old") is None


def market_signal_command(signal_id: str, **fields) -> Command:
    signal = {"signal_id": signal_id, "pair": "XBT/USD", "side": "buy", "order_type": "market", "quantity": "0.01"}
    return Command.issue(
        kind=CommandKind.SUBMIT_SIGNAL, payload={"signal": {**signal, **fields}}, by="api", why="test", origin="test"
    )


async def test_a_market_signal_whose_stop_the_last_price_has_crossed_is_refused_with_the_field(settings, clock):
    """The break test's finding: a market buy with its stop-loss above the market (it would trigger at once) was
    accepted. With a fresh last price known, the receipt refuses it naming ``sl_price`` and the price."""
    with open_ledger(settings, clock=clock) as lg:
        trading = build_trading(lg, FakeExchange(clock))
        lg.engine.contingencies.note_price("XXBTZUSD", LastPrice(D("67000"), clock.now()))
        bad = market_signal_command("above", sl_price="68000", tp_price="70000")
        good = market_signal_command("around", sl_price="60000", tp_price="70000")
        lg.commands.save(bad, good)
        trading.service.pull_commands()
        receipt = CommandBus(lg, role="test").find_receipt(bad.id)
        assert receipt.outcome is Outcome.REFUSED and receipt.refusal is Refusal.INVALID
        [error] = receipt.detail["errors"]
        assert error["field"] == "sl_price" and error["rule"] == "sl_not_below_last_price_for_buy"
        assert "last price 67000" in error["message"] and lg.engine.orders.entry_of_signal("above") is None
        placed = lg.engine.orders.entry_of_signal("around")
        assert placed.placement_reason["market_reference"]["last_price"] == "67000"


async def test_a_market_signal_without_a_fresh_price_records_that_its_legs_were_not_checked(settings, clock):
    with open_ledger(settings, clock=clock) as lg:
        trading = build_trading(lg, FakeExchange(clock))
        seen = clock.now()
        lg.engine.contingencies.note_price("XXBTZUSD", LastPrice(D("67000"), seen))
        clock.set(seen + timedelta(seconds=lg.engine.contingencies.config.price_max_age_s + 1))  # too old to decide
        command = market_signal_command("stale-price", sl_price="68000", tp_price="70000")
        lg.commands.save(command)
        trading.service.pull_commands()
        entry = lg.engine.orders.entry_of_signal("stale-price")
        assert "not checked" in entry.placement_reason["market_reference"]
