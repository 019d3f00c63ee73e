"""PostgreSQL LISTEN as a wake-up source: eventsourcing's PostgreSQL recorder NOTIFYs on every insert, so a
process that LISTENs on an application's channel learns of new events at once instead of at its next poll."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from execledger.infrastructure.eventstore import parse_postgres_url

log = logging.getLogger("execledger.pgnotify")


def notify_channel(app) -> str | None:
    """The channel eventsourcing's PostgreSQL recorder NOTIFYs on, or None for other stores."""
    return getattr(app.recorder, "channel_name", None)


async def listen(
    database_url: str,
    channel: str,
    on_notify: Callable[[], None],
    stop: asyncio.Event,
    *,
    listening: asyncio.Event | None = None,
    retry_s: float = 5.0,
) -> None:
    """Call ``on_notify`` for every notification on ``channel`` until ``stop``; reconnect after a failure (the
    caller's polling covers the gap). ``on_notify`` is also called once LISTEN is in place, so anything written
    before it took effect is not missed."""
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
                if listening is not None:
                    listening.set()
                on_notify()
                async for _ in conn.notifies():
                    on_notify()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if listening is not None:
                listening.clear()
            log.warning("LISTEN on %s failed (%s); polling meanwhile", channel, type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(retry_s):  # not wait_for: 3.11's can swallow a cancel
                    await stop.wait()
