"""A circuit breaker around the venue: stop hammering Kraken while it is down, but never block a cancel.

CLOSED -> OPEN after ``failure_threshold`` consecutive transport/5xx failures; OPEN -> HALF_OPEN once
``reset_timeout_s`` has passed; HALF_OPEN -> CLOSED on the first success, back to OPEN on the first failure.
New entries (AddOrder) are allowed only when CLOSED: a probe should not be an order whose failure would be
ambiguous. Reads are the probes in HALF_OPEN. Cancels always pass, because they reduce risk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum

log = logging.getLogger("execledger.kraken.breaker")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CallKind(StrEnum):
    """What a call does, which decides whether the breaker lets it through."""

    READ = "read"
    CANCEL = "cancel"
    NEW_ENTRY = "new_entry"
    EXIT = "exit"  # an AddOrder that protects or closes a filled position (stop-loss, take-profit, market exit)


Listener = Callable[[BreakerState, BreakerState, str], None]


class CircuitBreaker:
    """Every state change is logged and passed to each listener as ``(old, new, reason)``."""

    def __init__(
        self, failure_threshold: int = 5, reset_timeout_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ):
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self.opened_wall: datetime | None = None  # when the current outage began (names it in decisions)
        self.last_reason = ""
        self.listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_timeout_s:
            self._change(BreakerState.HALF_OPEN, f"{self.reset_timeout_s:g}s since opening")
        return self._state

    def seconds_until_half_open(self) -> float:
        """0 unless OPEN; then how long until reads may probe the venue again."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.reset_timeout_s - (self._clock() - self._opened_at))

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allows(self, kind: CallKind) -> bool:
        """Whether a call of this kind may be sent now."""
        state = self.state
        if kind is CallKind.CANCEL or kind is CallKind.EXIT or state is BreakerState.CLOSED:
            return True  # what protects a position (a cancel, an exit) is never held back by the breaker
        return kind is CallKind.READ and state is BreakerState.HALF_OPEN

    def record_success(self) -> None:
        self._failures = 0
        if self._state is not BreakerState.CLOSED:
            self._change(BreakerState.CLOSED, "a call succeeded")

    def record_failure(self, reason: str) -> None:
        self._failures += 1
        state = self.state
        if state is BreakerState.HALF_OPEN or (
            state is BreakerState.CLOSED and self._failures >= self.failure_threshold
        ):
            self._opened_at = self._clock()
            if state is BreakerState.CLOSED:
                self.opened_wall = datetime.now(UTC)
            self.last_reason = reason
            self._change(BreakerState.OPEN, f"{self._failures} consecutive failures, last: {reason}")

    def _change(self, new: BreakerState, reason: str) -> None:
        old, self._state = self._state, new
        log.warning("Kraken circuit breaker %s -> %s (%s)", old, new, reason)
        for listener in list(self.listeners):
            try:
                listener(old, new, reason)
            except Exception:
                log.exception("circuit breaker listener failed")
