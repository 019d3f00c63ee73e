"""Keeps the read models following the log: woken by PostgreSQL LISTEN/NOTIFY (eventsourcing NOTIFYs on every
insert), by in-process writers, or by a polling timer as the fallback (and the only way on SQLite)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from execledger.infrastructure.eventstore import parse_postgres_url
from execledger.infrastructure.readmodels.projector import ReadModelProjector

log = logging.getLogger(__name__)


class ProjectionFollower:
    def __init__(
        self,
        projector: ReadModelProjector,
        *,
        poll_interval_s: float = 1.0,
        database_url: str | None = None,
        channel: str | None = None,
    ):
        self.projector = projector
        self.poll_interval_s = poll_interval_s
        self.database_url = database_url
        self.channel = channel
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self.listening = asyncio.Event()  # set while a LISTEN is in place

    def nudge(self) -> None:
        """New events were written (by this process): catch up now instead of at the next poll."""
        self._wake.set()

    async def wait_for(self, position: int, timeout: float) -> None:
        """Return once the read models have processed the log up to ``position`` (TimeoutError otherwise)."""

        async def reached() -> None:
            async with self._progress:
                await self._progress.wait_for(lambda: self.projector.position() >= position)

        await asyncio.wait_for(reached(), timeout)

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop)) if self.database_url and self.channel else None
        try:
            while not stop.is_set():
                await asyncio.to_thread(self.projector.catch_up)
                async with self._progress:
                    self._progress.notify_all()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
                self._wake.clear()
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)

    async def _listen(self, stop: asyncio.Event) -> None:
        import psycopg
        from psycopg import sql

        t = parse_postgres_url(self.database_url)
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    host=t.host,
                    port=t.port,
                    dbname=t.dbname,
                    user=t.user,
                    password=t.password,
                    autocommit=True,
                    connect_timeout=5,
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.listening.set()
                    self._wake.set()  # anything written before LISTEN took effect is caught up now
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening.clear()
                log.warning(
                    "LISTEN on %s failed (%s); polling every %.1fs meanwhile",
                    self.channel,
                    type(exc).__name__,
                    self.poll_interval_s,
                )
                await asyncio.sleep(min(5.0, self.poll_interval_s))


def notify_channel(app) -> str | None:
    """The channel eventsourcing's PostgreSQL recorder NOTIFYs on, or None for other stores."""
    return getattr(app.recorder, "channel_name", None)
