"""Ports the application layer needs from the outside world: the clock and the venue, in domain-shaped values.

Venue facts enter as two report types (NautilusTrader's vocabulary): an ``OrderStatusReport`` (an order's
life-cycle state as the venue sees it) and a ``FillReport`` (one trade). The Kraken adapter
(``infrastructure/kraken``) produces them from REST and WS v2; the built-in simulator speaks Kraken's wire
protocol, so the same adapter talks to both. Policy and engine tests use an in-memory fake (``tests/fakes.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from execledger.domain.pairs import PairRegistry
from execledger.domain.values import OrderRole, OrderType, Side

# --- time ----------------------------------------------------------------------------------------------------


class Clock(Protocol):
    """The one clock: policies ask it for the time, tests substitute a manual one."""

    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


# --- outcomes of our calls ------------------------------------------------------------------------------------


class ErrorClass(StrEnum):
    """How one venue error or transport failure is to be treated (the adapter's one policy table decides)."""

    RETRYABLE = "retryable"  # transient: retry reads and cancels with backoff
    RATE_LIMITED = "rate_limited"  # over a counter: wait for decay, then retry reads and cancels
    PERMANENT = "permanent"  # the request is wrong or not allowed: do not retry
    AMBIGUOUS = "ambiguous"  # a write may or may not have taken effect: resolve by evidence, never resend
    NOT_FOUND = "not_found"  # the order is not open (any more): query to learn its final state
    NOT_EXECUTED = "not_executed"  # a write the venue refused before executing anything: safe to send again,
    # after a wait (nonce, rate limit, market gate) or corrected (funds: resized; precision: re-rounded)


class VenueError(Exception):
    """A venue call that produced no usable result, as it crosses the port: ``error_class`` says how to treat it
    (the adapter's one error table decides; for Kraken ``infrastructure/kraken/errors.py``). Anything else an
    adapter raises is a bug and propagates."""

    error_class: ErrorClass

    def __init__(self, message: str, error_class: ErrorClass):
        super().__init__(message)
        self.error_class = error_class


class Correction(StrEnum):
    """What a NOT_EXECUTED write needs before it is sent again."""

    NONE = "none"  # just wait (a nonce, a rate limit, a market gate, a deadline)
    REROUND = "reround"  # the venue's price/volume rules changed: reload them and round again
    RESIZE = "resize"  # not enough funds: size to what the account holds
    # Overtaken on the way (calls signed in nonce order travel on separate connections and may arrive out of
    # order; REFERENCE.md [S-NW]) or another signer went ahead: sent again at once with a fresh nonce, the first
    # time; a second refusal in a row waits like any other.
    FRESH_NONCE = "fresh_nonce"
    # The venue read the AddOrder's ``deadline`` on a clock of its own that is not the ledger's (``EService:Deadline
    # elapsed`` at once, or a deadline it finds too far ahead): read the venue's clock, give deadlines on it from now
    # on, and send again at once the first time (break test 2026-12-02: after a venue clock step every AddOrder was
    # refused until a restart).
    VENUE_CLOCK = "venue_clock"


class PlaceStatus(StrEnum):
    ACKNOWLEDGED = "acknowledged"  # venue_order_id known: the order was accepted
    REJECTED = "rejected"  # definitive: not placed
    UNKNOWN = "unknown"  # may or may not be placed: resolve by client_order_id lookup / deadline
    NOT_SENT = "not_sent"  # certainly never left this process (breaker open, throttle wait exceeded)


@dataclass(frozen=True)
class OrderRequest:
    """One new order for the venue. Values must already be rounded by the pair's rules (``domain/pairs.py``).

    ``limit_price`` is the limit of a limit order (or of a ``*-limit`` triggered order); ``trigger_price`` the
    trigger of a stop-loss / take-profit. The adapter maps them onto Kraken's ``price``/``price2``
    (REFERENCE.md 3.2)."""

    client_order_id: str
    pair: str  # AssetPairs key, e.g. XXBTZUSD
    side: Side
    order_type: OrderType
    quantity: Decimal  # base currency
    limit_price: Decimal | None = None
    trigger_price: Decimal | None = None
    deadline: datetime | None = None  # AddOrder ``deadline``: the venue refuses the request after it
    valid_for_s: float | None = None  # seconds from the decision to its ``deadline`` (the adapter waits no longer)
    post_only: bool = False
    reduce_only: bool = False
    validate: bool = False
    fee_in_quote: bool = False  # exits: the fee is paid in the quote, so the base held covers the whole quantity
    role: OrderRole = OrderRole.ENTRY  # an entry or an exit: the error table can treat a refusal of each differently


@dataclass(frozen=True)
class PlaceResult:
    status: PlaceStatus
    venue_order_id: str | None = None
    error: str | None = None  # the venue's error string or a transport description (never secrets)
    error_class: ErrorClass | None = None
    correction: Correction = Correction.NONE  # REJECTED + NOT_EXECUTED: what to correct before sending again

    @property
    def not_executed(self) -> bool:
        """Refused before anything executed: the same order may be sent again (after ``correction``)."""
        return self.status is PlaceStatus.REJECTED and self.error_class is ErrorClass.NOT_EXECUTED


@dataclass(frozen=True)
class CancelResult:
    count: int  # orders canceled by this call
    pending: bool = False  # the venue says the cancel is still pending
    not_found: bool = False  # the order is not open (filled, canceled, or unknown): query its final state
    error: str | None = None


@dataclass(frozen=True)
class AmendResult:
    """The outcome of one AmendOrder (REFERENCE.md 3.5: in place, ids unchanged). ACKNOWLEDGED: the venue took the
    new quantity; REJECTED: it did not (the order keeps its quantity); UNKNOWN: read the order to learn which (an
    amend is an absolute quantity, so sending it again is harmless)."""

    status: PlaceStatus
    amend_id: str | None = None
    error: str | None = None
    error_class: ErrorClass | None = None


@dataclass(frozen=True)
class PriceTick:
    """A pair's last traded price on the venue's public market data (WS v2 ``ticker``/``trade``, REST
    ``Ticker`` field ``c``: last trade closed [price, lot volume]; rows keyed by the AssetPairs key, REFERENCE.md
    section 2)."""

    pair: str  # AssetPairs key
    price: Decimal
    at: datetime  # when it was observed (the venue's time where the message carries one)


# --- venue facts -------------------------------------------------------------------------------------------------


class VenueOrderStatus(StrEnum):
    """Kraken's order statuses (REST ``status`` and WS ``order_status`` mapped onto one vocabulary)."""

    PENDING = "pending"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"  # REST "closed" with vol_exec > 0
    CANCELED = "canceled"
    EXPIRED = "expired"


VENUE_TERMINAL = frozenset({VenueOrderStatus.FILLED, VenueOrderStatus.CANCELED, VenueOrderStatus.EXPIRED})


@dataclass(frozen=True)
class FillReport:
    """One trade of one of our orders. ``trade_id`` is Kraken's trade txid (WS v2 ``exec_id``), so a fill seen on
    the stream and by REST has one id (REFERENCE.md 3.8, 6.2). ``commission_asset`` is the asset the fee was
    charged in (the quote by default, the base with ``oflags=fcib``)."""

    trade_id: str
    venue_order_id: str
    last_qty: Decimal
    last_px: Decimal
    commission: Decimal
    commission_asset: str
    ts_event: datetime
    pair: str | None = None  # AssetPairs key
    side: Side | None = None
    source: str = "rest"  # "ws" | "rest" | "reconciliation"
    client_order_id: str | None = None
    liquidity_maker: bool | None = None


@dataclass(frozen=True)
class OrderStatusReport:
    """An order's state as the venue reports it (REST QueryOrders/OpenOrders/ClosedOrders, or a WS v2 execution
    record). WS records are sparse: ``quantity``, ``filled_qty`` and the prices are None when the record omits them.
    """

    venue_order_id: str
    client_order_id: str | None
    status: VenueOrderStatus
    source: str = "rest"  # "ws" | "rest" | "reconciliation"
    pair: str | None = None  # AssetPairs key
    side: Side | None = None
    order_type: str | None = None
    quantity: Decimal | None = None
    filled_qty: Decimal | None = None  # cumulative
    avg_px: Decimal | None = None
    commission: Decimal | None = None  # cumulative, in the fee asset
    # The asset the order's fees are charged in, when the report says (REST order info's ``oflags``: ``fcib`` the
    # base, ``fciq`` the quote). REST trades name none: their fills take it from here, as the stream names it.
    commission_asset: str | None = None
    limit_price: Decimal | None = None
    trigger_price: Decimal | None = None
    ts_accepted: datetime | None = None  # Kraken ``opentm``
    ts_last: datetime | None = None  # ``closetm``, or the WS record's timestamp
    reason: str | None = None  # Kraken's cancel/expiry reason
    trade_ids: tuple[str, ...] = ()
    sequence: int | None = None  # WS v2 message sequence

    @property
    def leaves_qty(self) -> Decimal | None:
        if self.quantity is None or self.filled_qty is None:
            return None
        return self.quantity - self.filled_qty

    @property
    def is_terminal(self) -> bool:
        return self.status in VENUE_TERMINAL


class StreamState(StrEnum):
    CONNECTED = "connected"  # subscribed and snapshotted: the stream reports everything from now on
    DISCONNECTED = "disconnected"  # reports may be missed until the next CONNECTED: poll REST meanwhile
    GAP = "gap"  # a sequence gap: something was missed, resync over REST


@dataclass(frozen=True)
class StreamEvent:
    """A change of the execution stream's health, yielded between reports so the consumer can resync."""

    state: StreamState
    detail: str = ""


VenueReport = FillReport | OrderStatusReport | StreamEvent


@dataclass(frozen=True)
class EntryBlock:
    """Why AddOrder cannot be sent now (the venue is unavailable: the circuit breaker is open), and when to ask
    again. ``since`` identifies the outage, so a decision not to send is recorded once per order per outage."""

    reason: str
    since: datetime
    retry_in_s: float


StillWanted = Callable[[], str | None]  # None: send it; a reason: do not send it after all


class ExchangePort(Protocol):
    """Everything the process managers and recovery need from the venue."""

    async def place(self, request: OrderRequest, *, still_wanted: StillWanted | None = None) -> PlaceResult:
        """Send one AddOrder exactly once. Never resent: an ambiguous outcome is reported as UNKNOWN.
        ``still_wanted`` is asked at the last moment before the request is signed and sent (after any wait for
        the rate limit or for other calls' turn on the wire): a reason (str) means it is not sent, and the result
        is NOT_SENT with that reason (a HALT applied while an entry waited its turn stops it)."""
        ...

    async def cancel(self, *, venue_order_id: str | None = None, client_order_id: str | None = None) -> CancelResult:
        """Cancel one order (retried with backoff: cancels are idempotent in effect)."""
        ...

    async def amend(
        self, *, quantity: Decimal, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> AmendResult:
        """Change a resting order's total quantity in place (AmendOrder ``order_qty``; never for an entry)."""
        ...

    async def cancel_all(self) -> int: ...

    async def cancel_all_after(self, timeout_s: int) -> datetime | None:
        """Arm (or with 0 disarm) the dead-man's switch; returns the trigger time, None when disarmed."""
        ...

    async def query_orders(self, venue_order_ids: Sequence[str]) -> dict[str, OrderStatusReport]:
        """Orders by venue order id, batched (up to 50 per call) so the cost does not grow with the number."""
        ...

    async def find_by_client_order_id(self, client_order_id: str) -> OrderStatusReport | None:
        """Look in open orders, then closed orders: None means not found (yet)."""
        ...

    async def open_orders(self) -> list[OrderStatusReport]: ...

    async def fills_since(self, since: datetime | None) -> list[FillReport]:
        """Own trades after ``since`` (exclusive), oldest first."""
        ...

    async def asset_pairs(self) -> PairRegistry: ...

    async def available_balances(self) -> dict[str, Decimal]:
        """What the account can spend now, per asset (Kraken's Assets keys): balance minus what open orders hold."""
        ...

    async def server_time(self) -> datetime | None:
        """The venue's clock (None when it cannot be read now)."""
        ...

    def entry_block(self) -> EntryBlock | None:
        """None when AddOrder may be sent now; otherwise why not and when to ask again (cancels are never
        blocked)."""
        ...

    async def wait_for_order_capacity(
        self,
        pair: str,
        max_wait_s: float | None = None,
        *,
        urgent: bool = False,
        reserve: Callable[[], int] | None = None,
    ) -> bool:
        """Wait until the venue's rate limit lets an AddOrder on ``pair`` through (nothing taken); False, at once,
        when that would take longer than ``max_wait_s``. ``urgent`` (a protective leg): it goes before every other
        AddOrder waiting on the pair. ``reserve`` (an entry): how many AddOrders' room must stay free after it, for
        legs that will follow (asked again at every wait, as it changes)."""
        ...

    def order_capacity(self, pair: str, within_s: float) -> int | None:
        """How many AddOrders on ``pair`` the venue's rate limit lets out within ``within_s`` (None: no limit)."""
        ...

    async def last_prices(self, pairs: Sequence[str]) -> dict[str, PriceTick]:
        """The last public trade price of each pair (REST ``Ticker``, one call for all pairs)."""
        ...

    def price_ticks(self, pairs: Sequence[str]) -> AsyncIterator[PriceTick | StreamEvent]:
        """The live public prices of ``pairs`` (WS v2 ``ticker``), and StreamEvents when the feed's health
        changes; while it is down the trading service asks ``last_prices``."""
        ...

    def executions(self) -> AsyncIterator[VenueReport]:
        """The live execution stream (WS v2 ``executions``): reports, and StreamEvents when its health changes.
        It only streams; REST fallback while it is down is the trading service's job. It may also be a
        ``ReportsArrivingTogether``."""
        ...


@runtime_checkable
class ReportsArrivingTogether(Protocol):
    """An execution stream that also hands out, without waiting, the reports that arrived with the one just read
    (what the socket held): the consumer applies them together with no task of its own between the socket and
    the ledger."""

    def __aiter__(self) -> AsyncIterator[VenueReport]: ...

    async def __anext__(self) -> VenueReport: ...

    def arrived(self, limit: int) -> list[VenueReport]:
        """At most ``limit`` reports that are already here, in order (none: an empty list); never waits."""
        ...

    async def aclose(self) -> None:
        """Stop the stream (reading further ends the iteration)."""
        ...


__all__ = [
    "VENUE_TERMINAL",
    "AmendResult",
    "CancelResult",
    "Clock",
    "Correction",
    "EntryBlock",
    "ErrorClass",
    "ExchangePort",
    "FillReport",
    "OrderRequest",
    "OrderStatusReport",
    "PlaceResult",
    "PlaceStatus",
    "PriceTick",
    "ReportsArrivingTogether",
    "StreamEvent",
    "StreamState",
    "SystemClock",
    "VenueError",
    "VenueOrderStatus",
    "VenueReport",
]
