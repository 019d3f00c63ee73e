"""``KrakenExchange``: the ``ExchangePort`` on Kraken Spot REST (and the WS v2 executions stream).

Policies in one place (REFERENCE.md 4.3): AddOrder is sent exactly once; an outcome that may have reached the
engine is ``PlaceStatus.UNKNOWN`` and is resolved only by evidence (``find_by_client_order_id``, the ``deadline``).
Reads and cancels are retried with jittered backoff. Trading-counter capacity is awaited before sending.

Order entry (route ``ws``, the default): while the executions socket is healthy, placing and canceling go over
it as WS v2 ``add_order``/``cancel_order`` (REFERENCE.md 6.3 [D-WSADD], [D-WSCAN]; no nonce, no HTTP request);
otherwise, and for everything else, REST. An ``add_order`` written but not answered is UNKNOWN like an AddOrder
that timed out (REFERENCE.md 4.3 point 4), never resent on either route; a ``cancel_order`` that is not answered
falls back to the REST cancel (idempotent in effect, REFERENCE.md 4.3 point 5).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from execledger.application.ports import (
    AmendResult,
    CancelResult,
    Correction,
    EntryBlock,
    ErrorClass,
    FillReport,
    OrderRequest,
    OrderStatusReport,
    PlaceResult,
    PlaceStatus,
    PriceTick,
    StillWanted,
    StreamEvent,
    VenueReport,
)
from execledger.domain.pairs import PairRegistry
from execledger.domain.values import OrderRole, OrderType, plain
from execledger.infrastructure.kraken.breaker import CallKind, CircuitBreaker
from execledger.infrastructure.kraken.credentials import KrakenCredentials
from execledger.infrastructure.kraken.errors import (
    BreakerOpen,
    CallWithdrawn,
    Hint,
    KrakenCallFailed,
    KrakenTransportError,
    KrakenVenueError,
    ThrottleWaitTooLong,
    Transport,
)
from execledger.infrastructure.kraken.parse import epoch, number, parse_add_order, parse_orders, parse_trades
from execledger.infrastructure.kraken.public_ws import KrakenPublicPrices
from execledger.infrastructure.kraken.ratelimit import RestCallLimiter, Tier, TradingRateLimiter
from execledger.infrastructure.kraken.rest import KrakenRestClient, hear_refusal
from execledger.infrastructure.kraken.retry import RetryPolicy
from execledger.infrastructure.kraken.urls import derive_public_ws_url
from execledger.infrastructure.kraken.wire import ws_symbol_of
from execledger.infrastructure.kraken.ws import WsRequestAmbiguous, WsRequestNotSent
from execledger.infrastructure.settings import Settings

log = logging.getLogger("execledger.kraken.adapter")

QUERY_BATCH = 50  # QueryOrders takes up to 50 txids per call


def rfc3339_utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Kraken's ``price`` is the trigger of a triggered order and ``price2`` its limit (REFERENCE.md 3.2).
_TRIGGERED = frozenset(
    {OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT}
)


def add_order_params(request: OrderRequest) -> dict[str, str]:
    """The AddOrder body of one request (decimals rendered without exponent, ``deadline`` when it has one)."""
    params = {
        "pair": request.pair,
        "type": str(request.side),
        "ordertype": str(request.order_type),
        "volume": plain(request.quantity),
        "cl_ord_id": request.client_order_id,
    }
    price, price2 = (
        (request.trigger_price, request.limit_price)
        if request.order_type in _TRIGGERED
        else (request.limit_price, None)
    )
    if price is not None:
        params["price"] = plain(price)
    if price2 is not None:
        params["price2"] = plain(price2)
    oflags = [flag for flag, on in (("post", request.post_only), ("fciq", request.fee_in_quote)) if on]
    if oflags:
        params["oflags"] = ",".join(oflags)
    if request.reduce_only:
        params["reduce_only"] = "true"
    if request.deadline is not None:
        params["deadline"] = rfc3339_utc(request.deadline)
    if request.validate:
        params["validate"] = "true"
    return params


def ws_add_order_params(request: OrderRequest, symbol: str) -> dict[str, Any]:
    """The WS v2 ``add_order`` params of one request (REFERENCE.md 6.3 [D-WSADD], fixture
    ``ws_v2_add_order_request_kraken_async_rs.json``), without the token. ``symbol`` is the WS v2 name
    (``BTC/USD``). Quantities and prices stay ``Decimal`` (the stream writes them as JSON numbers of their exact
    digits); a stop-loss / take-profit carries its trigger in ``triggers{reference: "last", price}`` and a
    ``*-limit`` one its limit in ``limit_price``; ``fee_preference: "quote"`` is REST's ``fciq``; ``deadline``
    is RFC3339."""
    params: dict[str, Any] = {
        "order_type": str(request.order_type),
        "side": str(request.side),
        "symbol": symbol,
        "order_qty": request.quantity,
    }
    if request.order_type in _TRIGGERED and request.trigger_price is not None:
        params["triggers"] = {"reference": "last", "price": request.trigger_price}
    if request.limit_price is not None:
        params["limit_price"] = request.limit_price
    if request.post_only:
        params["post_only"] = True
    if request.fee_in_quote:
        params["fee_preference"] = "quote"
    if request.reduce_only:
        params["reduce_only"] = True
    if request.deadline is not None:
        params["deadline"] = rfc3339_utc(request.deadline)
    if request.validate:
        params["validate"] = True
    params["cl_ord_id"] = request.client_order_id
    return params


OrderEntry = Literal["ws", "rest"]


DEADLINE_MARGIN_S = 2.0  # Kraken refuses a ``deadline`` under now + 2 s (REFERENCE.md 3.2, AddOrder ``deadline``)


def _wait_allowed(request: OrderRequest) -> float | None:
    """How long an AddOrder may wait for the trading counter's room and still reach the venue before its own
    ``deadline`` (``valid_for_s``, measured by the ledger's clock when it was decided, less Kraken's 2 s minimum);
    None when it says nothing. Past that it is NOT_SENT (ThrottleWaitTooLong) and decided again with a fresh
    deadline, rather than sent to a certain ``EService:Deadline elapsed`` (break test 2026-12-02: stop-losses
    Submitted at a restart waited 11 s for the counter and were all refused so)."""
    if request.valid_for_s is None:
        return None
    return max(0.0, request.valid_for_s - DEADLINE_MARGIN_S)


def _call_kind(request: OrderRequest) -> CallKind:
    """An entry's AddOrder is a NEW_ENTRY, which an open breaker holds back; a protective leg's or an exit's is an
    EXIT, which it lets through, as it lets cancels through: what protects a filled position always goes."""
    return CallKind.NEW_ENTRY if request.role is OrderRole.ENTRY else CallKind.EXIT


class KrakenExchange:
    """Implements ``application.ports.ExchangePort`` for Kraken Spot. ``order_entry`` ``ws``: AddOrder and
    CancelOrder go over the executions socket while it is healthy (``rest``: always REST); ``ws_ack_timeout_s``
    is how long a WS trading request waits for its answer (default: the REST client's timeout)."""

    def __init__(
        self,
        rest: KrakenRestClient,
        *,
        pairs: PairRegistry | None = None,
        retry: RetryPolicy | None = None,
        trading_limiter: TradingRateLimiter | None = None,
        ws_url: str | None = None,
        public_ws_url: str | None = None,
        stream_factory: Callable[[KrakenExchange], Any] | None = None,
        order_entry: OrderEntry = "ws",
        ws_ack_timeout_s: float | None = None,
    ):
        if order_entry not in ("ws", "rest"):
            raise ValueError(f"order_entry must be 'ws' or 'rest', not {order_entry!r}")
        self.rest = rest
        self.order_entry = order_entry
        self.ws_ack_timeout_s = ws_ack_timeout_s
        self.pairs = pairs
        self.retry = retry or RetryPolicy()
        self.trading = trading_limiter
        self.ws_url = ws_url
        self.public_ws_url = public_ws_url if public_ws_url is not None else derive_public_ws_url(ws_url)
        self._stream_factory = stream_factory
        self._orders: dict[str, tuple[str, str | None]] = {}  # txid or cl_ord_id -> (pair, txid)
        self.stream: Any = None  # the executions stream once started (its health is reported)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        tier: Tier | None = Tier.STARTER,
        breaker: CircuitBreaker | None = None,
        pairs: PairRegistry | None = None,
    ) -> KrakenExchange:
        """Wire the adapter from ``EXECLEDGER_KRAKEN_*`` (credentials checked for format here; call
        ``rest.validate_credentials()`` at start for the authenticated check). ``tier=None`` models no rate
        limits (for a venue that has none, such as the built-in simulator's default)."""
        if not settings.kraken_url:
            raise ValueError("EXECLEDGER_KRAKEN_URL is not set")
        rest = KrakenRestClient(
            settings.kraken_url,
            KrakenCredentials.from_settings(settings),
            data_dir=Path(settings.data_dir),
            limiter=RestCallLimiter(tier) if tier else None,
            breaker=breaker or CircuitBreaker(reset_timeout_s=settings.kraken_breaker_reset_s),
        )
        return cls(
            rest,
            pairs=pairs,
            trading_limiter=TradingRateLimiter(tier) if tier else None,
            ws_url=settings.kraken_ws_url,
            order_entry=settings.kraken_order_entry,
        )

    async def close(self) -> None:
        await self.rest.close()

    def __repr__(self) -> str:
        return f"KrakenExchange({self.rest!r})"

    # -- memory of orders, for the trading counter (pair and age of what we cancel) --------------------------

    def _remember(self, order: OrderStatusReport) -> None:
        txid = order.venue_order_id
        if order.is_terminal:
            self._orders.pop(txid, None)
            if self.trading is not None:
                self.trading.order_closed(txid)
            return
        self._orders[txid] = (order.pair or "", txid)
        if order.client_order_id:
            self._orders[order.client_order_id] = (order.pair or "", txid)
        if self.trading is not None and order.ts_accepted is not None and self.trading.age_of(txid) is None:
            age = (datetime.now(UTC) - order.ts_accepted).total_seconds()
            self.trading.order_placed(txid, max(0.0, age))

    def _parse_orders(self, result: dict[str, Any]) -> dict[str, OrderStatusReport]:
        orders = parse_orders(result or {}, self.pairs)
        for order in orders.values():
            self._remember(order)
        return orders

    async def _read(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self.retry.run(method, lambda: self.rest.private(method, params, kind=CallKind.READ))

    async def wait_for_order_capacity(
        self,
        pair: str,
        max_wait_s: float | None = None,
        *,
        urgent: bool = False,
        reserve: Callable[[], int] | None = None,
    ) -> bool:
        """Wait until an AddOrder on ``pair`` fits Kraken's per-pair trading counter as modelled (REFERENCE.md 5.2);
        False, at once, when that would take longer than ``max_wait_s``. Nothing is taken: ``place`` takes it.
        ``urgent`` (a protective leg): it goes before every other AddOrder waiting on the pair."""
        if self.trading is None:
            return True
        return await self.trading.wait_for_add(pair, max_wait_s, urgent=urgent, reserve=reserve)

    def order_capacity(self, pair: str, within_s: float) -> int | None:
        """How many AddOrders on ``pair`` the modelled trading counter lets out within ``within_s`` (None when no
        counter is modelled)."""
        return None if self.trading is None else self.trading.adds_within(pair, within_s)

    def entry_block(self) -> EntryBlock | None:
        """None while the circuit breaker lets AddOrder through; otherwise why not and when to ask again. In
        HALF_OPEN AddOrder still waits: a read must succeed first (an order is never the probe)."""
        breaker = self.rest.breaker
        if breaker is None or breaker.allows(CallKind.NEW_ENTRY):
            return None
        return EntryBlock(
            reason=f"the venue is unavailable (circuit breaker {breaker.state}: {breaker.last_reason})",
            since=breaker.opened_wall or datetime.now(UTC),
            retry_in_s=max(0.5, breaker.seconds_until_half_open()),
        )

    # -- writes ----------------------------------------------------------------------------------------------

    async def place(self, request: OrderRequest, *, still_wanted: StillWanted | None = None) -> PlaceResult:
        """Send one order, exactly once: WS v2 ``add_order`` while the executions socket is healthy (route
        ``ws``), else REST AddOrder. ACKNOWLEDGED (txid), REJECTED (definitive), NOT_SENT (breaker open for an
        entry, which a protective leg or exit passes; throttle wait too long, no connection made, or
        ``still_wanted`` gave a reason right before the request was written/signed) or UNKNOWN (may have reached
        the engine: resolve by ``find_by_client_order_id``, never by resending)."""
        breaker = self.rest.breaker
        kind = _call_kind(request)
        if breaker is not None and not breaker.allows(kind):  # before taking trading capacity
            return PlaceResult(
                PlaceStatus.NOT_SENT,
                error=f"not sent, circuit breaker {breaker.state}",
                error_class=ErrorClass.RETRYABLE,
            )
        urgent = request.role is not OrderRole.ENTRY
        try:
            if self.trading is not None:
                await self.trading.acquire_add(request.pair, urgent=urgent, max_wait_s=_wait_allowed(request))
            answer = await self._add_order_ws(request, still_wanted)
            if answer is not None:
                txid = str((answer.get("result") or {}).get("order_id") or "") or None
            else:
                result = await self.rest.private(
                    "AddOrder",
                    add_order_params(request),
                    kind=kind,
                    still_wanted=still_wanted,
                    urgent=urgent,  # protection before entries (rest.SigningTurn)
                )
                txid = parse_add_order(result or {})
        except (BreakerOpen, ThrottleWaitTooLong, CallWithdrawn) as exc:
            return PlaceResult(PlaceStatus.NOT_SENT, error=exc.description, error_class=exc.error_class)
        except KrakenCallFailed as exc:
            return self._place_failed(request, exc)
        if txid is None and not request.validate:
            log.warning("AddOrder %s: answer without txid; outcome unknown", request.client_order_id)
            return PlaceResult(PlaceStatus.UNKNOWN, error="answer without txid", error_class=ErrorClass.AMBIGUOUS)
        if txid is not None:
            self._orders[txid] = self._orders[request.client_order_id] = (request.pair, txid)
            if self.trading is not None:
                self.trading.order_placed(txid)
        return PlaceResult(PlaceStatus.ACKNOWLEDGED, venue_order_id=txid)

    # -- WS v2 order entry (REFERENCE.md 6.3) ------------------------------------------------------------------

    def _ws_stream(self) -> Any:
        """The executions stream when orders go over it now: route ``ws`` and the socket healthy; else None."""
        stream = self.stream
        if self.order_entry != "ws" or stream is None or not getattr(stream, "healthy", False):
            return None
        return stream if hasattr(stream, "request") else None

    def _ws_timeout_s(self) -> float:
        if self.ws_ack_timeout_s is not None:
            return self.ws_ack_timeout_s
        timeout = getattr(self.rest, "timeout", None)
        return float(getattr(timeout, "total", None) or 10.0)

    async def _add_order_ws(self, request: OrderRequest, still_wanted: StillWanted | None) -> dict[str, Any] | None:
        """``add_order`` on the executions socket: its successful answer, or None when it was not written there
        (no healthy socket, a pair without a WS v2 name: the caller sends it over REST). The breaker is asked again
        (a sync step before the write, as REST's ``_guarded`` does); ``still_wanted`` is asked by the stream right
        before the write (CallWithdrawn). A refusal raises ``KrakenVenueError`` (the REST error table, REFERENCE.md
        4); no answer raises an AMBIGUOUS ``KrakenTransportError`` (REFERENCE.md 4.3 point 4: never resent)."""
        stream = self._ws_stream()
        rules = self.pairs.find(request.pair) if stream is not None and self.pairs is not None else None
        if rules is None:
            return None
        breaker = self.rest.breaker
        if breaker is not None and not breaker.allows(_call_kind(request)):
            raise BreakerOpen("add_order", str(breaker.state))
        params = ws_add_order_params(request, ws_symbol_of(rules.wsname))
        try:
            answer = await stream.request("add_order", params, self._ws_timeout_s(), still_wanted=still_wanted)
        except WsRequestNotSent as exc:
            log.info("add_order %s goes over REST: %s", request.client_order_id, exc)
            return None
        except WsRequestAmbiguous as exc:
            if breaker is not None:
                breaker.record_failure(str(exc))
            raise KrakenTransportError("add_order", Transport.TIMEOUT, str(exc), write=True) from None
        try:
            return self._ws_answer("add_order", answer, write=True)
        except KrakenVenueError as exc:
            if exc.rule.hint is not Hint.REFRESH_TOKEN:
                raise
            # The socket's token was refused at the door (``ESession:Invalid session``, ``EAPI:Invalid token``):
            # nothing was executed. Sent again as a write class RETRYABLE, it would meet the same refusal on this
            # socket every time; it goes over REST now, and the stream reconnects with a fresh token.
            log.warning("add_order %s: %s; sent over REST, the stream renews its token", request.client_order_id, exc)
            stream.renew(f"add_order refused: {exc.description}")
            return None

    def _ws_answer(self, method: str, answer: dict[str, Any], *, write: bool) -> dict[str, Any]:
        """A WS answer (``success`` with ``result``, or ``success: false`` with a string ``error``: fixtures
        ``ws_v2_error_add_order_*``), or ``KrakenVenueError`` through the one error table. The breaker hears it as
        it hears a REST answer: a venue-down error counts as a failure, any other answer proves the venue up."""
        breaker = self.rest.breaker
        if answer.get("success") is True:
            if breaker is not None:
                breaker.record_success()
            return answer
        exc = KrakenVenueError(method, [str(answer.get("error") or "unknown error")], write=write)
        if breaker is not None:
            hear_refusal(breaker, exc)
        raise exc

    def _place_failed(self, request: OrderRequest, exc: KrakenCallFailed) -> PlaceResult:
        if (
            isinstance(exc, KrakenVenueError)
            and exc.rule.read is ErrorClass.RATE_LIMITED
            and exc.rule.prefix.startswith("EOrder:")
            and self.trading is not None
        ):
            self.trading.on_rate_limited(request.pair)
        if exc.error_class is ErrorClass.AMBIGUOUS:
            log.warning(
                "AddOrder %s: outcome unknown (%s); resolve by cl_ord_id, not by resending",
                request.client_order_id,
                exc.description,
            )
            return PlaceResult(PlaceStatus.UNKNOWN, error=exc.description, error_class=exc.error_class)
        if isinstance(exc, KrakenTransportError) and exc.kind is Transport.CONNECT_FAILED:
            return PlaceResult(PlaceStatus.NOT_SENT, error=exc.description, error_class=exc.error_class)
        if not isinstance(exc, KrakenVenueError):
            return PlaceResult(PlaceStatus.REJECTED, error=exc.description, error_class=exc.error_class)
        # The error table decides, for an entry or an exit: a refusal that is definite for an entry (funds, the
        # open-order limit) is not sent again; a protective leg is, corrected as the row says.
        error_class = exc.rule.write_class(entry=request.role is OrderRole.ENTRY)
        correction = exc.rule.correction if error_class is ErrorClass.NOT_EXECUTED else Correction.NONE
        return PlaceResult(PlaceStatus.REJECTED, error=exc.description, error_class=error_class, correction=correction)

    async def cancel(self, *, venue_order_id: str | None = None, client_order_id: str | None = None) -> CancelResult:
        """Cancel one order by txid or cl_ord_id: WS v2 ``cancel_order`` while the executions socket is healthy
        (route ``ws``), else, or when that gets no answer, REST CancelOrder retried (a cancel is idempotent in
        effect). An order that is no longer open gives ``not_found`` (query it for its final state); exhausted
        retries raise."""
        txid, cl_ord_id = venue_order_id, client_order_id
        if (txid is None) == (cl_ord_id is None):
            raise ValueError("cancel by exactly one of txid or cl_ord_id")
        ref = txid or cl_ord_id
        assert ref is not None
        pair, known_txid = self._orders.get(ref, (None, txid))
        params = {"txid": txid} if txid else {"cl_ord_id": cl_ord_id}

        async def call() -> Any:
            if self.trading is not None and pair is not None:
                await self.trading.acquire_cancel(pair, known_txid)
            return await self.rest.private("CancelOrder", params, kind=CallKind.CANCEL)

        try:
            if await self._cancel_ws(pair, known_txid, txid, cl_ord_id):
                return CancelResult(count=1)
            result = await self.retry.run("CancelOrder", call)
        except KrakenVenueError as exc:
            if exc.rule.hint is Hint.CANCEL_PENDING:
                return CancelResult(count=0, pending=True)
            if exc.error_class is ErrorClass.NOT_FOUND:
                return CancelResult(count=0, not_found=True, error=exc.description)
            if exc.error_class is ErrorClass.PERMANENT:
                return CancelResult(count=0, error=exc.description)
            raise
        return CancelResult(count=int((result or {}).get("count", 0)), pending=bool((result or {}).get("pending")))

    async def _cancel_ws(
        self, pair: str | None, known_txid: str | None, txid: str | None, cl_ord_id: str | None
    ) -> bool:
        """``cancel_order`` by ``order_id: [txid]`` or ``cl_ord_id: [id]`` on the executions socket (REFERENCE.md
        6.3 [D-WSCAN], fixtures ``ws_v2_cancel_order_request_by_*``): True when the venue confirmed it. False
        when the REST cancel is to be sent instead: no healthy socket, no answer in time or the socket lost (the
        cancel may have worked: a REST retry then says ``EOrder:Unknown order``, not found, REFERENCE.md 4.3 point
        5), or a refusal worth retrying (throttled, venue busy). Any other refusal raises ``KrakenVenueError``
        (``EOrder:Invalid order`` for an order no longer open: NOT_FOUND, as on REST)."""
        stream = self._ws_stream()
        if stream is None:
            return False
        if self.trading is not None and pair is not None:
            await self.trading.acquire_cancel(pair, known_txid)
        params = {"order_id": [txid]} if txid else {"cl_ord_id": [cl_ord_id]}
        try:
            answer = await stream.request("cancel_order", params, self._ws_timeout_s())
        except (WsRequestNotSent, WsRequestAmbiguous) as exc:
            log.info("cancel_order %s: %s; canceling over REST", txid or cl_ord_id, exc)
            return False
        try:
            self._ws_answer("cancel_order", answer, write=False)
        except KrakenVenueError as exc:
            if exc.error_class in (ErrorClass.RETRYABLE, ErrorClass.RATE_LIMITED):
                log.info("cancel_order %s refused (%s); canceling over REST", txid or cl_ord_id, exc.description)
                if exc.rule.hint is Hint.REFRESH_TOKEN:  # the socket's token is refused: a fresh one (see place)
                    stream.renew(f"cancel_order refused: {exc.description}")
                return False
            raise
        return True

    async def amend(
        self, *, quantity: Decimal, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> AmendResult:
        """AmendOrder (REFERENCE.md 3.5): the order's new total ``order_qty``, in place (ids unchanged, queue
        priority kept where possible; below the filled quantity the remainder is canceled). Sent once per call,
        never retried here (the service reads the order when the outcome is unknown, then may send it again: an
        absolute quantity is harmless to repeat). Passes an open breaker like a cancel: it protects a position."""
        txid, cl_ord_id = venue_order_id, client_order_id
        if (txid is None) == (cl_ord_id is None):
            raise ValueError("amend by exactly one of txid or cl_ord_id")
        ref = txid or cl_ord_id
        assert ref is not None
        pair, known_txid = self._orders.get(ref, (None, txid))
        params = {"txid": txid} if txid else {"cl_ord_id": cl_ord_id}
        params["order_qty"] = plain(quantity)
        try:
            if self.trading is not None and pair:
                await self.trading.acquire_amend(pair, known_txid)
            result = await self.rest.private("AmendOrder", params, kind=CallKind.CANCEL)
        except (BreakerOpen, ThrottleWaitTooLong) as exc:
            return AmendResult(PlaceStatus.REJECTED, error=exc.description, error_class=ErrorClass.NOT_EXECUTED)
        except KrakenCallFailed as exc:
            if isinstance(exc, KrakenTransportError) and exc.kind is Transport.CONNECT_FAILED:
                return AmendResult(PlaceStatus.REJECTED, error=exc.description, error_class=ErrorClass.NOT_EXECUTED)
            if exc.error_class is ErrorClass.AMBIGUOUS:
                return AmendResult(PlaceStatus.UNKNOWN, error=exc.description, error_class=exc.error_class)
            if isinstance(exc, KrakenVenueError) and exc.rule.read is ErrorClass.RATE_LIMITED and pair and self.trading:
                self.trading.on_rate_limited(pair)
            return AmendResult(PlaceStatus.REJECTED, error=exc.description, error_class=exc.error_class)
        return AmendResult(PlaceStatus.ACKNOWLEDGED, amend_id=str((result or {}).get("amend_id") or "") or None)

    async def last_prices(self, pairs: Sequence[str]) -> dict[str, PriceTick]:
        """The last trade price of each pair from the public ``Ticker`` (field ``c`` = [price, lot volume]; rows
        keyed by the AssetPairs key, REFERENCE.md section 2), one call for all pairs. Observed now (the caller
        stamps prices with its own clock)."""
        if not pairs:
            return {}
        result = await self.retry.run("Ticker", lambda: self.rest.public("Ticker", {"pair": ",".join(pairs)}))
        now = datetime.now(UTC)
        found: dict[str, PriceTick] = {}
        for key, row in (result or {}).items():
            rules = self.pairs.find(key) if self.pairs is not None else None
            pair = rules.key if rules is not None else key
            try:
                price = Decimal(str(row["c"][0]))
            except (KeyError, IndexError, TypeError, ArithmeticError):
                continue
            if price.is_finite() and price > 0:
                found[pair] = PriceTick(pair, price, now)
        return found

    def price_ticks(self, pairs: Sequence[str]) -> AsyncIterator[PriceTick | StreamEvent]:
        """The live public prices of ``pairs`` (WS v2 ``trade``/``ticker`` on ``public_ws_url``, see
        ``public_ws.KrakenPublicPrices``). Raises NotImplementedError when no public endpoint is known (an origin
        other than Kraken's or the simulator's): the service polls ``last_prices`` instead."""
        if not self.public_ws_url:
            raise NotImplementedError("no public WS endpoint known for this venue: REST Ticker is polled")
        return KrakenPublicPrices(self.public_ws_url, self.pairs).ticks(pairs)

    async def _cancel_call(self, method: str, params: dict[str, Any]) -> Any:
        return await self.retry.run(method, lambda: self.rest.private(method, params, kind=CallKind.CANCEL))

    async def cancel_all(self) -> int:
        """Cancel every open order; returns how many."""
        return int(((await self._cancel_call("CancelAll", {})) or {}).get("count", 0))

    async def cancel_all_after(self, timeout_s: int) -> datetime | None:
        """Arm (``timeout_s`` > 0) or disarm (0) the dead-man's switch; the trigger time, None when disarmed."""
        result = await self._cancel_call("CancelAllOrdersAfter", {"timeout": int(timeout_s)}) or {}
        trigger = result.get("triggerTime")
        if not trigger or trigger == "0" or timeout_s == 0:
            return None
        return datetime.fromisoformat(str(trigger).replace("Z", "+00:00"))

    # -- reads -----------------------------------------------------------------------------------------------

    async def query_orders(self, venue_order_ids: Sequence[str]) -> dict[str, OrderStatusReport]:
        """Orders by txid, 50 per QueryOrders call. A txid Kraken does not know is left out (a batch refused
        for one unknown txid is split until the unknown one is isolated)."""
        unique = list(dict.fromkeys(venue_order_ids))
        found: dict[str, OrderStatusReport] = {}
        for start in range(0, len(unique), QUERY_BATCH):
            found.update(await self._query_batch(unique[start : start + QUERY_BATCH]))
        return found

    async def _query_batch(self, txids: list[str]) -> dict[str, OrderStatusReport]:
        if not txids:
            return {}
        try:
            result = await self._read("QueryOrders", {"txid": ",".join(txids), "trades": "true"})
        except KrakenVenueError as exc:
            if exc.error_class is not ErrorClass.NOT_FOUND:
                raise
            if len(txids) == 1:
                return {}
            half = len(txids) // 2
            return {**await self._query_batch(txids[:half]), **await self._query_batch(txids[half:])}
        return self._parse_orders(result)

    async def find_by_client_order_id(self, client_order_id: str) -> OrderStatusReport | None:
        """OpenOrders then ClosedOrders filtered by ``cl_ord_id``; None = not found (yet). Kraken keeps cl_ord_id
        unique among open orders only, so among closed ones the most recently opened wins."""
        for method in ("OpenOrders", "ClosedOrders"):
            params = {"cl_ord_id": client_order_id, "trades": "true"}
            orders = self._parse_orders(await self._read(method, params))
            matching = [o for o in orders.values() if o.client_order_id == client_order_id]
            if matching:
                return max(matching, key=lambda o: o.ts_accepted or datetime.min.replace(tzinfo=UTC))
        return None

    async def open_orders(self) -> list[OrderStatusReport]:
        """Every open order of the account."""
        return list(self._parse_orders(await self._read("OpenOrders", {"trades": "true"})).values())

    async def fills_since(self, since: datetime | None) -> list[FillReport]:
        """Own trades after ``since`` (exclusive), oldest first, all pages of TradesHistory (50 per page)."""
        params: dict[str, Any] = {"start": f"{since.timestamp():.6f}"} if since is not None else {}
        collected: dict[str, Any] = {}
        while True:
            result = await self._read("TradesHistory", {**params, "ofs": len(collected)}) or {}
            page = result.get("trades") or {}
            new = {k: v for k, v in page.items() if k not in collected}
            collected.update(new)
            if not new or len(collected) >= int(result.get("count", 0)):
                break
        return parse_trades(collected, self.pairs)

    async def asset_pairs(self) -> PairRegistry:
        """AssetPairs from the venue (public), kept for parsing pair names."""
        result = await self.retry.run("AssetPairs", lambda: self.rest.public("AssetPairs"))
        self.pairs = PairRegistry.from_asset_pairs(result or {})
        return self.pairs

    async def available_balances(self) -> dict[str, Decimal]:
        """``BalanceEx``: per asset, ``balance`` minus ``hold_trade`` (what open orders hold), exact decimals."""
        result = await self._read("BalanceEx") or {}
        return {
            asset: number(info.get("balance", "0")) - number(info.get("hold_trade", "0"))
            for asset, info in result.items()
            if isinstance(info, dict)
        }

    async def websocket_token(self) -> str:
        """A fresh GetWebSocketsToken token (valid 15 minutes until used by a subscription)."""
        return str((await self._read("GetWebSocketsToken"))["token"])

    async def server_time(self) -> datetime | None:
        result = await self.retry.run("Time", lambda: self.rest.public("Time"))
        return epoch((result or {}).get("unixtime"))

    def executions(self) -> AsyncIterator[VenueReport]:
        """The WS v2 ``executions`` stream as reports and stream events (it only streams: no REST here)."""
        if self._stream_factory is None:
            from execledger.infrastructure.kraken.ws import KrakenExecutionsStream

            self._stream_factory = lambda exchange: KrakenExecutionsStream(exchange, exchange.ws_url)
        self.stream = self._stream_factory(self)
        return self.stream.reports()
