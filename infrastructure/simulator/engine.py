"""The matching core: accounts, orders and fills against a price path. Pure: no I/O, time comes from a clock.

Fill model (deliberately simple and deterministic):
- a market order, or a stop-loss / take-profit once triggered, fills at once at the mark, as taker;
- a limit order (or a triggered ``*-limit``) that is marketable when it becomes active fills at the mark as
  taker; once resting it fills at its own price, as maker, on each price step that crosses it;
- each limit fill takes the next of ``fill_fractions`` of the order volume (the remainder once they run out);
- fees are charged in the quote currency (maker / taker percentages per pair).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from execledger.domain.pairs import PairRegistry, PairRules
from execledger.domain.values import ZERO, OrderType, Side
from execledger.infrastructure.kraken.wire import ExecType as ObservationKind  # the WS v2 exec_type values

from . import errors as E
from .errors import KrakenError
from .ids import IdFactory
from .orderentry import TRIGGERED_TYPES, OrderRequest
from .prices import PricePath

CLOSING_KINDS = {
    "closed": ObservationKind.FILLED,
    "canceled": ObservationKind.CANCELED,
    "expired": ObservationKind.EXPIRED,
}


@dataclass
class SimTrade:
    txid: str
    trade_id: int
    order_txid: str
    pair: PairRules
    time: float
    side: Side
    ordertype: OrderType
    price: Decimal
    vol: Decimal
    cost: Decimal
    fee: Decimal
    maker: bool


@dataclass
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
        return self.request.ordertype in TRIGGERED_TYPES and not self.triggered


@dataclass(frozen=True)
class Execution:
    """One thing that happened to an order, in the order it happened (the WS executions feed renders these)."""

    kind: ObservationKind
    order: SimOrder
    trade: SimTrade | None
    time: float


@dataclass
class Account:
    key: str
    balances: dict[str, Decimal]
    orders: dict[str, SimOrder] = field(default_factory=dict)
    trades: dict[str, SimTrade] = field(default_factory=dict)
    dead_man_at: float | None = None


@dataclass(frozen=True)
class Fees:
    maker_pct: Decimal
    taker_pct: Decimal


def _quantum(decimals: int) -> Decimal:
    return Decimal(1).scaleb(-decimals)


class Exchange:
    """Kraken Spot's order book behaviour for the simulator's accounts, driven by ``PricePath`` marks."""

    def __init__(
        self,
        pairs: PairRegistry,
        paths: dict[str, PricePath],
        fees: dict[str, Fees],
        ids: IdFactory,
        clock: Callable[[], float],
        fill_fractions: tuple[Decimal, ...] = (),
    ):
        self.pairs = pairs
        self.paths = paths
        self.fees = fees
        self.ids = ids
        self.clock = clock
        self.fill_fractions = fill_fractions
        self.system_status = "online"
        self.accounts: dict[str, Account] = {}
        self.listeners: list[Callable[[Execution], None]] = []
        self._seq = 0
        self._delayed: list[tuple[float, str, OrderRequest]] = []
        self.dropped_late: list[OrderRequest] = []  # delayed orders whose deadline passed before acceptance

    # -- accounts and marks ------------------------------------------------------------------------------

    def open_account(self, key: str, balances: dict[str, Decimal]) -> Account:
        """Create an account for an API key with starting balances."""
        self.accounts[key] = Account(key, dict(balances))
        return self.accounts[key]

    def account(self, key: str) -> Account:
        """The account of an API key."""
        return self.accounts[key]

    def mark(self, pair: PairRules) -> Decimal:
        """The pair's current mark price."""
        return self.paths[pair.key].mark

    def set_mark(self, pair: PairRules, price: Decimal) -> None:
        """Jump a pair's mark and let resting orders react to it."""
        self.paths[pair.key].set(price)
        self._match_pair(pair)

    def step(self, pair: PairRules, steps: int = 1) -> Decimal:
        """Advance a pair's price path ``steps`` times, matching after each step."""
        for _ in range(steps):
            self.paths[pair.key].step()
            self._match_pair(pair)
        return self.mark(pair)

    # -- order entry -----------------------------------------------------------------------------------------

    def check(self, key: str, req: OrderRequest) -> None:
        """Everything AddOrder checks against state; raises ``KrakenError`` (also used by ``validate=true``)."""
        now = self.clock()
        if self.system_status == "maintenance":
            raise KrakenError(E.SERVICE_UNAVAILABLE)
        if self.system_status == "cancel_only":
            raise KrakenError(E.CANCEL_ONLY)
        if self.system_status == "post_only" and not req.post_only:
            raise KrakenError(E.POST_ONLY)
        if req.deadline is not None and now > req.deadline:
            raise KrakenError(E.DEADLINE_ELAPSED)
        account = self.accounts[key]
        if req.cl_ord_id and any(o.is_open and o.request.cl_ord_id == req.cl_ord_id for o in account.orders.values()):
            raise KrakenError(E.DUPLICATE_CL_ORD_ID)
        costmin = req.pair.costmin
        if req.ordertype is OrderType.MARKET and costmin is not None and req.volume * self.mark(req.pair) < costmin:
            raise KrakenError(E.COST_MINIMUM)
        asset, need = self._hold(req, req.volume)
        if need > self.available(key, asset):
            raise KrakenError(E.INSUFFICIENT_FUNDS)

    def place(self, key: str, req: OrderRequest) -> SimOrder:
        """Accept an order: pending_new, new, then whatever the current mark does to it."""
        self.check(key, req)
        now = self.clock()
        self._seq += 1
        order = SimOrder(self.ids.order_txid(), key, req, now, self._seq, status="pending")
        self.accounts[key].orders[order.txid] = order
        self._emit(ObservationKind.PENDING_NEW, order)
        order.status = "open"
        self._emit(ObservationKind.NEW, order)
        self._work(order, fresh=True)
        return order

    def place_later(self, key: str, req: OrderRequest, delay: float) -> None:
        """Accept an order only after ``delay`` seconds of simulator time (the delayed-acceptance fault)."""
        self._delayed.append((self.clock() + delay, key, req))

    def describe(self, req: OrderRequest) -> str:
        """``descr.order`` as Kraken words it, e.g. ``sell 0.10000000 XBTUSD @ stop loss 55.0 -> limit 54.0``."""
        pair = req.pair
        vol = f"{req.volume:.{pair.lot_decimals}f}"
        head = f"{req.side} {vol} {pair.altname} @ "
        p = lambda d: f"{d:.{pair.pair_decimals}f}"  # noqa: E731
        t = req.ordertype
        if t is OrderType.MARKET:
            return head + "market"
        if t is OrderType.LIMIT:
            return head + f"limit {p(req.price)}"
        words = "stop loss" if t in (OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT) else "take profit"
        text = head + f"{words} {p(req.price)}"
        if req.price2 is not None:
            text += f" -> limit {p(req.price2)}"
        return text

    # -- cancellation ----------------------------------------------------------------------------------------

    def cancel_targets(self, key: str, txid: str | None = None, cl_ord_id: str | None = None) -> list[SimOrder]:
        """The open orders CancelOrder would cancel: by txid, by userref (every open order carrying it) or by
        cl_ord_id. Raises ``EOrder:Unknown order`` when a txid / cl_ord_id names nothing open."""
        if self.system_status == "maintenance":
            raise KrakenError(E.SERVICE_UNAVAILABLE)
        account = self.accounts[key]
        if cl_ord_id is None and txid is not None and txid.lstrip("-").isdigit():
            return [o for o in self._open_orders(account) if o.request.userref == int(txid)]
        if cl_ord_id is not None:
            targets = [o for o in self._open_orders(account) if o.request.cl_ord_id == cl_ord_id]
        else:
            order = account.orders.get(txid or "")
            targets = [order] if order is not None and order.is_open else []
        if not targets:
            raise KrakenError(E.UNKNOWN_ORDER)
        return targets

    def cancel(self, orders: list[SimOrder]) -> list[SimOrder]:
        """Cancel these open orders (``reason: User requested``)."""
        return [self._close(o, "canceled", "User requested") for o in orders if o.is_open]

    def cancel_all(self, key: str) -> list[SimOrder]:
        """CancelAll: cancel every open order of the account."""
        account = self.accounts[key]
        return [self._close(o, "canceled", "User requested") for o in self._open_orders(account)]

    def arm_dead_man(self, key: str, timeout: int) -> float | None:
        """CancelAllOrdersAfter: arm (or with 0 disarm) the account's switch; returns the trigger time."""
        account = self.accounts[key]
        account.dead_man_at = self.clock() + timeout if timeout > 0 else None
        return account.dead_man_at

    # -- time ----------------------------------------------------------------------------------------------------

    def tick(self) -> None:
        """Run what simulator time makes due: delayed acceptances, order expiry, dead man's switches."""
        now = self.clock()
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
        for account in self.accounts.values():
            for order in self._open_orders(account):
                if order.request.expiretm and now >= order.request.expiretm:
                    self._close(order, "expired", None)
            if account.dead_man_at is not None and now >= account.dead_man_at:
                account.dead_man_at = None  # Kraken disarms the switch once it has fired
                for order in self._open_orders(account):
                    self._close(order, "canceled", "User requested")

    # -- balances ---------------------------------------------------------------------------------------------

    def available(self, key: str, asset: str) -> Decimal:
        """Balance minus what open orders hold (Kraken's ``hold_trade``)."""
        account = self.accounts[key]
        return account.balances.get(asset, ZERO) - self.held(key, asset)

    def held(self, key: str, asset: str) -> Decimal:
        """What the account's open orders hold of ``asset``."""
        total = ZERO
        for order in self._open_orders(self.accounts[key]):
            held_asset, amount = self._hold(order.request, order.remaining)
            if held_asset == asset:
                total += amount
        return total

    def _hold(self, req: OrderRequest, volume: Decimal) -> tuple[str, Decimal]:
        if req.side is Side.SELL:
            return req.pair.base, volume
        price = req.limit_price or req.trigger_price or self.mark(req.pair)
        return req.pair.quote, volume * price * (1 + self.fees[req.pair.key].taker_pct / 100)

    # -- matching --------------------------------------------------------------------------------------------

    def _open_orders(self, account: Account) -> list[SimOrder]:
        return sorted((o for o in account.orders.values() if o.is_open), key=lambda o: o.seq)

    def _match_pair(self, pair: PairRules) -> None:
        orders = [o for a in self.accounts.values() for o in a.orders.values() if o.is_open and o.pair.key == pair.key]
        for order in sorted(orders, key=lambda o: o.seq):
            self._work(order, fresh=False)

    def _work(self, order: SimOrder, fresh: bool) -> None:
        mark = self.mark(order.pair)
        req = order.request
        if order.awaiting_trigger:
            if not self._trigger_hit(req, mark):
                return
            order.triggered = True
            fresh = True  # the triggered order is new to the book now
        limit = req.limit_price
        if limit is None:
            self._fill(order, order.remaining, mark, maker=False)
            return
        crossed = mark <= limit if req.side is Side.BUY else mark >= limit
        if not crossed:
            return
        if fresh and req.post_only:
            self._close(order, "canceled", "Post only order")  # a post-only order never takes liquidity
            return
        self._fill(order, self._next_fill_volume(order), mark if fresh else limit, maker=not fresh)

    @staticmethod
    def _trigger_hit(req: OrderRequest, mark: Decimal) -> bool:
        stop = req.ordertype in (OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT)
        rising = (req.side is Side.BUY) == stop  # buy stops and sell take-profits trigger on the way up
        return mark >= req.price if rising else mark <= req.price

    def _next_fill_volume(self, order: SimOrder) -> Decimal:
        n = len(order.trades)  # fills so far pick the next fraction
        if n >= len(self.fill_fractions):
            return order.remaining
        volume = order.pair.round_volume(order.request.volume * self.fill_fractions[n])
        return volume if ZERO < volume < order.remaining else order.remaining

    def _fill(self, order: SimOrder, volume: Decimal, price: Decimal, maker: bool) -> None:
        pair = order.pair
        now = self.clock()
        cost = (volume * price).quantize(_quantum(pair.cost_decimals), rounding=ROUND_HALF_UP)
        fees = self.fees[pair.key]
        pct = fees.maker_pct if maker else fees.taker_pct
        fee = (cost * pct / 100).quantize(_quantum(pair.cost_decimals), rounding=ROUND_HALF_UP)
        balances = self.accounts[order.key].balances
        sign = 1 if order.side is Side.BUY else -1
        balances[pair.base] = balances.get(pair.base, ZERO) + sign * volume
        balances[pair.quote] = balances.get(pair.quote, ZERO) - sign * cost - fee
        trade = SimTrade(
            self.ids.trade_txid(),
            self.ids.trade_number(),
            order.txid,
            pair,
            now,
            order.side,
            order.request.ordertype,
            price,
            volume,
            cost,
            fee,
            maker,
        )
        order.vol_exec += volume
        order.cost += cost
        order.fee += fee
        order.trades.append(trade)
        self.accounts[order.key].trades[trade.txid] = trade
        self._emit(ObservationKind.TRADE, order, trade)
        if order.remaining <= ZERO:
            self._close(order, "closed", None)

    def _close(self, order: SimOrder, status: str, reason: str | None) -> SimOrder:
        order.status = status
        order.reason = reason
        order.closetm = self.clock()
        kind = CLOSING_KINDS[status]
        self._emit(kind, order)
        return order

    def _emit(self, kind: ObservationKind, order: SimOrder, trade: SimTrade | None = None) -> None:
        execution = Execution(kind, order, trade, self.clock())
        for listener in list(self.listeners):
            listener(execution)
