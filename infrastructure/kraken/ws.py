"""``KrakenExecutionsStream``: WS v2 ``executions`` as venue reports, and nothing else.

REFERENCE.md 6.2 and 6.4. One task keeps the WebSocket up: fresh GetWebSocketsToken on every (re)connect,
subscribe with ``snap_orders`` and ``snap_trades``, a heartbeat watchdog (no frame for ``heartbeat_timeout_s`` ->
reconnect) and a sequence check. It only streams: every change of its health is yielded as a ``StreamEvent``
(CONNECTED once a snapshot arrived, DISCONNECTED when the socket is lost, GAP when a sequence number was skipped),
and the trading service decides what to read over REST meanwhile. Fills already yielded are not yielded again
(a snapshot after a reconnect repeats recent trades); the Order aggregate ignores repeats anyway.

The same socket carries the WS v2 trading methods (REFERENCE.md 6.3 [D-WSADD], [D-WSCAN]): ``request`` writes one
``{"method", "params": {..., "token"}, "req_id"}`` frame with this connection's token and returns the answer that
echoes its ``req_id``. A request is refused before anything is written while the stream is not healthy
(``WsRequestNotSent``); once written, a missing answer or a lost socket is ``WsRequestAmbiguous`` (REFERENCE.md
4.3 point 4: an unanswered ``add_order`` is send-ambiguous, resolved by ``cl_ord_id``, never resent).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import aiohttp

from execledger.application.ports import FillReport, StreamEvent, StreamState, VenueReport
from execledger.domain.values import plain
from execledger.infrastructure.kraken.errors import CallWithdrawn, Hint, KrakenCallFailed, rule_for
from execledger.infrastructure.kraken.parse import parse_executions_message
from execledger.infrastructure.kraken.urls import check_ws_url
from execledger.infrastructure.kraken.watchdog import FrameWatchdog

if TYPE_CHECKING:
    from execledger.infrastructure.kraken.adapter import KrakenExchange

log = logging.getLogger("execledger.kraken.ws")

MAX_RECONNECT_DELAY_S = 30.0
# The largest WS message read. aiohttp's default (4 MiB) closed the socket (1009, message too big) on the executions
# snapshot of 10,000 open orders (about 400 bytes an order; recovery bench with a bracketed book, 2026-12-02) and
# the service fell back to REST polling. 256 MiB is the snapshot of about 600,000 orders.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

# One decoder for every frame: ``json.loads(text, parse_float=Decimal)`` builds a new JSONDecoder each call.
_decode = json.JSONDecoder(parse_float=Decimal).decode  # exact decimals from WS numbers


class StreamInterrupted(Exception):
    """The stream must be rebuilt (stale token, Cloudflare restart, unexpected frame)."""


class WsRequestNotSent(Exception):
    """A trading request was not written: the socket was not connected and healthy. Nothing reached the venue;
    another route may carry it."""


class WsRequestAmbiguous(Exception):
    """A trading request was written but no answer came: the ack did not arrive within the timeout or the socket
    was lost first. The venue may have acted on it (REFERENCE.md 4.3 point 4)."""


def json_text(value: Any) -> str:
    """``value`` as JSON text with every ``Decimal`` as a JSON number of its exact digits (``plain``: no
    exponent), never through a float: WS v2 wants numbers where REST takes strings (REFERENCE.md 6.3, the
    captured ``"<Field> field must be a number_float"``). Keys and strings go through ``json.dumps``."""
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(json_text(v) for v in value) + "]"
    return json.dumps(value)


def _expire(future: asyncio.Future[dict[str, Any]], method: str, timeout_s: float) -> None:
    if not future.done():
        future.set_exception(WsRequestAmbiguous(f"{method}: no answer within {timeout_s:g}s"))


class KrakenExecutionsStream:
    """Yields ``VenueReport``s from ``reports()`` until closed. Without a WS URL it yields one DISCONNECTED event
    and then nothing: the consumer polls REST.

    Memory is bounded: once ``QUEUE_HIGH`` reports wait for the consumer, the stream stops reading the socket
    (a flood then waits in aiohttp's bounded reader and the venue's TCP window, not in this queue) until the
    consumer has taken the queue down to half; the heartbeat watchdog counts that wait as alive. One frame's
    reports always go in whole (a snapshot of many orders may pass the bound once), and the socket is read on while
    a trading request awaits its answer (the queue then grows by what arrives in that time)."""

    QUEUE_HIGH = 512

    def __init__(
        self,
        exchange: KrakenExchange,
        ws_url: str | None,
        *,
        heartbeat_timeout_s: float = 10.0,
        reconnect_delay_s: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        session: aiohttp.ClientSession | None = None,
    ):
        self.exchange = exchange
        self.ws_url = check_ws_url(ws_url) if ws_url else None
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.reconnect_delay_s = reconnect_delay_s
        self._sleep = sleep
        self._session = session
        self._owns_session = session is None
        self._queue: asyncio.Queue[VenueReport] = asyncio.Queue()
        self._room = asyncio.Event()  # set by the consumer once the queue is down to QUEUE_HIGH // 2
        self._task: asyncio.Task | None = None
        self._expected_sequence: int | None = None  # the last sequence seen
        self._seen_trades: OrderedDict[str, None] = OrderedDict()
        self.healthy = False
        self.connects = 0
        self.gaps = 0
        self.last_message_at: float | None = None  # loop time of the last frame (health reporting)
        self._ws: aiohttp.ClientWebSocketResponse | None = None  # the live socket, for trading requests
        self._token: str | None = None  # this connection's token (trading requests carry it)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}  # req_id -> the answer awaited
        self._req_id = 1 << 20  # trading req_ids: above the subscribe's (one per connection)
        self._closing: asyncio.Task[bool] | None = None  # a socket closed by ``renew`` (kept: a task is weakly held)

    # -- consumer side ---------------------------------------------------------------------------------------

    def reports(self) -> _Reports:
        """The reports and stream events, read with ``async for`` (the first read starts the stream) until
        ``aclose()``; ``arrived()`` also hands out those already here, without waiting."""
        return _Reports(self)

    def start(self) -> None:
        if self._task is None:
            if self.ws_url:
                self._task = asyncio.create_task(self._keep_connected(), name="kraken-ws")
            else:
                self._queue.put_nowait(StreamEvent(StreamState.DISCONNECTED, "no WebSocket URL configured"))

    async def close(self) -> None:
        self._fail_pending("the stream was closed")
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    def _emit(self, report: VenueReport) -> None:
        if isinstance(report, FillReport):
            if report.trade_id in self._seen_trades:
                return
            self._seen_trades[report.trade_id] = None
            if len(self._seen_trades) > 10_000:
                self._seen_trades.popitem(last=False)
        self._queue.put_nowait(report)

    # -- WebSocket ---------------------------------------------------------------------------------------------

    def _set_healthy(self, healthy: bool, detail: str = "") -> None:
        if healthy != self.healthy:
            log.info("Kraken executions stream %s", "healthy" if healthy else f"down ({detail})")
            self._emit(StreamEvent(StreamState.CONNECTED if healthy else StreamState.DISCONNECTED, detail))
        self.healthy = healthy

    async def _keep_connected(self) -> None:
        failures = 0
        while True:
            try:
                await self._connect_once()
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, KrakenCallFailed, StreamInterrupted, TimeoutError, ValueError) as exc:
                log.warning("Kraken executions stream interrupted: %s", exc)
            except Exception:
                log.exception("Kraken executions stream failed unexpectedly")
            failures = 1 if self.healthy else failures + 1
            self._set_healthy(False, "connection lost")
            # Reconnect at once after a random drop, slower when it keeps failing: Cloudflare bans IPs that
            # reconnect more than ~150 times in 10 minutes (REFERENCE.md 5.4).
            await self._sleep(min(self.reconnect_delay_s * 2 ** (failures - 1), MAX_RECONNECT_DELAY_S))

    async def _connect_once(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        assert self.ws_url is not None  # the stream runs only with a WS URL
        async with self._session.ws_connect(self.ws_url, autoping=True, max_msg_size=MAX_MESSAGE_BYTES) as ws:
            # A fresh token for every connection (old ones go stale), fetched only once the socket is open: an
            # unreachable endpoint must not spend a REST call per reconnect attempt.
            token = await self.exchange.websocket_token()
            self.connects += 1
            self._expected_sequence = None
            await ws.send_json(
                {
                    "method": "subscribe",
                    "req_id": self.connects,
                    "params": {"channel": "executions", "token": token, "snap_orders": True, "snap_trades": True},
                }
            )
            watchdog = FrameWatchdog(self.heartbeat_timeout_s)
            self._ws, self._token = ws, token
            try:
                await self._receive(ws, watchdog)
            except asyncio.CancelledError:
                if watchdog.expired():  # the watchdog's own cancel, not the stream being closed
                    raise StreamInterrupted(
                        f"no frame for {self.heartbeat_timeout_s:g}s (heartbeat watchdog)"
                    ) from None
                raise
            finally:
                watchdog.stop()
                self._ws = self._token = None
                self._fail_pending("the socket was lost after the request was written")

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse, watchdog: FrameWatchdog) -> None:
        while True:
            if self._queue.qsize() >= self.QUEUE_HIGH and not self._pending:
                await self._until_consumed(watchdog)
            frame = await ws.receive()
            now = watchdog.seen()
            if frame.type is aiohttp.WSMsgType.TEXT:
                self.last_message_at = now
                self._on_text(frame.data)
            elif frame.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.ERROR,
            ):
                raise StreamInterrupted(f"closed by the server ({frame.type.name}, {ws.close_code})")

    async def _until_consumed(self, watchdog: FrameWatchdog) -> None:
        """The consumer is behind: read no frame until it has taken the queue down to half (the venue is not
        silent meanwhile, so the watchdog holds), or a trading request waits for its answer (``request`` wakes this:
        an ack held behind a slow consumer would make an order's outcome unknown)."""
        self._room.clear()
        with watchdog.holding():
            while self._queue.qsize() > self.QUEUE_HIGH // 2 and not self._pending:
                await self._room.wait()
                self._room.clear()

    def _on_text(self, text: str) -> None:
        try:
            message = _decode(text)
        except ValueError:
            raise StreamInterrupted(f"non-JSON frame ({len(text)} chars), e.g. a Cloudflare restart") from None
        if not isinstance(message, dict):
            return
        if message.get("channel") == "executions":
            self._on_executions(message)
        elif message.get("method") == "subscribe":
            self._on_subscribe_ack(message)
        elif "req_id" in message and self._pending:
            self._on_answer(message)
        # heartbeat / status / pong frames only prove the connection is alive (the watchdog saw them)

    # -- trading requests on the same socket (REFERENCE.md 6.3) --------------------------------------------------

    async def request(
        self,
        method: str,
        params: dict[str, Any],
        timeout_s: float,
        *,
        still_wanted: Callable[[], str | None] | None = None,
    ) -> dict[str, Any]:
        """Send one WS v2 trading request and return its answer (the whole frame: ``success``, ``result`` or
        ``error``, ``time_in``/``time_out``; shapes in REFERENCE.md 6.3 and the ``ws_v2_*_response_*`` fixtures).

        ``params`` get this connection's ``token``; ``Decimal`` values are written as JSON numbers of their exact
        digits (``json_text``). ``still_wanted`` is asked right before the frame is written, with no await
        between: a reason raises ``CallWithdrawn`` (nothing written). Raises ``WsRequestNotSent`` (nothing
        written: not connected or not healthy) or ``WsRequestAmbiguous`` (written; no answer within ``timeout_s``
        seconds, or the socket was lost first). Costs one future and one timer handle
        (the answer is matched in ``_on_text``)."""
        ws, token = self._ws, self._token
        if ws is None or token is None or not self.healthy or ws.closed:
            raise WsRequestNotSent(f"{method}: the executions socket is not connected and healthy")
        self._req_id += 1
        req_id = self._req_id
        frame = f'{{"method":{json.dumps(method)},"params":{json_text({**params, "token": token})},"req_id":{req_id}}}'
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        withdrawn = still_wanted() if still_wanted is not None else None
        if withdrawn is not None:  # its turn came too late: nothing is written
            raise CallWithdrawn(method, withdrawn)
        self._pending[req_id] = future
        self._room.set()  # a reader paused for a slow consumer reads on until the answer is in
        timer = future.get_loop().call_later(timeout_s, _expire, future, method, timeout_s)
        try:
            try:
                await ws.send_str(frame)  # uncompressed: one synchronous transport.write
            except aiohttp.ClientConnectionResetError:
                # aiohttp checks the transport is not closing before it writes a byte
                raise WsRequestNotSent(f"{method}: the executions socket is closing") from None
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
                raise WsRequestAmbiguous(f"{method}: the write failed ({type(exc).__name__})") from None
            return await future
        finally:
            timer.cancel()
            self._pending.pop(req_id, None)

    def renew(self, why: str) -> None:
        """The venue refused this connection's token on a trading request: no more requests on it (they go over
        REST meanwhile) and the socket is closed, so ``_keep_connected`` reconnects with a fresh token at once
        (GetWebSocketsToken, REFERENCE.md 6.1) and the consumer hears DISCONNECTED, then CONNECTED."""
        ws = self._ws
        self._set_healthy(False, why)
        if ws is not None and not ws.closed:
            self._closing = asyncio.get_running_loop().create_task(ws.close(), name="kraken-ws-renew")

    def _on_answer(self, message: dict[str, Any]) -> None:
        future = self._pending.get(message["req_id"]) if isinstance(message["req_id"], int) else None
        if future is not None and not future.done():
            future.set_result(message)

    def _fail_pending(self, why: str) -> None:
        """Every request still waiting becomes ambiguous: its frame was written, its answer will not come."""
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(WsRequestAmbiguous(why))

    def _on_subscribe_ack(self, message: dict[str, Any]) -> None:
        if message.get("success"):
            for warning in (message.get("result") or {}).get("warnings") or ():
                log.info("Kraken executions subscription warning: %s", warning)
            return
        error = str(message.get("error", "unknown error"))
        hint = rule_for(error).hint
        raise StreamInterrupted(
            f"subscribe refused: {error}" + (" (fresh token next)" if hint is Hint.REFRESH_TOKEN else "")
        )

    def _on_executions(self, message: dict[str, Any]) -> None:
        sequence = message.get("sequence")
        last = self._expected_sequence
        gap = (
            message.get("type") != "snapshot"
            and last is not None
            and isinstance(sequence, int)
            and sequence != last + 1
        )
        if isinstance(sequence, int):
            self._expected_sequence = sequence
        for report in parse_executions_message(message, self.exchange.pairs):
            self._emit(report)
        if message.get("type") == "snapshot":
            self._set_healthy(True, f"connection {self.connects}")
        elif gap:
            self.gaps += 1
            log.warning("Kraken executions sequence gap (expected %s, got %s)", (last or 0) + 1, sequence)
            self._emit(StreamEvent(StreamState.GAP, f"expected sequence {(last or 0) + 1}, got {sequence}"))


class _Reports:
    """``KrakenExecutionsStream.reports()``: a ``ReportsArrivingTogether`` over the stream's queue. A consumer that
    reads the reports of a frame together needs no task of its own between the socket and the ledger (a pump task
    was one more task step and two queue hops for every frame)."""

    def __init__(self, stream: KrakenExecutionsStream):
        self._stream = stream
        self._closed = False

    def __aiter__(self) -> _Reports:
        return self

    async def __anext__(self) -> VenueReport:
        if self._closed:
            raise StopAsyncIteration
        stream = self._stream
        stream.start()
        report = await stream._queue.get()
        if stream._queue.qsize() <= stream.QUEUE_HIGH // 2:
            stream._room.set()
        return report

    def arrived(self, limit: int) -> list[VenueReport]:
        stream = self._stream
        queue = stream._queue
        taken = [queue.get_nowait() for _ in range(min(limit, queue.qsize()))]
        if queue.qsize() <= stream.QUEUE_HIGH // 2:
            stream._room.set()
        return taken

    async def aclose(self) -> None:
        self._closed = True
        await self._stream.close()
