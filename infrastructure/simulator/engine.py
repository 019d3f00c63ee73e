"""The matching core: accounts, orders and fills against a price path. Pure: no I/O, time comes from a clock.

Fill model (deliberately simple and deterministic; the venue has no depth):
- a market order, or a stop-loss / take-profit / trailing stop once triggered, fills at once at the mark, as
  taker (``viqc`` buys spend the quote amount at the mark);
- a limit order (or a triggered ``*-limit``) that is marketable when it becomes active fills at the mark as
  taker; once resting it fills at its own price, as maker, on each price move that crosses it;
- each limit fill takes the next of ``fill_fractions`` of the order volume (the remainder once they run out);
- IOC keeps nothing on the book: what does not fill at once is canceled; post-only never takes;
- triggers compare the last trade (``trigger=last``) or the pair's index (``trigger=index``; the index follows the
  mark unless set, as Kraken falls back to the last price when the index feed is down, REFERENCE.md 3.2);
- fees are charged in the quote currency unless ``fcib`` asks for the base (or the account's default says base);
- open orders hold funds, untriggered stops included (Kraken does, issue 13 scenario 4; a switch turns it off):
  a sell holds the base (plus the fee when paid in base), a buy the quote at its limit/trigger plus the taker fee.

Every book operation is O(log n) in the open orders of the pair (``book.PairBook``); ``cl_ord_id`` and ``userref``
lookups and the funds held per asset are kept as indexes, so order entry does not scan the account.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from functools import partial
from typing import Any

from execledger.domain.pairs import PairRules, PairStatus
from execledger.domain.values import ZERO, Side
from execledger.infrastructure.kraken.wire import ExecType as ObservationKind  # the WS v2 exec_type values

from . import errors as E
from .book import PairBook
from .errors import KrakenError
from .ids import IdFactory
from .orderentry import TRAILING_TYPES, OrderRequest, SimOrderType
from .prices import PricePath

CLOSING_KINDS = {
    "closed": ObservationKind.FILLED,
    "canceled": ObservationKind.CANCELED,
    "expired": ObservationKind.EXPIRED,
}
SYSTEM_STATUSES = ("online", "maintenance", "cancel_only", "post_only")


def quantum(decimals: int) -> Decimal:
    return Decimal(1).scaleb(-decimals)


@dataclass
class SimTrade:
    txid: str
    trade_id: int
    order_txid: str
    pair: PairRules
    time: float
    side: Side
    ordertype: str
    price: Decimal
    vol: Decimal
    cost: Decimal
    fee: Decimal
    maker: bool
    fee_asset: str = ""


@dataclass(eq=False)
class SimOrder:
    txid: str
    key: str
    request: OrderRequest
    opentm: float
    seq: int
    status: str = "open"  # pending | open | closed | canceled | expired (REST statuses)
    reason: str | None = None
    closetm: float | None = None
    vol_exec: Decimal = ZERO
    cost: Decimal = ZERO
    fee: Decimal = ZERO
    trades: list[SimTrade] = field(default_factory=list)
    triggered: bool = False
    fee_in_base: bool = False
    stop_price: Decimal | None = None  # the trigger level now (fixed, or where a trailing stop has moved to)
    peak: Decimal | None = None  # a trailing stop's best price seen (highest for a sell, lowest for a buy)
    active_limit: Decimal | None = None  # a trailing-stop-limit's limit, set when it triggers
    amended_at: float | None = None
    amends: list[dict[str, Any]] = field(default_factory=list)
    misc: set[str] = field(default_factory=set)
    refid: str | None = None  # the order this one replaced (EditOrder)
    original: OrderRequest | None = None  # the request as placed, for OrderAmends' "original" entry
    hold_asset: str | None = None
    hold_amount: Decimal = ZERO
    token: int = 0

    @property
    def pair(self) -> PairRules:
        return self.request.pair

    @property
    def side(self) -> Side:
        return self.request.side

    @property
    def is_open(self) -> bool:
        return self.status in ("pending", "open")

    @property
    def remaining(self) -> Decimal:
        return self.request.volume - self.vol_exec

    @property
    def avg_price(self) -> Decimal:
        return self.cost / self.vol_exec if self.vol_exec else ZERO

    @property
    def awaiting_trigger(self) -> bool:
        if self.triggered:
            return False
        return self.request.trigger_price is not None or self.request.ordertype in TRAILING_TYPES

    @property
    def limit(self) -> Decimal | None:
        """The limit price this order fills at or better, now (None: fills at market once active)."""
        if self.request.ordertype is SimOrderType.TRAILING_STOP_LIMIT:
            return self.active_limit
        return self.request.limit_price

    @property
    def age_from(self) -> float:
        """When the trading counter's age-based penalties start counting: placed, or last amended."""
        return self.amended_at if self.amended_at is not None else self.opentm


@dataclass(frozen=True)
class Execution:
    """One thing that happened to an order, in the order it happened (the WS executions feed renders these)."""

    kind: ObservationKind
    order: SimOrder
    trade: SimTrade | None
    time: float
    detail: dict[str, Any] | None = None  # what an amend changed


@dataclass
class Account:
    key: str
    balances: dict[str, Decimal]
    orders: dict[str, SimOrder] = field(default_factory=dict)  # every order, in placement order
    open: dict[str, SimOrder] = field(default_factory=dict)  # open orders, in placement order
    open_by_cl_ord_id: dict[str, SimOrder] = field(default_factory=dict)
    open_by_userref: dict[int, dict[str, SimOrder]] = field(default_factory=dict)
    open_per_pair: Counter[str] = field(default_factory=Counter)
    held: dict[str, Decimal] = field(default_factory=dict)
    trades: dict[str, SimTrade] = field(default_factory=dict)
    closed: list[SimOrder] = field(default_factory=list)  # in closing order
    dead_man_at: float | None = None
    fee_in_base_default: bool = False


@dataclass(frozen=True)
class Fees:
    maker_pct: Decimal
    taker_pct: Decimal


MarketListener = Callable[[PairRules, Decimal, Decimal, Side, str, float], None]


class Exchange:
    """Kraken Spot's order book behaviour for the simulator's accounts, driven by ``PricePath`` marks."""

    def __init__(
        self,
        pairs: Callable[[], Any],
        paths: dict[str, PricePath],
        fees: dict[str, Fees],
        ids: IdFactory,
        clock: Callable[[], float],
        fill_fractions: tuple[Decimal, ...] = (),
    ):
        self._pairs = pairs
        self.paths = paths
        self.fees = fees
        self.ids = ids
        self.clock = clock
        self.fill_fractions = fill_fractions
        self.system_status = "online"
        self.accounts: dict[str, Account] = {}
        self.listeners: list[Callable[[Execution], None]] = []
        self.market_listeners: list[MarketListener] = []
        self.books: dict[str, PairBook] = {}
        self.orders_by_txid: dict[str, SimOrder] = {}
        self.index: dict[str, Decimal] = {}  # pair key -> index price set by the control surface
        self.hold_untriggered = True  # funds held by untriggered stops (Kraken's behaviour)
        self.max_open_per_pair: int | None = None  # the tier's open-order cap (REFERENCE.md 5.3)
        self._seq = 0
        self._delayed: list[tuple[float, str, OrderRequest]] = []
        self._expiry: list[tuple[float, int, str]] = []
        self._scheduled: list[tuple[float, int, str]] = []
        self.dropped_late: list[OrderRequest] = []  # delayed orders whose deadline passed before acceptance

    @property
    def pairs(self):
        return self._pairs()

    # -- accounts and marks ------------------------------------------------------------------------------

    def open_account(self, key: str, balances: dict[str, Decimal]) -> Account:
        """Create an account for an API key with starting balances."""
        self.accounts[key] = Account(key, dict(balances))
        return self.accounts[key]

    def account(self, key: str) -> Account:
        """The account of an API key."""
        return self.accounts[key]

    def mark(self, pair: PairRules) -> Decimal:
        """The pair's current mark (its last trade price)."""
        return self.paths[pair.key].mark

    def index_price(self, pair: PairRules) -> Decimal:
        """The pair's index price: the one set by the control surface, else the last trade (Kraken's fallback)."""
        return self.index.get(pair.key) or self.mark(pair)

    def set_mark(self, pair: PairRules, price: Decimal, qty: Decimal | None = None, side: Side | None = None) -> None:
        """A trade at ``price`` on the pair's market: the mark jumps, resting orders and triggers react."""
        old = self.mark(pair)
        self.paths[pair.key].set(price)
        self._market_trade(pair, price, qty, side or (Side.BUY if price >= old else Side.SELL))
        self._match_pair(pair)

    def set_index(self, pair: PairRules, price: Decimal | None) -> None:
        """Set (or with None clear) the pair's index price; ``trigger=index`` orders react."""
        if price is None:
            self.index.pop(pair.key, None)
        else:
            self.index[pair.key] = price
        self._match_pair(pair)

    def step(self, pair: PairRules, steps: int = 1) -> Decimal:
        """Advance a pair's price path ``steps`` times, matching after each step."""
        for _ in range(steps):
            old = self.mark(pair)
            new = self.paths[pair.key].step()
            self._market_trade(pair, new, None, Side.BUY if new >= old else Side.SELL)
            self._match_pair(pair)
        return self.mark(pair)

    def _market_trade(self, pair: PairRules, price: Decimal, qty: Decimal | None, side: Side) -> None:
        if self.market_listeners:
            amount = qty if qty is not None else pair.ordermin
            for listener in list(self.market_listeners):
                listener(pair, price, amount, side, "market", self.clock())

    # -- order entry -----------------------------------------------------------------------------------------

    def fee_in_base(self, key: str, req: OrderRequest) -> bool:
        """Whether the order pays its fee in the base asset: ``fcib``/``fciq`` decide, else the account default."""
        return req.fee_in_base if req.fee_in_base is not None else self.accounts[key].fee_in_base_default

    def check(self, key: str, req: OrderRequest, *, releasing: SimOrder | None = None) -> None:
        """Everything AddOrder checks against state; raises ``KrakenError`` (also used by ``validate=true``).
        ``releasing`` is an order about to be replaced (EditOrder): its hold and its cl_ord_id are not in the way."""
        now = self.clock()
        if self.system_status == "maintenance":
            raise KrakenError(E.SERVICE_UNAVAILABLE)
        if self.system_status == "cancel_only" or req.pair.status is PairStatus.CANCEL_ONLY:
            raise KrakenError(E.CANCEL_ONLY)
        posting = req.post_only and req.ordertype in (SimOrderType.LIMIT, SimOrderType.ICEBERG)
        if (self.system_status == "post_only" or req.pair.status is PairStatus.POST_ONLY) and not posting:
            raise KrakenError(E.POST_ONLY)
        if req.pair.status is PairStatus.LIMIT_ONLY and req.ordertype is SimOrderType.MARKET:
            raise KrakenError(E.LIMIT_ONLY)
        if req.pair.status is PairStatus.REDUCE_ONLY and not req.reduce_only:
            raise KrakenError(E.REDUCE_ONLY)
        if req.deadline is not None and now > req.deadline:
            raise KrakenError(E.DEADLINE_ELAPSED)
        account = self.accounts[key]
        clash = account.open_by_cl_ord_id.get(req.cl_ord_id) if req.cl_ord_id else None
        if clash is not None and clash is not releasing:
            raise KrakenError(E.DUPLICATE_CL_ORD_ID)
        if self.max_open_per_pair is not None:
            already = account.open_per_pair[req.pair.key] - (1 if releasing is not None else 0)
            if already >= self.max_open_per_pair:
                raise KrakenError(E.ORDERS_LIMIT)
        costmin = req.pair.costmin
        market = req.ordertype is SimOrderType.MARKET and not req.viqc
        if market and costmin is not None and req.volume * self.mark(req.pair) < costmin:
            raise KrakenError(E.COST_MINIMUM)
        if req.viqc and costmin is not None and req.volume < costmin:
            raise KrakenError(E.COST_MINIMUM)
        asset, need = self._hold_of(req, req.volume, self.fee_in_base(key, req), triggered=False)
        available = self.available(key, asset)
        if releasing is not None and releasing.hold_asset == asset:
            available += releasing.hold_amount
        if need > 0 and need > available:
            raise KrakenError(E.INSUFFICIENT_FUNDS)

    def place(self, key: str, req: OrderRequest, *, refid: str | None = None) -> SimOrder:
        """Accept an order: pending_new, new, then whatever the current mark does to it."""
        self.check(key, req)
        return self._accept(key, req, refid=refid)

    def _accept(self, key: str, req: OrderRequest, *, refid: str | None = None) -> SimOrder:
        now = self.clock()
        order = SimOrder(
            self.ids.order_txid(),
            key,
            req,
            now,
            self._next_seq(),
            status="pending",
            fee_in_base=self.fee_in_base(key, req),
            refid=refid,
        )
        account = self.accounts[key]
        account.orders[order.txid] = order
        self.orders_by_txid[order.txid] = order
        self._index_open(account, order)
        self._set_hold(order)
        self._emit(ObservationKind.PENDING_NEW, order)
        if req.starttm and req.starttm > now:
            heapq.heappush(self._scheduled, (req.starttm, order.seq, order.txid))  # scheduled: stays pending
            return order
        self._activate(order)
        return order

    def _activate(self, order: SimOrder) -> None:
        order.status = "open"
        req = order.request
        if req.expiretm:
            heapq.heappush(self._expiry, (req.expiretm, order.seq, order.txid))
        if req.ordertype in TRAILING_TYPES:
            reference = self._reference(order)
            order.peak = reference
            order.stop_price = self._trailing_stop(order, reference)
        elif req.trigger_price is not None:
            order.stop_price = req.trigger_price
        self._emit(ObservationKind.NEW, order)
        self._work(order, fresh=True)

    def place_later(self, key: str, req: OrderRequest, delay: float) -> None:
        """Accept an order only after ``delay`` seconds of simulator time (the delayed-acceptance fault)."""
        self._delayed.append((self.clock() + delay, key, req))

    def describe(self, req: OrderRequest) -> str:
        """``descr.order`` as Kraken words it, e.g. ``sell 0.10000000 XBTUSD @ stop loss 55.0 -> limit 54.0``
        (REFERENCE.md 3.2 formats; trailing stops print their offset, ``+1.0000%``)."""
        pair = req.pair
        vol = f"{req.volume:.{pair.cost_decimals if req.viqc else pair.lot_decimals}f}"
        head = f"{req.side} {vol} {pair.altname} @ "
        t = req.ordertype
        if t is SimOrderType.MARKET:
            return head + "market"
        if t in (SimOrderType.LIMIT, SimOrderType.ICEBERG):
            return head + f"limit {self.price_text(pair, req.price)}"
        if t in TRAILING_TYPES:
            assert req.trail is not None
            text = head + f"trailing stop {offset_text(pair, req.trail)}"
            if req.trail_limit is not None:
                text += f" -> limit {offset_text(pair, req.trail_limit)}"
            return text
        words = "stop loss" if req.is_stop else "take profit"
        text = head + f"{words} {self.price_text(pair, req.price)}"
        if req.price2 is not None:
            text += f" -> limit {self.price_text(pair, req.price2)}"
        return text

    @staticmethod
    def price_text(pair: PairRules, price: Decimal | None) -> str:
        return f"{price or ZERO:.{pair.pair_decimals}f}"

    # -- amend and edit ------------------------------------------------------------------------------------------

    def amend(
        self,
        order: SimOrder,
        *,
        order_qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        post_only: bool | None = None,
        display_qty: Decimal | None = None,
    ) -> str:
        """AmendOrder, in place (REFERENCE.md 3.5): same txid; queue priority kept unless the price changes or the
        quantity grows; a quantity at or below what has filled ends the order. Returns the ``amend_id``."""
        if self.system_status in ("maintenance", "cancel_only") or order.pair.status is PairStatus.CANCEL_ONLY:
            raise KrakenError(E.SERVICE_UNAVAILABLE if self.system_status == "maintenance" else E.CANCEL_ONLY)
        if not order.is_open:
            raise KrakenError(E.UNKNOWN_ORDER)
        req = order.request
        if order_qty is None and limit_price is None and trigger_price is None and display_qty is None:
            raise KrakenError(E.invalid_arguments("order_qty"))
        if limit_price is not None and req.limit_price is None:
            raise KrakenError(E.amend_refused("limit_price: the order has no limit price"))
        if trigger_price is not None and (req.trigger_price is None or order.triggered):
            raise KrakenError(E.amend_refused("trigger_price: the order has no pending trigger"))
        if display_qty is not None and req.ordertype is not SimOrderType.ICEBERG:
            raise KrakenError(E.invalid_arguments("display_qty"))
        if order_qty is not None and (order_qty <= 0 or (order_qty < req.pair.ordermin and order_qty > order.vol_exec)):
            raise KrakenError(E.ORDER_MINIMUM if order_qty > 0 else E.invalid_arguments("order_qty"))
        now = self.clock()
        changes: dict[str, Any] = {}
        new = req
        if order_qty is not None and order_qty != req.volume:
            new = replace(new, volume=order_qty)
            changes["order_qty"] = order_qty
        if limit_price is not None and limit_price != req.limit_price:
            if req.ordertype in (SimOrderType.LIMIT, SimOrderType.ICEBERG):
                new = replace(new, price=limit_price)
            else:
                new = replace(new, price2=limit_price)
            changes["limit_price"] = limit_price
        if trigger_price is not None and trigger_price != req.trigger_price:
            new = replace(new, price=trigger_price)
            changes["trigger_price"] = trigger_price
        if post_only is not None and post_only != req.post_only:
            if post_only and req.ordertype not in (SimOrderType.LIMIT, SimOrderType.ICEBERG):
                raise KrakenError(E.invalid_arguments("post_only"))
            new = replace(new, post_only=post_only)
            changes["post_only"] = post_only
        if display_qty is not None:
            new = replace(new, displayvol=display_qty)
            changes["display_qty"] = display_qty
        if new.post_only and new.limit_price is not None and not order.awaiting_trigger:
            mark = self.mark(order.pair)
            if (mark <= new.limit_price) if new.side is Side.BUY else (mark >= new.limit_price):
                raise KrakenError(E.amend_refused("post_only: the new price would take liquidity"))
        asset, need = self._hold_of(new, new.volume - order.vol_exec, order.fee_in_base, order.triggered)
        more = need - order.hold_amount if asset == order.hold_asset else ZERO
        if more > 0 and more > self.available(order.key, asset):
            raise KrakenError(E.INSUFFICIENT_FUNDS)
        if order.original is None:
            order.original = req
        lose_priority = "limit_price" in changes or "trigger_price" in changes or new.volume > req.volume
        order.request = new
        if lose_priority:
            order.seq = self._next_seq()
        order.amended_at = now
        order.misc.add("amended")
        if "trigger_price" in changes:
            order.stop_price = new.trigger_price
        self.amend_history(order)
        amend = self._amend_record(order, "user", now)
        order.amends.append(amend)
        if order.remaining <= 0:
            self._emit(ObservationKind.AMENDED, order, detail=changes)
            self._close(order, "canceled" if order.vol_exec < req.volume else "closed", E.REASON_USER)
            return amend["amend_id"]
        self._set_hold(order)
        self._emit(ObservationKind.AMENDED, order, detail=changes)
        order.token += 1
        self._work(order, fresh="limit_price" in changes or "trigger_price" in changes)
        return amend["amend_id"]

    def amend_history(self, order: SimOrder) -> list[dict[str, Any]]:
        """OrderAmends: the order as placed (``original``) and each amend (``user``), oldest first."""
        if not order.amends:
            order.amends.append(self._amend_record(order, "original", order.opentm, order.original or order.request))
        return order.amends

    def _amend_record(self, order: SimOrder, kind: str, now: float, req: OrderRequest | None = None) -> dict[str, Any]:
        req = req or order.request
        pair = order.pair
        filled = ZERO if kind == "original" else order.vol_exec
        record: dict[str, Any] = {
            "amend_id": self.ids.amend_id(),
            "amend_type": kind,
            "order_qty": f"{req.volume:.{pair.lot_decimals}f}",
            "remaining_qty": f"{max(req.volume - filled, ZERO):.{pair.lot_decimals}f}",
            "timestamp": int(now * 1_000_000_000),
        }
        if req.limit_price is not None:
            record["limit_price"] = self.price_text(pair, req.limit_price)
        if req.trigger_price is not None:
            record["trigger_price"] = self.price_text(pair, req.trigger_price)
        if req.displayvol is not None:
            record["display_qty"] = f"{req.displayvol:.{pair.lot_decimals}f}"
        if req.post_only:
            record["post_only"] = True
        return record

    def replace_order(self, order: SimOrder, new: OrderRequest) -> SimOrder:
        """EditOrder: cancel ``order`` (``Order replaced``) and place ``new`` with a new txid, atomically: ``new``
        is checked as if the old order's funds were free first, and nothing changes when it is refused."""
        if not order.is_open:
            raise KrakenError(E.UNKNOWN_ORDER)
        if order.triggered:
            raise KrakenError(E.amend_refused("a triggered order cannot be edited"))
        self.check(order.key, new, releasing=order)
        self._close(order, "canceled", E.REASON_REPLACED)
        return self._accept(order.key, new, refid=order.txid)

    # -- cancellation ----------------------------------------------------------------------------------------

    def cancel_targets(self, key: str, txid: str | None = None, cl_ord_id: str | None = None) -> list[SimOrder]:
        """The open orders CancelOrder would cancel: by txid, by userref (every open order carrying it) or by
        cl_ord_id. Raises ``EOrder:Unknown order`` when a txid / cl_ord_id names nothing open."""
        if self.system_status == "maintenance":
            raise KrakenError(E.SERVICE_UNAVAILABLE)
        account = self.accounts[key]
        if cl_ord_id is None and txid is not None and txid.lstrip("-").isdigit():
            return list(account.open_by_userref.get(int(txid), {}).values())
        if cl_ord_id is not None:
            found = account.open_by_cl_ord_id.get(cl_ord_id)
            targets = [found] if found is not None else []
        else:
            order = account.orders.get(txid or "")
            targets = [order] if order is not None and order.is_open else []
        if not targets:
            raise KrakenError(E.UNKNOWN_ORDER)
        return targets

    def cancel(self, orders: list[SimOrder], reason: str = E.REASON_USER) -> list[SimOrder]:
        """Cancel these open orders (``reason: User requested``)."""
        return [self._close(o, "canceled", reason) for o in orders if o.is_open]

    def cancel_all(self, key: str) -> list[SimOrder]:
        """CancelAll: cancel every open order of the account."""
        return self.cancel(list(self.accounts[key].open.values()))

    def arm_dead_man(self, key: str, timeout: int) -> float | None:
        """CancelAllOrdersAfter: arm (or with 0 disarm) the account's switch; returns the trigger time."""
        account = self.accounts[key]
        account.dead_man_at = self.clock() + timeout if timeout > 0 else None
        return account.dead_man_at

    # -- time ----------------------------------------------------------------------------------------------------

    def tick(self) -> None:
        """Run what simulator time makes due: delayed acceptances, scheduled starts, expiry, dead man's switches."""
        now = self.clock()
        if self._delayed:
            due = [d for d in self._delayed if d[0] <= now]
            self._delayed = [d for d in self._delayed if d[0] > now]
            for _, key, req in due:
                if req.deadline is not None and now > req.deadline:
                    self.dropped_late.append(req)  # the engine would answer "Deadline elapsed": never placed
                    continue
                try:
                    self.place(key, req)
                except KrakenError:
                    self.dropped_late.append(req)
        while self._scheduled and self._scheduled[0][0] <= now:
            _, _, txid = heapq.heappop(self._scheduled)
            order = self.orders_by_txid.get(txid)
            if order is not None and order.status == "pending":
                self._activate(order)
        while self._expiry and self._expiry[0][0] <= now:
            _, _, txid = heapq.heappop(self._expiry)
            order = self.orders_by_txid.get(txid)
            if order is not None and order.is_open:
                self._close(order, "expired", None)
        for account in self.accounts.values():
            if account.dead_man_at is not None and now >= account.dead_man_at:
                account.dead_man_at = None  # Kraken disarms the switch once it has fired
                self.cancel(list(account.open.values()))

    # -- balances ---------------------------------------------------------------------------------------------

    def available(self, key: str, asset: str) -> Decimal:
        """Balance minus what open orders hold (Kraken's ``hold_trade``)."""
        account = self.accounts[key]
        return account.balances.get(asset, ZERO) - account.held.get(asset, ZERO)

    def held(self, key: str, asset: str) -> Decimal:
        """What the account's open orders hold of ``asset``."""
        return self.accounts[key].held.get(asset, ZERO)

    def _hold_of(
        self, req: OrderRequest, volume: Decimal, fee_in_base: bool, triggered: bool, stop: Decimal | None = None
    ) -> tuple[str, Decimal]:
        pair = req.pair
        if req.side is Side.SELL:
            asset, amount = pair.base, volume
            if fee_in_base:
                pct = self.fees[pair.key].taker_pct
                amount = (volume * (1 + pct / 100)).quantize(quantum(pair.lot_decimals), rounding=ROUND_CEILING)
        else:
            asset = pair.quote
            if req.viqc:
                amount = volume
            else:
                price = req.limit_price or stop or req.trigger_price or self.mark(pair)
                amount = volume * price
                if not fee_in_base:
                    amount *= 1 + self.fees[pair.key].taker_pct / 100
        untriggered = req.ordertype in TRAILING_TYPES or req.trigger_price is not None
        if untriggered and not triggered and not self.hold_untriggered:
            return asset, ZERO
        return asset, amount

    def _set_hold(self, order: SimOrder) -> None:
        account = self.accounts[order.key]
        if order.hold_asset is not None:
            account.held[order.hold_asset] = account.held.get(order.hold_asset, ZERO) - order.hold_amount
        if not order.is_open:
            order.hold_asset, order.hold_amount = None, ZERO
            return
        asset, amount = self._hold_of(
            order.request, order.remaining, order.fee_in_base, order.triggered, order.active_limit or order.stop_price
        )
        order.hold_asset, order.hold_amount = asset, amount
        account.held[asset] = account.held.get(asset, ZERO) + amount

    # -- matching --------------------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _index_open(self, account: Account, order: SimOrder) -> None:
        account.open[order.txid] = order
        account.open_per_pair[order.pair.key] += 1
        if order.request.cl_ord_id:
            account.open_by_cl_ord_id[order.request.cl_ord_id] = order
        if order.request.userref is not None:
            account.open_by_userref.setdefault(order.request.userref, {})[order.txid] = order

    def _unindex_open(self, account: Account, order: SimOrder) -> None:
        if account.open.pop(order.txid, None) is None:
            return
        account.open_per_pair[order.pair.key] -= 1
        if order.request.cl_ord_id and account.open_by_cl_ord_id.get(order.request.cl_ord_id) is order:
            del account.open_by_cl_ord_id[order.request.cl_ord_id]
        if order.request.userref is not None:
            group = account.open_by_userref.get(order.request.userref, {})
            group.pop(order.txid, None)
            if not group:
                account.open_by_userref.pop(order.request.userref, None)

    def _book_of(self, pair: PairRules) -> PairBook:
        book = self.books.get(pair.key)
        if book is None:
            book = self.books[pair.key] = PairBook()
        return book

    def _rest(self, order: SimOrder) -> None:
        """Put an open order on its pair's book (a trigger heap, the trailing set, or a limit heap)."""
        order.token += 1
        book = self._book_of(order.pair)
        req = order.request
        if order.awaiting_trigger:
            trigger = req.trigger_price
            if req.ordertype in TRAILING_TYPES:
                book.trailing[order.txid] = order
            elif trigger is None:
                raise ValueError(f"order {order.txid} awaits a trigger but has no trigger price")
            elif (req.side is Side.BUY) == req.is_stop:  # buy stops and sell take-profits fire on the way up
                book.push(book.rising[req.trigger], trigger, order.seq, order.token, order.txid)
            else:
                book.push(book.falling[req.trigger], -trigger, order.seq, order.token, order.txid)
            return
        limit = order.limit
        if limit is None:
            return
        if req.side is Side.BUY:
            book.push(book.buys, -limit, order.seq, order.token, order.txid)
        else:
            book.push(book.sells, limit, order.seq, order.token, order.txid)

    def _match_pair(self, pair: PairRules) -> None:
        book = self.books.get(pair.key)
        if book is None:
            return
        mark, index = self.mark(pair), self.index_price(pair)
        due: dict[str, SimOrder] = {}

        def take(entries) -> None:
            for token, txid in entries:
                order = self.orders_by_txid.get(txid)
                if order is not None and order.is_open and order.token == token:
                    due[txid] = order

        take(book.pop_while(book.buys, lambda k: -k >= mark))
        take(book.pop_while(book.sells, lambda k: k <= mark))
        for reference, price in (("last", mark), ("index", index)):
            take(book.pop_while(book.rising[reference], partial(_rising_due, price)))
            take(book.pop_while(book.falling[reference], partial(_falling_due, price)))
        for txid, order in list(book.trailing.items()):
            if not order.is_open or not order.awaiting_trigger:
                del book.trailing[txid]
            elif self._triggered(order):
                del book.trailing[txid]
                due[txid] = order
        for order in sorted(due.values(), key=lambda o: o.seq):
            order.token += 1  # whatever happens next books it afresh
            self._work(order, fresh=False)

    def _reference(self, order: SimOrder) -> Decimal:
        return self.index_price(order.pair) if order.request.trigger == "index" else self.mark(order.pair)

    def _trailing_stop(self, order: SimOrder, peak: Decimal) -> Decimal:
        trail = order.request.trail
        assert trail is not None
        distance = trail.distance(peak)
        stop = peak - distance if order.side is Side.SELL else peak + distance
        return on_grid(order.pair, stop)

    def _triggered(self, order: SimOrder) -> bool:
        """Whether an untriggered order's trigger is reached now (a trailing stop first follows the price)."""
        req = order.request
        reference = self._reference(order)
        if req.ordertype in TRAILING_TYPES:
            assert order.peak is not None
            better = reference > order.peak if order.side is Side.SELL else reference < order.peak
            if better:
                order.peak = reference
                order.stop_price = self._trailing_stop(order, reference)
            assert order.stop_price is not None
            return reference <= order.stop_price if order.side is Side.SELL else reference >= order.stop_price
        assert req.trigger_price is not None
        if (req.side is Side.BUY) == req.is_stop:
            return reference >= req.trigger_price
        return reference <= req.trigger_price

    def _on_trigger(self, order: SimOrder) -> bool:
        """The trigger fired: the order becomes a market or limit order. False when it cannot be funded (only
        possible with holds for untriggered stops switched off): it is then canceled."""
        order.triggered = True
        order.misc.add("stopped")
        req = order.request
        if req.trail_limit is not None and order.stop_price is not None:
            order.active_limit = on_grid(order.pair, req.trail_limit.apply(order.stop_price))
        if not self.hold_untriggered:
            asset, need = self._hold_of(req, order.remaining, order.fee_in_base, True, order.active_limit)
            if need > self.available(order.key, asset):
                self._close(order, "canceled", E.REASON_NO_FUNDS)
                return False
        self._set_hold(order)
        return True

    def _work(self, order: SimOrder, fresh: bool) -> None:
        if order.status != "open":
            return
        if order.awaiting_trigger:
            if not self._triggered(order):
                self._rest(order)
                return
            if not self._on_trigger(order):
                return
            fresh = True  # the triggered order is new to the book now
        mark = self.mark(order.pair)
        req = order.request
        limit = order.limit
        if limit is None:
            self._fill(order, self._market_volume(order, mark), mark, maker=False)
            if order.is_open:  # a viqc buy rounds its base volume down: the dust is not bought
                self._close(order, "closed", None)
            return
        crossed = mark <= limit if req.side is Side.BUY else mark >= limit
        if not crossed:
            if fresh and req.timeinforce == "IOC":
                self._close(order, "canceled", E.REASON_IOC)
            else:
                self._rest(order)
            return
        if fresh and req.post_only:
            self._close(order, "canceled", E.REASON_POST_ONLY)  # a post-only order never takes liquidity
            return
        self._fill(order, self._next_fill_volume(order), mark if fresh else limit, maker=not fresh)
        if order.is_open:
            if req.timeinforce == "IOC":
                self._close(order, "canceled", E.REASON_IOC)
            else:
                self._rest(order)

    def _market_volume(self, order: SimOrder, mark: Decimal) -> Decimal:
        if not order.request.viqc:
            return order.remaining
        # viqc: the volume is quote to spend; what it buys at the mark, rounded down to the pair's lot
        base = (order.request.volume / mark).quantize(quantum(order.pair.lot_decimals), rounding=ROUND_FLOOR)
        order.request = replace(order.request, volume=base, viqc=False)
        return base

    def _next_fill_volume(self, order: SimOrder) -> Decimal:
        n = len(order.trades)  # fills so far pick the next fraction
        if n >= len(self.fill_fractions):
            return order.remaining
        volume = order.pair.round_volume(order.request.volume * self.fill_fractions[n])
        return volume if ZERO < volume < order.remaining else order.remaining

    def _fill(self, order: SimOrder, volume: Decimal, price: Decimal, maker: bool) -> None:
        if volume <= 0:
            return
        pair = order.pair
        now = self.clock()
        cost = (volume * price).quantize(quantum(pair.cost_decimals), rounding=ROUND_HALF_UP)
        fees = self.fees[pair.key]
        pct = fees.maker_pct if maker else fees.taker_pct
        balances = self.accounts[order.key].balances
        if order.fee_in_base:
            fee = (volume * pct / 100).quantize(quantum(pair.lot_decimals), rounding=ROUND_HALF_UP)
            fee_asset, base_fee, quote_fee = pair.base, fee, ZERO
        else:
            fee = (cost * pct / 100).quantize(quantum(pair.cost_decimals), rounding=ROUND_HALF_UP)
            fee_asset, base_fee, quote_fee = pair.quote, ZERO, fee
        if order.side is Side.BUY:
            balances[pair.base] = balances.get(pair.base, ZERO) + volume - base_fee
            balances[pair.quote] = balances.get(pair.quote, ZERO) - cost - quote_fee
        else:
            balances[pair.base] = balances.get(pair.base, ZERO) - volume - base_fee
            balances[pair.quote] = balances.get(pair.quote, ZERO) + cost - quote_fee
        trade = SimTrade(
            self.ids.trade_txid(),
            self.ids.trade_number(),
            order.txid,
            pair,
            now,
            order.side,
            str(order.request.ordertype),
            price,
            volume,
            cost,
            fee,
            maker,
            fee_asset,
        )
        order.vol_exec += volume
        order.cost += cost
        order.fee += fee
        order.trades.append(trade)
        self.accounts[order.key].trades[trade.txid] = trade
        self._set_hold(order)
        self._emit(ObservationKind.TRADE, order, trade)
        taker_side = order.side if not maker else order.side.opposite
        for listener in list(self.market_listeners):
            listener(pair, price, volume, taker_side, "limit" if order.limit is not None else "market", now)
        if order.remaining <= ZERO:
            self._close(order, "closed", None)

    def _close(self, order: SimOrder, status: str, reason: str | None) -> SimOrder:
        order.status = status
        order.reason = reason
        order.closetm = self.clock()
        order.token += 1
        account = self.accounts[order.key]
        self._unindex_open(account, order)
        account.closed.append(order)
        self._set_hold(order)
        self._emit(CLOSING_KINDS[status], order)
        return order

    def _emit(
        self,
        kind: ObservationKind,
        order: SimOrder,
        trade: SimTrade | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        if not self.listeners:
            return
        execution = Execution(kind, order, trade, self.clock(), detail)
        for listener in list(self.listeners):
            listener(execution)


def _rising_due(price: Decimal, key: Decimal) -> bool:
    return key <= price  # a trigger that fires on the way up, keyed by its price


def _falling_due(price: Decimal, key: Decimal) -> bool:
    return -key >= price  # a trigger that fires on the way down, keyed by its negated price


def on_grid(pair: PairRules, price: Decimal) -> Decimal:
    """``price`` on the pair's tick grid (half up), at least one tick."""
    q = quantum(pair.pair_decimals)
    step = pair.tick_size if pair.tick_size is not None and pair.tick_size > q else q
    units = max((price / step).quantize(Decimal(1), rounding=ROUND_HALF_UP), Decimal(1))
    return (units * step).quantize(q)


def offset_text(pair: PairRules, offset) -> str:
    """A relative price as Kraken prints it: ``+1.0000%`` or ``+50.0`` (pair decimals)."""
    sign = "+" if offset.sign >= 0 else "-"
    if offset.percent:
        return f"{sign}{offset.amount:.4f}%"
    return f"{sign}{offset.amount:.{pair.pair_decimals}f}"
