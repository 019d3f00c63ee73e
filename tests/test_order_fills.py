"""Fills keyed by trade id: duplicates are no-ops, overfills and contradictions are clear errors, money is exact."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from execledger.domain.errors import ConflictingFill, InvalidTransition, Overfill
from execledger.domain.order import OrderStatus, State
from execledger.domain.values import OrderRole
from tests.orders import R, new_order, order_in, replayed, run


def test_duplicate_trade_id_is_a_no_op():
    order = order_in(State.OPEN)
    assert order.apply_fill(trade_id="T1", quantity=D("0.5"), price=D("100"), fee=D("0.13"))
    n = len(order.pending_events)
    assert order.apply_fill(trade_id="T1", quantity=D("0.5"), price=D("100"), fee=D("0.13")) is False
    assert len(order.pending_events) == n and order.filled_quantity == D("0.5") and order.fees == D("0.13")


def test_same_trade_id_with_other_values_is_a_conflict():
    order = order_in(State.OPEN)
    order.apply_fill(trade_id="T1", quantity=D("0.5"), price=D("100"))
    with pytest.raises(ConflictingFill, match="T1"):
        order.apply_fill(trade_id="T1", quantity=D("0.4"), price=D("100"))


def test_overfill_is_a_clear_error_and_writes_nothing():
    order = order_in(State.OPEN)
    order.apply_fill(trade_id="T1", quantity=D("0.7"), price=D("100"))
    n = len(order.pending_events)
    with pytest.raises(Overfill, match=r"T2 adds 0.4 to 0.7 already filled, which exceeds the order quantity 1"):
        order.apply_fill(trade_id="T2", quantity=D("0.4"), price=D("100"))
    assert len(order.pending_events) == n and order.filled_quantity == D("0.7")


def test_average_price_and_fees_are_exact():
    order = order_in(State.OPEN, quantity="0.3")
    order.apply_fill(trade_id="T1", quantity=D("0.1"), price=D("100.1"), fee=D("0.026026"), fee_asset="ZUSD")
    order.apply_fill(trade_id="T2", quantity=D("0.2"), price=D("100.4"), fee=D("0.052208"), fee_asset="ZUSD")
    assert order.filled_cost == D("30.09")  # 0.1*100.1 + 0.2*100.4, no float drift
    assert order.average_fill_price == D("100.3")
    assert order.fees == D("0.078234") and order.fee_asset == "ZUSD"
    assert order.status is OrderStatus.FILLED


def test_average_price_keeps_exact_numerator_and_denominator_for_repeating_quotients():
    order = order_in(State.OPEN, quantity="3")
    for i, price in enumerate(["1", "1", "2"]):
        order.apply_fill(trade_id=f"T{i}", quantity=D("1"), price=D(price))
    assert (order.filled_cost, order.filled_quantity) == (D("4"), D("3"))
    assert order.average_fill_price == D(4) / D(3)


def test_late_fill_after_cancel_is_recorded():
    order = order_in(State.CANCELED)
    assert order.apply_fill(trade_id="LATE1", quantity=D("0.2"), price=D("100"))
    assert order.state is State.CANCELED and order.filled_quantity == D("0.2")  # partial: stays canceled
    order.apply_fill(trade_id="LATE2", quantity=D("0.8"), price=D("100"))
    assert order.state is State.FILLED  # the canceled -> filled race edge


def test_no_fills_on_orders_never_sent():
    order = order_in(State.PENDING_SUBMIT)
    with pytest.raises(InvalidTransition):
        order.apply_fill(trade_id="T", quantity=D("0.1"), price=D("100"))


@pytest.mark.parametrize(("qty", "price", "fee"), [("0", "1", "0"), ("1", "0", "0"), ("0.1", "1", "-0.01")])
def test_nonsense_fill_values_rejected(qty, price, fee):
    with pytest.raises(ValueError):
        order_in(State.OPEN).apply_fill(trade_id="T", quantity=D(qty), price=D(price), fee=D(fee))


def test_fill_events_carry_cumulative_quantity_and_exchange_time():
    order = order_in(State.OPEN)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    order.apply_fill(trade_id="T1", quantity=D("0.25"), price=D("100"), executed_at=at, source="ws")
    ev = order.pending_events[-1]
    assert (ev.cumulative_quantity, ev.executed_at, ev.source) == (D("0.25"), at, "ws")


def test_bracket_cannot_cover_more_than_filled():
    order = order_in(State.OPEN)
    order.apply_fill(trade_id="T1", quantity=D("0.4"), price=D("100"))
    order.record_bracket(
        quantity=D("0.4"),
        stop_loss_order_id=uuid.uuid4(),
        take_profit_order_id=None,
        sl_price=D("90"),
        tp_price=None,
        reason=R,
    )
    assert order.bracketed_quantity == D("0.4")
    with pytest.raises(ValueError, match="unprotected"):
        order.record_bracket(
            quantity=D("0.1"),
            stop_loss_order_id=uuid.uuid4(),
            take_profit_order_id=None,
            sl_price=D("90"),
            tp_price=None,
            reason=R,
        )
    leg = new_order(role=OrderRole.STOP_LOSS)
    with pytest.raises(InvalidTransition):
        leg.record_bracket(
            quantity=D("0.1"),
            stop_loss_order_id=uuid.uuid4(),
            take_profit_order_id=None,
            sl_price=None,
            tp_price=None,
            reason=R,
        )
    assert replayed(order).brackets == order.brackets and order.brackets[0].current(OrderRole.STOP_LOSS) is not None


def test_replay_restores_fills_exactly():
    order = order_in(State.OPEN)
    order.apply_fill(trade_id="T1", quantity=D("0.123"), price=D("101.7"), fee=D("0.05"))
    run(order, "cancel")
    copy = replayed(order)
    assert copy.fills == order.fills and copy.state is State.CANCEL_PENDING and copy.version == order.version
