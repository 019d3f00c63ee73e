"""An in-memory ExchangePort for engine and service tests: no network, no sleeps, every venue move explicit."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from execledger.application.ports import (
    AmendResult,
    CancelResult,
    EntryBlock,
    ErrorClass,
    FillReport,
    OrderRequest,
    OrderStatusReport,
    PlaceResult,
    PlaceStatus,
    PriceTick,
    VenueOrderStatus,
    VenueReport,
)
from execledger.infrastructure.pairs import load_default_pairs

LIVE = (VenueOrderStatus.OPEN, VenueOrderStatus.PARTIALLY_FILLED)


class FakeExchange:
    """Orders rest until the test fills, cancels or vanishes them; each move queues the venue's reports."""

    def __init__(self, clock):
        self.clock = clock
        self.orders: dict[str, OrderStatusReport] = {}
        self.requests: dict[str, OrderRequest] = {}
        self.trades: list[FillReport] = []
        self.add_order_calls: Counter[str] = Counter()  # per cl_ord_id: the "never twice" check
        self.cancel_calls: Counter[str] = Counter()
        self.script: list[PlaceResult | str] = []  # next place() outcomes: a PlaceResult, or "ack_but_unknown"
        self.queue: asyncio.Queue[VenueReport] = asyncio.Queue()
        self.deadman: list[int] = []
        self.block: EntryBlock | None = None  # set to make the venue refuse new orders (breaker open)
        self.balances: dict[str, Decimal] = {"XXBT": Decimal(1000), "ZUSD": Decimal(10_000_000)}  # available
        self.amend_calls: Counter[str] = Counter()
        self.amend_script: list[AmendResult] = []  # next amend() outcomes (otherwise the amend takes effect)
        self.prices: dict[str, Decimal] = {}  # pair key -> last public price (test controls)
        self._ids = itertools.count(1)

    # --- ExchangePort --------------------------------------------------------------------------------------

    async def place(self, request: OrderRequest, *, still_wanted=None) -> PlaceResult:
        withdrawn = still_wanted() if still_wanted is not None else None
        if withdrawn is not None:  # as the adapter: asked when the call's turn comes, nothing leaves
            return PlaceResult(PlaceStatus.NOT_SENT, error=f"withdrawn: {withdrawn}", error_class=ErrorClass.RETRYABLE)
        self.add_order_calls[request.client_order_id] += 1
        scripted = self.script.pop(0) if self.script else None
        if isinstance(scripted, PlaceResult):
            return scripted
        txid = f"O{next(self._ids):05d}-FAKE-ORDER"
        self.requests[txid] = request
        self.orders[txid] = OrderStatusReport(
            venue_order_id=txid,
            client_order_id=request.client_order_id,
            status=VenueOrderStatus.OPEN,
            source="rest",
            pair=request.pair,
            side=request.side,
            order_type=request.order_type.value,
            quantity=request.quantity,
            filled_qty=Decimal(0),
            commission=Decimal(0),
            limit_price=request.limit_price,
            trigger_price=request.trigger_price,
            ts_accepted=self.clock.now(),
        )
        if scripted == "ack_but_unknown":
            return PlaceResult(PlaceStatus.UNKNOWN, error="HTTP 502 after execute")
        return PlaceResult(PlaceStatus.ACKNOWLEDGED, venue_order_id=txid)

    async def cancel(self, *, venue_order_id=None, client_order_id=None) -> CancelResult:
        order = self.orders.get(venue_order_id) if venue_order_id else self.by_client_id(client_order_id)
        self.cancel_calls[venue_order_id or client_order_id] += 1
        if order is None or order.status not in LIVE:
            return CancelResult(count=0, not_found=True, error="EOrder:Unknown order")
        self._set(order.venue_order_id, status=VenueOrderStatus.CANCELED, reason="User requested")
        return CancelResult(count=1)

    async def amend(self, *, quantity, venue_order_id=None, client_order_id=None) -> AmendResult:
        order = self.orders.get(venue_order_id) if venue_order_id else self.by_client_id(client_order_id)
        self.amend_calls[venue_order_id or client_order_id] += 1
        if self.amend_script:
            return self.amend_script.pop(0)
        if order is None or order.status not in LIVE:
            return AmendResult(PlaceStatus.REJECTED, error="EOrder:Unknown order", error_class=ErrorClass.NOT_FOUND)
        self.orders[order.venue_order_id] = replace(order, quantity=Decimal(quantity))
        return AmendResult(PlaceStatus.ACKNOWLEDGED, amend_id=f"A{next(self._ids):05d}")

    async def last_prices(self, pairs):
        return {p: PriceTick(p, self.prices[p], self.clock.now()) for p in pairs if p in self.prices}

    async def price_ticks(self, pairs):
        raise NotImplementedError("the fake has no price stream")
        yield  # pragma: no cover

    async def cancel_all(self) -> int:
        return 0

    async def cancel_all_after(self, timeout_s: int) -> datetime | None:
        self.deadman.append(timeout_s)
        return None

    async def query_orders(self, venue_order_ids):
        return {t: self.orders[t] for t in venue_order_ids if t in self.orders}

    async def find_by_client_order_id(self, client_order_id):
        return self.by_client_id(client_order_id)

    async def open_orders(self):
        return [o for o in self.orders.values() if o.status in LIVE]

    async def fills_since(self, since):
        return [t for t in self.trades if since is None or t.ts_event >= since]

    async def asset_pairs(self):
        return load_default_pairs()

    async def available_balances(self):
        return dict(self.balances)

    async def server_time(self):
        return self.clock.now()

    def entry_block(self) -> EntryBlock | None:
        return self.block

    async def wait_for_order_capacity(self, pair, max_wait_s=None, *, urgent=False, reserve=None) -> bool:
        return True

    def order_capacity(self, pair, within_s):
        return None

    async def executions(self):
        while True:
            yield await self.queue.get()

    # --- venue moves (test controls) -----------------------------------------------------------------------

    def by_client_id(self, client_order_id):
        return next((o for o in self.orders.values() if o.client_order_id == client_order_id), None)

    def live(self) -> list[OrderStatusReport]:
        return [o for o in self.orders.values() if o.status in LIVE]

    def _set(self, txid, **changes) -> OrderStatusReport:
        order = replace(self.orders[txid], **changes)
        self.orders[txid] = order
        if order.status in (VenueOrderStatus.CANCELED, VenueOrderStatus.EXPIRED):
            self.queue.put_nowait(replace(order, source="ws", ts_last=self.clock.now()))
        return order

    def fill(
        self, txid: str, qty: str | Decimal, price: str | Decimal, fee: str = "0", fee_asset: str = "ZUSD"
    ) -> FillReport:
        order = self.orders[txid]
        qty, price = Decimal(qty), Decimal(price)
        executed = order.filled_qty + qty
        assert executed <= order.quantity, "the fake venue never overfills"
        trade = FillReport(
            trade_id=f"T{next(self._ids):05d}-FAKE-TRADE",
            venue_order_id=txid,
            last_qty=qty,
            last_px=price,
            commission=Decimal(fee),
            commission_asset=fee_asset,
            ts_event=self.clock.now(),
            pair=order.pair,
            side=order.side,
            source="rest",
            client_order_id=order.client_order_id,
        )
        self.trades.append(trade)
        status = VenueOrderStatus.FILLED if executed == order.quantity else VenueOrderStatus.PARTIALLY_FILLED
        cost = (order.avg_px or Decimal(0)) * order.filled_qty + qty * price
        self.orders[txid] = replace(
            order,
            filled_qty=executed,
            avg_px=cost / executed,
            commission=order.commission + Decimal(fee),
            status=status,
            trade_ids=(*order.trade_ids, trade.trade_id),
        )
        self.queue.put_nowait(replace(trade, source="ws"))
        self.queue.put_nowait(replace(self.orders[txid], source="ws", ts_last=self.clock.now()))
        return trade

    def vanish(self, txid: str) -> None:
        """The venue cancels an order nobody asked it to cancel (e.g. a stop lost in an incident)."""
        self._set(txid, status=VenueOrderStatus.CANCELED, reason="Order vanished")

    def drain(self) -> list[VenueReport]:
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out
