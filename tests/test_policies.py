"""The policies alone: orders and a time in, actions out. No store, no network, no sleeps."""

import uuid
from datetime import timedelta
from decimal import Decimal as D

import pytest

from execledger.application.policies import (
    CancelOrder,
    Defer,
    PlaceBracket,
    PlaceLeg,
    PolicyConfig,
    TimeOut,
    bracket_policy,
    oco_policy,
    timeout_policy,
)
from execledger.domain.order import Order
from execledger.domain.values import OrderRole, OrderType, Side
from execledger.infrastructure.pairs import load_default_pairs
from tests.orders import T0, R

XBT = load_default_pairs().find("XBT/USD")
CFG = PolicyConfig(default_timeout_s=300)


def entry(quantity="1", timeout_s=None, sl="90", tp="120", order_type=OrderType.LIMIT) -> Order:
    o = Order.place(
        order_id=uuid.uuid4(),
        signal_id="s",
        role=OrderRole.ENTRY,
        pair="XXBTZUSD",
        side=Side.BUY,
        order_type=order_type,
        quantity=D(quantity),
        limit_price=D("100"),
        cl_ord_id="c",
        sl_price=D(sl) if sl else None,
        tp_price=D(tp) if tp else None,
        timeout_s=timeout_s,
        reason=R,
    )
    o.submit(at=T0, deadline=None, reason=R)
    o.acknowledge(txid="O1", at=T0 + timedelta(seconds=1), reason=R)
    return o


def leg(parent: Order, role: OrderRole, quantity: str) -> Order:
    o = Order.place(
        order_id=uuid.uuid4(),
        signal_id="s",
        role=role,
        pair="XXBTZUSD",
        side=Side.SELL,
        order_type=OrderType.STOP_LOSS,
        quantity=D(quantity),
        trigger_price=D("90"),
        cl_ord_id=str(uuid.uuid4()),
        parent_id=parent.id,
        reason=R,
    )
    o.submit(at=T0, deadline=None, reason=R)
    o.acknowledge(txid=str(uuid.uuid4()), at=T0, reason=R)
    return o


def fill(o: Order, qty: str, tid: str | None = None) -> None:
    o.apply_fill(trade_id=tid or str(uuid.uuid4()), quantity=D(qty), price=D("100"))


class TestTimeout:
    def test_age_counts_from_acknowledgement(self):
        o = entry(timeout_s=60)
        assert timeout_policy(o, XBT, T0 + timedelta(seconds=60), CFG) == []
        [action] = timeout_policy(o, XBT, T0 + timedelta(seconds=61), CFG)
        assert action == TimeOut(o.id, 60.0, 60, "signal.timeout_s", T0 + timedelta(seconds=61))

    def test_config_default_applies_without_signal_timeout(self):
        [action] = timeout_policy(entry(), XBT, T0 + timedelta(seconds=301), CFG)
        assert action.rule == "config.default_timeout_s" and action.threshold_s == 300

    @pytest.mark.parametrize("state_change", ["cancel", "market", "leg"])
    def test_only_resting_limit_entries_time_out(self, state_change):
        o = entry(order_type=OrderType.MARKET) if state_change == "market" else entry()
        if state_change == "cancel":
            o.request_cancel(reason=R)
        if state_change == "leg":
            o = leg(entry(), OrderRole.STOP_LOSS, "1")
        assert timeout_policy(o, XBT, T0 + timedelta(days=1), CFG) == []

    def test_refused_when_filled_part_is_below_minimum(self):
        o = entry()
        fill(o, "0.00001")
        [action] = timeout_policy(o, XBT, T0 + timedelta(seconds=400), CFG)
        assert isinstance(action, Defer) and action.reason["rule"] == "timeout_cancel_refused"
        fill(o, "0.01")  # 0.01001 at 100 = 1.001 >= costmin 0.5: now sellable, the timeout cancels
        assert isinstance(timeout_policy(o, XBT, T0 + timedelta(seconds=400), CFG)[0], TimeOut)


class TestBracket:
    def test_nothing_without_fill_or_without_sl_tp(self):
        assert bracket_policy(entry(), XBT) == []
        o = entry(sl=None, tp=None)
        fill(o, "0.5")
        assert bracket_policy(o, XBT) == []

    def test_each_increment_gets_its_bracket(self):
        o = entry()
        fill(o, "0.3")
        [plan] = bracket_policy(o, XBT)
        assert isinstance(plan, PlaceBracket) and plan.quantity == D("0.3") and plan.sl_price == D("90")
        o.record_bracket(
            quantity=D("0.3"),
            stop_loss_order_id=uuid.uuid4(),
            take_profit_order_id=uuid.uuid4(),
            sl_price=D("90"),
            tp_price=D("120"),
            reason=R,
        )
        assert bracket_policy(o, XBT) == []
        fill(o, "0.2")
        assert bracket_policy(o, XBT)[0].quantity == D("0.2")

    def test_edge_increment_below_minimum_waits_then_dust_when_entry_ends(self):
        o = entry()
        fill(o, "0.00001")
        [wait] = bracket_policy(o, XBT)
        assert isinstance(wait, Defer) and wait.reason["rule"] == "bracket_below_minimum"
        o.request_cancel(reason=R)
        o.mark_canceled(reason=R)
        [dust] = bracket_policy(o, XBT)
        assert dust.reason["rule"] == "bracket_dust_unprotectable"

    def test_edge_cost_minimum_uses_the_stop_price(self):
        o = entry(sl="0.1", tp="200")  # 0.0001 * 0.1 = 0.00001 < costmin 0.5
        fill(o, "0.0001")
        assert isinstance(bracket_policy(o, XBT)[0], Defer)


class TestOco:
    def setup_method(self):
        self.e = entry()
        fill(self.e, "1")
        self.sl, self.tp = leg(self.e, OrderRole.STOP_LOSS, "1"), leg(self.e, OrderRole.TAKE_PROFIT, "1")
        self.b = self.e.record_bracket(
            quantity=D("1"),
            stop_loss_order_id=self.sl.id,
            take_profit_order_id=self.tp.id,
            sl_price=D("90"),
            tp_price=D("120"),
            reason=R,
        )

    def decide(self):
        legs = {o.id: o for o in (self.sl, self.tp, *getattr(self, "extra", []))}
        return oco_policy(self.e, self.b, legs, XBT, CFG)

    def test_quiet_when_legs_match(self):
        assert self.decide() == []

    def test_full_fill_of_one_leg_cancels_the_other(self):
        fill(self.tp, "1")
        [cancel] = self.decide()
        assert cancel == CancelOrder(self.sl.id, cancel.reason) and cancel.reason["rule"] == "oco_cancel_sibling"

    def test_partial_fill_shrinks_the_sibling_then_recreates_it(self):
        fill(self.tp, "0.25")
        [cancel] = self.decide()
        assert cancel.order_id == self.sl.id and cancel.reason["rule"] == "oco_shrink"
        self.sl.request_cancel(reason=R)
        assert self.decide() == []  # waiting for the cancel to be confirmed
        self.sl.mark_canceled(reason=R)
        [place] = self.decide()
        assert isinstance(place, PlaceLeg) and place.role is OrderRole.STOP_LOSS and place.quantity == D("0.75")
        assert place.reason["rule"] == "oco_shrink_replace"

    def test_sibling_still_submitting_is_canceled_once_its_outcome_is_known(self):
        # Found by the fault suite: the stop filled while the take-profit's AddOrder was still on the wire, and
        # CancelRequested from SUBMITTING raised InvalidTransition in the stream worker (trading stopped).
        self.tp = Order.place(
            order_id=self.tp.id,
            signal_id="s",
            role=OrderRole.TAKE_PROFIT,
            pair="XXBTZUSD",
            side=Side.SELL,
            order_type=OrderType.TAKE_PROFIT,
            quantity=D("1"),
            cl_ord_id="t",
            parent_id=self.e.id,
            reason=R,
        )
        self.tp.submit(at=T0, deadline=None, reason=R)
        fill(self.sl, "1")
        assert self.decide() == []
        self.tp.acknowledge(txid="O9", at=T0, reason=R)
        [cancel] = self.decide()
        assert cancel.order_id == self.tp.id and cancel.reason["rule"] == "oco_cancel_sibling"

    @pytest.mark.parametrize(
        ("error", "why"),
        [
            ("EOrder:Rate limit exceeded", {"error_class": "rate_limited"}),
            ("not placed", {"rule": "unknown_resolved_not_placed"}),
        ],
    )
    def test_leg_not_placed_for_a_passing_reason_is_recreated(self, error, why):
        # Found by the fault suite: a take-profit rejected by a rate limit, or killed in submission and then proven
        # never placed, left the position unprotected ("the same order would be rejected again").
        self.tp = Order.place(
            order_id=self.tp.id,
            signal_id="s",
            role=OrderRole.TAKE_PROFIT,
            pair="XXBTZUSD",
            side=Side.SELL,
            order_type=OrderType.TAKE_PROFIT,
            quantity=D("1"),
            cl_ord_id="t",
            parent_id=self.e.id,
            reason=R,
        )
        self.tp.submit(at=T0, deadline=None, reason=R)
        self.tp.reject(error=error, reason={**R, **why}, transient=True)
        [place] = self.decide()
        assert isinstance(place, PlaceLeg) and place.role is OrderRole.TAKE_PROFIT and place.quantity == D("1")
        assert place.reason["rule"] == "leg_rejected_transient_recreate"

    def test_vanished_leg_is_recreated(self):
        self.sl.mark_canceled(reason=R, venue_reason="gone")
        [place] = self.decide()
        assert place.reason["rule"] == "leg_vanished_recreate" and place.quantity == D("1")
        assert place.order_type is OrderType.STOP_LOSS and place.trigger_price == D("90")

    def test_a_stop_refused_for_what_it_is_is_reported_never_answered_by_a_market_exit(self):
        self.sl = Order.place(
            order_id=self.sl.id,
            signal_id="s",
            role=OrderRole.STOP_LOSS,
            pair="XXBTZUSD",
            side=Side.SELL,
            order_type=OrderType.STOP_LOSS,
            quantity=D("1"),
            cl_ord_id="x",
            parent_id=self.e.id,
            reason=R,
        )
        self.sl.submit(at=T0, deadline=None, reason=R)
        self.sl.reject(error="EGeneral:Permission denied", reason=R)
        [defer] = self.decide()
        assert isinstance(defer, Defer) and defer.reason["rule"] == "leg_rejected_not_recreated"
