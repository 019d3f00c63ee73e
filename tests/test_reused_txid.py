"""A venue report that names both a txid and a cl_ord_id is never filed under an order of another cl_ord_id. Break
test 2026-12-02: a simulator restarted with the same seed handed out txids the ledger already held for earlier
orders, and the new orders' fills were filed under the old ones."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

from execledger.application.ports import FillReport
from tests.harness import Harness, limit_buy


async def test_a_fill_under_a_known_txid_but_another_cl_ord_id_is_not_filed_under_the_old_order(ledger, clock):
    h = Harness(ledger, clock)
    old = await h.signal()
    txid = h.txid(old)
    stranger = FillReport(
        trade_id="T-REUSED-1",
        venue_order_id=txid,
        last_qty=D("0.5"),
        last_px=D("100"),
        commission=D("0"),
        commission_asset="ZUSD",
        ts_event=clock.now(),
        source="ws",
        client_order_id="not-one-of-ours",
    )
    await h.service.apply(stranger)
    assert h.engine.orders[old.id].filled_quantity == 0
    assert stranger in h.engine.execution.unmatched

    # The same txid with the cl_ord_id of another order of ours: filed under that one.
    new = h.engine.control.submit_signal(limit_buy("second")).order
    await h.settle()
    ours = replace(stranger, trade_id="T-REUSED-2", client_order_id=new.cl_ord_id, venue_order_id=txid)
    await h.service.apply(ours)
    assert h.engine.orders[old.id].filled_quantity == 0
    assert h.engine.orders[new.id].filled_quantity == D("0.5")


async def test_an_order_is_still_found_by_its_txid_alone_and_resolved_by_any_of_its_ids(ledger, clock):
    h = Harness(ledger, clock)
    order = await h.signal()
    index = h.engine.orders
    assert index.find(venue_order_id=order.txid).id == order.id
    assert index.find(venue_order_id=order.txid, client_order_id=order.cl_ord_id).id == order.id
    assert index.resolve(order.txid).id == index.resolve(order.cl_ord_id).id == order.id
