"""The trading process's clock: wall time read once, then advanced by the monotonic clock.

Waits on the venue (an AddOrder's deadline before "not found" proves "not placed", a limit entry's timeout, a
signal's maximum age) are measured on it, so a step of the machine's wall clock (NTP, an operator, a VM resume)
changes no decision: a +1 h step no longer times out a 3 s old entry, nor turns an unknown outcome into "not
placed" within a second. At start it is anchored to the venue's own clock when the two disagree by more than a few
seconds (Kraken ``GET /0/public/Time``, REFERENCE.md 3.1), so times recorded before and after a restart on a
machine whose clock was stepped meanwhile still compare; every recorded event carries this clock's time. A venue
whose clock steps later is followed for what it reads on its own clock only: an AddOrder's ``deadline`` refused as
elapsed or too far ahead makes the trading service read the venue's clock again and give deadlines on it
(``Correction.VENUE_CLOCK``); this clock does not move.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

log = logging.getLogger("execledger.clock")

ANCHOR_TOLERANCE_S = 5.0  # re-anchor to the venue only when the wall clock is this far off it


class MonotonicClock:
    def __init__(
        self,
        *,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._monotonic = monotonic
        self._anchor = wall()
        self._anchored_at = monotonic()

    def now(self) -> datetime:
        return self._anchor + timedelta(seconds=self._monotonic() - self._anchored_at)

    def anchor_to_venue(self, venue_now: datetime) -> bool:
        """Anchor to the venue's clock if ours is more than ``ANCHOR_TOLERANCE_S`` off it (call once, at start,
        before any decision). Returns whether it moved."""
        offset = (venue_now - self.now()).total_seconds()
        if abs(offset) <= ANCHOR_TOLERANCE_S:
            return False
        log.warning("the machine's clock is %.1fs off the venue's: following the venue's clock", -offset)
        self._anchor, self._anchored_at = venue_now, self._monotonic()
        return True
