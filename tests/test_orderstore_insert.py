"""The Orders recorder's insert path (both backends): one transaction a save, notification ids in commit order, a
conflicting version or an already-recorded tracking position refused with nothing kept, and the store usable after."""

import uuid
from decimal import Decimal as D

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from execledger.application.order_index import OrderIndex
from execledger.application.unit_of_work import ConcurrencyConflict, UnitOfWork
from execledger.domain.order import Order
from execledger.domain.reasons import reason
from execledger.domain.values import OrderRole, OrderType, Side


def _order(i: int) -> Order:
    return Order.place(
        order_id=uuid.uuid4(),
        signal_id=f"s{i}",
        role=OrderRole.ENTRY,
        pair="XXBTZUSD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D("0.01"),
        limit_price=D("60000.5"),
        cl_ord_id=f"c{i}",
        reason=reason("test", "insert"),
    )


def _log(app) -> list[tuple[int, uuid.UUID, int]]:
    return [(n.id, n.originator_id, n.originator_version) for n in app.recorder.select_notifications(1, 1000)]


def test_saves_get_increasing_ids_and_read_back_identically(orders_app):
    uow = UnitOfWork(orders_app, OrderIndex())
    # 1, 10 and 40 events a save (the PostgreSQL recorder sends up to 32 rows as VALUES, more as arrays)
    batches = [[_order(0)], [_order(i) for i in range(1, 11)], [_order(11)], [_order(i) for i in range(12, 52)]]
    for batch in batches:
        uow.commit(*batch)
    ids = [n for n, _, _ in _log(orders_app)]
    assert len(ids) == 52 and ids == sorted(ids) and len(set(ids)) == 52
    assert [o for _, o, _ in _log(orders_app)] == [o.id for batch in batches for o in batch]
    for order in (batches[1][3], batches[3][37]):
        again = orders_app.get_order(order.id)
        assert (again.limit_price, again.cl_ord_id, again.version) == (D("60000.5"), order.cl_ord_id, 1)


def test_a_conflicting_version_is_refused_and_nothing_of_the_save_is_kept(orders_app):
    uow = UnitOfWork(orders_app, OrderIndex())
    first = _order(0)
    uow.commit(first)
    before = _log(orders_app)
    # Another writer's order with the same id: its first event has the version already stored.
    twin = _order(0)
    twin._id = first.id
    for e in twin.pending_events:
        object.__setattr__(e, "originator_id", first.id)
    with pytest.raises(ConcurrencyConflict):
        uow.commit(_order(1), twin)  # a new order and the conflicting one, in one transaction
    assert _log(orders_app) == before
    uow.commit(_order(2))  # the store (and its pooled connection) is usable again
    assert len(_log(orders_app)) == len(before) + 1


def test_a_tracking_position_already_recorded_is_refused_with_its_events(orders_app):
    orders_app.events.put(list(_order(0).collect_events()), tracking=Tracking("Commands", 5))
    before = _log(orders_app)
    with pytest.raises(IntegrityError):
        orders_app.events.put(list(_order(1).collect_events()), tracking=Tracking("Commands", 5))
    assert _log(orders_app) == before
    assert orders_app.recorder.max_tracking_id("Commands") == 5
    orders_app.events.put(list(_order(2).collect_events()), tracking=Tracking("Commands", 6))
    assert orders_app.recorder.max_tracking_id("Commands") == 6
    assert len(_log(orders_app)) == len(before) + 1


def test_the_notification_ids_a_save_returns_are_the_stored_ones(orders_app):
    """The recordings the store returns name exactly the rows it wrote (both backends, with and without tracking):
    what the listeners and the follower read by notification id is what was committed."""
    uow = UnitOfWork(orders_app, OrderIndex())
    uow.commit(_order(0))
    returned = []
    for k, batch in enumerate([[_order(i) for i in range(1, 4)], [_order(4)], [_order(i) for i in range(5, 45)]]):
        events = [e for o in batch for e in o.collect_events()]
        tracking = Tracking(notification_id=k + 1, application_name="Commands") if k == 2 else None
        returned += [
            (r.notification.id, r.notification.originator_id) for r in orders_app.events.put(events, tracking=tracking)
        ]
    assert returned == [(n, o) for n, o, _ in _log(orders_app)][1:]
    assert orders_app.recorder.max_tracking_id("Commands") == 3
