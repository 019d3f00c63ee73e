"""Process-manager policies: pure functions from orders (+ the clock's time) to decisions, each with its reason.

No I/O and no mutation here: the engine applies the returned actions to aggregates and saves them in one
transaction with the fact that triggered them; workers perform the exchange calls afterwards.

Partial-fill rule for brackets (FR-606), chosen and documented: **legs per fill increment**. Every time the
entry's filled-but-unprotected quantity reaches the pair's minimums (``ordermin``, ``costmin`` at the stop price),
a new bracket (stop-loss + take-profit, opposite side, sized to that quantity) is planned. Smaller increments are
deferred and accumulate until they reach the minimums; when the entry ends (filled, canceled, expired) whatever
is left is bracketed if Kraken would accept it, otherwise a Deferred decision records that the dust cannot be
protected. So a position is protected as early as Kraken allows, and the legs always sum to the position.

OCO (Kraken Spot has none): within one bracket, the quantity still to protect is the bracket's quantity minus
everything its legs (all generations) have filled. A live leg larger than that is canceled and re-created at the
right size (shrink); when it reaches zero, the live sibling is canceled. A leg that ends without us asking
(vanished, expired, or rejected by a rate limit) is re-created; a stop-loss the venue rejects for good makes the
position exit at market.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from execledger.domain.order import Bracket, Order, State
from execledger.domain.pairs import PairRules
from execledger.domain.position import entered
from execledger.domain.reasons import reason
from execledger.domain.values import ZERO, OrderRole, OrderType, plain

# --- actions -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeOut:
    order_id: UUID
    age_s: float
    threshold_s: float
    rule: str
    observed_at: datetime  # the instant the age was measured at: recorded with the decision, so replay agrees


@dataclass(frozen=True)
class Defer:
    order_id: UUID
    key: str
    reason: dict


@dataclass(frozen=True)
class CancelOrder:
    order_id: UUID
    reason: dict


@dataclass(frozen=True)
class PlaceBracket:
    entry_id: UUID
    quantity: Decimal
    sl_price: Decimal | None
    tp_price: Decimal | None
    reason: dict


@dataclass(frozen=True)
class PlaceLeg:
    """A new generation of one leg of an existing bracket (re-created, shrunk, or a market exit)."""

    entry_id: UUID
    bracket_index: int
    role: OrderRole
    order_type: OrderType
    quantity: Decimal
    trigger_price: Decimal | None
    reason: dict


@dataclass(frozen=True)
class ExitPosition:
    """A market exit for the whole position of an entry whose close was requested."""

    entry_id: UUID
    quantity: Decimal
    reason: dict


Action = TimeOut | Defer | CancelOrder | PlaceBracket | PlaceLeg | ExitPosition


@dataclass(frozen=True)
class PolicyConfig:
    default_timeout_s: float = 300.0
    stop_order_type: OrderType = OrderType.STOP_LOSS  # market when triggered: a stop must get out
    take_profit_order_type: OrderType = OrderType.TAKE_PROFIT


def meets_minimums(rules: PairRules, quantity: Decimal, price: Decimal | None) -> bool:
    """Would Kraken accept an order of this size (ordermin, and costmin when a price is known)?"""
    if quantity <= ZERO or quantity < rules.ordermin:
        return False
    return not (price is not None and rules.costmin is not None and quantity * price < rules.costmin)


# --- timeout (FR-605) --------------------------------------------------------------------------------------


def timeout_policy(order: Order, rules: PairRules, now: datetime, config: PolicyConfig) -> list[Action]:
    """A resting limit entry older than its timeout is canceled, unless what it already filled could not be sold
    (below the pair's minimums), in which case the cancel is refused and the refusal recorded."""
    if order.role is not OrderRole.ENTRY or order.order_type is not OrderType.LIMIT or order.state is not State.OPEN:
        return []
    started = order.acknowledged_at or order.submitted_at
    if started is None:
        return []
    threshold, rule = (
        (order.timeout_s, "signal.timeout_s")
        if order.timeout_s
        else (config.default_timeout_s, "config.default_timeout_s")
    )
    age = (now - started).total_seconds()
    if age < threshold:
        return []
    filled = order.filled_quantity
    if filled > ZERO and not meets_minimums(rules, filled, order.average_fill_price):
        return [
            Defer(
                order.id,
                f"timeout_cancel:{plain(filled)}",
                reason(
                    "timeout_cancel_refused",
                    f"timed out after {age:g}s (threshold {threshold:g}s, {rule}) but canceling would leave a filled "
                    f"{plain(filled)} below the pair's minimums (ordermin {plain(rules.ordermin)}), which could be "
                    f"neither "
                    f"protected nor sold; the order keeps working",
                    age_s=age,
                    threshold_s=threshold,
                    filled=filled,
                    ordermin=rules.ordermin,
                    costmin=rules.costmin,
                ),
            )
        ]
    return [TimeOut(order.id, age, threshold, rule, now)]


# --- brackets (FR-606) -------------------------------------------------------------------------------------


def bracket_policy(entry: Order, rules: PairRules) -> list[Action]:
    """Plan a new bracket for the entry's filled quantity that no bracket covers yet (legs per fill increment)."""
    if entry.role is not OrderRole.ENTRY or (entry.sl_price is None and entry.tp_price is None):
        return []
    # What the account holds from this entry: a buy's fee charged in the base asset is not there to sell.
    unprotected = entered(entry, rules.base) - entry.bracketed_quantity
    if unprotected <= ZERO:
        return []
    check_price = entry.sl_price or entry.tp_price
    if meets_minimums(rules, unprotected, check_price):
        return [
            PlaceBracket(
                entry.id,
                unprotected,
                entry.sl_price,
                entry.tp_price,
                reason(
                    "bracket_per_fill_increment",
                    f"entry filled {plain(entry.filled_quantity)} of {plain(entry.quantity)}; protecting the "
                    f"{plain(unprotected)} not yet covered with stop "
                    f"{plain(entry.sl_price) if entry.sl_price else '-'} "
                    f"and take-profit {plain(entry.tp_price) if entry.tp_price else '-'}",
                    filled=entry.filled_quantity,
                    already_bracketed=entry.bracketed_quantity,
                    quantity=unprotected,
                ),
            )
        ]
    if entry.is_terminal:
        return [
            Defer(
                entry.id,
                f"bracket_dust:{plain(unprotected)}",
                reason(
                    "bracket_dust_unprotectable",
                    f"the entry ended with {plain(unprotected)} unprotected, below the pair's minimums "
                    f"(ordermin {plain(rules.ordermin)}): Kraken would reject a stop or an exit of that size",
                    quantity=unprotected,
                    ordermin=rules.ordermin,
                    costmin=rules.costmin,
                ),
            )
        ]
    return [
        Defer(
            entry.id,
            f"bracket_wait:{plain(unprotected)}",
            reason(
                "bracket_below_minimum",
                f"{plain(unprotected)} filled so far is below the pair's minimums (ordermin {plain(rules.ordermin)}); "
                f"the bracket waits for more fills",
                quantity=unprotected,
                ordermin=rules.ordermin,
            ),
        )
    ]


def _cancelable(leg: Order) -> bool:
    """A live leg we have not asked to cancel yet, and whose AddOrder is not on the wire: a leg still SUBMITTING
    has no outcome to cancel yet, so it is decided on again once its outcome is recorded."""
    return not leg.is_terminal and not leg.cancel_requested and leg.state is not State.SUBMITTING


def _exited(bracket: Bracket, legs: Mapping[UUID, Order]) -> Decimal:
    return sum((legs[i].filled_quantity for i in bracket.all_leg_ids() if i in legs), ZERO)


def _overexit_share(entry: Order, legs: Mapping[UUID, Order]) -> dict[int, Decimal]:
    """How much each bracket must give up because other brackets exited more than they protected."""
    excess = sum((max(ZERO, _exited(b, legs) - b.quantity) for b in entry.brackets), ZERO)
    share: dict[int, Decimal] = {}
    for b in entry.brackets:
        if excess <= ZERO:
            break
        take = min(max(ZERO, b.quantity - _exited(b, legs)), excess)
        share[b.index] = take
        excess -= take
    return share


def oco_policy(
    entry: Order, bracket: Bracket, legs: Mapping[UUID, Order], rules: PairRules, config: PolicyConfig
) -> list[Action]:
    """Keep one bracket's legs one-cancels-the-other and sized to what the bracket still protects.

    ``legs`` must hold the legs of *every* bracket of the entry: when both legs of one bracket filled (the sibling
    filled before its cancel landed), the excess was sold out of the position the other brackets protect, so they
    shrink by it, oldest first."""
    exited = _exited(bracket, legs)
    target = bracket.quantity - exited - _overexit_share(entry, legs).get(bracket.index, ZERO)
    exits = [legs[i] for i in bracket.legs.get(OrderRole.EXIT.value, []) if i in legs]
    exiting = any(not o.is_terminal for o in exits)
    actions: list[Action] = []
    where = f"bracket {bracket.index} of entry {entry.signal_id}"
    for role in (OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT):
        current = bracket.current(role)
        leg = legs.get(current) if current else None
        if leg is None:
            continue
        if target <= ZERO or exiting:
            if _cancelable(leg):
                why = (
                    "a market exit is closing the position"
                    if exiting
                    else f"the position of {where} is closed ({plain(exited)} exited)"
                )
                actions.append(
                    CancelOrder(
                        leg.id,
                        reason(
                            "oco_cancel_sibling",
                            f"cancel {role.value}: {why}",
                            bracket_quantity=bracket.quantity,
                            exited=exited,
                        ),
                    )
                )
            continue
        if not leg.is_terminal:
            if _cancelable(leg) and leg.remaining_quantity > target:
                actions.append(
                    CancelOrder(
                        leg.id,
                        reason(
                            "oco_shrink",
                            f"{role.value} works {plain(leg.remaining_quantity)} but {where} only has "
                            f"{plain(target)} left to protect: cancel and re-create it at {plain(target)}",
                            leg_remaining=leg.remaining_quantity,
                            target=target,
                            exited=exited,
                        ),
                    )
                )
            continue
        # The current leg has ended and part of the position is still unprotected by it.
        if leg.state is State.REJECTED and not leg.rejected_transiently:
            # Refusals that executed nothing are sent again before it comes to this (the error table's
            # NOT_EXECUTED); a leg the venue refuses for what it is would be refused again, and selling at market
            # on any refusal sold positions for a mere precision error. An operator is told (a recorded decision).
            actions.append(
                Defer(
                    entry.id,
                    f"leg_rejected:{bracket.index}:{role.value}:{leg.id}",
                    reason(
                        "leg_rejected_not_recreated",
                        f"the {role.value} of {where} was refused for what it is ({leg.last_error}): not sent again, "
                        f"since the same order would be refused again; {plain(target)} is not protected by it",
                        error=leg.last_error,
                        target=target,
                    ),
                )
            )
            continue
        price = bracket.sl_price if role is OrderRole.STOP_LOSS else bracket.tp_price
        order_type = config.stop_order_type if role is OrderRole.STOP_LOSS else config.take_profit_order_type
        if not meets_minimums(rules, target, price):
            actions.append(
                Defer(
                    entry.id,
                    f"leg_dust:{bracket.index}:{role.value}:{plain(target)}",
                    reason(
                        "leg_below_minimum",
                        f"{plain(target)} left in {where} is below the pair's minimums: no new {role.value}",
                        target=target,
                        ordermin=rules.ordermin,
                    ),
                )
            )
            continue
        if leg.state is State.REJECTED:  # a rate limit rejects nothing for good: a new leg, not the same one again
            rule, text = (
                "leg_rejected_transient_recreate",
                (f"the {role.value} was rejected for now ({leg.last_error}): re-create it for {plain(target)}"),
            )
        elif leg.cancel_requested:
            rule, text = "oco_shrink_replace", f"re-create the {role.value} at {plain(target)} after its cancel"
        else:
            rule, text = (
                "leg_vanished_recreate",
                (
                    f"the {role.value} ended without our asking ({leg.state.value}) "
                    f"while {plain(target)} is still open: re-create it"
                ),
            )
        actions.append(
            PlaceLeg(
                entry.id,
                bracket.index,
                role,
                order_type,
                target,
                price,
                reason(rule, text, previous_leg=str(leg.id), previous_state=leg.state.value, target=target),
            )
        )
    return actions


# --- close (operator command) ------------------------------------------------------------------------------


def close_policy(entry: Order, exits: list[Order], rules: PairRules) -> list[Action]:
    """An entry whose close was requested: cancel the entry if it still works and every live exit leg; once nothing
    that could still fill is left, exit what is held at market. Brackets and OCO do not run for a closing entry."""
    actions: list[Action] = []
    why = entry.closing or {}
    who = f"close requested by {why.get('by', '?')}: {why.get('why', '')}"
    if _cancelable(entry):
        actions.append(CancelOrder(entry.id, reason("close_cancel_entry", f"cancel the entry ({who})")))
    legs = [o for o in exits if o.id not in entry.position_exits]
    for leg in legs:
        if _cancelable(leg):
            actions.append(CancelOrder(leg.id, reason("close_cancel_leg", f"cancel the {leg.role.value} ({who})")))
    if actions or any(not o.is_terminal for o in exits):
        return actions  # wait until nothing can fill any more: then the position is known exactly
    if entry.state in (State.PENDING_SUBMIT, State.SUBMITTING, State.OUTCOME_UNKNOWN):
        return actions
    held = entered(entry, rules.base) - sum((o.filled_quantity for o in exits), ZERO)
    if held <= ZERO:
        return actions
    reference = entry.average_fill_price
    if not meets_minimums(rules, rules.round_volume(held), reference):
        return [
            Defer(
                entry.id,
                f"close_dust:{plain(held)}",
                reason(
                    "close_dust_unsellable",
                    f"{plain(held)} is held but is below the pair's minimums (ordermin {plain(rules.ordermin)}): "
                    f"Kraken would reject an exit of that size",
                    quantity=held,
                    ordermin=rules.ordermin,
                ),
            )
        ]
    return [
        ExitPosition(
            entry.id,
            held,
            reason("close_exit_at_market", f"exit the {plain(held)} held at market ({who})", quantity=held),
        )
    ]
