"""An in-memory ExchangePort for engine and service tests: no network, no sleeps, every venue move explicit."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from execledger.application.exchange import (
    CancelResult,
    ExecutionObservation,
    ObservationKind,
    OrderRequest,
    PlaceResult,
    PlaceStatus,
    VenueOrder,
    VenueOrderStatus,
    VenueTrade,
)
from execledger.infrastructure.pairs import load_default_pairs


class FakeExchange:
    """Orders rest until the test fills, cancels or vanishes them; each move queues an execution observation."""

    def __init__(self, clock):
        self.clock = clock
        self.orders: dict[str, VenueOrder] = {}
        self.requests: dict[str, OrderRequest] = {}
        self.trades: list[VenueTrade] = []
        self.add_order_calls: Counter[str] = Counter()  # per cl_ord_id: the "never twice" check
        self.cancel_calls: Counter[str] = Counter()
        self.script: list[PlaceResult | str] = []  # next place() outcomes: a PlaceResult, or "ack_but_unknown"
        self.queue: asyncio.Queue[ExecutionObservation] = asyncio.Queue()
        self.deadman: list[int] = []
        self._ids = itertools.count(1)

    # --- ExchangePort --------------------------------------------------------------------------------------

    async def place(self, request: OrderRequest) -> PlaceResult:
        self.add_order_calls[request.cl_ord_id] += 1
        scripted = self.script.pop(0) if self.script else None
        if isinstance(scripted, PlaceResult):
            return scripted
        txid = f"O{next(self._ids):05d}-FAKE-ORDER"
        self.requests[txid] = request
        self.orders[txid] = VenueOrder(
            txid=txid,
            cl_ord_id=request.cl_ord_id,
            pair=request.pair,
            side=request.side,
            order_type=request.order_type.value,
            status=VenueOrderStatus.OPEN,
            volume=request.volume,
            volume_executed=Decimal(0),
            average_price=None,
            cost=Decimal(0),
            fee=Decimal(0),
            limit_price=request.price,
            stop_price=None,
            opened_at=self.clock.now(),
            closed_at=None,
        )
        if scripted == "ack_but_unknown":
            return PlaceResult(PlaceStatus.UNKNOWN, error="HTTP 502 after execute")
        return PlaceResult(PlaceStatus.ACKNOWLEDGED, txid=txid)

    async def cancel(self, *, txid=None, cl_ord_id=None) -> CancelResult:
        order = self.orders.get(txid) if txid else self.by_cl_ord_id(cl_ord_id)
        self.cancel_calls[txid or cl_ord_id] += 1
        if order is None or order.status in (
            VenueOrderStatus.FILLED,
            VenueOrderStatus.CANCELED,
            VenueOrderStatus.EXPIRED,
        ):
            return CancelResult(count=0, not_found=True, error="EOrder:Unknown order")
        self._set(order.txid, status=VenueOrderStatus.CANCELED, reason="User requested")
        return CancelResult(count=1)

    async def cancel_all(self) -> int:
        return 0

    async def cancel_all_after(self, timeout_s: int) -> datetime | None:
        self.deadman.append(timeout_s)
        return None

    async def query_orders(self, txids):
        return {t: self.orders[t] for t in txids if t in self.orders}

    async def find_by_cl_ord_id(self, cl_ord_id):
        return self.by_cl_ord_id(cl_ord_id)

    async def open_orders(self):
        return [
            o for o in self.orders.values() if o.status in (VenueOrderStatus.OPEN, VenueOrderStatus.PARTIALLY_FILLED)
        ]

    async def trades_since(self, since):
        return [t for t in self.trades if since is None or t.executed_at >= since]

    async def asset_pairs(self):
        return load_default_pairs()

    async def executions(self):
        while True:
            yield await self.queue.get()

    # --- venue moves (test controls) -----------------------------------------------------------------------

    def by_cl_ord_id(self, cl_ord_id):
        return next((o for o in self.orders.values() if o.cl_ord_id == cl_ord_id), None)

    def live(self) -> list[VenueOrder]:
        return [
            o for o in self.orders.values() if o.status in (VenueOrderStatus.OPEN, VenueOrderStatus.PARTIALLY_FILLED)
        ]

    def _set(self, txid, **changes) -> VenueOrder:
        order = replace(self.orders[txid], **changes)
        self.orders[txid] = order
        kind = {
            VenueOrderStatus.CANCELED: ObservationKind.CANCELED,
            VenueOrderStatus.EXPIRED: ObservationKind.EXPIRED,
        }.get(order.status)
        if kind:
            self.queue.put_nowait(
                ExecutionObservation(
                    kind=kind,
                    txid=txid,
                    cl_ord_id=order.cl_ord_id,
                    order_status=order.status,
                    source="ws",
                    cum_qty=order.volume_executed,
                    reason=order.reason,
                )
            )
        return order

    def fill(self, txid: str, qty: str | Decimal, price: str | Decimal, fee: str = "0") -> VenueTrade:
        order = self.orders[txid]
        qty, price = Decimal(qty), Decimal(price)
        executed = order.volume_executed + qty
        assert executed <= order.volume, "the fake venue never overfills"
        trade = VenueTrade(
            trade_id=f"T{next(self._ids):05d}-FAKE-TRADE",
            txid=txid,
            pair=order.pair,
            side=order.side,
            price=price,
            volume=qty,
            cost=qty * price,
            fee=Decimal(fee),
            fee_asset="ZUSD",
            executed_at=self.clock.now(),
        )
        self.trades.append(trade)
        status = VenueOrderStatus.FILLED if executed == order.volume else VenueOrderStatus.PARTIALLY_FILLED
        cost = order.cost + qty * price
        self.orders[txid] = replace(
            order,
            volume_executed=executed,
            cost=cost,
            average_price=cost / executed,
            fee=order.fee + Decimal(fee),
            status=status,
            trade_ids=(*order.trade_ids, trade.trade_id),
        )
        self.queue.put_nowait(
            ExecutionObservation(
                kind=ObservationKind.TRADE,
                txid=txid,
                cl_ord_id=order.cl_ord_id,
                order_status=status,
                source="ws",
                timestamp=trade.executed_at,
                trade_id=trade.trade_id,
                last_qty=qty,
                last_price=price,
                fee=Decimal(fee),
                fee_asset="ZUSD",
                cum_qty=executed,
            )
        )
        return trade

    def vanish(self, txid: str) -> None:
        """The venue cancels an order nobody asked it to cancel (e.g. a stop lost in an incident)."""
        self._set(txid, status=VenueOrderStatus.CANCELED, reason="Order vanished")

    def drain(self) -> list[ExecutionObservation]:
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out
