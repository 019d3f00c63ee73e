"""Notifications (webhooks, and through apprise Telegram, Slack, e-mail, ...) on fills, brackets, rejections,
halts and reconciliation findings, delivered **at least once** by a tracked follower of the log.

Never from a hot path: the trading engine does not know notifications exist. ``NotificationFollower`` reads the
Orders log after its tracking position, turns the notable events into ``Notification``s, hands each to every sink
and only then saves the position (its own one-row table, ``notification_tracking``). A crash between the delivery
and the save delivers that notification again after the restart, so receivers deduplicate by ``id``
(``<order or state id>:<version>``, stable across redeliveries). A sink that fails for a passing reason (network,
5xx, 429) is retried with capped exponential backoff and holds the queue behind it, so order is kept; a webhook
that answers another 4xx will never accept that message, which is logged as an error and skipped.

Settings: ``EXECLEDGER_NOTIFY_WEBHOOK_URLS`` (comma-separated; each gets ``POST`` of the notification as JSON) and
``EXECLEDGER_NOTIFY_APPRISE_URLS`` (comma-separated apprise URLs: ``tgram://``, ``slack://``, ``mailto://``, ...;
the optional ``apprise`` package, ``pip install execledger[notify]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import aiohttp
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert, select, update

from execledger.domain.order import Order
from execledger.domain.trading_state import TradingState
from execledger.domain.values import plain
from execledger.infrastructure.present import pair_name

log = logging.getLogger("execledger.notify")

metadata = MetaData()
notification_tracking = Table(
    "notification_tracking",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
)


@dataclass(frozen=True)
class Notification:
    """One message. ``id`` is stable across redeliveries (deduplicate on it); ``position`` is its place in the log."""

    id: str
    kind: str  # fill | bracket | exit | rejection | trading_mode | reconciliation
    title: str
    text: str
    at: str  # ISO 8601, when the ledger recorded it
    position: int
    signal_id: str | None = None
    order_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class DeliveryFailed(Exception):
    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class Sink(Protocol):
    name: str

    async def send(self, n: Notification) -> None:
        """Deliver or raise DeliveryFailed."""


def _d(value: Any) -> str:
    if value is None:
        return "-"
    return plain(value if isinstance(value, Decimal) else Decimal(str(value)))


def notification_for(ev: Any, order: Order | None, position: int, pairs: Any = None) -> Notification | None:
    """The notification for one stored event (None: not notable). ``order`` is the order right after ``ev``."""
    name = type(ev).__name__
    at = ev.timestamp.isoformat() if isinstance(ev.timestamp, datetime) else str(ev.timestamp)
    nid = f"{ev.originator_id}:{ev.originator_version}"
    if name == "ModeChanged":
        verb = {"halted": "HALTED", "reducing": "REDUCING", "running": "resumed"}.get(ev.mode, ev.mode)
        text = f"trading {verb} by {ev.by}: {ev.why}" + (" (resting entries canceled)" if ev.cancel_entries else "")
        return Notification(
            nid, "trading_mode", f"execledger: trading {ev.mode}", text, at, position, data={"mode": ev.mode}
        )
    if order is None:
        return None
    why = getattr(ev, "reason", None) or {}
    pair = pair_name(pairs, order.pair)
    ids = {"signal_id": order.signal_id, "order_id": str(order.id)}
    recon = why.get("source") == "reconciliation" or getattr(ev, "source", None) == "reconciliation"
    base = {"role": order.role.value, "pair": pair, "side": order.side.value, "txid": order.txid}
    if name in ("PartiallyFilled", "Filled"):
        text = (
            f"{order.role.value} {order.side.value} {_d(ev.quantity)} {pair} @ {_d(ev.price)} "
            f"(fee {_d(ev.fee)}); {_d(ev.cumulative_quantity)} of {_d(order.quantity)} filled"
        )
        data = {**base, "trade_id": ev.trade_id, "qty": _d(ev.quantity), "px": _d(ev.price), "fee": _d(ev.fee)}
        kind = "reconciliation" if recon else "fill"
        title = f"execledger: {'fill found by reconciliation' if recon else 'fill'} {order.signal_id}"
        return Notification(nid, kind, title, text, at, position, **ids, data=data)
    if name == "BracketPlaced":
        text = f"{pair}: protecting {_d(ev.quantity)} with stop {_d(ev.sl_price)} and take-profit {_d(ev.tp_price)}"
        data = {**base, "qty": _d(ev.quantity), "sl_px": _d(ev.sl_price), "tp_px": _d(ev.tp_price)}
        return Notification(
            nid, "bracket", f"execledger: bracket {order.signal_id}", text, at, position, **ids, data=data
        )
    if name == "BracketLegAdded" and why.get("rule") == "stop_rejected_exit_at_market":
        text = f"{pair}: the stop was rejected for good; exiting at market ({why.get('text', '')})"
        return Notification(
            nid, "exit", f"execledger: market exit {order.signal_id}", text, at, position, **ids, data=base
        )
    if name == "PositionExitAdded":
        text = f"{pair}: closing the position, exit {_d(ev.quantity)} at market ({why.get('text', '')})"
        return Notification(nid, "exit", f"execledger: close {order.signal_id}", text, at, position, **ids, data=base)
    if name == "OperatorResolved":
        text = f"{order.role.value} {order.side.value} {pair} resolved by an operator: {why.get('text', '')}"
        title = f"execledger: operator resolution {order.signal_id}"
        return Notification(nid, "operator", title, text, at, position, **ids, data=base)
    if name == "Rejected":
        text = f"{order.role.value} {order.side.value} {_d(order.quantity)} {pair} rejected: {ev.error}"
        data = {**base, "error": ev.error, "error_class": why.get("error_class")}
        return Notification(
            nid, "rejection", f"execledger: rejected {order.signal_id}", text, at, position, **ids, data=data
        )
    if recon and name in ("Acknowledged", "Canceled", "Expired"):
        text = f"reconciliation: {order.role.value} {order.side.value} {pair} {name.lower()} ({why.get('text', '')})"
        title = f"execledger: reconciliation {order.signal_id}"
        return Notification(nid, "reconciliation", title, text, at, position, **ids, data=base)
    return None


NOTABLE = frozenset(
    {
        "PartiallyFilled",
        "Filled",
        "BracketPlaced",
        "BracketLegAdded",
        "Rejected",
        "ModeChanged",
        "PositionExitAdded",
        "OperatorResolved",
        "Acknowledged",
        "Canceled",
        "Expired",
    }
)


class WebhookSink:
    """``POST`` the notification as JSON; 2xx is delivered. Times out after ``timeout_s``."""

    def __init__(self, url: str, *, timeout_s: float = 10.0, session: aiohttp.ClientSession | None = None):
        self.url = url
        self.name = "webhook " + url.split("://", 1)[-1].split("/", 1)[0]  # host only: paths may hold tokens
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session

    async def send(self, n: Notification) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.post(self.url, json=n.as_json(), headers={"Idempotency-Key": n.id}) as r:
                if 200 <= r.status < 300:
                    return
                retryable = r.status >= 500 or r.status in (408, 425, 429)
                raise DeliveryFailed(f"{self.name} answered HTTP {r.status}", retryable=retryable)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryFailed(f"{self.name}: {type(exc).__name__}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class AppriseSink:
    """Any apprise URL (Telegram, Slack, e-mail, ...). apprise is synchronous: it runs in a worker thread."""

    def __init__(self, urls: Sequence[str]):
        try:
            import apprise
        except ImportError:  # pragma: no cover - exercised only without the extra
            raise RuntimeError(
                "EXECLEDGER_NOTIFY_APPRISE_URLS needs apprise: pip install 'execledger[notify]'"
            ) from None
        self._apprise = apprise.Apprise()
        for url in urls:
            if not self._apprise.add(url):
                raise ValueError("EXECLEDGER_NOTIFY_APPRISE_URLS: an entry is not a URL apprise understands")
        self.name = f"apprise ({len(urls)} target(s))"

    async def send(self, n: Notification) -> None:
        ok = await asyncio.to_thread(self._apprise.notify, body=n.text, title=n.title)
        if not ok:
            raise DeliveryFailed(f"{self.name}: at least one target refused or could not be reached")

    async def close(self) -> None:
        return None


def sinks_from_settings(settings: Any) -> list[Any]:
    """The sinks configured by ``EXECLEDGER_NOTIFY_*`` (empty: notifications off)."""
    sinks: list[Any] = []
    if settings.notify_webhook_urls is not None:
        for url in settings.notify_webhook_urls.get_secret_value().split(","):
            if url.strip():
                sinks.append(WebhookSink(url.strip()))
    if settings.notify_apprise_urls is not None:
        urls = [u.strip() for u in settings.notify_apprise_urls.get_secret_value().split(",") if u.strip()]
        if urls:
            sinks.append(AppriseSink(urls))
    return sinks


class NotificationFollower:
    """Follows the Orders log and delivers notable events to every sink, at least once, in log order."""

    def __init__(
        self,
        app: Any,
        db: Engine,
        sinks: Sequence[Any],
        *,
        pairs: Any = None,
        name: str = "notifications",
        poll_interval_s: float = 1.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        batch_size: int = 200,
    ):
        self.app, self.db, self.sinks, self.pairs, self.name = app, db, list(sinks), pairs, name
        self.poll_interval_s = poll_interval_s
        self.retry_initial_s, self.retry_max_s = retry_initial_s, retry_max_s
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self.delivered = 0
        metadata.create_all(db)

    # --- the tracking position -------------------------------------------------------------------------

    def position(self) -> int:
        with self.db.connect() as conn:
            value = conn.execute(
                select(notification_tracking.c.position).where(notification_tracking.c.name == self.name)
            ).scalar()
        if value is None:
            # First start: notify from now on, not about the whole history already in the log.
            value = self.app.recorder.max_notification_id() or 0
            self._save(value, new=True)
        return int(value)

    def _save(self, position: int, *, new: bool = False) -> None:
        with self.db.begin() as conn:
            if new:
                conn.execute(insert(notification_tracking).values(name=self.name, position=position))
            else:
                conn.execute(
                    update(notification_tracking)
                    .where(notification_tracking.c.name == self.name)
                    .values(position=position)
                )

    # --- following -----------------------------------------------------------------------------------------

    def nudge(self) -> None:
        self._wake.set()

    def pending(self, start: int) -> list[Notification]:
        """The notifications after log position ``start`` (one batch)."""
        out = []
        for n in self.app.recorder.select_notifications(start=start + 1, limit=self.batch_size):
            ev = self.app.mapper.to_domain_event(n)
            name = type(ev).__name__
            note = None
            if name in NOTABLE:
                order = None
                if isinstance(ev, Order.Event):
                    order = self.app.repository.get(ev.originator_id, version=ev.originator_version)
                elif not isinstance(ev, TradingState.Event):
                    continue
                note = notification_for(ev, order, n.id, self.pairs)
            # Positions with nothing to say still advance the tracking (a placeholder keeps the order).
            out.append(note or Notification("", "", "", "", "", n.id))
        return out

    async def deliver(self, n: Notification, stop: asyncio.Event | None = None) -> bool:
        """Hand ``n`` to every sink, retrying passing failures; False if ``stop`` was set while retrying."""
        for sink in self.sinks:
            wait = self.retry_initial_s
            while True:
                try:
                    await sink.send(n)
                    break
                except DeliveryFailed as exc:
                    if not exc.retryable:
                        log.error(
                            "notification %s dropped by %s: %s (it would never be accepted)", n.id, sink.name, exc
                        )
                        break
                    log.warning(
                        "notification %s not delivered to %s (%s); retrying in %.1fs", n.id, sink.name, exc, wait
                    )
                    if stop is not None:
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(wait):  # not wait_for: 3.11's can swallow a cancel
                                await stop.wait()
                        if stop.is_set():
                            return False
                    else:
                        await asyncio.sleep(wait)
                    wait = min(wait * 2, self.retry_max_s)
        return True

    async def catch_up(self, stop: asyncio.Event | None = None) -> int:
        """Deliver everything recorded so far; returns how many notifications were delivered."""
        delivered = 0
        while True:
            start = await asyncio.to_thread(self.position)
            batch = await asyncio.to_thread(self.pending, start)
            if not batch:
                return delivered
            for note in batch:
                if note.id:
                    if not await self.deliver(note, stop):
                        return delivered
                    delivered += 1
                    self.delivered += 1
                    await asyncio.to_thread(self._save, note.position)  # after delivery: at least once
            if not batch[-1].id:
                await asyncio.to_thread(self._save, batch[-1].position)  # the quiet rest of the batch

    async def run(self, stop: asyncio.Event) -> None:
        """Follow until ``stop``: catch up, then wait for a nudge or the poll interval."""
        try:
            while not stop.is_set():
                try:
                    await self.catch_up(stop)
                except Exception:  # the store is unreachable for now: try again at the next turn
                    log.exception("notification follower failed; trying again")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
                self._wake.clear()
        finally:
            for sink in self.sinks:
                await sink.close()
