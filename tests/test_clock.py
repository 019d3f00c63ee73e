"""The trading process's clock: a step of the wall clock changes nothing; the venue's clock anchors it at start."""

from datetime import UTC, datetime, timedelta

from execledger.infrastructure.clock import MonotonicClock

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Machine:
    def __init__(self):
        self.wall, self.mono = T0, 1000.0

    def step_wall(self, seconds):
        self.wall += timedelta(seconds=seconds)

    def elapse(self, seconds):
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


def test_a_wall_clock_step_either_way_moves_nothing():
    m = Machine()
    clock = MonotonicClock(wall=lambda: m.wall, monotonic=lambda: m.mono)
    m.elapse(3)
    m.step_wall(3600)
    assert clock.now() == T0 + timedelta(seconds=3)
    m.step_wall(-7200)
    m.elapse(2)
    assert clock.now() == T0 + timedelta(seconds=5)


def test_anchored_to_the_venue_only_when_far_off():
    m = Machine()
    clock = MonotonicClock(wall=lambda: m.wall, monotonic=lambda: m.mono)
    assert not clock.anchor_to_venue(T0 + timedelta(seconds=2))  # within tolerance: our clock stays
    assert clock.now() == T0
    assert clock.anchor_to_venue(T0 + timedelta(hours=1))  # the machine was stepped while we were down
    m.elapse(10)
    assert clock.now() == T0 + timedelta(hours=1, seconds=10)
