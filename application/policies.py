"""Process-manager policies: pure functions from orders (+ the clock's time) to decisions, each with its reason.

No I/O and no mutation here: the engine applies the returned actions to aggregates and saves them in one
transaction with the fact that triggered them; workers perform the exchange calls afterwards.

Protection (FR-606), chosen and documented: **one stop-loss and one take-profit per entry, sized to what is held**.
The first fills that reach the pair's minimums (``ordermin``, ``costmin`` at the stop price) place the entry's
bracket for what the account holds (the filled quantity less a buy's fees charged in the base asset, the one
position rule of ``domain/position.py``); later fills grow both legs, and a fill of one leg shrinks the other, by
Kraken's AmendOrder (in place: ids and queue priority kept, no moment without protection). Smaller increments
wait until they reach the minimums; an entry that ends with less records that the dust cannot be protected.

OCO (Kraken Spot has none): each leg works the net position (entered minus everything any exit filled); when it
reaches zero the live sibling is canceled. Where the venue refuses an amend, the leg is canceled and placed again
at the right size. A leg that ends without our asking (vanished, expired, or refused before anything executed)
is placed again; one refused for what it is is not (an operator is told), except a stop whose trigger the last
price has already crossed, which exits at market.

Funds held by a resting leg: Kraken holds the base for an untriggered stop-loss, so a take-profit beside it is
refused for funds. With both prices set, one leg rests on the venue (``resting_leg``, the stop-loss by default)
and the ledger holds the other as a trigger on the public price: when the last price crosses it, the resting leg
is canceled and the position exits at market.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

from execledger.domain.errors import FieldError
from execledger.domain.order import Bracket, Order, State
from execledger.domain.pairs import PairRules
from execledger.domain.position import (
    emulated_roles,
    entered,
    planned_roles,
    position_of,
    refused_triggers,
    triggered_roles,
)
from execledger.domain.reasons import Rule, reason
from execledger.domain.values import ZERO, OrderRole, OrderType, Side, plain

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
    reason: dict[str, Any]


@dataclass(frozen=True)
class CancelOrder:
    order_id: UUID
    reason: dict[str, Any]


@dataclass(frozen=True)
class PlaceLeg:
    """A new generation of one leg of the entry's bracket (the first, a re-created one, or a market exit)."""

    entry_id: UUID
    bracket_index: int
    role: OrderRole
    order_type: OrderType
    quantity: Decimal
    trigger_price: Decimal | None
    reason: dict[str, Any]


@dataclass(frozen=True)
class PlaceBracket:
    """The entry's bracket: the legs that rest on the venue and the roles the ledger emulates."""

    entry_id: UUID
    quantity: Decimal
    sl_price: Decimal | None
    tp_price: Decimal | None
    reason: dict[str, Any]
    legs: tuple[PlaceLeg, ...] = ()
    emulated: tuple[OrderRole, ...] = ()


@dataclass(frozen=True)
class ResizeBracket:
    entry_id: UUID
    bracket_index: int
    quantity: Decimal
    reason: dict[str, Any]


@dataclass(frozen=True)
class AmendOrder:
    """Change a resting leg's total quantity in place (Kraken AmendOrder ``order_qty``)."""

    order_id: UUID
    quantity: Decimal
    reason: dict[str, Any]


@dataclass(frozen=True)
class TriggerEmulated:
    entry_id: UUID
    bracket_index: int
    role: OrderRole
    price: Decimal
    observed_at: datetime
    reason: dict[str, Any]


@dataclass(frozen=True)
class LastPrice:
    """A pair's last public trade price and when it was observed (the venue's ticker or trade channel)."""

    price: Decimal
    at: datetime


@dataclass(frozen=True)
class ExitPosition:
    """A market exit for the whole position of an entry whose close was requested."""

    entry_id: UUID
    quantity: Decimal
    reason: dict[str, Any]


Action = (
    TimeOut
    | Defer
    | CancelOrder
    | PlaceBracket
    | PlaceLeg
    | ResizeBracket
    | AmendOrder
    | TriggerEmulated
    | ExitPosition
)


@dataclass(frozen=True)
class PolicyConfig:
    default_timeout_s: float = 300.0
    stop_order_type: OrderType = OrderType.STOP_LOSS  # market when triggered: a stop must get out
    take_profit_order_type: OrderType = OrderType.TAKE_PROFIT
    resting_leg: str = "stop_loss"  # stop_loss | take_profit | both: which leg rests on the venue (the other is
    # emulated on the public price; Kraken holds the funds of an untriggered stop, REFERENCE.md 3.3)
    price_max_age_s: float = 15.0  # a public price older than this decides nothing (no trigger, no crossed stop)


def minimums(rules: PairRules, breach: FieldError) -> dict[str, Any]:
    """The fields a reason records for a size the pair's minimums refuse (``PairRules.minimum_breach``, the one
    minimum rule): which minimum it breaks (``ordermin``: volume, ``costmin``: cost at the price checked) and both
    thresholds, so the text and the fields name the rule that decided, never the other one."""
    return {"minimum": breach.rule, "ordermin": rules.ordermin, "costmin": rules.costmin}


# --- timeout (FR-605) --------------------------------------------------------------------------------------


def _timeout_of(order: Order, config: PolicyConfig) -> tuple[datetime, float, str] | None:
    """(when the resting limit entry started working, its timeout in seconds, the rule that set it), or None for
    an order the timeout does not apply to."""
    if order.role is not OrderRole.ENTRY or order.order_type is not OrderType.LIMIT or order.state is not State.OPEN:
        return None
    started = order.acknowledged_at or order.submitted_at
    if started is None:
        return None
    if order.timeout_s:
        return started, order.timeout_s, "signal.timeout_s"
    return started, config.default_timeout_s, "config.default_timeout_s"


def timeout_deadline(order: Order, config: PolicyConfig) -> datetime | None:
    """When ``timeout_policy`` first decides for this order (None: it never does in its present state); the timer
    asks only the orders whose deadline has passed (``OrderIndex.due``) instead of every open order."""
    timing = _timeout_of(order, config)
    if timing is None:
        return None
    try:
        return timing[0] + timedelta(seconds=timing[1])
    except OverflowError:  # a timeout beyond the calendar: never
        return None


def timeout_policy(order: Order, rules: PairRules, now: datetime, config: PolicyConfig) -> list[Action]:
    """A resting limit entry older than its timeout is canceled, unless what it already filled could not be sold
    (below the pair's minimums), in which case the cancel is refused and the refusal recorded."""
    timing = _timeout_of(order, config)
    if timing is None:
        return []
    started, threshold, rule = timing
    age = (now - started).total_seconds()
    if age < threshold:
        return []
    filled = order.filled_quantity
    breach = rules.minimum_breach(filled, order.average_fill_price) if filled > ZERO else None
    if breach is not None:
        return [
            Defer(
                order.id,
                f"timeout_cancel:{plain(filled)}",
                reason(
                    Rule.TIMEOUT_CANCEL_REFUSED,
                    f"timed out after {age:g}s (threshold {threshold:g}s, {rule}) but canceling would leave the "
                    f"{plain(filled)} filled unprotectable and unsellable ({breach.message}); the order keeps working",
                    age_s=age,
                    threshold_s=threshold,
                    filled=filled,
                    **minimums(rules, breach),
                ),
            )
        ]
    return [TimeOut(order.id, age, threshold, rule, now)]


# --- protection (FR-606): one stop-loss and one take-profit per entry ---------------------------------------


def crossed(role: OrderRole, exit_side: Side, trigger: Decimal, price: Decimal) -> bool:
    """Has ``price`` reached a leg's trigger? A stop-loss triggers from the unfavourable direction, a take-profit
    from the favourable one (REFERENCE.md 3.3): a sell stop and a buy take-profit on the way down."""
    falling = (exit_side is Side.SELL) == (role is OrderRole.STOP_LOSS)
    return price <= trigger if falling else price >= trigger


def _price_of(entry: Order, role: OrderRole) -> Decimal | None:
    return entry.sl_price if role is OrderRole.STOP_LOSS else entry.tp_price


def _legs_of(entry: Order, role: OrderRole, legs: Mapping[UUID, Order]) -> list[Order]:
    """Every generation of one role's legs, over every bracket, oldest first (those ``legs`` holds)."""
    get = legs.get
    return [o for b in entry.brackets for i in b.legs.get(role, ()) if (o := get(i)) is not None]


def _waiting_on_venue(leg: Order) -> bool:
    """A leg whose last call has no outcome yet (being sent, unknown, a cancel or an amend in flight)."""
    return leg.cancel_requested or leg.amend_pending is not None or leg.state is not State.OPEN


def _emulated_for(entry: Order, config: PolicyConfig) -> tuple[OrderRole, ...]:
    """Which role the ledger holds itself: Kraken holds the base for an untriggered stop-loss (REFERENCE.md 3.3;
    issue 13 scenario 4), so only one leg of a bracket can rest on the venue; the other is emulated on the public
    price. ``resting_leg`` says which rests (``both`` rests both, for an account that holds enough)."""
    if entry.sl_price is None or entry.tp_price is None or config.resting_leg == "both":
        return ()
    return (OrderRole.TAKE_PROFIT,) if config.resting_leg == OrderRole.STOP_LOSS.value else (OrderRole.STOP_LOSS,)


def protection_policy(
    entry: Order,
    legs: Mapping[UUID, Order],
    rules: PairRules,
    config: PolicyConfig,
    last: LastPrice | None = None,
) -> list[Action]:
    """Keep one stop-loss and one take-profit working exactly what the entry's position holds, until it is flat.

    ``legs`` must hold every exit order of the entry; ``last`` is the pair's last public price, if one is known
    and fresh (it decides emulated triggers and whether a stop's trigger is already crossed). The first fills that
    reach the pair's minimums place the bracket; later fills grow it and a leg's fill shrinks its sibling, both by
    AmendOrder (queue priority kept, no unprotected gap); a leg whose amend the venue refuses is canceled and
    re-created. What ends without our asking is re-created; a leg refused for what it is is not sent again
    (an operator is told), except a stop whose trigger the price has already crossed: the position exits at market.
    """
    if entry.role is not OrderRole.ENTRY or (entry.sl_price is None and entry.tp_price is None):
        return []
    held = position_of(entry, legs, rules.base).net
    if not entry.brackets:
        return _first_bracket(entry, held, rules, config, last)
    bracket = entry.brackets[-1]
    actions = _bookkeeping(entry, bracket, held, rules)
    triggers = _emulated_triggers(entry, bracket, held, last)
    refused = refused_triggers(entry, legs)
    triggered = (triggered_roles(entry) | {t.role for t in triggers}) - refused
    actions += triggers
    for role in planned_roles(entry):
        if role in refused:
            actions += _exit_refused(entry, role, held, legs)
            continue
        actions += _protect_role(entry, bracket.index, role, held, legs, rules, config, last, triggered)
    return actions


def _exit_refused(entry: Order, role: OrderRole, held: Decimal, legs: Mapping[UUID, Order]) -> list[Action]:
    """The market exit of a crossed emulated trigger was refused for what it is: the same order would be refused
    again, so none is sent; an operator is told (once) and the position keeps, or gets back, its resting legs."""
    if held <= ZERO:
        return []
    refused = _legs_of(entry, role, legs)[-1]
    return [
        Defer(
            entry.id,
            f"emulated_exit_refused:{role.value}:{refused.id}",
            reason(
                Rule.EMULATED_EXIT_REFUSED,
                f"the {role.value} trigger of signal {entry.signal_id} was crossed but its market exit was refused "
                f"for what it is ({refused.last_error}): not sent again; the other legs protect the "
                f"{plain(held)} held (an operator may close it)",
                error=refused.last_error,
                held=held,
            ),
        )
    ]


def decides_on_price(entry: Order, legs: Mapping[UUID, Order], rules: PairRules) -> bool:
    """Whether a new last price can change what ``protection_policy`` decides for ``entry`` now, other things
    equal: only while it holds a position, and then before its first bracket (a stop whose trigger is crossed is
    placed as a market exit), while it holds an armed emulated trigger, or while no stop-loss leg lives (a refused
    or ended stop whose trigger is crossed exits at market). False while every planned leg rests on the venue,
    after a trigger fired (the exit goes at market whatever the price), while a close is under way
    (``close_policy`` reads no price) and once flat. The price watcher reacts to a tick only for the entries this
    is True for; ``legs`` holds the entry's exit orders."""
    if entry.role is not OrderRole.ENTRY or entry.closing is not None:
        return False
    if entry.brackets and not emulated_roles(entry):
        if OrderRole.STOP_LOSS not in planned_roles(entry) or triggered_roles(entry):
            return False
        if any(not o.is_terminal for o in _legs_of(entry, OrderRole.STOP_LOSS, legs)):
            return False
    return position_of(entry, legs, rules.base).net > ZERO


def quiet_band(entry: Order, legs: Mapping[UUID, Order]) -> tuple[Decimal | None, Decimal | None] | None:
    """The open interval ``(low, high)`` of last prices at which ``protection_policy`` decides nothing for
    ``entry`` that it would not decide without a price, while the entry and its legs stay as they are: the price
    matters to it only through the triggers of its armed emulated legs (``crossed``: reached at ``low`` or below,
    ``high`` or above; None is unbounded). None when any price may matter (no bracket yet, a trigger fired, a close
    under way, a planned leg with no live order: a refused or ended stop-loss exits at market once its trigger is
    crossed). The price watcher skips an entry whose band holds the tick (issue 18 break test: every tick ran the
    whole policy for every held take-profit, about 60 us a position). ``legs`` holds the entry's exit orders."""
    if entry.closing is not None or not entry.brackets or triggered_roles(entry):
        return None
    emulated = emulated_roles(entry)
    if not emulated:
        return None
    for role in planned_roles(entry):
        if role not in emulated and all(o.is_terminal for o in _legs_of(entry, role, legs)):
            return None
    bracket = entry.brackets[-1]
    exit_side = entry.side.opposite
    low: Decimal | None = None
    high: Decimal | None = None
    for role in emulated:
        trigger = bracket.emulated.get(role.value)
        if trigger is None:
            return None  # an older bracket's armed trigger: not worth a band
        if (exit_side is Side.SELL) == (role is OrderRole.STOP_LOSS):  # reached falling (``crossed``)
            low = trigger if low is None else max(low, trigger)
        else:
            high = trigger if high is None else min(high, trigger)
    return low, high


def _bookkeeping(entry: Order, bracket: Bracket, held: Decimal, rules: PairRules) -> list[Action]:
    """The bracket grows with the entry's later fills; an over-exit (both legs filled before one's cancel landed)
    is recorded for an operator."""
    actions: list[Action] = []
    grown = entered(entry, rules.base) - entry.bracketed_quantity
    if grown > ZERO:
        why = reason(
            Rule.BRACKET_GROW,
            f"entry filled {plain(entry.filled_quantity)} of {plain(entry.quantity)}: the legs protect "
            f"{plain(max(held, ZERO))} now",
            filled=entry.filled_quantity,
            held=held,
        )
        actions.append(ResizeBracket(entry.id, bracket.index, bracket.quantity + grown, why))
    if held < ZERO:
        why = reason(
            Rule.POSITION_OVEREXITED,
            f"the exits of signal {entry.signal_id} sold {plain(-held)} more than the entry holds (both legs "
            f"filled before one's cancel landed): an operator should check the account",
            overexit=-held,
        )
        actions.append(Defer(entry.id, f"overexit:{plain(-held)}", why))
    return actions


def _emulated_triggers(entry: Order, bracket: Bracket, held: Decimal, last: LastPrice | None) -> list[TriggerEmulated]:
    """The emulated roles whose trigger the last price has crossed while something is held."""
    if last is None or held <= ZERO:
        return []
    fired = []
    for role in sorted(emulated_roles(entry)):
        trigger = bracket.emulated.get(role.value)
        if trigger is None or not crossed(role, entry.side.opposite, trigger, last.price):
            continue
        why = reason(
            Rule.EMULATED_TRIGGER_CROSSED,
            f"the last price {plain(last.price)} crossed the {role.value} trigger {plain(trigger)} the ledger "
            f"holds: cancel the resting leg, then exit {plain(held)} at market",
            price=last.price,
            observed_at=last.at,
            trigger=trigger,
        )
        fired.append(TriggerEmulated(entry.id, bracket.index, role, last.price, last.at, why))
    return fired


def _first_bracket(
    entry: Order, held: Decimal, rules: PairRules, config: PolicyConfig, last: LastPrice | None
) -> list[Action]:
    if held <= ZERO:
        return []
    check_price = entry.sl_price or entry.tp_price
    breach = rules.minimum_breach(held, check_price)
    if breach is None:
        why = reason(
            Rule.BRACKET_PLACED,
            f"entry filled {plain(entry.filled_quantity)} of {plain(entry.quantity)}: protect the {plain(held)} held "
            f"with stop {plain(entry.sl_price) if entry.sl_price else '-'} and take-profit "
            f"{plain(entry.tp_price) if entry.tp_price else '-'}",
            filled=entry.filled_quantity,
            quantity=held,
        )
        emulated = _emulated_for(entry, config)
        legs = tuple(
            _new_leg(entry, 0, role, held, config, last, why) for role in planned_roles(entry) if role not in emulated
        )
        return [PlaceBracket(entry.id, held, entry.sl_price, entry.tp_price, why, legs, emulated)]
    if entry.is_terminal:
        return [
            Defer(
                entry.id,
                f"bracket_dust:{plain(held)}",
                reason(
                    Rule.BRACKET_DUST_UNPROTECTABLE,
                    f"the entry ended with {plain(held)} unprotected: Kraken would reject a stop or an exit of that "
                    f"size ({breach.message})",
                    quantity=held,
                    **minimums(rules, breach),
                ),
            )
        ]
    return [
        Defer(
            entry.id,
            f"bracket_wait:{plain(held)}",
            reason(
                Rule.BRACKET_BELOW_MINIMUM,
                f"{plain(held)} filled so far is too small to protect ({breach.message}); the bracket waits for "
                f"more fills",
                quantity=held,
                **minimums(rules, breach),
            ),
        )
    ]


def _new_leg(
    entry: Order,
    index: int,
    role: OrderRole,
    quantity: Decimal,
    config: PolicyConfig,
    last: LastPrice | None,
    why: dict[str, Any],
) -> PlaceLeg:
    """A new leg of ``role`` for ``quantity``: a resting stop-loss or take-profit, or, for a stop whose trigger
    the last price has already crossed, a market exit (the stop would trigger at once, or be refused)."""
    price = _price_of(entry, role)
    assert price is not None
    exit_side = entry.side.opposite
    if role is OrderRole.STOP_LOSS and last is not None and crossed(role, exit_side, price, last.price):
        return PlaceLeg(
            entry.id,
            index,
            role,
            OrderType.MARKET,
            quantity,
            None,
            reason(
                Rule.STOP_TRIGGER_CROSSED_EXIT,
                f"the last price {plain(last.price)} has already crossed the stop {plain(price)}: exit "
                f"{plain(quantity)} at market",
                price=last.price,
                observed_at=last.at,
                stop=price,
                cause=why.get("rule"),
            ),
        )
    order_type = config.stop_order_type if role is OrderRole.STOP_LOSS else config.take_profit_order_type
    return PlaceLeg(entry.id, index, role, order_type, quantity, price, why)


class _Role(NamedTuple):
    """One protective role of an entry, as the policy sees it in one pass (a tuple: built for every role of every
    reaction, 1.5 us less than a frozen dataclass)."""

    entry: Order
    bracket: int  # the index of the bracket new legs join
    role: OrderRole
    held: Decimal  # the net position
    generations: list[Order]  # every leg of the role, oldest first
    config: PolicyConfig
    last: LastPrice | None

    @property
    def live(self) -> list[Order]:
        return [o for o in self.generations if not o.is_terminal]

    @property
    def price(self) -> Decimal | None:
        return _price_of(self.entry, self.role)

    def new_leg(self, why: dict[str, Any]) -> PlaceLeg:
        return _new_leg(self.entry, self.bracket, self.role, self.held, self.config, self.last, why)


def _protect_role(
    entry: Order,
    index: int,
    role: OrderRole,
    held: Decimal,
    legs: Mapping[UUID, Order],
    rules: PairRules,
    config: PolicyConfig,
    last: LastPrice | None,
    triggered: set[OrderRole],
) -> list[Action]:
    r = _Role(entry, index, role, held, _legs_of(entry, role, legs), config, last)
    if role in triggered:
        others = [o for x in planned_roles(entry) if x is not role for o in _legs_of(entry, x, legs)]
        return _exit_triggered(r, any(not o.is_terminal for o in others), rules)
    if triggered or held <= ZERO:
        why = "a triggered exit is closing the position" if triggered else "the position is closed"
        return [
            CancelOrder(leg.id, reason(Rule.OCO_CANCEL_SIBLING, f"cancel the {role.value}: {why}", held=held))
            for leg in r.live
            if _cancelable(leg)
        ]
    if role in emulated_roles(entry):
        return []  # held by the ledger: nothing rests on the venue until its trigger is crossed
    actions, live = _one_leg(r)
    if live is not None:
        return actions + _adjust(r, live)
    return actions + _replace_ended(r, rules)


def _exit_triggered(r: _Role, others_live: bool, rules: PairRules) -> list[Action]:
    """An emulated trigger fired: exit at market once nothing else of the position can sell."""
    if r.live or others_live or r.held <= ZERO:
        return []
    breach = rules.minimum_breach(r.held, None)  # a market exit: no price to cost it at
    if breach is not None:
        return [_dust(r.entry, r.role, r.held, rules, breach)]
    why = reason(
        Rule.EMULATED_TRIGGER_EXIT,
        f"the {r.role.value} trigger was crossed: exit the {plain(r.held)} held at market",
        quantity=r.held,
    )
    return [PlaceLeg(r.entry.id, r.bracket, r.role, OrderType.MARKET, r.held, None, why)]


def _one_leg(r: _Role) -> tuple[list[Action], Order | None]:
    """The one live leg of the role (ledgers written before legs were amended may hold several: the largest is
    kept, the others canceled)."""
    live = r.live
    if len(live) <= 1:
        return [], (live[0] if live else None)
    keep = max(live, key=lambda o: (not o.cancel_requested, o.remaining_quantity))
    why = reason(Rule.ONE_LEG_PER_ROLE, f"cancel a second {r.role.value}: one leg protects signal {r.entry.signal_id}")
    return [CancelOrder(o.id, why) for o in live if o is not keep and _cancelable(o)], keep


def _adjust(r: _Role, leg: Order) -> list[Action]:
    """Make the live leg work what is held: an amend (queue priority kept), or, where the venue refused the
    amend, a cancel (the leg is placed again at the right size once the cancel is confirmed)."""
    if leg.remaining_quantity == r.held or _waiting_on_venue(leg):
        return []
    if leg.amend_refused is not None:
        why = reason(
            Rule.AMEND_REFUSED_REPLACE,
            f"the venue refused to amend the {r.role.value} to {plain(r.held)} ({leg.amend_refused}): cancel "
            f"it and place it again at {plain(r.held)}",
            error=leg.amend_refused,
            held=r.held,
        )
        return [CancelOrder(leg.id, why)]
    rule = Rule.BRACKET_GROW_AMEND if r.held > leg.remaining_quantity else Rule.OCO_SHRINK_AMEND
    why = reason(
        rule,
        f"the {r.role.value} works {plain(leg.remaining_quantity)} but signal {r.entry.signal_id} holds "
        f"{plain(r.held)}: amend it (queue priority kept)",
        leg_remaining=leg.remaining_quantity,
        held=r.held,
    )
    return [AmendOrder(leg.id, leg.filled_quantity + r.held, why)]


def _replace_ended(r: _Role, rules: PairRules) -> list[Action]:
    """No live leg while something is held: place one (the first, or again), unless the last one was refused for
    what it is, or what is held is below the pair's minimums."""
    latest = r.generations[-1] if r.generations else None
    if latest is not None and latest.state is State.REJECTED and not latest.rejected_transiently:
        return [_refused_for_good(r, latest)]
    breach = rules.minimum_breach(r.held, r.price)  # each leg at its own trigger
    if breach is not None:
        return [_dust(r.entry, r.role, r.held, rules, breach)]
    if latest is None:
        rule, text = Rule.LEG_PLACED, f"place the {r.role.value} for the {plain(r.held)} held"
    elif latest.state is State.REJECTED:
        rule = Rule.LEG_REJECTED_TRANSIENT_RECREATE
        text = f"the {r.role.value} was not placed ({latest.last_error}): place it again for {plain(r.held)}"
    elif latest.cancel_requested:
        rule, text = Rule.LEG_REPLACE, f"place the {r.role.value} again at {plain(r.held)} after its cancel"
    else:
        rule = Rule.LEG_VANISHED_RECREATE
        text = (
            f"the {r.role.value} ended without our asking ({latest.state.value}) while {plain(r.held)} is held: "
            f"place it again"
        )
    return [r.new_leg(reason(rule, text, previous_leg=str(latest.id) if latest else None, held=r.held))]


def _refused_for_good(r: _Role, latest: Order) -> Action:
    """A leg the venue refused for what it is would be refused again (refusals that executed nothing were sent
    again before it came to this: the error table's NOT_EXECUTED), so an operator is told, a recorded decision;
    except a stop whose trigger the last price has crossed, which exits at market."""
    price = r.price
    if (
        r.role is OrderRole.STOP_LOSS
        and r.last is not None
        and price is not None
        and crossed(r.role, r.entry.side.opposite, price, r.last.price)
    ):
        return r.new_leg(reason(Rule.STOP_REFUSED_TRIGGER_CROSSED, f"the stop was refused ({latest.last_error})"))
    return Defer(
        r.entry.id,
        f"leg_rejected:{r.role.value}:{latest.id}",
        reason(
            Rule.LEG_REJECTED_NOT_RECREATED,
            f"the {r.role.value} of signal {r.entry.signal_id} was refused for what it is ({latest.last_error}): "
            f"not sent again, since the same order would be refused again; {plain(r.held)} is not protected by it",
            error=latest.last_error,
            held=r.held,
        ),
    )


def _dust(entry: Order, role: OrderRole, held: Decimal, rules: PairRules, breach: FieldError) -> Defer:
    """No leg of ``role`` can work ``held``: the reason names the minimum it breaks (a take-profit below
    ``costmin`` at its trigger is not a volume below ``ordermin``)."""
    return Defer(
        entry.id,
        f"leg_dust:{role.value}:{plain(held)}",
        reason(
            Rule.LEG_BELOW_MINIMUM,
            f"no {role.value} can protect the {plain(held)} held by signal {entry.signal_id}: {breach.message}",
            held=held,
            **minimums(rules, breach),
        ),
    )


def _cancelable(leg: Order) -> bool:
    """A live leg we have not asked to cancel yet, and whose AddOrder is not on the wire: a leg still SUBMITTING
    has no outcome to cancel yet, so it is decided on again once its outcome is recorded."""
    return not leg.is_terminal and not leg.cancel_requested and leg.state is not State.SUBMITTING


# --- close (operator command) ------------------------------------------------------------------------------


def close_policy(entry: Order, exits: list[Order], rules: PairRules) -> list[Action]:
    """An entry whose close was requested: cancel the entry if it still works and every live exit leg; once nothing
    that could still fill is left, exit what is held at market. Brackets and OCO do not run for a closing entry."""
    actions: list[Action] = []
    why = entry.closing or {}
    who = f"close requested by {why.get('by', '?')}: {why.get('why', '')}"
    if _cancelable(entry):
        actions.append(CancelOrder(entry.id, reason(Rule.CLOSE_CANCEL_ENTRY, f"cancel the entry ({who})")))
    legs = [o for o in exits if o.id not in entry.position_exits]
    for leg in legs:
        if _cancelable(leg):
            actions.append(CancelOrder(leg.id, reason(Rule.CLOSE_CANCEL_LEG, f"cancel the {leg.role.value} ({who})")))
    if actions or any(not o.is_terminal for o in exits):
        return actions  # wait until nothing can fill any more: then the position is known exactly
    if entry.state in (State.PENDING_SUBMIT, State.SUBMITTING, State.OUTCOME_UNKNOWN):
        return actions
    held = entered(entry, rules.base) - sum((o.filled_quantity for o in exits), ZERO)
    if held <= ZERO:
        return actions
    breach = rules.minimum_breach(rules.round_volume(held), entry.average_fill_price)
    if breach is not None:
        return [
            Defer(
                entry.id,
                f"close_dust:{plain(held)}",
                reason(
                    Rule.CLOSE_DUST_UNSELLABLE,
                    f"{plain(held)} is held but Kraken would reject an exit of that size ({breach.message})",
                    quantity=held,
                    **minimums(rules, breach),
                ),
            )
        ]
    return [
        ExitPosition(
            entry.id,
            held,
            reason(Rule.CLOSE_EXIT_AT_MARKET, f"exit the {plain(held)} held at market ({who})", quantity=held),
        )
    ]
