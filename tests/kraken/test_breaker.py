"""The circuit breaker: opens on consecutive failures, half-opens on a timer, cancels always pass."""

from execledger.infrastructure.kraken.breaker import BreakerState, CallKind, CircuitBreaker
from tests.kraken.conftest import FakeTime


def make():
    t = FakeTime()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=30, clock=t.monotonic)
    changes = []
    breaker.add_listener(lambda old, new, reason: changes.append((old, new)))
    return t, breaker, changes


def trip(breaker):
    for _ in range(3):
        breaker.record_failure("502")


def test_opens_after_consecutive_failures_only():
    _t, breaker, changes = make()
    breaker.record_failure("502")
    breaker.record_failure("502")
    breaker.record_success()  # resets the run
    breaker.record_failure("502")
    breaker.record_failure("502")
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure("timeout")
    assert breaker.state is BreakerState.OPEN
    assert changes == [(BreakerState.CLOSED, BreakerState.OPEN)]


def test_open_blocks_new_entries_and_reads_but_not_cancels():
    _t, breaker, _ = make()
    trip(breaker)
    assert not breaker.allows(CallKind.NEW_ENTRY)
    assert not breaker.allows(CallKind.READ)
    assert breaker.allows(CallKind.CANCEL)
    assert breaker.allows(CallKind.EXIT)  # a protective leg's AddOrder, like a cancel, protects a position


def test_half_opens_on_the_timer_reads_probe_and_success_closes():
    t, breaker, changes = make()
    trip(breaker)
    t.now += 29.9
    assert breaker.state is BreakerState.OPEN
    t.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allows(CallKind.READ) and not breaker.allows(CallKind.NEW_ENTRY)
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allows(CallKind.NEW_ENTRY)
    assert [new for _, new in changes] == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_a_failed_probe_reopens_and_restarts_the_timer():
    t, breaker, _changes = make()
    trip(breaker)
    t.now += 30
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_failure("still 502")
    assert breaker.state is BreakerState.OPEN
    t.now += 29
    assert breaker.state is BreakerState.OPEN


def test_state_changes_are_logged_and_a_broken_listener_does_not_break_it(caplog):
    _t, breaker, changes = make()
    breaker.add_listener(lambda *a: 1 / 0)
    with caplog.at_level("WARNING", logger="execledger.kraken.breaker"):
        trip(breaker)
    assert breaker.state is BreakerState.OPEN
    assert any("closed -> open" in r.getMessage() for r in caplog.records)
    assert changes == [(BreakerState.CLOSED, BreakerState.OPEN)]
