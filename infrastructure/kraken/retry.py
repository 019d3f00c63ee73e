"""Retries with jittered exponential backoff (tenacity), for reads and cancels only: AddOrder is never resent.

What is retried is decided by the error table: RETRYABLE and RATE_LIMITED outcomes. ``EService:Throttled: <ts>``
is not retried before ``ts``. Local refusals (breaker open, throttle wait too long) are not retried: waiting is
what the breaker and the limiter already do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from execledger.application.ports import ErrorClass
from execledger.infrastructure.kraken.errors import BreakerOpen, KrakenCallFailed, KrakenVenueError, ThrottleWaitTooLong

log = logging.getLogger("execledger.kraken.retry")
T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    """Whether the table says another attempt may succeed."""
    if isinstance(exc, (BreakerOpen, ThrottleWaitTooLong)) or not isinstance(exc, KrakenCallFailed):
        return False
    return exc.error_class in (ErrorClass.RETRYABLE, ErrorClass.RATE_LIMITED)


@dataclass
class RetryPolicy:
    """``attempts`` in all (first try included); waits are random in [0, min(max_s, base_s * 2**n)] ("full
    jitter"), so many clients recovering together do not retry in lockstep."""

    attempts: int = 4
    base_s: float = 0.5
    max_s: float = 8.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    wall_clock: Callable[[], float] = time.time
    waits: list[float] = field(default_factory=list)  # what was waited, for tests and metrics

    def _wait(self, state: RetryCallState) -> float:
        jittered = wait_random_exponential(multiplier=self.base_s, max=self.max_s)(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, KrakenVenueError) and exc.retry_at is not None:
            jittered = max(jittered, exc.retry_at - self.wall_clock())
        self.waits.append(jittered)
        return jittered

    async def run(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` until it succeeds, fails permanently, or the attempts are used up (then re-raise). The
        first attempt is awaited directly: tenacity's machinery (built per call, about 30 us) only once one failed."""
        try:
            return await call()
        except Exception as exc:
            if self.attempts <= 1 or not is_retryable(exc):
                raise
            first = exc
        return await self._again(what, call, first)

    async def _again(self, what: str, call: Callable[[], Awaitable[T]], first: BaseException) -> T:
        """Attempts 2 to ``attempts`` after the first failed with ``first``: the same waits and log lines as if
        tenacity had run the first attempt too (its attempt number and outcome are replayed into the state)."""

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.info("Kraken %s attempt %d failed (%s); retrying", what, state.attempt_number, exc)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            sleep=self.sleep,
            reraise=True,
            before_sleep=before_sleep,
        )
        failed_once = [first]

        async def attempt() -> T:  # tenacity awaits only real coroutine functions, not lambdas returning one
            if failed_once:
                raise failed_once.pop()  # the first attempt's outcome, already had
            return await call()

        return await retrying(attempt)
