"""Every scripted fault, seen on the wire: what the client gets, and what the exchange did meanwhile."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from execledger.infrastructure.simulator import FaultKind

from .conftest import FROZEN_AT

ORDER = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "60000", "volume": "0.01"}


async def open_count(wire) -> int:
    return len((await wire.result("OpenOrders"))["open"])


async def test_http_502_after_execute_places_the_order_anyway(sim, wire):
    sim.inject_fault("AddOrder", FaultKind.HTTP_502_AFTER_EXECUTE)
    response = await wire.raw("AddOrder", ORDER | {"cl_ord_id": "ambiguous-1"})
    assert response.status == 502 and "502 Bad Gateway" in await response.text()
    found = (await wire.result("OpenOrders", {"cl_ord_id": "ambiguous-1"}))["open"]
    assert len(found) == 1
    assert (await wire.raw("AddOrder", ORDER)).status == 200  # the fault was used up


async def test_http_502_before_execute_places_nothing(sim, wire):
    sim.inject_fault("/0/private/AddOrder", "http_502_before_execute", count=2)
    for _ in range(2):
        assert (await wire.raw("AddOrder", ORDER)).status == 502
    assert await open_count(wire) == 0
    assert (await wire.raw("AddOrder", ORDER)).status == 200
    assert await open_count(wire) == 1
    assert [r.status for r in sim.requests("AddOrder")] == [502, 502, 200]


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (FaultKind.SERVICE_UNAVAILABLE, "EService:Unavailable"),
        (FaultKind.SERVICE_BUSY, "EService:Busy"),
        (FaultKind.API_RATE_LIMIT, "EAPI:Rate limit exceeded"),
        (FaultKind.ORDER_RATE_LIMIT, "EOrder:Rate limit exceeded"),
    ],
)
async def test_error_faults_answer_krakens_error_and_do_nothing(sim, wire, kind, error):
    sim.inject_fault("AddOrder", kind)
    assert await wire.call("AddOrder", ORDER) == {"error": [error]}
    assert await open_count(wire) == 0


async def test_faults_apply_to_any_path_for_example_a_cancel(sim, wire):
    txid = (await wire.result("AddOrder", ORDER))["txid"][0]
    sim.inject_fault("CancelOrder", FaultKind.SERVICE_BUSY)
    assert await wire.call("CancelOrder", {"txid": txid}) == {"error": ["EService:Busy"]}
    assert await wire.result("CancelOrder", {"txid": txid}) == {"count": 1}


async def test_delayed_reply_after_execute_times_the_client_out_but_the_order_exists(sim, wire):
    sim.inject_fault("AddOrder", FaultKind.DELAY_REPLY, seconds=5)
    with pytest.raises(asyncio.TimeoutError):
        await wire.raw("AddOrder", ORDER | {"cl_ord_id": "slow-1"}, timeout=0.2)
    found = (await wire.result("OpenOrders", {"cl_ord_id": "slow-1"}))["open"]
    assert len(found) == 1


async def test_delayed_acceptance_order_appears_only_after_sim_time_passes(sim, wire):
    sim.inject_fault("AddOrder", FaultKind.DELAYED_ACCEPTANCE, seconds=20)
    response = await wire.raw("AddOrder", ORDER | {"cl_ord_id": "late-1"})
    assert response.status == 502
    assert (await wire.result("OpenOrders", {"cl_ord_id": "late-1"}))["open"] == {}
    assert (await wire.result("ClosedOrders", {"cl_ord_id": "late-1"}))["count"] == 0
    sim.advance_time(19)
    assert (await wire.result("OpenOrders", {"cl_ord_id": "late-1"}))["open"] == {}
    sim.advance_time(1)
    assert len((await wire.result("OpenOrders", {"cl_ord_id": "late-1"}))["open"]) == 1


async def test_delayed_acceptance_past_the_deadline_is_never_placed(sim, wire):
    deadline = datetime.fromtimestamp(FROZEN_AT + 10, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sim.inject_fault("AddOrder", FaultKind.DELAYED_ACCEPTANCE, seconds=30)
    assert (await wire.raw("AddOrder", ORDER | {"cl_ord_id": "late-2", "deadline": deadline})).status == 502
    sim.advance_time(60)
    assert (await wire.result("OpenOrders"))["open"] == {}
    assert (await wire.result("ClosedOrders"))["count"] == 0
    assert [r.cl_ord_id for r in sim.engine.dropped_late] == ["late-2"]


async def test_faults_through_the_control_surface(sim, wire):
    url = sim.rest_url + "/_sim/faults"
    async with wire.session.post(url, json={"path": "Balance", "kind": "service_unavailable", "count": 2}) as r:
        assert await r.json() == {"kind": "service_unavailable", "path": "Balance", "remaining": 2, "seconds": 0.0}
    assert await wire.call("Balance") == {"error": ["EService:Unavailable"]}
    async with wire.session.get(url) as r:
        assert [f["remaining"] for f in await r.json()] == [1]
    async with wire.session.delete(url) as r:
        assert await r.json() == []
    assert (await wire.call("Balance"))["error"] == []
    async with wire.session.post(url, json={"path": "Balance", "kind": "no-such-fault"}) as r:
        assert r.status == 400


async def test_public_calls_can_fail_too(sim, wire):
    sim.inject_fault("Time", FaultKind.HTTP_502_BEFORE_EXECUTE)
    async with wire.session.get(sim.rest_url + "/0/public/Time") as r:
        assert r.status == 502
    assert (await wire.public("Time"))["error"] == []
