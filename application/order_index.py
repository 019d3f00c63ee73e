"""OrderIndex: the trading process's in-memory view of its orders, by id, venue order id, client order id, state
and entry. It is rebuilt from the log at start and kept current by the unit of work after every commit, so every
question the workers ask ("what waits to be sent?", "which order has this txid?") costs what its answer costs, not a
scan of every order ever placed.

It holds whole signals (an entry and every exit order of it: the position rule needs them all), and only those that
can still matter: a signal whose position is flat and whose orders are all terminal is *retired* (``retire_finished``,
run by the engine's timer): recorded as such in the store, then dropped. Whatever asks for a retired order by its
id, its venue txid, its cl_ord_id or its signal gets it back: the whole signal is loaded from the store again
(``OrderSource``), held, and retired again once it is finished. ``in`` and ``get`` answer from memory only (the
orders held now); ``[]``, ``find``, ``resolve`` and ``entry_of_signal`` load what is not held.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from execledger.domain.order import TERMINAL, Order, State
from execledger.domain.values import OrderRole


class OrderSource(Protocol):
    """Where the index finds the orders it does not hold (the store, through ``ExecutionLedger``)."""

    def load_signal(self, order_id: UUID) -> list[Order]:
        """Every order of the signal this order belongs to, entry first; [] when there is no such order."""
        ...

    def signal_entry_id(self, signal_id: str) -> UUID:
        """The id the entry of this signal has (derived from the signal id)."""
        ...

    def retired_order_id(self, ref: str) -> UUID | None:
        """The id of a retired order with this venue txid or cl_ord_id."""
        ...

    def retire(self, orders: list[Order]) -> None:
        """Record durably that these orders are no longer held (before they are dropped)."""
        ...


class OrderIndex(Mapping[UUID, Order]):
    """A mapping order id -> Order, plus secondary indexes. ``put`` (re-)indexes an order after it changed.

    ``source`` loads what the index does not hold; ``is_finished(entry)`` says whether a signal whose orders are all
    terminal can be retired (its position is flat). Without either, nothing is loaded or retired. ``deadline_of``
    gives the time an order is next due for a time-driven decision (None: none), which ``due`` answers without a
    scan of the held orders; ``flag(order)`` marks the orders ``flagged`` returns (kept at every ``put``)."""

    def __init__(
        self,
        source: OrderSource | None = None,
        is_finished: Callable[[Order], bool] | None = None,
        deadline_of: Callable[[Order], datetime | None] | None = None,
        flag: Callable[[Order], bool] | None = None,
    ) -> None:
        self.source = source
        self.is_finished = is_finished
        self.deadline_of = deadline_of
        self.flag = flag
        self._reset()

    def _reset(self) -> None:
        self._orders: dict[UUID, Order] = {}
        # ``get`` is the dict's own (held orders only, never loads): the policies look up every leg of an entry
        # at every reaction, and a Python method call is most of what a lookup costs.
        self.get = self._orders.get  # type: ignore[method-assign,assignment]  # same signature and answers as ``get``
        self._by_venue_id: dict[str, UUID] = {}
        self._by_client_id: dict[str, UUID] = {}
        self._by_state: dict[State, set[UUID]] = defaultdict(set)
        self._by_signal: dict[str, UUID] = {}  # signal id -> entry order id
        self._seq: dict[UUID, int] = {}  # the order orders were first seen in (placement order)
        self._amending: set[UUID] = set()  # live orders with an amend decided and not yet answered
        self._settling: set[UUID] = set()  # entries of signals that may be finished (an order of them is terminal)
        self._deadline: dict[UUID, datetime] = {}  # order id -> when it is due (``deadline_of``)
        self._due_heap: list[tuple[datetime, int, UUID]] = []  # (deadline, seq, id); stale rows are skipped
        self._flagged: set[UUID] = set()  # held orders ``flag`` holds true for
        self._put_as: dict[UUID, tuple[int, State]] = {}  # order id -> its (version, state) at its last ``put``

    # --- Mapping ---------------------------------------------------------------------------------------------

    def __getitem__(self, order_id: UUID) -> Order:
        found = self._orders.get(order_id)
        if found is None:
            found = self._load(order_id)
            if found is None:
                raise KeyError(order_id)
        return found

    def __contains__(self, order_id: object) -> bool:
        """Whether the order is held now (a retired order is not; ``[]`` would load it)."""
        return order_id in self._orders

    def get(self, order_id: UUID, default: Any = None) -> Any:
        """The order if it is held now (never loads: see ``[]``)."""
        return self._orders.get(order_id, default)

    def __iter__(self) -> Iterator[UUID]:
        return iter(self._orders)

    def __len__(self) -> int:
        return len(self._orders)

    # --- maintenance -----------------------------------------------------------------------------------------

    def put(self, order: Order) -> None:
        """Add the order, or re-index it after events changed it (state, venue order id). The same order object at
        the version it was last put at has not changed since (every change of an order is an event): nothing to
        re-index, only a terminal one is noted for ``retire_finished`` again (a put of a deferred answer, a new leg
        or a new entry, then its commit: half the puts of a lifecycle). An order not held (new, or loaded again)
        has no entry in ``_put_as`` and ``_seq`` (put and removed together): its put looks nothing else up. A
        UUID's hash is a Python call (``uuid.UUID.__hash__``, 0.2 us), so is an Enum's: a put of a new order hashes
        its id 5 times instead of 10, a put of a changed one 3 to 5 times (its version and state at its last put
        are one entry, ``_put_as``: 2 of these hashes less; issue 18)."""
        order_id, state, version = order.id, order.state, order.version  # ``id``, ``version``: properties
        seen = self._put_as.get(order_id)
        if seen is None:
            self._seq[order_id] = len(self._seq)
            self._by_state[state].add(order_id)
        elif seen[0] == version and self._orders.get(order_id) is order:
            if state in TERMINAL:
                self._settling.add(order.parent_id or order_id)
            return
        elif seen[1] is not state:
            self._by_state[seen[1]].discard(order_id)
            self._by_state[state].add(order_id)
        self._put_as[order_id] = (version, state)
        self._orders[order_id] = order
        self._by_client_id[order.cl_ord_id] = order_id
        if order.txid:
            self._by_venue_id[order.txid] = order_id
        if order.role is OrderRole.ENTRY:
            self._by_signal[order.signal_id] = order_id
        if order.amend_pending is not None and state is State.OPEN:
            self._amending.add(order_id)
        elif self._amending:
            self._amending.discard(order_id)
        if state in TERMINAL:
            self._settling.add(order.parent_id or order_id)
        if self.deadline_of is not None:
            self._note_deadline(order_id, self.deadline_of(order))
        if self.flag is not None:
            if self.flag(order):
                self._flagged.add(order_id)
            elif self._flagged:
                self._flagged.discard(order_id)

    def _note_deadline(self, order_id: UUID, deadline: datetime | None) -> None:
        if deadline is None:
            self._deadline.pop(order_id, None)
        elif self._deadline.get(order_id) != deadline:
            self._deadline[order_id] = deadline
            heapq.heappush(self._due_heap, (deadline, self._seq[order_id], order_id))
            if len(self._due_heap) > 2 * len(self._deadline) + 64:  # bounded: drop the rows of changed deadlines
                self._due_heap = [(d, self._seq[i], i) for i, d in self._deadline.items()]
                heapq.heapify(self._due_heap)

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
        seen = self._put_as.pop(order_id, None)
        if seen is not None:
            self._by_state[seen[1]].discard(order_id)
        self._seq.pop(order_id, None)
        self._amending.discard(order_id)
        self._deadline.pop(order_id, None)
        self._flagged.discard(order_id)

    def clear(self) -> None:
        self._reset()

    def retire_finished(self) -> list[Order]:
        """Retire every held signal that is finished: all its orders terminal with nothing uncommitted, and
        ``is_finished(entry)`` (its position is flat). Recorded in the store first, then dropped from memory.
        Returns the orders dropped. Only signals an order of which became terminal (or was loaded) since the last
        call are looked at."""
        settling, self._settling = self._settling, set()
        if self.source is None or self.is_finished is None:
            return []
        done: list[Order] = []
        for entry_id in settling:
            entry = self._orders.get(entry_id)
            if entry is None:
                continue
            exit_ids = entry.exit_order_ids()
            if not all(i in self._orders for i in exit_ids):
                continue
            signal = [entry, *(self._orders[i] for i in exit_ids)]
            if all(o.is_terminal and not o.pending_events for o in signal) and self.is_finished(entry):
                done += signal
        if done:
            try:
                self.source.retire(done)
            except BaseException:
                self._settling.update(settling)  # nothing was dropped: the next pass tries again
                raise
            for order in done:
                self.remove(order.id)
        return done

    def _load(self, order_id: UUID) -> Order | None:
        """Hold again the signal of a retired order (None when the store has no such order)."""
        if self.source is None:
            return None
        loaded = self.source.load_signal(order_id)
        for order in loaded:
            if order.id not in self._orders:  # what is held is as new as the store's, or newer (uncommitted)
                self.put(order)
        if loaded:
            self._settling.add(loaded[0].id)  # retired again at the next pass if nothing changed
        return self._orders.get(order_id)

    # --- queries ---------------------------------------------------------------------------------------------

    def find(self, *, venue_order_id: str | None = None, client_order_id: str | None = None) -> Order | None:
        """The order with this Kraken txid or this cl_ord_id (txid first). A report that names both is never filed
        under an order of another cl_ord_id: a txid the ledger knows for another order (a venue that reused it,
        such as a simulator restarted with the same seed, break test 2026-12-02) gives the order of the report's
        cl_ord_id, or None (not ours)."""
        order = self._find(venue_order_id, client_order_id)
        if order is not None and client_order_id and order.cl_ord_id != client_order_id:
            return self._find(None, client_order_id)
        return order

    def _find(self, venue_order_id: str | None, client_order_id: str | None) -> Order | None:
        oid = (self._by_venue_id.get(venue_order_id) if venue_order_id else None) or (
            self._by_client_id.get(client_order_id) if client_order_id else None
        )
        if oid:
            return self._orders.get(oid)
        if self.source is None:
            return None
        for ref in (venue_order_id, client_order_id):
            retired = self.source.retired_order_id(ref) if ref else None
            if retired is not None:
                return self._orders.get(retired) or self._load(retired)
        return None

    def resolve(self, ref: str) -> Order | None:
        """An order by any of its ids: order id (UUID), Kraken txid or cl_ord_id."""
        try:
            order_id = UUID(ref)
        except ValueError:
            found = None
        else:
            found = self._orders.get(order_id) or self._load(order_id)
        return found or self._find(ref, ref)

    def entry_of_signal(self, signal_id: str) -> Order | None:
        oid = self._by_signal.get(signal_id)
        if oid is not None:
            return self._orders.get(oid)
        if self.source is None:
            return None
        entry_id = self.source.signal_entry_id(signal_id)
        return self._orders.get(entry_id) or self._load(entry_id)

    def entry_of(self, order: Order) -> Order | None:
        """The entry an order belongs to (itself for an entry)."""
        if order.role is OrderRole.ENTRY:
            return order
        return self._orders.get(order.parent_id) if order.parent_id else None

    def in_state(self, *states: State) -> list[Order]:
        """Orders currently in any of ``states``, in the order they were placed."""
        if len(states) == 1:  # the workers ask one state at a time, most often an empty one
            ids = self._by_state[states[0]]
            if not ids:
                return []
        else:
            ids = set().union(*(self._by_state[s] for s in states))
        return [self._orders[i] for i in sorted(ids, key=self._seq.__getitem__)]

    def count_role(self, role: OrderRole, *states: State) -> int:
        """How many orders of ``role`` are in any of ``states`` (no sorting, no list)."""
        orders = self._orders
        return sum(1 for s in states for i in self._by_state[s] if orders[i].role is role)

    def due(self, now: datetime) -> list[Order]:
        """Held orders whose ``deadline_of`` is ``now`` or earlier, in deadline order: O(due + log n), no scan. An
        order stays due (returned again at the next call) until a ``put`` gives it another deadline or none."""
        heap, due = self._due_heap, []
        while heap and heap[0][0] <= now:
            row = heapq.heappop(heap)
            if self._deadline.get(row[2]) == row[0]:  # not a stale row (the deadline changed, the order left)
                due.append(row)
        for row in due:
            heapq.heappush(heap, row)
        return [self._orders[i] for _, _, i in due]

    def flagged(self) -> list[Order]:
        """The held orders ``flag`` held true for at their last ``put``, in no particular order: O(flagged)."""
        return [self._orders[i] for i in self._flagged]

    def placement_order(self, orders: Iterable[Order]) -> list[Order]:
        """``orders`` sorted in the order they were placed."""
        return sorted(orders, key=lambda o: self._seq[o.id])

    def amending(self) -> list[Order]:
        """Resting orders whose amend is decided and not answered yet (sent, or sent again after a restart)."""
        return [self._orders[i] for i in sorted(self._amending, key=self._seq.__getitem__)]

    def live(self) -> list[Order]:
        """Every order that is not terminal."""
        return self.in_state(*(s for s in State if s not in TERMINAL))

    def count(self, *states: State) -> int:
        return sum(len(self._by_state[s]) for s in states)
