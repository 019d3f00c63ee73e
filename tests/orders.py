"""Helpers to build orders in a given state for domain tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal as D

from execledger.domain.order import Order, State
from execledger.domain.reasons import reason
from execledger.domain.values import OrderRole, OrderType, Side

R = reason("test", "test step")
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def new_order(quantity: str = "1.0", role: OrderRole = OrderRole.ENTRY) -> Order:
    return Order.place(
        order_id=uuid.uuid4(),
        signal_id="sig-1",
        role=role,
        pair="XXBTZUSD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D(quantity),
        limit_price=D("100"),
        cl_ord_id=str(uuid.uuid4()),
        reason=R,
        timeout_s=60.0,
    )


def full_fill(order: Order, trade_id: str = "T-full") -> None:
    order.apply_fill(
        trade_id=trade_id, quantity=order.remaining_quantity, price=D("100"), fee=D("0.1"), fee_asset="ZUSD"
    )


# Commands that reach each state from a fresh order.
REACH = {
    State.PENDING_SUBMIT: [],
    State.SUBMITTING: ["submit"],
    State.OUTCOME_UNKNOWN: ["submit", "unknown"],
    State.OPEN: ["submit", "ack"],
    State.CANCEL_PENDING: ["submit", "ack", "cancel"],
    State.FILLED: ["submit", "ack", "fill"],
    State.CANCELED: ["submit", "ack", "canceled"],
    State.EXPIRED: ["submit", "ack", "expired"],
    State.REJECTED: ["submit", "reject"],
}


def run(order: Order, step: str) -> None:
    if step == "submit":
        order.submit(at=T0, deadline=None, reason=R)
    elif step == "ack":
        order.acknowledge(txid="OAAAAA-BBBBB-CCCCCC", at=T0, reason=R)
    elif step == "ack_other":
        order.acknowledge(txid="OZZZZZ-ZZZZZ-ZZZZZZ", at=T0, reason=R)
    elif step == "unknown":
        order.outcome_unknown(error="timeout", reason=R)
    elif step == "cancel":
        order.request_cancel(reason=R)
    elif step == "cancel_rejected":
        order.cancel_rejected(error="EOrder:Rate limit exceeded", reason=R)
    elif step == "fill":
        full_fill(order)
    elif step == "canceled":
        order.mark_canceled(reason=R, venue_reason="User requested")
    elif step == "expired":
        order.mark_expired(reason=R)
    elif step == "not_sent":
        order.not_sent(error="circuit open", reason=R)
    elif step == "reject":
        order.reject(error="EOrder:Insufficient funds", reason=R)
    else:  # pragma: no cover
        raise ValueError(step)


def order_in(state: State, quantity: str = "1.0") -> Order:
    order = new_order(quantity)
    for step in REACH[state]:
        run(order, step)
    assert order.state is state
    return order


# The command that asks for a transition into each target state.
def command_for(source: State, target: State) -> str:
    if target is State.PENDING_SUBMIT:
        return "not_sent"
    if target is State.OPEN:
        return (
            "cancel_rejected"
            if source is State.CANCEL_PENDING
            else ("ack_other" if source in (State.FILLED, State.CANCELED, State.EXPIRED) else "ack")
        )
    return {
        State.SUBMITTING: "submit",
        State.OUTCOME_UNKNOWN: "unknown",
        State.CANCEL_PENDING: "cancel",
        State.FILLED: "fill",
        State.CANCELED: "canceled",
        State.EXPIRED: "expired",
        State.REJECTED: "reject",
    }[target]


def replayed(order: Order) -> Order:
    """Rebuild an aggregate from its (pending) events, as the repository does on load."""
    events = order.collect_events()
    agg = None
    for ev in events:
        agg = ev.mutate(agg)
    order.pending_events.extend(events)  # put them back for the caller
    return agg
