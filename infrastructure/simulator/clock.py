"""The simulator's clock: wall time or a frozen start, plus an offset that the control surface advances."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class SimClock:
    """``now()`` in epoch seconds. With ``start`` given the clock only moves when ``advance`` is called."""

    def __init__(self, start: float | None = None):
        self._frozen_at = start
        self._offset = 0.0

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def now(self) -> float:
        base = self._frozen_at if self._frozen_at is not None else time.time()
        return base + self._offset

    def advance(self, seconds: float) -> float:
        """Move simulator time forward (never back: Kraken's timestamps only grow)."""
        if seconds < 0:
            raise ValueError("the simulator clock cannot go back")
        self._offset += seconds
        return self.now()


def rfc3339(ts: float, micros: bool = False) -> str:
    """``2023-03-24T17:41:56Z`` (REST) or with microseconds ``...56.123456Z`` (WS v2)."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    if micros:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc1123(ts: float) -> str:
    """The ``Time`` endpoint's format, e.g. ``Thu, 06 Jul 23 18:50:48 +0000``."""
    return datetime.fromtimestamp(int(ts), tz=UTC).strftime("%a, %d %b %y %H:%M:%S +0000")


def parse_rfc3339(text: str) -> float:
    """Epoch seconds of an RFC3339 timestamp (``Z`` or an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
