"""The projection's rows agree with the domain: random order histories are driven through the real Order aggregate,
stored through the application's mapper, projected, and every row is compared with what the aggregate says."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from execledger.application.orders_app import OrdersApp
from execledger.domain.errors import DomainError
from execledger.domain.events import EventKind, kind_of
from execledger.domain.order import Order
from execledger.domain.reasons import jsonable, reason
from execledger.domain.reports import execution_report, report_id
from execledger.domain.values import OrderRole, OrderType, Side, plain
from execledger.infrastructure.readmodels.projection import EventDecodeError, OrdersProjection, StoredRecord
from execledger.infrastructure.readmodels.rows import db_time, reason_json, report_event_id

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
R = reason("test", "random history")

COMMANDS = st.sampled_from(
    [
        "submit",
        "ack",
        "fill",
        "fill",
        "cancel",
        "cancel_rejected",
        "canceled",
        "expired",
        "reject",
        "unknown",
        "not_sent",
        "correct",
        "amend",
        "amended",
        "amend_shrunk",
        "amend_rejected",
    ]
)


def drive(order: Order, commands: list[str], qty_steps: list[int]) -> None:
    """Apply commands that the aggregate accepts; refused ones (InvalidTransition, overfill) write nothing."""
    fills = 0
    for i, command in enumerate(commands):
        at = T0 + timedelta(seconds=i)
        try:
            if command == "submit":
                order.submit(at=at, deadline=at + timedelta(seconds=30), reason=R)
            elif command == "ack":
                order.acknowledge(txid=f"O{i}", at=at, reason=R)
            elif command == "fill":
                step = D(qty_steps[fills % len(qty_steps)]) / 10
                fills += 1
                order.apply_fill(
                    trade_id=f"T{i}",
                    quantity=min(step, order.remaining_quantity),
                    price=D("100.5") + i,
                    fee=D("0.01") * i,
                    fee_asset="ZUSD" if i % 2 else "",
                    executed_at=at if i % 3 else None,
                )
            elif command == "cancel":
                order.request_cancel(reason=reason("cancel", "asked", age_s=D("1.50")))
            elif command == "cancel_rejected":
                order.cancel_rejected(error="EOrder:Unknown order", reason=R)
            elif command == "canceled":
                order.mark_canceled(reason=reason("venue", "canceled by venue"), venue_reason="User requested")
            elif command == "expired":
                order.mark_expired(reason=reason("venue", "expired"))
            elif command == "reject":
                order.reject(error="EOrder:Insufficient funds", reason=R)
            elif command == "unknown":
                order.outcome_unknown(error="timeout", reason=R)
            elif command == "not_sent":
                order.not_sent(error="breaker open", reason=R)
            elif command == "correct":
                order.correct(reason=R, quantity=order.quantity - D("0.1"), limit_price=D("99.5"))
            elif command == "amend":  # a leg that grows with its entry's fills
                order.request_amend(quantity=order.quantity + D("0.2"), reason=R)
            elif command == "amended":  # the venue's answer: the amend took effect
                order.amended(quantity=order.amend_pending or order.quantity, source="rest", reason=R)
            elif command == "amend_shrunk":  # the venue shows less (e.g. shrunk to what has filled)
                order.amended(quantity=max(order.filled_quantity, D("0.1")), source="ws", reason=R)
            elif command == "amend_rejected":
                order.amend_rejected(error="EOrder:Invalid order", reason=R)
        except (DomainError, ValueError):
            continue


def new_order() -> Order:
    return Order.place(
        order_id=uuid.uuid4(),
        signal_id="s1",
        role=OrderRole.ENTRY,
        pair="XXBTZUSD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D("1.0"),
        limit_price=D("1E+2"),
        cl_ord_id=str(uuid.uuid4()),
        reason=reason("approved_signal", "ok", price=D("100.00")),
    )


def expected_report(order: Order, ev) -> tuple | None:
    r = execution_report(order, ev)
    if r is None:
        return None

    def d(v):
        return None if v is None else plain(v)

    return (
        str(r.event_id),
        str(r.order_id),
        r.version,
        r.event,
        db_time(r.timestamp),
        r.signal_id,
        r.role,
        r.exchange_order_id,
        r.client_order_id,
        r.trading_pair,
        r.exchange,
        r.order_status,
        r.order_type,
        r.side,
        d(r.quantity_ordered),
        d(r.quantity_filled),
        d(r.limit_price),
        d(r.trigger_price),
        d(r.average_fill_price),
        d(r.commission),
        r.commission_asset,
        db_time(r.timestamp_exchange),
        r.error_message,
    )


_APP = OrdersApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})  # in memory: only its mapper is used


def mapper():
    return _APP.mapper


def records(events, topic_prefix: str | None = None) -> list[StoredRecord]:
    out = []
    for i, ev in enumerate(events, start=1):
        stored = mapper().to_stored_event(ev)
        topic = stored.topic if topic_prefix is None else stored.topic.replace("execledger.domain", topic_prefix)
        out.append(StoredRecord(i, str(stored.originator_id), stored.originator_version, topic, stored.state))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(COMMANDS, min_size=1, max_size=25), st.lists(st.integers(1, 6), min_size=1, max_size=4))
@example(["submit", "ack", "cancel", "cancel_rejected", "fill", "cancel", "canceled", "fill"], [2])
@example(["submit", "unknown", "fill", "expired", "fill", "fill"], [4])
@example(["submit", "not_sent", "submit", "unknown", "reject"], [1])
@example(["submit", "not_sent", "correct", "submit", "reject", "ack", "fill"], [2])
@example(["submit", "fill", "ack", "fill", "fill"], [5, 3])
@example(["submit", "ack", "fill", "amend", "amended", "fill"], [2])
@example(["submit", "ack", "fill", "amend_shrunk", "cancel"], [3])
def test_every_projected_row_equals_what_the_aggregate_says(commands, qty_steps):
    order = new_order()
    drive(order, commands, qty_steps)
    events = order.collect_events()
    projection = OrdersProjection(lambda ids: {}, lambda ids: {})
    rows = projection.stage(records(events))
    replayed, expected_reports, expected_decisions = None, [], 0
    for ev in events:
        replayed = ev.mutate(replayed)
        report = expected_report(replayed, ev)
        if report is not None:
            expected_reports.append(report)
        decided = kind_of(ev) is EventKind.DECISION
        expected_decisions += 1 if decided or getattr(ev, "reason", None) else 0
    assert rows.reports == expected_reports
    [row] = rows.orders
    assert (row[7], row[8], row[9]) == tuple(
        None if v is None else plain(v) for v in (replayed.quantity, replayed.limit_price, replayed.trigger_price)
    )
    assert row[10] == replayed.status.value and row[11] == plain(replayed.filled_quantity)
    assert row[12] == (plain(replayed.average_fill_price) if replayed.filled_quantity else None)
    assert (row[13], row[15], row[17], row[20]) == (
        plain(replayed.fees),
        replayed.txid,
        replayed.last_error,
        replayed.version,
    )
    assert [f[1] for f in rows.fills] == list(replayed.fills)
    assert len(rows.decisions) == expected_decisions
    for decision, ev in zip(rows.decisions, [e for e in events if getattr(e, "reason", None)], strict=True):
        assert json.loads(decision[7]) == jsonable(ev.reason)  # same JSON value as the audit shows


def test_events_under_the_old_topic_names_project_the_same_rows():
    order = new_order()
    drive(order, ["submit", "ack", "fill", "cancel", "canceled"], [3])
    events = order.collect_events()
    new = OrdersProjection(lambda ids: {}, lambda ids: {}).stage(records(events))
    old = OrdersProjection(lambda ids: {}, lambda ids: {}).stage(records(events, topic_prefix="domain"))
    assert records(events, topic_prefix="domain")[0].topic == "domain.order:Order.Placed"
    assert (old.reports, old.orders, old.fills, old.decisions) == (new.reports, new.orders, new.fills, new.decisions)


def test_a_version_1_placed_event_projects_through_the_upcast():
    order = new_order()
    [placed] = order.collect_events()
    state = json.loads(mapper().to_stored_event(placed).state)
    del state["class_version"], state["tags"], state["timeout_s"]  # how version 1 was stored
    record = StoredRecord(1, str(order.id), 1, "domain.order:Order.Placed", json.dumps(state).encode())
    rows = OrdersProjection(lambda ids: {}, lambda ids: {}).stage([record])
    assert rows.orders[0][7] == "1" and rows.orders[0][8] == "100"  # quantity 1.0 and limit 1E+2, exact text


def test_report_ids_and_times_match_the_domain():
    for version in range(1, 40):
        oid = uuid.uuid4()
        assert report_event_id(str(oid), version) == str(report_id(oid, version))
    assert db_time("2026-01-01T00:00:00+00:00") == "2026-01-01 00:00:00.000000"
    assert db_time("2026-01-01T02:00:00.5+02:00") == "2026-01-01 00:00:00.500000"
    assert db_time(datetime(2026, 1, 1, 1, 2, 3, 4)) == "2026-01-01 01:02:03.000004"


def test_reasons_with_tagged_values_and_huge_integers_keep_their_json_value():
    tagged = {"rule": "r", "price": {"_type_": "decimal_str", "_data_": "1E+1"}, "n": [1, 2]}
    assert json.loads(reason_json(tagged)) == {"rule": "r", "price": "10", "n": [1, 2]}
    huge = {"rule": "r", "big": 2**80}
    assert json.loads(reason_json(huge)) == huge


def test_an_integer_beyond_64_bits_in_a_stored_event_is_projected_exactly():
    order = new_order()
    [placed] = order.collect_events()
    state = json.loads(mapper().to_stored_event(placed).state)
    state["reason"]["big"] = 2**80 + 1  # orjson would read it as a float: 1.2089258196146292e+24
    record = StoredRecord(1, str(order.id), 1, "execledger.domain.order:Order.Placed", json.dumps(state).encode())
    rows = OrdersProjection(lambda ids: {}, lambda ids: {}).stage([record])
    texts = [str(value) for table in (rows.reports, rows.decisions) for row in table for value in row]
    assert any(str(2**80 + 1) in text for text in texts)
    assert not any("e+24" in text for text in texts)


def test_a_stored_event_that_is_not_json_is_refused_naming_it():
    record = StoredRecord(7, str(uuid.uuid4()), 1, "execledger.domain.order:Order.Placed", b"{not json")
    try:
        OrdersProjection(lambda ids: {}, lambda ids: {}).stage([record])
    except EventDecodeError as exc:
        assert "stored event 7" in str(exc)
    else:
        raise AssertionError("a corrupt event was projected")


def test_an_event_whose_order_the_read_models_never_saw_is_refused():
    order = new_order()
    drive(order, ["submit"], [1])
    events = order.collect_events()
    try:
        OrdersProjection(lambda ids: {}, lambda ids: {}).stage(records(events)[1:])
    except EventDecodeError as exc:
        assert "version 2" in str(exc)
    else:
        raise AssertionError("an event without its order's history was projected")


def test_the_view_cache_is_bounded_settled_orders_go_first():
    # Past max_cached, terminal views go first (read back from the tables if a late event comes); if the open ones
    # alone are still too many, the cache starts over: memory is bounded by max_cached, whatever the log holds.
    events = []
    for i in range(10):
        order = new_order()
        drive(order, ["submit", "ack"] + (["cancel", "canceled"] if i % 2 else []), [1])
        events += order.collect_events()
    for max_cached, kept in ((6, 5), (3, 0)):
        projection = OrdersProjection(lambda ids: {}, lambda ids: {}, max_cached=max_cached)
        projection.stage(records(events))
        projection.commit()
        assert len(projection.views) == kept and not any(v.is_terminal for v in projection.views.values())


def test_report_id_is_uuid5_of_the_order_id_and_version():
    import uuid as _uuid

    for _ in range(200):
        oid = _uuid.uuid4()
        for version in (1, 2, 9, 10, 123456):
            assert report_id(oid, version) == _uuid.uuid5(oid, f"report:{version}")
