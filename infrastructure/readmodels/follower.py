"""Keeps the read models following the log: woken by PostgreSQL LISTEN/NOTIFY (eventsourcing NOTIFYs on every
insert), by in-process writers, or by a polling timer as the fallback (and the only way on SQLite).

A batch the projector cannot apply does not end the follower (a process that exits on it would fail the same way
at every restart): the projector records it (``projection_failures``, which health reports as ``degraded``, naming
the lag and the error), and the follower tries again with a growing pause, up to ``MAX_RETRY_S``."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from execledger.infrastructure.eventstore import parse_postgres_url
from execledger.infrastructure.readmodels.projector import ReadModelProjector, describe_failure

log = logging.getLogger(__name__)

MAX_RETRY_S = 30.0
# In the process that also trades: how long the read models wait for trading's start-up reconciliation before they
# catch up anyway (a venue that stays down must not leave the reports behind for longer).
HEAD_START_S = 10.0


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

    async def run(
        self, stop: asyncio.Event, *, after: asyncio.Event | None = None, head_start_s: float = HEAD_START_S
    ) -> None:
        """Follow the log until ``stop``. ``after``: the trading service's ``recovered`` in the same process; the
        first catch-up waits for it (at most ``head_start_s``): a catch-up in a worker thread competes for the GIL
        with the start-up fold and reconciliation (a 30k-event catch-up added ~0.3 s to a 1.5 s recovery). It
        only starts later: every event is still projected once, in log order."""
        if after is not None:
            await self._head_start(after, stop, head_start_s)
        listener = None
        if self.database_url and self.channel:
            listener = asyncio.create_task(self._listen(stop, self.database_url, self.channel))
        failures = 0
        try:
            while not stop.is_set():
                try:
                    await asyncio.to_thread(self.projector.catch_up)
                except Exception as exc:
                    failures += 1
                    pause = min(MAX_RETRY_S, max(self.poll_interval_s, 0.05) * 2**failures)
                    log.log(
                        logging.ERROR if failures == 1 else logging.WARNING,
                        "the read models cannot apply the next batch (attempt %d): %s; trying again in %.1fs",
                        failures,
                        describe_failure(exc),
                        pause,
                        exc_info=failures == 1,
                    )
                    with contextlib.suppress(TimeoutError):  # nudges do not shorten the pause; a stop does
                        async with asyncio.timeout(pause):  # not wait_for: 3.11's can swallow a cancel
                            await stop.wait()
                    continue
                if failures:
                    log.warning("the read models apply batches again after %d failed attempts", failures)
                    failures = 0
                async with self._progress:
                    self._progress.notify_all()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_interval_s):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)

    @staticmethod
    async def _head_start(after: asyncio.Event, stop: asyncio.Event, timeout_s: float) -> None:
        waiters = {asyncio.ensure_future(after.wait()), asyncio.ensure_future(stop.wait())}
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _listen(self, stop: asyncio.Event, database_url: str, channel: str) -> None:
        import psycopg
        from psycopg import sql

        t = parse_postgres_url(database_url)
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
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
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
                    channel,
                    type(exc).__name__,
                    self.poll_interval_s,
                )
                await asyncio.sleep(min(5.0, self.poll_interval_s))


def notify_channel(app) -> str | None:
    """The channel eventsourcing's PostgreSQL recorder NOTIFYs on, or None for other stores."""
    return getattr(app.recorder, "channel_name", None)
