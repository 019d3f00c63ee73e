"""The Order transition table: every allowed edge is reachable by its command, forbidden ones write nothing."""

from datetime import UTC
from decimal import Decimal as D
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execledger.domain.errors import DomainError, InvalidTransition
from execledger.domain.order import TRANSITIONS, OrderStatus, State
from tests.orders import T0, command_for, new_order, order_in, replayed, run

ALLOWED = sorted(TRANSITIONS, key=lambda e: (e[0].value, e[1].value))
FORBIDDEN = [(a, b) for a, b in product(State, State) if a is not b and (a, b) not in TRANSITIONS]


@pytest.mark.parametrize(("source", "target"), ALLOWED, ids=[f"{a.value}->{b.value}" for a, b in ALLOWED])
def test_every_allowed_transition_is_taken_by_its_command(source, target):
    order = order_in(source)
    before = len(order.pending_events)
    run(order, "cancel" if (source, target) == (State.PENDING_SUBMIT, State.CANCELED) else command_for(source, target))
    assert order.state is target
    assert len(order.pending_events) > before
    assert replayed(order).state is target  # the stored events replay to the same state


@pytest.mark.parametrize(("source", "target"), FORBIDDEN, ids=[f"{a.value}->{b.value}" for a, b in FORBIDDEN])
def test_forbidden_transitions_raise_and_write_nothing(source, target):
    order = order_in(source)
    before = len(order.pending_events)
    try:
        run(order, command_for(source, target))
    except DomainError as exc:
        assert isinstance(exc, InvalidTransition) or target is State.FILLED  # a fill on a filled order overfills
        assert order.state is source and len(order.pending_events) == before
    else:
        # Only documented shortcuts may take another, allowed, edge instead (request_cancel before submission
        # cancels outright); the forbidden target itself is never reached.
        assert order.state is not target and (source, order.state) in TRANSITIONS


def test_forbidden_list_is_not_empty_and_covers_terminal_exits():
    assert (State.FILLED, State.OPEN) in FORBIDDEN and (State.CANCELED, State.OPEN) in FORBIDDEN
    assert (State.PENDING_SUBMIT, State.FILLED) in FORBIDDEN


def test_venue_facts_outrank_a_rejection_we_inferred():
    """An order held rejected (proven "not placed" by a lookup the venue later contradicts) takes what the venue
    shows: acknowledged open, then filled."""
    order = order_in(State.REJECTED)
    assert order.acknowledge(txid="OLATE-ACCEPTED", at=T0, reason={"rule": "r", "text": "t"})
    assert order.state is State.OPEN
    order = order_in(State.REJECTED)
    order.apply_fill(trade_id="T", quantity=order.quantity, price=D("100"))
    assert order.state is State.FILLED


def test_partially_filled_is_derived_from_cumulative_quantity():
    order = order_in(State.OPEN)
    order.apply_fill(trade_id="T1", quantity=D("0.4"), price=D("100"))
    assert order.state is State.OPEN and order.status is OrderStatus.PARTIALLY_FILLED
    order.apply_fill(trade_id="T2", quantity=D("0.6"), price=D("100"))
    assert order.status is OrderStatus.FILLED
    assert [type(e).__name__ for e in order.pending_events][-2:] == ["PartiallyFilled", "Filled"]


def test_fill_before_acknowledgement_proves_the_order_is_on_the_book():
    order = order_in(State.SUBMITTING)
    order.apply_fill(trade_id="T1", quantity=D("0.5"), price=D("100"))
    assert order.state is State.OPEN
    assert order.acknowledge(txid="OX", at=T0, reason={"rule": "r", "text": "t"})
    assert order.txid == "OX" and order.state is State.OPEN


def test_late_ack_after_fill_only_adds_txid():
    order = order_in(State.SUBMITTING)
    run(order, "fill")
    order.acknowledge(txid="OLATE", at=T0, reason={"rule": "r", "text": "t"})
    assert order.state is State.FILLED and order.txid == "OLATE"


def test_duplicate_observations_write_nothing():
    order = order_in(State.OPEN)
    n = len(order.pending_events)
    assert order.acknowledge(txid="OAAAAA-BBBBB-CCCCCC", at=T0, reason={"rule": "r", "text": "t"}) is False
    run(order, "cancel")
    assert order.request_cancel(reason={"rule": "r", "text": "t"}) is False
    run(order, "canceled")
    assert order.mark_canceled(reason={"rule": "r", "text": "t"}) is False
    assert len(order.pending_events) == n + 2


def test_timeout_records_decision_then_cancel_request():
    order = order_in(State.OPEN)
    order.apply_fill(trade_id="T1", quantity=D("0.25"), price=D("100"))
    from datetime import datetime

    order.time_out(age_s=61.0, threshold_s=60.0, rule="signal.timeout_s", observed_at=datetime.now(UTC))
    timed_out, cancel = order.pending_events[-2:]
    assert type(timed_out).__name__ == "TimedOut" and timed_out.age_s == 61.0 and timed_out.threshold_s == 60.0
    assert type(cancel).__name__ == "CancelRequested"
    assert cancel.reason["rule"] == "timeout_cancel" and cancel.reason["remaining"] == "0.75"
    assert order.state is State.CANCEL_PENDING
    with pytest.raises(ValueError, match="threshold"):
        order_in(State.OPEN).time_out(age_s=10, threshold_s=60, rule="x", observed_at=datetime.now(UTC))


COMMANDS = [
    "submit",
    "not_sent",
    "ack",
    "unknown",
    "cancel",
    "cancel_rejected",
    "canceled",
    "expired",
    "reject",
    "fill_part",
    "fill_dup",
    "fill_rest",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(COMMANDS), max_size=14))
def test_any_command_sequence_keeps_the_machine_consistent(steps):
    """Whatever arrives in whatever order: every state change is an allowed edge, failures write nothing,
    filled never exceeds the quantity, and replaying the events gives the same order."""
    order = new_order("1.0")
    part = 0
    for step in steps:
        before_state, before_events = order.state, len(order.pending_events)
        try:
            if step == "fill_part":
                part += 1
                order.apply_fill(
                    trade_id=f"P{part}", quantity=min(D("0.3"), order.remaining_quantity) or D("0.3"), price=D("100")
                )
            elif step == "fill_dup":
                if part:
                    order.apply_fill(trade_id="P1", quantity=D("0.3"), price=D("100"))
            elif step == "fill_rest":
                run(order, "fill")
            else:
                run(order, step)
        except (DomainError, ValueError):
            assert order.state is before_state and len(order.pending_events) == before_events
            continue
        if order.state is not before_state:
            assert (before_state, order.state) in TRANSITIONS
        assert D(0) <= order.filled_quantity <= order.quantity
    copy = replayed(order)
    assert (copy.state, copy.version, copy.filled_quantity, copy.fills) == (
        order.state,
        order.version,
        order.filled_quantity,
        order.fills,
    )
