"""OrderIndex: the trading process's in-memory view of its orders, by id, venue order id, client order id, state
and entry. It is rebuilt from the log at start and kept current by the unit of work after every commit, so every
question the workers ask ("what waits to be sent?", "which order has this txid?") costs what its answer costs, not a
scan of every order ever placed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from uuid import UUID

from execledger.domain.order import TERMINAL, Order, State
from execledger.domain.values import OrderRole


class OrderIndex(Mapping[UUID, Order]):
    """A mapping order id -> Order, plus secondary indexes. ``put`` (re-)indexes an order after it changed."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget every order (the index is rebuilt from the log)."""
        self._orders: dict[UUID, Order] = {}
        self._by_venue_id: dict[str, UUID] = {}
        self._by_client_id: dict[str, UUID] = {}
        self._by_state: dict[State, set[UUID]] = defaultdict(set)
        self._state_of: dict[UUID, State] = {}
        self._by_signal: dict[str, UUID] = {}  # signal id -> entry order id
        self._seq: dict[UUID, int] = {}  # the order orders were first seen in (placement order)
        self._amending: set[UUID] = set()  # live orders with an amend decided and not yet answered

    # --- Mapping ---------------------------------------------------------------------------------------------

    def __getitem__(self, order_id: UUID) -> Order:
        return self._orders[order_id]

    def __iter__(self) -> Iterator[UUID]:
        return iter(self._orders)

    def __len__(self) -> int:
        return len(self._orders)

    # --- maintenance -----------------------------------------------------------------------------------------

    def put(self, order: Order) -> None:
        """Add the order, or re-index it after events changed it (state, venue order id)."""
        self._orders[order.id] = order
        self._seq.setdefault(order.id, len(self._seq))
        self._by_client_id[order.cl_ord_id] = order.id
        if order.txid:
            self._by_venue_id[order.txid] = order.id
        if order.role is OrderRole.ENTRY:
            self._by_signal[order.signal_id] = order.id
        previous = self._state_of.get(order.id)
        if previous is not order.state:
            if previous is not None:
                self._by_state[previous].discard(order.id)
            self._by_state[order.state].add(order.id)
            self._state_of[order.id] = order.state
        if order.amend_pending is not None and order.state is State.OPEN:
            self._amending.add(order.id)
        else:
            self._amending.discard(order.id)

    def put_all(self, orders: Iterable[Order]) -> None:
        for order in orders:
            self.put(order)

    def remove(self, order_id: UUID) -> None:
        """Forget an order (a new one whose first events were never committed)."""
        order = self._orders.pop(order_id, None)
        if order is None:
            return
        self._by_client_id.pop(order.cl_ord_id, None)
        if order.txid:
            self._by_venue_id.pop(order.txid, None)
        if order.role is OrderRole.ENTRY and self._by_signal.get(order.signal_id) == order_id:
            del self._by_signal[order.signal_id]
        state = self._state_of.pop(order_id, None)
        if state is not None:
            self._by_state[state].discard(order_id)
        self._seq.pop(order_id, None)
        self._amending.discard(order_id)

    # --- queries ---------------------------------------------------------------------------------------------

    def find(self, *, venue_order_id: str | None = None, client_order_id: str | None = None) -> Order | None:
        """The order with this Kraken txid or this cl_ord_id (txid first)."""
        oid = (self._by_venue_id.get(venue_order_id) if venue_order_id else None) or (
            self._by_client_id.get(client_order_id) if client_order_id else None
        )
        return self._orders.get(oid) if oid else None

    def resolve(self, ref: str) -> Order | None:
        """An order by any of its ids: order id (UUID), Kraken txid or cl_ord_id."""
        try:
            found = self._orders.get(UUID(ref))
        except ValueError:
            found = None
        return found or self.find(venue_order_id=ref, client_order_id=ref)

    def entry_of_signal(self, signal_id: str) -> Order | None:
        oid = self._by_signal.get(signal_id)
        return self._orders.get(oid) if oid else None

    def entry_of(self, order: Order) -> Order | None:
        """The entry an order belongs to (itself for an entry)."""
        if order.role is OrderRole.ENTRY:
            return order
        return self._orders.get(order.parent_id) if order.parent_id else None

    def in_state(self, *states: State) -> list[Order]:
        """Orders currently in any of ``states``, in the order they were placed."""
        ids = set().union(*(self._by_state[s] for s in states))
        return [self._orders[i] for i in sorted(ids, key=self._seq.__getitem__)]

    def amending(self) -> list[Order]:
        """Resting orders whose amend is decided and not answered yet (sent, or sent again after a restart)."""
        return [self._orders[i] for i in sorted(self._amending, key=self._seq.__getitem__)]

    def live(self) -> list[Order]:
        """Every order that is not terminal."""
        return self.in_state(*(s for s in State if s not in TERMINAL))

    def count(self, *states: State) -> int:
        return sum(len(self._by_state[s]) for s in states)
