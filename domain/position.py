"""The one position rule: what a signal holds, and what its protective legs must cover.

A signal's position is its entry's filled quantity minus everything its exit orders filled (every generation of
every stop-loss and take-profit leg, and the market exits of a close). Protection holds when, for each protective
role the signal planned (a stop-loss price, a take-profit price), the live legs of that role work exactly the net
position. While a close is under way no leg is required: the close cancels them and exits at market. The policies,
the projector, the demo and every test harness use this module, so they cannot disagree about a position.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from execledger.domain.order import Order, State
from execledger.domain.values import ZERO, OrderRole, Side

PROTECTIVE_ROLES = (OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT)


def entered(entry: Order, base_asset: str | None = None) -> Decimal:
    """What the entry put into the account: its filled quantity, less the fees a buy paid in the base asset (Kraken
    charges a buy's fee in the base with ``oflags=fcib``: a 0.01 buy then holds 0.009974), less what the account
    turned out not to hold (a recorded shortfall: a leg refused for funds, the balance read)."""
    if base_asset and entry.side is Side.BUY:
        return entry.filled_quantity - entry.fees_in(base_asset) - entry.shortfall
    return entry.filled_quantity - entry.shortfall


@dataclass(frozen=True)
class Position:
    """A signal's position in the base asset (always a non-negative size on the entry's side when correct)."""

    side: Side  # the entry's side: a buy entry holds base, a sell entry is short base
    entered: Decimal  # the entry's filled quantity
    exited: Decimal  # what all exit orders filled

    @property
    def net(self) -> Decimal:
        """What is still held (negative: more was exited than entered, an over-exit)."""
        return self.entered - self.exited

    @property
    def is_flat(self) -> bool:
        return self.net == ZERO


def exits_of(entry: Order, orders: Mapping[UUID, Order]) -> list[Order]:
    """The entry's exit orders that ``orders`` holds, oldest first."""
    get = orders.get
    return [o for i in entry.exit_order_ids() if (o := get(i)) is not None]


def position_of(entry: Order, orders: Mapping[UUID, Order], base_asset: str | None = None) -> Position:
    """The signal's position; ``orders`` must hold every exit order of the entry. With ``base_asset`` (the pair's
    base, e.g. XXBT), fees a buy entry paid in it are not held."""
    exited = sum((o.filled_quantity for o in exits_of(entry, orders)), ZERO)
    return Position(entry.side, entered(entry, base_asset), exited)


def working(exits: list[Order], role: OrderRole) -> Decimal:
    """What the live orders of one role still work (their remaining quantity)."""
    return sum((o.remaining_quantity for o in exits if o.role is role and not o.is_terminal), ZERO)


def planned_roles(entry: Order) -> tuple[OrderRole, ...]:
    """The protective roles the signal asked for."""
    if entry.sl_price is None:
        return () if entry.tp_price is None else (OrderRole.TAKE_PROFIT,)
    return PROTECTIVE_ROLES if entry.tp_price is not None else (OrderRole.STOP_LOSS,)


def emulated_roles(entry: Order) -> set[OrderRole]:
    """The roles the ledger holds itself (an armed trigger on the public price, not an order on the venue)."""
    return {OrderRole(r) for b in entry.brackets for r in b.emulated if r not in b.triggered}


def triggered_roles(entry: Order) -> set[OrderRole]:
    """The emulated roles whose trigger the price crossed: the position exits at market for them."""
    return {OrderRole(r) for b in entry.brackets for r in b.triggered}


def refused_triggers(entry: Order, orders: Mapping[UUID, Order]) -> set[OrderRole]:
    """The triggered roles whose market exit the venue refused for what it is (the role's latest order REJECTED,
    not transiently: the same order would be refused again). Such a trigger is spent: no exit is sent for it again
    and the position falls back to its resting legs, the stop-loss placed again (break test 2026-12-02: each
    refusal made a new market exit at once, without end, while the canceled stop left the position unprotected)."""
    refused = set()
    for role in triggered_roles(entry):
        ids = [i for b in entry.brackets for i in b.legs.get(role.value, ())]
        latest = orders.get(ids[-1]) if ids else None
        if latest is not None and latest.state is State.REJECTED and not latest.rejected_transiently:
            refused.add(role)
    return refused


def required_cover(
    entry: Order, orders: Mapping[UUID, Order], base_asset: str | None = None
) -> dict[OrderRole, Decimal]:
    """What the live legs of each planned role must work: the net position (nothing while a close is under way,
    or before any bracket was placed, e.g. while the filled quantity is still below the pair's minimums). A role
    the ledger emulates needs no order until its trigger is crossed; after that its market exit works the whole
    position and the resting sibling nothing (it is canceled). A trigger whose exit was refused for what it is
    (``refused_triggers``) is spent: its role needs nothing, the others what they need without it."""
    position = position_of(entry, orders, base_asset)
    planned = planned_roles(entry)
    if entry.closing is not None or not entry.brackets:
        return dict.fromkeys(planned, ZERO)
    net = max(ZERO, position.net)
    refused = refused_triggers(entry, orders)
    triggered = triggered_roles(entry) - refused
    if triggered:
        return {role: net if role in triggered else ZERO for role in planned}
    emulated = emulated_roles(entry)
    return {role: ZERO if role in refused else net for role in planned if role not in emulated}


def protection_gaps(
    entry: Order, orders: Mapping[UUID, Order], base_asset: str | None = None, dust: Decimal = ZERO
) -> list[str]:
    """Every way the live legs differ from what the position requires; empty when protection holds. A difference
    below ``dust`` (the pair's smallest sendable quantity) cannot be protected by any order and is not a gap."""
    exits = exits_of(entry, orders)
    gaps = []
    position = position_of(entry, orders, base_asset)
    if position.net < ZERO:
        gaps.append(f"signal {entry.signal_id}: over-exited by {-position.net}")
    for role, want in required_cover(entry, orders, base_asset).items():
        have = working(exits, role)
        if have != want and not (have < want and want - have < dust):
            gaps.append(f"signal {entry.signal_id}: {role.value} legs work {have}, position needs {want}")
    return gaps
