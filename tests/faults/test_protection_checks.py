"""Invariants 8 and 9 of the fault suite on their own (``tests/faults/protection.py``): a naked stretch is measured
on the ledger's event times, less the time the service was down, and an over-exit is flagged; on orders and
histories made here."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

from tests.faults.protection import NAKED_BOUND_S, ProtectionFaults, Window

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ORDERMIN = Decimal("0.0001")


def at(seconds):
    return T0 + timedelta(seconds=seconds)


def event(name, seconds, quantity=None):
    return SimpleNamespace(name=name, timestamp=at(seconds), data={"quantity": quantity} if quantity else {})


class Ledger:
    def __init__(self, histories):
        self.histories = histories

    def order_history(self, order_id):
        return self.histories[order_id]


def faults(down=()):
    checker = ProtectionFaults.__new__(ProtectionFaults)
    checker.down = [Window(at(a), at(b)) for a, b in down]
    return checker


def naked(histories, down=(), stopped_at=100):
    entry = SimpleNamespace(id="entry", brackets=[])
    legs = [SimpleNamespace(id=name) for name in histories if name != "entry"]
    lg = SimpleNamespace(ledger=Ledger(histories))
    return faults(down).longest_naked(lg, entry, legs, ORDERMIN, at(stopped_at))


def test_a_fill_protected_at_once_is_not_naked_and_one_never_protected_is():
    protected = {"entry": [event("Filled", 10, "0.01")], "sl": [event("Acknowledged", 10.4)]}
    assert naked(protected) == (0.4, at(10))
    unprotected = {"entry": [event("Filled", 10, "0.01")], "sl": [event("Rejected", 10.4)]}
    longest, since = naked(unprotected)
    assert (longest, since) == (90.0, at(10)) and longest > NAKED_BOUND_S


def test_a_leg_that_ends_while_the_position_is_held_starts_a_naked_stretch():
    histories = {
        "entry": [event("Filled", 10, "0.01")],
        "sl": [event("Acknowledged", 11), event("Canceled", 20)],
        "sl2": [event("Acknowledged", 55)],
    }
    assert naked(histories) == (35.0, at(20))


def test_time_the_service_was_down_does_not_count_and_a_flat_position_is_not_naked():
    histories = {"entry": [event("Filled", 10, "0.01")], "sl": [event("Acknowledged", 50)]}
    assert naked(histories, down=[(12, 45)]) == (7.0, at(10))
    flat = {"entry": [event("Filled", 10, "0.01")], "tp": [event("Acknowledged", 11), event("Filled", 30, "0.01")]}
    assert naked(flat)[0] == 1.0


def test_dust_below_ordermin_is_not_naked():
    assert naked({"entry": [event("PartiallyFilled", 10, "0.00005")]})[0] == 0.0
