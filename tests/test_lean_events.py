"""Order records its events through ``lean_triggers``/``lean_create`` (domain/events.py), not eventsourcing's
decorator path: the events, their stored bytes and the order's state must be what the library's path makes."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from eventsourcing.domain import BoundCommandMethodDecorator, decorated_func_callers

from execledger.application.orders_app import OrdersApp
from execledger.domain import clock
from execledger.domain.order import Order
from execledger.domain.values import OrderRole, OrderType, Side

T = datetime(2026, 1, 1, tzinfo=UTC)
FIELDS = {
    "signal_id": "s",
    "pair": "XXBTZUSD",
    "quantity": Decimal("0.01"),
    "limit_price": Decimal("65000"),
    "trigger_price": None,
    "cl_ord_id": "c",
    "parent_id": None,
    "sl_price": Decimal("60000"),
    "tp_price": None,
    "timeout_s": 3.5,
    "tags": {"a": "1"},
    "signal_fingerprint": "fp",
    "reason": {"rule": "approved_signal", "text": "t"},
}
STEPS = [
    ("_submitted", {"at": T, "deadline": None, "reason": {"rule": "submit", "text": "t"}}),
    ("_acknowledged", {"txid": "TX-1", "at": T, "reason": {"rule": "ack", "text": "t"}}),
    ("_deferred", {"key": "k", "reason": {"rule": "r", "text": "t"}}),
    ("_cancel_requested", {"reason": {"rule": "r", "text": "t"}}),
]


def test_the_lean_path_records_the_librarys_events_byte_for_byte(monkeypatch):
    monkeypatch.setattr(clock, "_now", lambda: T)
    decorators = {
        d.decorated_func.__name__: d
        for d in decorated_func_callers
        if d.decorated_func.__qualname__.startswith("Order.")
    }
    oid = uuid.uuid4()
    library = Order._create(Order.Placed, id=oid, role="entry", side="buy", order_type="limit", **FIELDS)
    lean = Order.place(order_id=oid, role=OrderRole.ENTRY, side=Side.BUY, order_type=OrderType.LIMIT, **FIELDS)
    for name, kwargs in STEPS:
        BoundCommandMethodDecorator(decorators[name], library)(**kwargs)
        getattr(lean, name)(**kwargs)
    mapper = OrdersApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper
    expected = [mapper.to_stored_event(e) for e in library.collect_events()]
    assert [mapper.to_stored_event(e) for e in lean.collect_events()] == expected
    assert len(expected) == 1 + len(STEPS)
    # The lean path also numbers its events in decision order (``_decided``, process-local, never stored).
    decided = lean.__dict__["_decided"]
    assert decided == sorted(decided) and len(decided) == len(expected)
    assert {k: v for k, v in vars(lean).items() if k not in ("_pending_events", "_decided")} == {
        k: v for k, v in vars(library).items() if k != "_pending_events"
    }
