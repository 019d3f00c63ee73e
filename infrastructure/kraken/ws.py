"""``KrakenExecutionsStream``: WS v2 ``executions`` as venue observations, with REST polling as the safety net.

REFERENCE.md 6.2 and 6.4. One task keeps the WebSocket up: fresh GetWebSocketsToken on every (re)connect,
subscribe with ``snap_orders`` and ``snap_trades``, a heartbeat watchdog (no frame for ``heartbeat_timeout_s`` ->
reconnect), and a REST resync after every reconnect and every ``sequence`` gap. A second task polls REST: often
while the stream is down, rarely (backed off) while it is healthy. Fills are deduplicated by trade id across both
sources, so the consumer sees each fill once (and the Order aggregate ignores repeats anyway).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from execledger.application.exchange import ExecutionObservation, VenueOrderStatus
from execledger.infrastructure.kraken.errors import Hint, KrakenCallFailed, rule_for
from execledger.infrastructure.kraken.parse import (
    TERMINAL,
    order_observation,
    parse_executions_message,
    trade_observation,
)
from execledger.infrastructure.kraken.rest import is_loopback

if TYPE_CHECKING:
    from execledger.infrastructure.kraken.adapter import KrakenExchange

log = logging.getLogger("execledger.kraken.ws")

MAX_RECONNECT_DELAY_S = 30.0


def check_ws_url(url: str) -> str:
    """``wss://`` anywhere; plain ``ws://`` (or ``http://``) only to a loopback host such as the simulator."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        raise ValueError(f"Kraken WS URL {url!r} is not a ws(s) URL")
    if parts.scheme in ("ws", "http") and not is_loopback(parts.hostname):
        raise ValueError(f"refusing unencrypted WebSocket to non-loopback host {parts.hostname!r}: use wss")
    return url


class StreamInterrupted(Exception):
    """The stream must be rebuilt (stale token, Cloudflare restart, unexpected frame)."""


class KrakenExecutionsStream:
    """Yields ``ExecutionObservation``s from ``observations()`` until closed."""

    def __init__(
        self,
        exchange: KrakenExchange,
        ws_url: str | None,
        *,
        heartbeat_timeout_s: float = 10.0,
        reconnect_delay_s: float = 1.0,
        poll_when_down_s: float = 2.0,
        poll_when_healthy_s: float = 60.0,
        since: datetime | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        session: aiohttp.ClientSession | None = None,
    ):
        self.exchange = exchange
        self.ws_url = check_ws_url(ws_url) if ws_url else None
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.reconnect_delay_s = reconnect_delay_s
        self.poll_when_down_s = poll_when_down_s
        self.poll_when_healthy_s = poll_when_healthy_s
        self._sleep = sleep
        self._session = session
        self._owns_session = session is None
        self._queue: asyncio.Queue[ExecutionObservation] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._expected_sequence: int | None = None  # the last sequence seen
        self._seen_trades: OrderedDict[str, None] = OrderedDict()
        self._order_state: dict[str, tuple[VenueOrderStatus | None, Decimal | None]] = {}
        self._last_trade_at = since or datetime.now(UTC) - timedelta(minutes=1)
        self._resync_lock = asyncio.Lock()
        self._resync_due = False
        self._went_down = asyncio.Event()  # wakes the poller from its long healthy-time sleep
        self.healthy = False
        self.connects = 0
        self.gaps = 0
        self.resyncs = 0

    # -- consumer side ---------------------------------------------------------------------------------------

    async def observations(self) -> AsyncIterator[ExecutionObservation]:
        """Start the stream and the poller; yield observations until the consumer stops iterating."""
        self.start()
        try:
            while True:
                yield await self._queue.get()
        finally:
            await self.close()

    def start(self) -> None:
        if not self._tasks:
            if self.ws_url:
                self._tasks.append(asyncio.create_task(self._keep_connected(), name="kraken-ws"))
            self._tasks.append(asyncio.create_task(self._poll(), name="kraken-rest-poll"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    def _emit(self, observation: ExecutionObservation) -> None:
        if observation.trade_id is not None:
            if observation.trade_id in self._seen_trades:
                return
            self._seen_trades[observation.trade_id] = None
            if len(self._seen_trades) > 10_000:
                self._seen_trades.popitem(last=False)
            if observation.timestamp is not None:
                self._last_trade_at = max(self._last_trade_at, observation.timestamp)
        else:
            state = (observation.order_status, observation.cum_qty)
            if observation.source != "ws" and self._order_state.get(observation.txid) == state:
                return  # polling saw nothing new about this order
            self._order_state[observation.txid] = state
        self._queue.put_nowait(observation)

    # -- WebSocket ---------------------------------------------------------------------------------------------

    def _set_healthy(self, healthy: bool) -> None:
        if healthy != self.healthy:
            log.info("Kraken executions stream %s", "healthy" if healthy else "down: REST polling takes over")
            if not healthy:
                self._went_down.set()
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
            self._set_healthy(False)
            # Reconnect at once after a random drop, slower when it keeps failing: Cloudflare bans IPs that
            # reconnect more than ~150 times in 10 minutes (REFERENCE.md 5.4).
            await self._sleep(min(self.reconnect_delay_s * 2 ** (failures - 1), MAX_RECONNECT_DELAY_S))

    async def _connect_once(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.ws_connect(self.ws_url, autoping=True) as ws:
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
            while True:
                try:
                    frame = await ws.receive(timeout=self.heartbeat_timeout_s)
                except TimeoutError:
                    raise StreamInterrupted(
                        f"no frame for {self.heartbeat_timeout_s:g}s (heartbeat watchdog)"
                    ) from None
                if frame.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.ERROR,
                ):
                    raise StreamInterrupted(f"closed by the server ({frame.type.name}, {ws.close_code})")
                if frame.type is aiohttp.WSMsgType.TEXT:
                    await self._on_text(frame.data)

    async def _on_text(self, text: str) -> None:
        try:
            message = json.loads(text, parse_float=Decimal)  # exact decimals from WS numbers
        except ValueError:
            raise StreamInterrupted(f"non-JSON frame ({len(text)} chars), e.g. a Cloudflare restart") from None
        if not isinstance(message, dict):
            return
        if message.get("method") == "subscribe":
            self._on_subscribe_ack(message)
        elif message.get("channel") == "executions":
            await self._on_executions(message)
        # heartbeat / status / pong frames only prove the connection is alive (the watchdog saw them)

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

    async def _on_executions(self, message: dict[str, Any]) -> None:
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
        for observation in parse_executions_message(message):
            self._emit(observation)
        if message.get("type") == "snapshot":
            self._set_healthy(True)
            if self.connects > 1:
                await self._try_resync("reconnected")  # fills during the outage may predate the snapshot
        elif gap:
            self.gaps += 1
            log.warning("Kraken executions sequence gap (expected %s, got %s): REST resync", (last or 0) + 1, sequence)
            await self._try_resync("sequence gap")

    # -- REST --------------------------------------------------------------------------------------------------

    async def _poll(self) -> None:
        while True:
            urgent = not self.healthy or self._resync_due
            if urgent:
                await self._try_resync("stream down" if not self.healthy else "earlier resync failed")
                await self._sleep(self.poll_when_down_s)
                continue
            await self._nap_while_healthy()
            if self.healthy:
                await self._try_resync("periodic check")

    async def _nap_while_healthy(self) -> None:
        """The long healthy-time sleep, cut short when the stream goes down: REST takes over at once, not up to
        ``poll_when_healthy_s`` later."""
        self._went_down.clear()
        nap = asyncio.ensure_future(self._sleep(self.poll_when_healthy_s))
        down = asyncio.ensure_future(self._went_down.wait())
        try:
            await asyncio.wait({nap, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            nap.cancel()
            down.cancel()
            await asyncio.gather(nap, down, return_exceptions=True)

    async def _try_resync(self, reason: str) -> None:
        """A resync that fails is due again at the next (short) polling turn; it never tears down the stream."""
        try:
            await self._resync(reason)
            self._resync_due = False
        except KrakenCallFailed as exc:
            self._resync_due = True
            log.warning("Kraken REST resync (%s) failed: %s", reason, exc)

    async def _resync(self, reason: str) -> None:
        """Fills since the last one seen (with a small overlap, deduplicated) and the status of every order that
        is open or was open when last looked at."""
        async with self._resync_lock:
            self.resyncs += 1
            log.info("Kraken REST resync (%s)", reason)
            for trade in await self.exchange.trades_since(self._last_trade_at - timedelta(seconds=5)):
                self._emit(trade_observation(trade))
            open_now = {order.txid: order for order in await self.exchange.open_orders()}
            was_open = [
                txid
                for txid, (status, _) in self._order_state.items()
                if txid not in open_now and status not in TERMINAL
            ]
            closed = await self.exchange.query_orders(was_open) if was_open else {}
            for order in [*open_now.values(), *closed.values()]:
                self._emit(order_observation(order))
