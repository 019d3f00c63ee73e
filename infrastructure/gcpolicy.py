"""The trading process's cyclic garbage collector: long-lived objects frozen so collections skip them.

Python's full (generation 2) collection walks every tracked object. With 10,000 open orders held (about 180,000
tracked objects) one full collection took 118-236 ms on the 2-core machine, on the event loop: a fill arriving
then waited for it (profiled with ``gc.callbacks`` against the fill -> stop-loss samples, issue 18). What the
trading process holds after start-up (the orders loaded from the log, the pair rules, modules) lives until it is
retired or the process ends, so it is moved out of the collector's generations (``gc.freeze``): collections then
walk only what was allocated since. The same objects keep being freed by reference counting (an order dropped by
retirement is freed at once: orders hold no reference cycles, checked by dropping 600 held orders after a
freeze: a full collection found 0 cyclic garbage).

Memory stays bounded: ``refreeze_s`` after each freeze what survived since is collected and frozen too (a pause
that walks only those objects), and every ``full_every`` freezes everything is unfrozen and collected once, so
that cyclic garbage among frozen objects (none is known) cannot accumulate.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("execledger.gc")


def freeze_long_lived(*, full: bool = False) -> float:
    """Collect, then freeze every object that survived (``full``: unfreeze first, so the frozen ones are
    collected too). Returns the seconds it took (the pause it caused)."""
    started = time.perf_counter()
    if full:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
    took = time.perf_counter() - started
    log.info("gc: %d long-lived objects frozen in %.1f ms (full=%s)", gc.get_freeze_count(), took * 1000, full)
    return took


async def keep_frozen(
    recovered: asyncio.Event,
    stop: asyncio.Event,
    *,
    refreeze_s: float = 600.0,
    full_every: int = 6,
    on_freeze: Callable[[float], None] | None = None,
) -> None:
    """Once the trading process has loaded its orders (``recovered``), freeze them; then every ``refreeze_s``
    freeze what survived since, and every ``full_every``-th time collect everything first. Until ``stop``.
    ``on_freeze`` receives each freeze's pause in seconds."""
    waiting = asyncio.ensure_future(recovered.wait())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        stopping.cancel()
    count = 0
    while not stop.is_set():
        took = freeze_long_lived(full=count > 0 and count % full_every == 0)
        if on_freeze is not None:
            on_freeze(took)
        count += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), refreeze_s)
