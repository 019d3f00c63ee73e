"""The trading process's memory of orders: loaded from the log in one pass (identical to ``repository.get``), and
holding only the signals that can still matter; a retired signal is loaded again from the store whenever anything
asks for it (a late venue fact, a repeated signal, a command by any of its ids, audit)."""

import json
import uuid
from decimal import Decimal as D

from eventsourcing.persistence import StoredEvent

from tests.harness import Harness


def _store_v1_placed(ledger) -> uuid.UUID:
    """A Placed event as version 1 stored it (no tags, no timeout_s): the bulk load must upcast it too."""
    order_id = uuid.uuid4()
    state = {
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
    }
    stored = StoredEvent(order_id, 1, "domain.order:Order.Placed", json.dumps(state).encode())
    ledger.app.recorder.insert_events([stored])
    return order_id


async def test_the_bulk_load_builds_exactly_what_repository_get_builds(ledger, clock):
    h = Harness(ledger, clock)
    legacy = _store_v1_placed(ledger)
    busy = await h.signal(signal_id="many", quantity="2")
    for i in range(40):  # an order with many events: partial fills, each bracketed
        h.venue.fill(h.txid(busy), "0.01", str(100 + i))
        await h.settle()
    done = await h.signal(signal_id="done")
    h.venue.fill(h.txid(done), "1", "100")
    await h.settle()
    await h.signal(signal_id="resting")
    loaded = {o.id: o for o in ledger.load_orders(page=7)}  # small pages: the fold must span page boundaries
    ids = list(ledger.order_ids())
    assert list(loaded) == ids and legacy in loaded and len(ids) >= 6
    for order_id in ids:
        expected = ledger.app.repository.get(order_id)
        assert vars(loaded[order_id]) == vars(expected), order_id
    assert loaded[legacy].tags == {} and loaded[legacy].timeout_s is None and loaded[legacy].quantity == D("0.5")
    assert loaded[busy.id].version > 40
