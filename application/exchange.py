"""The ExchangePort: what the application needs from a venue, in domain-shaped values (no Kraken dicts).

The Kraken adapter (infrastructure/kraken) implements it; the built-in simulator speaks Kraken's wire protocol, so
the same adapter talks to both. Tests of policies use an in-memory fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from execledger.domain.pairs import PairRegistry
from execledger.domain.values import OrderType, Side


class ErrorClass(StrEnum):
    """How one venue error or transport failure is to be treated (the adapter's one policy table decides)."""

    RETRYABLE = "retryable"  # transient: retry reads and cancels with backoff
    RATE_LIMITED = "rate_limited"  # over a counter: wait for decay, then retry reads and cancels
    PERMANENT = "permanent"  # the request is wrong or not allowed: do not retry
    AMBIGUOUS = "ambiguous"  # a write may or may not have taken effect: resolve by evidence, never resend
    NOT_FOUND = "not_found"  # the order is not open (any more): query to learn its final state


class PlaceStatus(StrEnum):
    ACKNOWLEDGED = "acknowledged"  # txid known: the order was accepted
    REJECTED = "rejected"  # definitive: not placed
    UNKNOWN = "unknown"  # may or may not be placed: resolve by cl_ord_id lookup / deadline
    NOT_SENT = "not_sent"  # certainly never left this process (breaker open, throttle wait exceeded)


class VenueOrderStatus(StrEnum):
    """Kraken's order statuses (REST ``status`` and WS ``order_status`` mapped onto one vocabulary)."""

    PENDING = "pending"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"  # REST "closed" with vol_exec > 0
    CANCELED = "canceled"
    EXPIRED = "expired"


@dataclass(frozen=True)
class OrderRequest:
    """One AddOrder. ``price`` is the limit price (limit) or trigger price (stop/take-profit); ``price2`` the limit
    price of a *-limit triggered order. Values must already be rounded by the pair's rules."""

    cl_ord_id: str
    pair: str  # AssetPairs key, e.g. XXBTZUSD
    side: Side
    order_type: OrderType
    volume: Decimal
    price: Decimal | None = None
    price2: Decimal | None = None
    deadline: datetime | None = None
    post_only: bool = False
    reduce_only: bool = False
    validate: bool = False


@dataclass(frozen=True)
class PlaceResult:
    status: PlaceStatus
    txid: str | None = None
    error: str | None = None  # the venue's error string or a transport description (never secrets)
    error_class: ErrorClass | None = None


@dataclass(frozen=True)
class CancelResult:
    count: int  # orders canceled by this call
    pending: bool = False  # the venue says the cancel is still pending
    not_found: bool = False  # the order is not open (filled, canceled, or unknown): query its final state
    error: str | None = None


@dataclass(frozen=True)
class VenueTrade:
    trade_id: str
    txid: str  # the order the trade belongs to
    pair: str
    side: Side
    price: Decimal
    volume: Decimal
    cost: Decimal
    fee: Decimal
    fee_asset: str
    executed_at: datetime
    maker: bool | None = None


@dataclass(frozen=True)
class VenueOrder:
    """An order as the venue reports it (QueryOrders / OpenOrders / ClosedOrders)."""

    txid: str
    cl_ord_id: str | None
    pair: str
    side: Side
    order_type: str
    status: VenueOrderStatus
    volume: Decimal
    volume_executed: Decimal
    average_price: Decimal | None
    cost: Decimal
    fee: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    opened_at: datetime | None
    closed_at: datetime | None
    reason: str | None = None
    trade_ids: tuple[str, ...] = ()


class ObservationKind(StrEnum):
    """What an execution report says happened (WS v2 ``exec_type``, or a change seen by REST polling)."""

    PENDING_NEW = "pending_new"
    NEW = "new"
    TRADE = "trade"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    AMENDED = "amended"
    RESTATED = "restated"
    STATUS = "status"


@dataclass(frozen=True)
class ExecutionObservation:
    """One thing the venue told us about one order, from the WS stream or from REST polling."""

    kind: ObservationKind
    txid: str
    cl_ord_id: str | None
    order_status: VenueOrderStatus | None
    source: str  # "ws" | "rest" | "reconciliation"
    timestamp: datetime | None = None
    trade_id: str | None = None
    last_qty: Decimal | None = None
    last_price: Decimal | None = None
    fee: Decimal | None = None
    fee_asset: str | None = None
    cum_qty: Decimal | None = None
    avg_price: Decimal | None = None
    reason: str | None = None
    sequence: int | None = None
    extra: dict = field(default_factory=dict)


class ExchangePort(Protocol):
    """Everything the process managers and recovery need from the venue."""

    async def place(self, request: OrderRequest) -> PlaceResult:
        """Send one AddOrder exactly once. Never resent: an ambiguous outcome is reported as UNKNOWN."""
        ...

    async def cancel(self, *, txid: str | None = None, cl_ord_id: str | None = None) -> CancelResult:
        """Cancel one order (retried with backoff: cancels are idempotent in effect)."""
        ...

    async def cancel_all(self) -> int: ...

    async def cancel_all_after(self, timeout_s: int) -> datetime | None:
        """Arm (or with 0 disarm) the dead-man's switch; returns the trigger time, None when disarmed."""
        ...

    async def query_orders(self, txids: Sequence[str]) -> dict[str, VenueOrder]:
        """Orders by txid, batched (up to 50 per call) so the cost does not grow with the number of orders."""
        ...

    async def find_by_cl_ord_id(self, cl_ord_id: str) -> VenueOrder | None:
        """Look in open orders, then closed orders: None means not found (yet)."""
        ...

    async def open_orders(self) -> list[VenueOrder]: ...

    async def trades_since(self, since: datetime | None) -> list[VenueTrade]: ...

    async def asset_pairs(self) -> PairRegistry: ...

    def executions(self) -> AsyncIterator[ExecutionObservation]:
        """Execution observations: WS v2 ``executions`` first, REST polling while the stream is down."""
        ...
