"""OrderIndex.due: the orders whose deadline passed, kept by deadline (no scan), with a bounded heap."""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from execledger.application.order_index import OrderIndex
from execledger.domain.order import State
from execledger.domain.values import OrderRole

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Stub:
    """The attributes OrderIndex.put reads, plus the deadline the test's ``deadline_of`` gives."""

    deadline: datetime | None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    cl_ord_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    txid: str | None = None
    role: OrderRole = OrderRole.STOP_LOSS
    state: State = State.OPEN
    amend_pending: object = None
    is_terminal: bool = False
    parent_id: uuid.UUID | None = None
    version: int = 1

    def __setattr__(self, name: str, value: object) -> None:
        # As an Order's: every change is an event, which moves the version (put re-indexes a changed version only).
        if name != "version" and name in self.__dict__:
            object.__setattr__(self, "version", self.version + 1)
        object.__setattr__(self, name, value)


def index() -> OrderIndex:
    return OrderIndex(deadline_of=lambda o: o.deadline)


def test_due_returns_passed_deadlines_in_order_and_keeps_them_until_changed():
    idx = index()
    late, early, never = Stub(T0 + timedelta(seconds=20)), Stub(T0 + timedelta(seconds=10)), Stub(None)
    idx.put_all([late, early, never])  # type: ignore[list-item]
    assert idx.due(T0) == []
    assert idx.due(T0 + timedelta(seconds=20)) == [early, late]
    assert idx.due(T0 + timedelta(seconds=30)) == [early, late]  # still due: nothing was decided for them
    early.deadline = None  # e.g. it was canceled
    idx.put(early)  # type: ignore[arg-type]
    late.deadline = T0 + timedelta(seconds=100)  # e.g. acknowledged again later
    idx.put(late)  # type: ignore[arg-type]
    assert idx.due(T0 + timedelta(seconds=30)) == []
    idx.remove(late.id)
    assert idx.due(T0 + timedelta(seconds=1000)) == []


def test_the_heap_stays_bounded_when_deadlines_keep_changing():
    idx = index()
    orders = [Stub(T0 + timedelta(days=1)) for _ in range(10)]
    idx.put_all(orders)  # type: ignore[arg-type]
    for k in range(1000):
        o = orders[k % 10]
        o.deadline = T0 + timedelta(days=1, seconds=k + 1)
        idx.put(o)  # type: ignore[arg-type]
    assert len(idx._due_heap) <= 2 * 10 + 64 + 1
    assert idx.due(T0 + timedelta(days=2)) == sorted(orders, key=lambda o: o.deadline)
