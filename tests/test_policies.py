"""The policies alone: orders and a time in, actions out. No store, no network, no sleeps."""

import uuid
from datetime import timedelta
from decimal import Decimal as D

import pytest

from execledger.application.policies import (
    AmendOrder,
    CancelOrder,
    Defer,
    LastPrice,
    PlaceBracket,
    PlaceLeg,
    PolicyConfig,
    ResizeBracket,
    TimeOut,
    TriggerEmulated,
    protection_policy,
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


BOTH = PolicyConfig(default_timeout_s=300, resting_leg="both")
NOW = T0 + timedelta(seconds=5)


def decide(e: Order, *legs: Order, config: PolicyConfig = BOTH, price: str | None = None):
    last = LastPrice(D(price), NOW) if price else None
    return protection_policy(e, {o.id: o for o in legs}, XBT, config, last)


def bracketed(e: Order, qty: str, *, sl: bool = True, tp: bool = True, emulate: OrderRole | None = None):
    """The entry's bracket as the contingency manager records it: resting legs, and an emulated role."""
    s_leg = leg(e, OrderRole.STOP_LOSS, qty) if sl else None
    t_leg = leg(e, OrderRole.TAKE_PROFIT, qty) if tp else None
    e.record_bracket(
        quantity=D(qty),
        stop_loss_order_id=s_leg.id if s_leg else None,
        take_profit_order_id=t_leg.id if t_leg else None,
        sl_price=e.sl_price,
        tp_price=e.tp_price,
        reason=R,
    )
    if emulate is not None:
        e.emulate_leg(
            index=0,
            role=emulate,
            trigger_price=e.tp_price if emulate is OrderRole.TAKE_PROFIT else e.sl_price,
            reason=R,
        )
    return s_leg, t_leg


class TestFirstBracket:
    def test_nothing_without_fill_or_without_sl_tp(self):
        assert decide(entry()) == []
        o = entry(sl=None, tp=None)
        fill(o, "0.5")
        assert decide(o) == []

    def test_the_stop_rests_and_the_take_profit_is_emulated_by_default(self):
        # Kraken holds the base for an untriggered stop: a take-profit beside it would be refused for funds.
        o = entry()
        fill(o, "0.3")
        [plan] = decide(o, config=CFG)
        assert isinstance(plan, PlaceBracket) and plan.quantity == D("0.3")
        assert [(leg.role, leg.quantity, leg.trigger_price) for leg in plan.legs] == [
            (OrderRole.STOP_LOSS, D("0.3"), D("90"))
        ]
        assert plan.emulated == (OrderRole.TAKE_PROFIT,)

    @pytest.mark.parametrize(
        ("resting", "legs", "emulated"),
        [
            ("both", [OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT], ()),
            ("take_profit", [OrderRole.TAKE_PROFIT], (OrderRole.STOP_LOSS,)),
        ],
    )
    def test_which_leg_rests_is_a_setting(self, resting, legs, emulated):
        o = entry()
        fill(o, "0.3")
        [plan] = decide(o, config=PolicyConfig(resting_leg=resting))
        assert [leg.role for leg in plan.legs] == legs and plan.emulated == emulated

    def test_a_buy_fee_charged_in_the_base_is_not_protected(self):
        o = entry()
        o.apply_fill(trade_id="t", quantity=D("0.01"), price=D("100"), fee=D("0.000026"), fee_asset="XXBT")
        [plan] = decide(o)
        assert plan.quantity == D("0.009974") and {leg.quantity for leg in plan.legs} == {D("0.009974")}

    def test_a_stop_whose_trigger_the_price_has_crossed_exits_at_market(self):
        o = entry()
        fill(o, "0.3")
        [plan] = decide(o, price="89")
        stop = next(leg for leg in plan.legs if leg.role is OrderRole.STOP_LOSS)
        assert stop.order_type is OrderType.MARKET and stop.reason["rule"] == "stop_trigger_crossed_exit"

    def test_edge_increment_below_minimum_waits_then_dust_when_entry_ends(self):
        o = entry()
        fill(o, "0.00001")
        [wait] = decide(o)
        assert isinstance(wait, Defer) and wait.reason["rule"] == "bracket_below_minimum"
        o.request_cancel(reason=R)
        o.mark_canceled(reason=R)
        [dust] = decide(o)
        assert dust.reason["rule"] == "bracket_dust_unprotectable"

    def test_edge_cost_minimum_uses_the_stop_price(self):
        o = entry(sl="0.1", tp="200")  # 0.0001 * 0.1 = 0.00001 < costmin 0.5
        fill(o, "0.0001")
        assert isinstance(decide(o)[0], Defer)


class TestMinimumsNameTheirRule:
    """Each refusal for size names the minimum it breaks (``PairRules.minimum_breach``): the break test saw a
    take-profit below costmin deferred with a reason naming only ordermin."""

    def test_a_bracket_below_costmin_waits_naming_costmin(self):
        o = entry(sl="3000", tp="4000")  # 0.0001 meets ordermin 0.00005; at 3000 it costs 0.3 < costmin 0.5
        fill(o, "0.0001")
        [wait] = decide(o)
        assert wait.reason["rule"] == "bracket_below_minimum" and wait.reason["minimum"] == "costmin"
        assert "costmin 0.5" in wait.reason["text"] and "ordermin" not in wait.reason["text"]

    def test_a_bracket_below_ordermin_waits_naming_ordermin(self):
        o = entry()
        fill(o, "0.00001")
        [wait] = decide(o)
        assert wait.reason["minimum"] == "ordermin" and "ordermin 0.00005" in wait.reason["text"]

    def test_a_take_profit_below_costmin_at_its_trigger_is_not_recreated_naming_costmin(self):
        e = entry(sl="3000", tp="4000")
        fill(e, "0.0001")
        s_leg, t_leg = bracketed(e, "0.0001")
        t_leg.mark_canceled(reason=R, venue_reason=None)  # ended without our asking: re-created if it can be
        actions = decide(e, s_leg, t_leg)
        [dust] = [a for a in actions if isinstance(a, Defer)]
        assert dust.reason["rule"] == "leg_below_minimum" and dust.reason["minimum"] == "costmin"
        assert "take_profit" in dust.reason["text"] and "cost 0.4" in dust.reason["text"]
        assert not any(isinstance(a, PlaceLeg) for a in actions)


class TestOneLegPerRole:
    def setup_method(self):
        self.e = entry()
        fill(self.e, "0.5")
        self.sl, self.tp = bracketed(self.e, "0.5")

    def test_quiet_when_legs_match(self):
        assert decide(self.e, self.sl, self.tp) == []

    def test_a_later_fill_grows_both_legs_by_amend(self):
        fill(self.e, "0.25")
        actions = decide(self.e, self.sl, self.tp)
        assert actions[0] == ResizeBracket(self.e.id, 0, D("0.75"), actions[0].reason)
        amends = {a.order_id: a.quantity for a in actions if isinstance(a, AmendOrder)}
        assert amends == {self.sl.id: D("0.75"), self.tp.id: D("0.75")}
        assert {a.reason["rule"] for a in actions[1:]} == {"bracket_grow_amend"}

    def test_a_partial_fill_of_one_leg_shrinks_the_other_by_amend(self):
        fill(self.tp, "0.2")
        [amend] = decide(self.e, self.sl, self.tp)
        assert amend == AmendOrder(self.sl.id, D("0.3"), amend.reason) and amend.reason["rule"] == "oco_shrink_amend"

    def test_an_amend_is_computed_on_the_total_including_what_the_leg_filled(self):
        fill(self.sl, "0.1")
        fill(self.tp, "0.2")  # both partially filled: 0.2 held
        amends = {a.order_id: a.quantity for a in decide(self.e, self.sl, self.tp)}
        assert amends == {self.sl.id: D("0.3"), self.tp.id: D("0.4")}  # what each filled + the 0.2 held

    def test_nothing_while_an_amend_or_a_cancel_is_in_flight(self):
        fill(self.tp, "0.2")
        self.sl.request_amend(quantity=D("0.3"), reason=R)
        assert decide(self.e, self.sl, self.tp) == []
        self.sl.amended(quantity=D("0.3"), source="amend", reason=R)
        assert decide(self.e, self.sl, self.tp) == []

    def test_an_amend_the_venue_refuses_becomes_cancel_and_replace(self):
        fill(self.tp, "0.2")
        self.sl.request_amend(quantity=D("0.3"), reason=R)
        self.sl.amend_rejected(error="EOrder:Invalid order", reason=R)
        [cancel] = decide(self.e, self.sl, self.tp)
        assert cancel.order_id == self.sl.id and cancel.reason["rule"] == "amend_refused_replace"
        self.sl.request_cancel(reason=R)
        self.sl.mark_canceled(reason=R)
        [place] = decide(self.e, self.sl, self.tp)
        assert isinstance(place, PlaceLeg) and place.quantity == D("0.3") and place.reason["rule"] == "leg_replace"

    def test_full_fill_of_one_leg_cancels_the_other(self):
        fill(self.tp, "0.5")
        [cancel] = decide(self.e, self.sl, self.tp)
        assert cancel == CancelOrder(self.sl.id, cancel.reason) and cancel.reason["rule"] == "oco_cancel_sibling"

    def test_an_overexit_is_recorded_for_an_operator(self):
        fill(self.tp, "0.5")
        fill(self.sl, "0.1")
        actions = decide(self.e, self.sl, self.tp)
        assert any(isinstance(a, Defer) and a.reason["rule"] == "position_overexited" for a in actions)

    def test_a_ledger_with_two_stops_keeps_the_larger_and_cancels_the_other(self):
        # Ledgers written when every fill increment had its own bracket.
        extra = leg(self.e, OrderRole.STOP_LOSS, "0.1")
        self.e.add_bracket_leg(index=0, role=OrderRole.STOP_LOSS, order_id=extra.id, reason=R)
        [cancel] = decide(self.e, self.sl, self.tp, extra)
        assert cancel.order_id == extra.id and cancel.reason["rule"] == "one_leg_per_role"

    def test_sibling_still_submitting_is_canceled_once_its_outcome_is_known(self):
        # Found by the fault suite: CancelRequested from SUBMITTING raised InvalidTransition in the stream worker.
        tp = submitting(self.e, OrderRole.TAKE_PROFIT, self.tp.id)
        fill(self.sl, "0.5")
        assert decide(self.e, self.sl, tp) == []
        tp.acknowledge(txid="O9", at=T0, reason=R)
        [cancel] = decide(self.e, self.sl, tp)
        assert cancel.order_id == tp.id and cancel.reason["rule"] == "oco_cancel_sibling"

    def test_leg_not_placed_for_a_passing_reason_is_placed_again(self):
        tp = submitting(self.e, OrderRole.TAKE_PROFIT, self.tp.id)
        tp.reject(error="not placed", reason=R, transient=True)
        [place] = decide(self.e, self.sl, tp)
        assert isinstance(place, PlaceLeg) and place.role is OrderRole.TAKE_PROFIT and place.quantity == D("0.5")
        assert place.reason["rule"] == "leg_rejected_transient_recreate"

    def test_vanished_leg_is_placed_again(self):
        self.sl.mark_canceled(reason=R, venue_reason="gone")
        [place] = decide(self.e, self.sl, self.tp)
        assert place.reason["rule"] == "leg_vanished_recreate" and place.quantity == D("0.5")
        assert place.order_type is OrderType.STOP_LOSS and place.trigger_price == D("90")

    def test_a_stop_refused_for_what_it_is_is_reported_not_answered_by_a_market_exit(self):
        sl = submitting(self.e, OrderRole.STOP_LOSS, self.sl.id)
        sl.reject(error="EGeneral:Permission denied", reason=R)
        [defer] = decide(self.e, sl, self.tp, price="95")
        assert isinstance(defer, Defer) and defer.reason["rule"] == "leg_rejected_not_recreated"

    def test_a_refused_stop_whose_trigger_is_crossed_exits_at_market(self):
        sl = submitting(self.e, OrderRole.STOP_LOSS, self.sl.id)
        sl.reject(error="EOrder:Invalid price", reason=R)
        [exit_] = decide(self.e, sl, self.tp, price="89.5")
        assert isinstance(exit_, PlaceLeg) and exit_.order_type is OrderType.MARKET and exit_.quantity == D("0.5")


class TestEmulatedTakeProfit:
    def setup_method(self):
        self.e = entry()
        fill(self.e, "0.5")
        self.sl, _ = bracketed(self.e, "0.5", tp=False, emulate=OrderRole.TAKE_PROFIT)

    def test_quiet_below_the_trigger_or_without_a_price(self):
        assert decide(self.e, self.sl, config=CFG) == []
        assert decide(self.e, self.sl, config=CFG, price="119.9") == []

    def test_crossing_triggers_cancels_the_stop_then_exits_at_market(self):
        actions = decide(self.e, self.sl, config=CFG, price="120")
        trigger, cancel = actions
        assert isinstance(trigger, TriggerEmulated) and trigger.role is OrderRole.TAKE_PROFIT
        assert trigger.price == D("120") and trigger.reason["rule"] == "emulated_trigger_crossed"
        assert cancel == CancelOrder(self.sl.id, cancel.reason)
        self.e.trigger_emulated(index=0, role=OrderRole.TAKE_PROFIT, price=D("120"), observed_at=NOW, reason=R)
        self.sl.request_cancel(reason=R)
        assert decide(self.e, self.sl, config=CFG, price="118") == []  # the stop may still fill: wait
        fill(self.sl, "0.1")  # it did, partly, before the cancel landed
        self.sl.mark_canceled(reason=R)
        [exit_] = decide(self.e, self.sl, config=CFG)
        assert exit_.role is OrderRole.TAKE_PROFIT and exit_.order_type is OrderType.MARKET
        assert exit_.quantity == D("0.4") and exit_.reason["rule"] == "emulated_trigger_exit"

    def test_no_trigger_once_the_position_is_flat(self):
        fill(self.sl, "0.5")
        actions = decide(self.e, self.sl, config=CFG, price="130")
        assert not any(isinstance(a, TriggerEmulated) for a in actions)


def submitting(e: Order, role: OrderRole, order_id) -> Order:
    o = Order.place(
        order_id=order_id,
        signal_id="s",
        role=role,
        pair="XXBTZUSD",
        side=Side.SELL,
        order_type=OrderType.TAKE_PROFIT if role is OrderRole.TAKE_PROFIT else OrderType.STOP_LOSS,
        quantity=D("0.5"),
        trigger_price=D("120") if role is OrderRole.TAKE_PROFIT else D("90"),
        cl_ord_id=str(uuid.uuid4()),
        parent_id=e.id,
        reason=R,
    )
    o.submit(at=T0, deadline=None, reason=R)
    return o
