"""ContingencyManager: runs the pure policies on what changed and turns their actions into recorded decisions.

After any change of an order (a fill, a cancel, an outcome) the entry it belongs to is looked at as a whole:
brackets per fill increment, OCO between its legs, or, once a close was requested, the close. The actions come
back as decisions on aggregates (new legs, cancel requests, deferrals) that the caller commits in the same
transaction as the fact that caused them. Nothing here talks to the venue or the store.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from execledger.application.order_index import OrderIndex
from execledger.application.policies import (
    Action,
    CancelOrder,
    Defer,
    ExitPosition,
    PlaceBracket,
    PlaceLeg,
    PolicyConfig,
    TimeOut,
    bracket_policy,
    close_policy,
    meets_minimums,
    oco_policy,
    timeout_policy,
)
from execledger.domain.order import Order, State
from execledger.domain.pairs import PairRegistry, PairRules, PriceKind
from execledger.domain.position import exits_of
from execledger.domain.reasons import reason
from execledger.domain.values import ZERO, OrderRole, OrderType, Side, plain


class ContingencyManager:
    def __init__(self, index: OrderIndex, pairs: PairRegistry, config: PolicyConfig):
        self.index = index
        self.pairs = pairs
        self.config = config

    def rules(self, order: Order) -> PairRules:
        rules = self.pairs.find(order.pair)
        if rules is None:  # pragma: no cover - Placed only accepts known pairs
            raise LookupError(f"no pair rules for {order.pair}")
        return rules

    # --- reactions -------------------------------------------------------------------------------------------

    def react(self, order: Order) -> list[Any]:
        """Decide what the entry of ``order`` needs now; returns every aggregate the decisions touched (commit them
        with the fact). An order without an entry (not ours any more) needs nothing."""
        entry = self.index.entry_of(order)
        if entry is None:
            return [order]
        touched: list[Any] = [order, entry]
        rules = self.rules(entry)
        if entry.closing is not None:
            touched += self._apply(entry, close_policy(entry, exits_of(entry, self.index), rules))
            return touched
        touched += self._apply(entry, bracket_policy(entry, rules))
        for bracket in list(entry.brackets):  # every bracket sees every leg: an over-exit elsewhere shrinks it
            touched += self._apply(entry, oco_policy(entry, bracket, self.index, rules, self.config))
        return touched

    def timeouts_of(self, order: Order, now: datetime) -> list[Any]:
        """The timeout decision for one resting order at the clock's ``now``; returns the touched orders (none when
        there is nothing to decide)."""
        actions = timeout_policy(order, self.rules(order), now, self.config)
        return self._apply(order, actions) if actions else []

    def needing_attention(self) -> list[Order]:
        """Entries whose contingencies may need a decision: those with live legs (OCO) or unprotected fills, and
        every closing entry (the safety net the timer runs, so nothing waits for the next venue report)."""
        entries: dict[Any, Order] = {}
        for order in self.index.live():
            entry = self.index.entry_of(order)
            if entry is not None:
                entries[entry.id] = entry
        for order in self.index.in_state(State.FILLED, State.CANCELED, State.EXPIRED):
            if order.role is OrderRole.ENTRY and (
                order.filled_quantity > order.bracketed_quantity or order.closing is not None
            ):
                entries[order.id] = order
        return list(entries.values())

    # --- corrections before sending again ------------------------------------------------------------------------

    def reround(self, order: Order) -> list[Any]:
        """Round a waiting order again by its pair's current rules (the venue refused its precision: its rules
        changed). Returns the touched orders (none when nothing changed)."""
        rules = self.rules(order)
        exit_side = order.side  # a leg's trigger rounds to the nearest tick whatever its side
        quantity = rules.round_volume(order.quantity)
        limit = rules.round_price(order.limit_price, order.side) if order.limit_price is not None else None
        trigger = (
            rules.round_price(order.trigger_price, exit_side, trigger_kind(order.role))
            if order.trigger_price is not None
            else None
        )
        if quantity <= 0:
            return self._unsendable(order, f"rounds to 0 at {rules.lot_decimals} lot decimals")
        changed = order.correct(
            quantity=quantity,
            limit_price=limit,
            trigger_price=trigger,
            reason=reason(
                "reround_by_current_rules",
                f"the venue refused the order's precision: rounded again by {rules.wsname}'s current rules "
                f"(pair_decimals {rules.pair_decimals}, lot_decimals {rules.lot_decimals})",
                pair_decimals=rules.pair_decimals,
                lot_decimals=rules.lot_decimals,
                quantity=quantity,
                limit_price=limit,
                trigger_price=trigger,
            ),
        )
        return [order] if changed else []

    def resize_to_holdings(self, order: Order, available: Mapping[str, Decimal]) -> list[Any]:
        """Size a waiting exit order to what the account holds (the venue refused it for funds): never more than the
        available balance of what it sells, rounded down to the lot. Entries keep their size (they wait for funds
        within their maximum age); an exit that cannot be funded at all waits too, recorded once."""
        if order.role is OrderRole.ENTRY:
            return []
        rules = self.rules(order)
        if order.side is Side.SELL:
            affordable = available.get(rules.base, ZERO)
        else:
            price = order.limit_price or order.trigger_price
            affordable = available.get(rules.quote, ZERO) / price if price else order.quantity
        quantity = rules.round_volume(min(order.quantity, max(affordable, ZERO)))
        if quantity == order.quantity:
            return []
        if not meets_minimums(rules, quantity, order.trigger_price or order.limit_price):
            recorded = order.defer(
                key=f"exit_unfunded:{plain(affordable)}",
                reason=reason(
                    "exit_unfunded",
                    f"the account holds {plain(affordable)} available for this {order.role.value}, below the pair's "
                    f"minimums: it waits for funds (another order may hold them)",
                    available=affordable,
                    quantity=order.quantity,
                ),
            )
            return [order] if recorded else []
        order.correct(
            quantity=quantity,
            reason=reason(
                "resize_to_holdings",
                f"the venue refused {plain(order.quantity)} for funds; the account holds {plain(affordable)}: "
                f"sending {plain(quantity)}",
                available=affordable,
                previous_quantity=order.quantity,
                quantity=quantity,
            ),
        )
        return [order]

    def _unsendable(self, order: Order, why: str) -> list[Any]:
        order.request_cancel(reason=reason("unsendable_after_correction", f"not sent: {why}"))
        return self.react(order)

    # --- actions -> decisions ----------------------------------------------------------------------------------

    def _apply(self, order: Order, actions: list[Action]) -> list[Any]:
        touched: list[Any] = [order]
        for action in actions:
            if isinstance(action, TimeOut):
                target = self.index[action.order_id]
                target.time_out(
                    age_s=action.age_s,
                    threshold_s=action.threshold_s,
                    rule=action.rule,
                    observed_at=action.observed_at,
                )
                touched.append(target)
            elif isinstance(action, Defer):
                self.index[action.order_id].defer(key=action.key, reason=action.reason)
            elif isinstance(action, CancelOrder):
                target = self.index[action.order_id]
                target.request_cancel(reason=action.reason)
                touched.append(target)
            elif isinstance(action, PlaceBracket):
                touched += self._place_bracket(self.index[action.entry_id], action)
            elif isinstance(action, PlaceLeg):
                touched += self._place_leg(self.index[action.entry_id], action)
            elif isinstance(action, ExitPosition):
                touched += self._exit_position(self.index[action.entry_id], action)
        return touched

    def _new_leg(
        self,
        entry: Order,
        role: OrderRole,
        order_type: OrderType,
        quantity: Decimal,
        trigger: Decimal | None,
        why: dict,
        generation: str,
    ) -> Order:
        rules = self.rules(entry)
        exit_side = entry.side.opposite
        leg = Order.place(
            order_id=uuid.uuid5(entry.id, generation),
            signal_id=entry.signal_id,
            role=role,
            pair=entry.pair,
            side=exit_side,
            order_type=order_type,
            quantity=rules.round_volume(quantity),
            trigger_price=rules.round_price(trigger, exit_side, trigger_kind(role)) if trigger is not None else None,
            cl_ord_id=str(uuid.uuid4()),
            parent_id=entry.id,
            reason=why,
        )
        self.index.put(leg)  # visible to the policies still deciding in this reaction; forgotten on rollback
        return leg

    def _place_bracket(self, entry: Order, action: PlaceBracket) -> list[Order]:
        index = len(entry.brackets)
        cfg = self.config
        sl = (
            self._new_leg(
                entry,
                OrderRole.STOP_LOSS,
                cfg.stop_order_type,
                action.quantity,
                action.sl_price,
                action.reason,
                f"bracket:{index}:stop_loss:0",
            )
            if action.sl_price is not None
            else None
        )
        tp = (
            self._new_leg(
                entry,
                OrderRole.TAKE_PROFIT,
                cfg.take_profit_order_type,
                action.quantity,
                action.tp_price,
                action.reason,
                f"bracket:{index}:take_profit:0",
            )
            if action.tp_price is not None
            else None
        )
        entry.record_bracket(
            quantity=action.quantity,
            stop_loss_order_id=sl.id if sl else None,
            take_profit_order_id=tp.id if tp else None,
            sl_price=action.sl_price,
            tp_price=action.tp_price,
            reason=action.reason,
        )
        return [o for o in (sl, tp) if o is not None]

    def _place_leg(self, entry: Order, action: PlaceLeg) -> list[Order]:
        bracket = entry.brackets[action.bracket_index]
        generation = len(bracket.legs.get(action.role.value, []))
        leg = self._new_leg(
            entry,
            action.role,
            action.order_type,
            action.quantity,
            action.trigger_price,
            action.reason,
            f"bracket:{action.bracket_index}:{action.role.value}:{generation}",
        )
        entry.add_bracket_leg(index=action.bracket_index, role=action.role, order_id=leg.id, reason=action.reason)
        return [leg]

    def _exit_position(self, entry: Order, action: ExitPosition) -> list[Order]:
        leg = self._new_leg(
            entry,
            OrderRole.EXIT,
            OrderType.MARKET,
            action.quantity,
            None,
            action.reason,
            f"close:{len(entry.position_exits)}",
        )
        entry.add_position_exit(order_id=leg.id, quantity=leg.quantity, reason=action.reason)
        return [leg]


def trigger_kind(role: OrderRole) -> PriceKind:
    """How a leg's trigger price rounds (``domain/pairs.py``): a stop away from the market one way, a
    take-profit the other."""
    return PriceKind.STOP if role is OrderRole.STOP_LOSS else PriceKind.TAKE_PROFIT
