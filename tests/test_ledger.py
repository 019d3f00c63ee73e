"""Recording signals and reading orders on both event-store backends: idempotent submission, nothing written on
bad input, replay equality, concurrency conflicts, history with reasons, and the Placed v1 -> v2 upcast."""

import json
import uuid
from decimal import Decimal as D

import pytest
from eventsourcing.persistence import StoredEvent

from execledger.application.engine import ExecutionEngine
from execledger.application.ledger import ExecutionLedger, OrderNotFound, SignalConflict, entry_order_id
from execledger.application.unit_of_work import ConcurrencyConflict
from execledger.domain.errors import SignalRejected
from execledger.domain.events import EventKind
from execledger.domain.order import State
from execledger.domain.reasons import reason
from tests.orders import T0

SIGNAL = {
    "signal_id": "sig-100",
    "pair": "XBT/USD",
    "side": "buy",
    "order_type": "limit",
    "quantity": "0.0125",
    "limit_price": "64250.07",
    "sl_price": "62000",
    "tp_price": "68000",
    "timeout_s": 90,
    "tags": {"s": "x"},
}


def max_id(ledger: ExecutionLedger) -> int:
    return ledger.app.recorder.max_notification_id() or 0


@pytest.fixture
def engine(ledger) -> ExecutionEngine:
    return ExecutionEngine(ledger)


def submit(engine, data):
    return engine.control.submit_signal(data)


def test_submit_records_a_placed_order_with_rounded_values_and_reason(ledger, engine):
    result = submit(engine, SIGNAL)
    assert result.created
    order = ledger.get_order(result.order.id)
    assert order.id == entry_order_id("sig-100") and order.state is State.PENDING_SUBMIT
    assert order.pair == "XXBTZUSD" and order.limit_price == D("64250.0") and order.quantity == D("0.0125")
    assert uuid.UUID(order.cl_ord_id).version == 4  # a UUID: Kraken accepts it, free text is limited to 18 chars
    [placed] = ledger.order_history(order.id)
    assert placed.kind is EventKind.DECISION and placed.reason["rule"] == "approved_signal"
    assert placed.reason["rounded"] == {"limit_price": "64250.07 -> 64250"}


def test_same_signal_again_returns_same_order_and_writes_nothing(ledger, engine):
    first = submit(engine, SIGNAL)
    position = max_id(ledger)
    again = submit(engine, dict(SIGNAL))
    assert not again.created and again.order.id == first.order.id and again.order.cl_ord_id == first.order.cl_ord_id
    assert max_id(ledger) == position


def test_same_signal_id_with_other_content_is_refused(ledger, engine):
    submit(engine, SIGNAL)
    position = max_id(ledger)
    with pytest.raises(SignalConflict, match=r"sig-100.*different content"):
        submit(engine, {**SIGNAL, "quantity": "0.02"})
    assert max_id(ledger) == position


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quantity": "-1"}, "quantity"),
        ({"pair": "DOGE/USD"}, "pair"),
        ({"sl_price": "70000"}, "sl_price"),
        ({"quantity": "0.00001"}, "quantity"),
    ],
)
def test_invalid_signal_names_field_and_writes_nothing(ledger, change, field, engine):
    with pytest.raises(SignalRejected) as info:
        submit(engine, {**SIGNAL, **change})
    assert field in {e.field for e in info.value.errors}
    assert field in str(info.value)
    assert max_id(ledger) == 0
    with pytest.raises(OrderNotFound):
        ledger.order_for_signal("sig-100")


def test_replay_equality_save_reload_same_state_and_version(ledger, engine):
    order = submit(engine, SIGNAL).order
    order.submit(at=T0, deadline=None, reason=reason("submit", "send"))
    order.acknowledge(txid="OQCLML-BW3P3-BUCMWZ", at=T0, reason=reason("ack", "AddOrder ok"))
    order.apply_fill(
        trade_id="TCCCTY-WE2O6-P3NB37", quantity=D("0.005"), price=D("64250.0"), fee=D("0.08"), fee_asset="ZUSD"
    )
    order.record_bracket(
        quantity=D("0.005"),
        stop_loss_order_id=uuid.uuid4(),
        take_profit_order_id=uuid.uuid4(),
        sl_price=D("62000"),
        tp_price=D("68000"),
        reason=reason("bracket", "per fill"),
    )
    engine.uow.commit(order)
    loaded = ledger.get_order(order.id)
    assert loaded.version == order.version == 5

    def keep(o):
        return {k: v for k, v in o.__dict__.items() if k != "_pending_events"}

    assert keep(loaded) == keep(order)
    assert loaded.status.value == "partially_filled" and loaded.average_fill_price == D("64250.0")


def test_optimistic_concurrency_conflict_is_a_clear_error(ledger, engine):
    order_id = submit(engine, SIGNAL).order.id
    a, b = ledger.get_order(order_id), ledger.get_order(order_id)
    a.submit(at=T0, deadline=None, reason=reason("submit", "writer a"))
    engine.uow.commit(a)
    b.submit(at=T0, deadline=None, reason=reason("submit", "writer b"))
    with pytest.raises(ConcurrencyConflict, match="the store refused"):
        engine.uow.commit(b)
    assert [h.name for h in ledger.order_history(order_id)] == ["Placed", "Submitted"]
    assert ledger.order_history(order_id)[1].reason["text"] == "writer a"


def test_history_lists_every_event_with_kind_and_reason(ledger, engine):
    order = submit(engine, SIGNAL).order
    order.submit(at=T0, deadline=None, reason=reason("submit", "send"))
    order.outcome_unknown(error="HTTP 502", reason=reason("ambiguous_submit", "502 after send", http_status=502))
    engine.uow.commit(order)
    history = ledger.order_history(order.id)
    assert [(h.name, h.kind) for h in history] == [
        ("Placed", EventKind.DECISION),
        ("Submitted", EventKind.DECISION),
        ("SubmissionOutcomeUnknown", EventKind.OUTCOME),
    ]
    assert history[2].reason == {"rule": "ambiguous_submit", "text": "502 after send", "http_status": 502}
    assert history[2].data["error"] == "HTTP 502"


def test_order_ids_lists_placed_orders_in_order(ledger, engine):
    ids = [submit(engine, {**SIGNAL, "signal_id": f"sig-{i}"}).order.id for i in range(3)]
    assert list(ledger.order_ids()) == ids


def test_unknown_ids(ledger):
    with pytest.raises(OrderNotFound):
        ledger.get_order(uuid.uuid4())
    with pytest.raises(OrderNotFound, match="not an order id"):
        ledger.order_history("nonsense")


def test_old_placed_v1_event_still_loads_through_the_upcast(ledger, engine):
    """A Placed event stored before tags/timeout_s existed (class_version 1) loads with their defaults."""
    order_id = uuid.uuid4()
    v1_state = {
        "timestamp": {"_type_": "datetime_iso", "_data_": "2025-06-01T12:00:00+00:00"},
        "originator_topic": "domain.order:Order",
        "signal_id": "legacy-1",
        "role": "entry",
        "pair": "XXBTZUSD",
        "side": "buy",
        "order_type": "limit",
        "quantity": {"_type_": "decimal_str", "_data_": "0.5"},
        "limit_price": {"_type_": "decimal_str", "_data_": "30000.0"},
        "trigger_price": None,
        "cl_ord_id": "2f0e8a4e-3f55-4f0e-a4f6-2f2ab0e1d3c1",
        "parent_id": None,
        "sl_price": None,
        "tp_price": None,
        "signal_fingerprint": "",
        "reason": {"rule": "approved_signal", "text": "legacy"},
    }  # no "class_version" key: that is how version 1 events were stored
    stored = StoredEvent(
        originator_id=order_id,
        originator_version=1,
        topic="domain.order:Order.Placed",
        state=json.dumps(v1_state).encode(),
    )
    ledger.app.recorder.insert_events([stored])
    order = ledger.get_order(order_id)
    assert order.tags == {} and order.timeout_s is None and order.quantity == D("0.5")
    assert order.signal_id == "legacy-1" and order.version == 1
    # and it carries on as a normal v2 order
    order.submit(at=T0, deadline=None, reason=reason("submit", "send"))
    engine.uow.commit(order)
    assert ledger.get_order(order_id).state is State.SUBMITTING


def test_current_placed_events_are_stored_as_version_2(ledger, engine):
    submit(engine, SIGNAL)
    [n] = ledger.app.recorder.select_notifications(start=1, limit=1)
    assert json.loads(n.state)["class_version"] == 2
