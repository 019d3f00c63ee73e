"""The heartbeat watchdog of the WS streams (executions and public prices): no frame for a while -> reconnect."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class FrameWatchdog:
    """The heartbeat watchdog: cancels the task reading the socket once no frame came for ``timeout_s``, as
    ``asyncio.timeout`` would, but with one timer per ``timeout_s`` of a live stream instead of one per frame (a
    timeout around each ``receive`` made and canceled a timer and a context manager for every frame). The reader
    calls ``seen()`` for each frame; the timer re-arms itself at ``last + timeout_s`` until that
    passes with no frame."""

    def __init__(self, timeout_s: float):
        self.loop = asyncio.get_running_loop()
        self.timeout_s = timeout_s
        self.last = self.loop.time()
        self._task = asyncio.current_task()
        self._cancelling = self._task.cancelling() if self._task is not None else 0
        self._fired = False
        self._held = False
        self._handle: asyncio.TimerHandle | None = self.loop.call_at(self.last + timeout_s, self._check)

    def seen(self) -> float:
        """A frame arrived: the loop time now (returned)."""
        self.last = now = self.loop.time()
        return now

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """The reader stopped reading on purpose (its consumer is behind): no expiry meanwhile, and the time
        counts again from when it reads again."""
        self._held = True
        try:
            yield
        finally:
            self._held = False
            self.seen()

    def _check(self) -> None:
        if self._held:
            self.seen()
        due = self.last + self.timeout_s
        if self.loop.time() < due:
            self._handle = self.loop.call_at(due, self._check)
            return
        self._handle = None
        if self._task is not None:
            self._fired = True
            self._task.cancel()

    def expired(self) -> bool:
        """After a CancelledError: whether it was this watchdog's, and only its (a close of the stream meanwhile
        still cancels)."""
        return self._fired and self._task is not None and self._task.uncancel() <= self._cancelling

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
