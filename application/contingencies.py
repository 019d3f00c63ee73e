"""ContingencyManager: runs the pure policies on what changed and turns their actions into recorded decisions.

After any change of an order (a fill, a cancel, an outcome) the entry it belongs to is looked at as a whole:
brackets per fill increment, OCO between its legs, or, once a close was requested, the close. The actions come
back as decisions on aggregates (new legs, cancel requests, deferrals) that the caller commits in the same
transaction as the fact that caused them. Nothing here talks to the venue or the store.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Container, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from execledger.application.order_index import OrderIndex
from execledger.application.policies import (
    Action,
    AmendOrder,
    CancelOrder,
    Defer,
    ExitPosition,
    LastPrice,
    PlaceBracket,
    PlaceLeg,
    PolicyConfig,
    ResizeBracket,
    TimeOut,
    TriggerEmulated,
    close_policy,
    decides_on_price,
    minimums,
    protection_policy,
    quiet_band,
    timeout_policy,
)
from execledger.application.ports import Clock
from execledger.domain.order import Order, State
from execledger.domain.pairs import PairRegistry, PairRules, PriceKind
from execledger.domain.position import emulated_roles, exits_of, position_of, triggered_roles
from execledger.domain.reasons import Rule, reason
from execledger.domain.values import ZERO, OrderRole, OrderType, Side, plain


def needs_attention(order: Order) -> bool:
    """Whether the timer's safety net looks at this order's entry (``ContingencyManager.needing_attention``): a live
    leg (OCO between the legs); a live entry that holds something, has a bracket or is being closed; a finished
    entry with unprotected fills, a close, or an emulated or triggered leg. A live entry that filled nothing and
    has neither a bracket nor a close needs no decision (protection_policy and close_policy decide nothing for
    it): the thousands of those resting are not looked at every second."""
    if order.parent_id is not None:
        return not order.is_terminal
    if order.role is not OrderRole.ENTRY:
        return False
    if not order.is_terminal:
        return order.filled_quantity > ZERO or order.closing is not None or bool(order.brackets)
    return order.state in (State.FILLED, State.CANCELED, State.EXPIRED) and (
        order.filled_quantity > order.bracketed_quantity
        or order.closing is not None
        or bool(emulated_roles(order))
        or bool(triggered_roles(order))
    )


FULL_PASS_EVERY = 600  # safety-net passes (about 10 minutes): one in so many reacts to every entry flagged
WATCH_REBUILD_EVERY = 600  # watched_pairs answers (about 10 minutes): one in so many builds the watch from the index
_UNKNOWN: Any = object()  # a watched entry whose quiet band is not computed yet (``note_price``)


class ContingencyManager:
    def __init__(self, index: OrderIndex, pairs: PairRegistry, config: PolicyConfig, clock: Clock | None = None):
        if index.flag is not needs_attention:  # needing_attention and watched_pairs read the flagged set
            raise ValueError("ContingencyManager needs an OrderIndex built with flag=needs_attention")
        self.index = index
        self.pairs = pairs
        self.config = config
        self.clock = clock
        self.prices: dict[str, LastPrice] = {}  # pair -> the last public price seen (the service's price watcher)
        self._emulating: set[UUID] = set()  # entries holding an emulated leg (armed or triggered)
        # pair -> the entries the price may decide for, in watch order (see watched_pairs; a dict as an ordered set)
        self._watch: dict[str, dict[UUID, None]] = {}
        # Watched entries the price decides nothing for until they or their legs change (note_price), -> pair
        self._parked: dict[UUID, str] = {}
        # Watched entry -> the prices at which it decides nothing until it or its legs change (``quiet_band``;
        # None: any price may matter). Computed at its first tick after a change, forgotten at the next change.
        self._bands: dict[UUID, tuple[Decimal | None, Decimal | None] | None] = {}
        self._looks = 0  # watched_pairs answers so far (every WATCH_REBUILD_EVERY-th builds the watch again)
        self._changed: set[UUID] = set()  # entries committed (or their legs) since watched_pairs last looked
        # Entries the timer's safety net looks at on its next pass: those committed since (``on_committed``) and
        # those its last pass decided something for; every FULL_PASS_EVERY-th pass looks at every entry flagged.
        self._look: set[UUID] = set()
        self._passes = 0
        # Called when an entry joins the watch of a pair no price is followed for yet (the service re-subscribes).
        self.on_new_pair: Callable[[str], None] | None = None

    def note_price(self, pair: str, price: LastPrice) -> list[Order]:
        """A pair's last public price (WS v2 ticker/trade, or REST Ticker while the stream is down). Returns the
        entries watched for it (as of the last ``watched_pairs``) whose decision the price can change now
        (``decides_on_price``): react to each. An entry whose legs all rest on the venue is only kept watched (a
        leg refused later decides on the price recorded here), at no reaction per tick; one flat with nothing
        working is no longer watched (as ``watched_pairs`` would find)."""
        known = self.prices.get(pair)
        if known is None or price.at >= known.at:
            self.prices[pair] = price
        watch = self._watch.get(pair)
        if not watch:
            return []
        at, bands = price.price, self._bands
        deciding: list[Order] = []
        kept: dict[UUID, None] = {}
        for entry_id in watch:
            band = bands.get(entry_id, _UNKNOWN)
            entry = None
            if band is _UNKNOWN:  # the first tick since the entry or a leg changed
                entry = self.index.get(entry_id)
                if entry is None:
                    continue
                band = bands[entry_id] = quiet_band(entry, self.index)
            if band is not None:
                low, high = band
                if (low is None or at > low) and (high is None or at < high):
                    kept[entry_id] = None  # armed triggers not reached: nothing to decide at this price
                    continue
            entry = entry or self.index.get(entry_id)
            if entry is None:
                continue
            if decides_on_price(entry, self.index, self.rules(entry)):
                deciding.append(entry)
                kept[entry_id] = None
            elif any(not o.is_terminal for o in exits_of(entry, self.index)):
                # What it decides changes only with a commit of it or a leg (``on_committed`` unparks it), not
                # with the price: a tick costs O(entries the price decides for), not O(every watched entry).
                self._parked[entry_id] = pair
            # else flat with nothing working: only a new fact changes that, and its reaction decides
        self._watch[pair] = kept  # until watched_pairs looks again
        return deciding

    def on_committed(self, committed: Iterable[tuple[Any, list[Any]]]) -> None:
        """A unit of work's listener: an entry whose entry or leg was just committed is looked at again on the
        next tick (every exit order has its entry as parent): unparked, its quiet band forgotten, and a bracketed
        entry not watched yet is watched from now on, not from the next ``watched_pairs`` up to a second later
        (issue 18 break test: a take-profit the ledger holds missed a crossing in its position's first second)."""
        for aggregate, _ in committed:
            if not isinstance(aggregate, Order):
                continue
            entry_id = aggregate.parent_id or aggregate.id
            self._bands.pop(entry_id, None)
            self._changed.add(entry_id)
            self._look.add(entry_id)
            pair = self._parked.pop(entry_id, None)
            if pair is not None:
                self._watch.setdefault(pair, {})[entry_id] = None
            elif aggregate.parent_id is None and aggregate.brackets and aggregate.closing is None:
                watch = self._watch.setdefault(aggregate.pair, {})
                if entry_id not in watch:
                    followed = bool(watch) or aggregate.pair in self.prices
                    watch[entry_id] = None
                    if not followed and self.on_new_pair is not None:
                        self.on_new_pair(aggregate.pair)

    def last_price(self, pair: str) -> LastPrice | None:
        """The pair's last public price if it is fresh enough to decide on (``price_max_age_s``)."""
        price = self.prices.get(pair)
        if price is None or self.clock is None:
            return price
        age = (self.clock.now() - price.at).total_seconds()
        return price if age <= self.config.price_max_age_s else None

    def forget_watches(self) -> None:
        """Before the index is loaded again from the log."""
        self._emulating.clear()
        self._watch = {}
        self._parked = {}
        self._bands = {}
        self._changed = set()
        self._look = set()
        self._passes = 0  # the next safety-net pass looks at every entry flagged
        self._looks = 0  # the next watched_pairs builds the watch from the index

    def watch(self, entry: Order) -> None:
        """Follow the public price for this entry (it holds an emulated leg): loaded entries and new brackets."""
        if emulated_roles(entry) or triggered_roles(entry):
            self._emulating.add(entry.id)

    def unwatch(self, entry_ids: Iterable[UUID]) -> None:
        """Forget entries the index no longer holds (retired: flat, nothing working)."""
        self._emulating.difference_update(entry_ids)

    def watched_pairs(self) -> set[str]:
        """The pairs whose public price the service must follow now: those of entries that hold a position with
        a live protective leg (a refused stop whose trigger is crossed exits at market) or an emulated leg; forgets
        the price of a pair no longer watched: nothing keeps it current any more, so a signal's intake must not
        take it for the market's (``last_price``). The service asks once a second. The watch is kept up by
        ``on_committed`` (an entry joins it when its bracket is committed) and ``note_price`` (one flat with
        nothing working leaves it), so most answers read it as it is, O(pairs); every ``WATCH_REBUILD_EVERY``-th
        answer, and the first after a load, builds it again from the index as a safety net: one pass over the live
        legs and the entries holding an emulated leg, about 6 us an entry (issue 18 break test: that pass every
        second was 57 ms at 10,000 positions)."""
        self._looks += 1
        if self._looks % WATCH_REBUILD_EVERY == 1:
            return self._rebuild_watch()
        self._settle_changes()
        pairs = {pair for pair, entries in self._watch.items() if entries} | set(self._parked.values())
        self._forget_prices(pairs)
        return pairs

    def _settle_changes(self) -> None:
        """Drop from the watch the entries a commit left with nothing the price decides (flat, closing, gone), and
        forget the price of a pair whose last watched entry that was: nothing keeps it current from now on.
        O(entries changed since the last call)."""
        changed, self._changed = self._changed, set()
        left: set[str] = set()
        for entry_id in changed:
            entry = self.index.get(entry_id)
            if entry is None or entry.closing is not None or not entry.brackets or not self._holds(entry):
                self._parked.pop(entry_id, None)
                for pair, entries in self._watch.items():
                    if entries.pop(entry_id, 0) is None and not entries:
                        left.add(pair)
        for pair in left - set(self._parked.values()):
            self.prices.pop(pair, None)

    def intake_price(self, pair: str) -> LastPrice | None:
        """The last price a signal's intake may check sl/tp against (``last_price``), once what was committed since
        the last look at the pairs is settled: the price of a pair whose last position just closed is forgotten,
        not used until the next look forgets it (issue 18 break test: right after a wave of positions closed, 7-50
        of 200-500 valid signals were refused 422 against the price of the closing moment, which the market had
        left while nothing followed it)."""
        self._settle_changes()
        return self.last_price(pair)

    def _rebuild_watch(self) -> set[str]:
        legs = self.index.placement_order(o for o in self.index.flagged() if o.parent_id is not None)  # the live legs
        candidates: dict[UUID, Order | None] = {o.parent_id: self.index.entry_of(o) for o in legs if o.parent_id}
        candidates.update((i, self.index.get(i)) for i in self._emulating)
        watch: dict[str, dict[UUID, None]] = {}
        for entry in candidates.values():
            if entry is None or entry.closing is not None or not entry.brackets:
                continue
            if self._holds(entry):
                watch.setdefault(entry.pair, {})[entry.id] = None
            elif not any(not o.is_terminal for o in exits_of(entry, self.index)):
                self._emulating.discard(entry.id)  # flat and nothing left working: done
        self._watch, self._parked, self._changed = watch, {}, set()
        if self._bands:  # only the watched keep a band
            self._bands = {i: b for i, b in self._bands.items() if any(i in w for w in watch.values())}
        self._forget_prices(watch)
        return set(watch)

    def _forget_prices(self, pairs: Container[str]) -> None:
        for pair in [p for p in self.prices if p not in pairs]:
            del self.prices[pair]

    def _holds(self, entry: Order) -> bool:
        return position_of(entry, self.index, self.rules(entry).base).net > ZERO

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
        actions = protection_policy(entry, self.index, rules, self.config, self.last_price(entry.pair))
        touched += self._apply(entry, actions)
        if any(isinstance(a, (TriggerEmulated, ResizeBracket)) for a in actions):
            # What was just decided (a trigger, a bigger bracket) changes what the legs need: decide once more.
            touched += self._apply(
                entry, protection_policy(entry, self.index, rules, self.config, self.last_price(entry.pair))
            )
        return touched

    def timeouts_of(self, order: Order, now: datetime) -> list[Any]:
        """The timeout decision for one resting order at the clock's ``now``; returns the touched orders (none when
        there is nothing to decide)."""
        actions = timeout_policy(order, self.rules(order), now, self.config)
        return self._apply(order, actions) if actions else []

    def safety_net(self) -> list[list[Any]]:
        """The timer's pass: each entry's reaction (the aggregates it touched), for the entries committed since the
        last pass (an entry or one of its legs) and those the last pass decided something for; every
        ``FULL_PASS_EVERY``-th pass (the first included) for every entry ``needing_attention``. ``protection_policy``
        and ``close_policy`` read the entry, its legs, the pair rules and the last price, and a price crossing is the
        price watcher's to react to: an entry none of those changed for decides what it decided last, nothing
        (issue 18 break test: with held take-profits every position is flagged, and the pass ran the policy for
        each of 10,000 every second, 206-232 ms; a pass over the flagged orders alone is 33 ms there)."""
        self._passes += 1
        if self._passes % FULL_PASS_EVERY == 1:
            self._look.clear()
            entries = self.needing_attention()
        else:
            look, self._look = self._look, set()
            entries = self.index.placement_order(e for i in look if (e := self.index.get(i)) is not None)
        reactions = []
        for entry in entries:
            touched = self.react(entry)
            if any(a.pending_events for a in touched):
                self._look.add(entry.id)  # what it decided may need another look once it is recorded
            reactions.append(touched)
        return reactions

    def look_at_everything(self) -> None:
        """Something every decision reads changed (the pair rules): the next pass reacts to every entry."""
        self._passes = 0

    def needing_attention(self) -> list[Order]:
        """Entries whose contingencies may need a decision: those with live legs (OCO) or unprotected fills, and
        every closing entry (the safety net the timer runs, so nothing waits for the next venue report), in
        placement order. Costs what the answer costs (``needs_attention`` is kept by the index), not a scan."""
        entries: dict[Any, Order] = {}
        for order in self.index.flagged():  # needs_attention(order) at its last change (OrderIndex keeps the set)
            entry = self.index.entry_of(order)
            if entry is not None:
                entries[entry.id] = entry
        return self.index.placement_order(entries.values())

    # --- corrections before sending again ------------------------------------------------------------------------

    def reround(self, order: Order) -> list[Any]:
        """Round a waiting order again by its pair's current rules (the venue refused its precision: its rules
        changed). Returns the touched orders (none when nothing changed). An entry the current rules round the same
        is not sent again unchanged (the venue would refuse it again until its maximum age): withdrawn, with the
        venue's reason. A leg is sent again all the same: it protects a position, and the rules may yet change."""
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
                Rule.REROUND_BY_CURRENT_RULES,
                f"the venue refused the order's precision: rounded again by {rules.wsname}'s current rules "
                f"(pair_decimals {rules.pair_decimals}, lot_decimals {rules.lot_decimals})",
                pair_decimals=rules.pair_decimals,
                lot_decimals=rules.lot_decimals,
                quantity=quantity,
                limit_price=limit,
                trigger_price=trigger,
            ),
        )
        if not changed and order.role is OrderRole.ENTRY:
            return self._unsendable(
                order,
                f"the venue refused its precision ({order.last_error}) and {rules.wsname}'s current rules "
                f"(pair_decimals {rules.pair_decimals}, lot_decimals {rules.lot_decimals}) round it the same",
            )
        return [order] if changed else []

    def resize_to_holdings(self, order: Order, available: Mapping[str, Decimal]) -> list[Any]:
        """Size a waiting exit order to what the account holds (the venue refused it for funds): never more than the
        available balance of what it sells, rounded down to the lot. Entries keep their size (an entry refused for
        funds is rejected at once: the error table's entry column, ``infrastructure/kraken/errors.py``); an exit
        that cannot be funded at all waits, recorded once."""
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
        breach = rules.minimum_breach(quantity, order.trigger_price or order.limit_price)
        if breach is not None:
            recorded = order.defer(
                key=f"exit_unfunded:{plain(affordable)}",
                reason=reason(
                    Rule.EXIT_UNFUNDED,
                    f"the account holds {plain(affordable)} available for this {order.role.value}, too little to "
                    f"send ({breach.message}): it waits for funds (another order may hold them)",
                    available=affordable,
                    quantity=order.quantity,
                    **minimums(rules, breach),
                ),
            )
            return [order] if recorded else []
        why = reason(
            Rule.RESIZE_TO_HOLDINGS,
            f"the venue refused {plain(order.quantity)} for funds; the account holds {plain(affordable)}: "
            f"sending {plain(quantity)}",
            available=affordable,
            previous_quantity=order.quantity,
            quantity=quantity,
        )
        order.correct(quantity=quantity, reason=why)
        return [order, *self._shortfall(order, quantity, why)]

    def _shortfall(self, leg: Order, quantity: Decimal, why: dict[str, Any]) -> list[Order]:
        """A leg resized to what the account holds, while no other exit of the entry holds those funds: the account
        holds less of the position than the fills say. Recorded on the entry, so the position rule (and every other
        leg) follows what is there instead of growing the leg back."""
        entry = self.index.entry_of(leg)
        if entry is None or leg.role is OrderRole.ENTRY:
            return []
        exits = exits_of(entry, self.index)
        if any(o is not leg and not o.is_terminal and o.side is leg.side for o in exits):
            return []  # our own resting exit holds the funds: that is no shortfall of the account
        missing = position_of(entry, self.index, self.rules(entry).base).net - quantity
        if missing <= ZERO:
            return []
        entry.record_shortfall(quantity=entry.shortfall + missing, reason=why)
        return [entry]

    def _unsendable(self, order: Order, why: str) -> list[Any]:
        order.request_cancel(reason=reason(Rule.UNSENDABLE_AFTER_CORRECTION, f"not sent: {why}"))
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
            elif isinstance(action, AmendOrder):
                target = self.index[action.order_id]
                target.request_amend(quantity=action.quantity, reason=action.reason)
                touched.append(target)
            elif isinstance(action, ResizeBracket):
                self.index[action.entry_id].resize_bracket(
                    index=action.bracket_index, quantity=action.quantity, reason=action.reason
                )
            elif isinstance(action, TriggerEmulated):
                self.index[action.entry_id].trigger_emulated(
                    index=action.bracket_index,
                    role=action.role,
                    price=action.price,
                    observed_at=action.observed_at,
                    reason=action.reason,
                )
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
        why: dict[str, Any],
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
        legs = {
            leg.role: self._new_leg(
                entry,
                leg.role,
                leg.order_type,
                leg.quantity,
                leg.trigger_price,
                leg.reason,
                f"bracket:{index}:{leg.role.value}:0",
            )
            for leg in action.legs
        }
        sl, tp = legs.get(OrderRole.STOP_LOSS), legs.get(OrderRole.TAKE_PROFIT)
        entry.record_bracket(
            quantity=action.quantity,
            stop_loss_order_id=sl.id if sl else None,
            take_profit_order_id=tp.id if tp else None,
            sl_price=action.sl_price,
            tp_price=action.tp_price,
            reason=action.reason,
        )
        for role in action.emulated:
            trigger = action.sl_price if role is OrderRole.STOP_LOSS else action.tp_price
            assert trigger is not None
            entry.emulate_leg(
                index=index,
                role=role,
                trigger_price=self.rules(entry).round_price(trigger, entry.side.opposite, trigger_kind(role)),
                reason=reason(
                    Rule.LEG_EMULATED,
                    f"the {role.value} is held by the ledger at {plain(trigger)} on the public price: the venue holds "
                    f"the base for the resting {'take-profit' if role is OrderRole.STOP_LOSS else 'stop-loss'}",
                    resting_leg=self.config.resting_leg,
                ),
            )
        self.watch(entry)
        return list(legs.values())

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
