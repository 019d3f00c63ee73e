"""Reads and cancels against the simulator's faults: transient answers are retried (the request log shows every
attempt), permanent ones are not, and a cancel survives a 502 on either side of the engine."""

import base64

import pytest
from pydantic import SecretStr

from execledger.application.ports import VenueOrderStatus
from execledger.infrastructure.kraken.adapter import KrakenExchange
from execledger.infrastructure.kraken.credentials import KrakenCredentials
from execledger.infrastructure.kraken.errors import KrakenVenueError
from execledger.infrastructure.kraken.rest import KrakenRestClient
from execledger.infrastructure.kraken.retry import RetryPolicy
from execledger.infrastructure.simulator import FaultKind

TRANSIENT = [FaultKind.SERVICE_UNAVAILABLE, FaultKind.SERVICE_BUSY, FaultKind.HTTP_502_BEFORE_EXECUTE]


def assert_failed_then_answered(calls, fault, failures):
    """``failures`` faulted calls, then one clean answer."""
    assert len(calls) == failures + 1
    assert [c.fault for c in calls] == [str(fault)] * failures + [None]
    assert calls[-1].status == 200 and calls[-1].error is None


@pytest.mark.parametrize("failures", [1, 2])  # fewer than the breaker's threshold (3): it stays closed
@pytest.mark.parametrize("fault", TRANSIENT)
async def test_open_orders_is_retried_through_transient_faults(venue, fault, failures):
    placed = await venue.exchange.place(venue.limit_buy())
    venue.sim.inject_fault("OpenOrders", fault, count=failures)
    orders = await venue.exchange.open_orders()
    assert [(o.venue_order_id, o.status) for o in orders] == [(placed.venue_order_id, VenueOrderStatus.OPEN)]
    assert_failed_then_answered(venue.sim.requests("OpenOrders"), fault, failures)
    assert len(venue.time.slept) == failures  # one backoff wait per retry, in simulator time


@pytest.mark.parametrize("failures", [1, 2])
@pytest.mark.parametrize("fault", TRANSIENT)
async def test_query_orders_is_retried_through_transient_faults(venue, fault, failures):
    placed = await venue.exchange.place(venue.limit_buy())
    await venue.exchange.cancel(venue_order_id=placed.venue_order_id)
    venue.sim.inject_fault("QueryOrders", fault, count=failures)
    found = await venue.exchange.query_orders([placed.venue_order_id])
    assert list(found) == [placed.venue_order_id] and found[placed.venue_order_id].status is VenueOrderStatus.CANCELED
    calls = venue.sim.requests("QueryOrders")
    assert_failed_then_answered(calls, fault, failures)
    assert all(c.params["txid"] == placed.venue_order_id for c in calls)


async def test_a_permanent_error_on_a_read_is_not_retried(venue, tmp_path):
    wrong = KrakenCredentials(key=venue.sim.key, secret=SecretStr(base64.b64encode(b"w" * 64).decode()))
    exchange = KrakenExchange(
        KrakenRestClient(venue.sim.rest_url, wrong, data_dir=tmp_path / "wrong"),
        retry=RetryPolicy(attempts=4, sleep=venue.time.sleep),
    )
    try:
        with pytest.raises(KrakenVenueError, match="EAPI:Invalid signature"):
            await exchange.open_orders()
    finally:
        await exchange.close()
    (call,) = venue.sim.requests("OpenOrders")
    assert call.error == "EAPI:Invalid signature"
    assert venue.time.slept == []


async def test_an_unknown_txid_is_not_retried_and_is_left_out(venue):
    placed = await venue.exchange.place(venue.limit_buy())
    found = await venue.exchange.query_orders([placed.venue_order_id, "OAAAAA-BBBBB-CCCCCC"])
    assert list(found) == [placed.venue_order_id]
    errors = [c.error for c in venue.sim.requests("QueryOrders")]
    assert errors[0] is not None and errors.count(None) == 1  # the batch, then each half once (no retries)
    assert len(errors) == 3 and venue.time.slept == []


async def cancel_through(venue, by, fault):
    """Place an order, then cancel it (by txid or cl_ord_id) with ``fault`` on the first CancelOrder."""
    request = venue.limit_buy()
    placed = await venue.exchange.place(request)
    venue.sim.inject_fault("CancelOrder", fault)
    ref = placed.venue_order_id if by == "txid" else request.client_order_id
    keyword = {"txid": "venue_order_id", "cl_ord_id": "client_order_id"}[by]
    result = await venue.exchange.cancel(**{keyword: ref})
    first, second = venue.sim.requests("CancelOrder")
    assert first.status == 502 and first.fault == str(fault) and second.params[by] == ref
    return placed, result, first, second


@pytest.mark.parametrize("by", ["txid", "cl_ord_id"])
async def test_a_cancel_whose_first_attempt_got_a_502_before_the_engine_is_retried_and_cancels(venue, by):
    _, result, first, second = await cancel_through(venue, by, FaultKind.HTTP_502_BEFORE_EXECUTE)
    assert (result.count, result.not_found, result.error) == (1, False, None)
    assert first.result is None and (second.status, second.error) == (200, None)
    assert venue.sim.orders()[0].status == "canceled"


@pytest.mark.parametrize("by", ["txid", "cl_ord_id"])
async def test_a_cancel_that_worked_behind_a_502_reports_not_found_and_the_order_is_canceled(venue, by):
    placed, result, first, second = await cancel_through(venue, by, FaultKind.HTTP_502_AFTER_EXECUTE)
    assert (result.count, result.not_found) == (0, True)
    assert first.result == {"count": 1} and second.error == "EOrder:Unknown order"
    found = await venue.exchange.query_orders([placed.venue_order_id])
    assert found[placed.venue_order_id].status is VenueOrderStatus.CANCELED


@pytest.mark.parametrize("venue_options", [{"timeout_s": 0.1}])
async def test_a_read_whose_reply_is_held_past_the_client_timeout_is_retried(venue):
    placed = await venue.exchange.place(venue.limit_buy())
    # The simulator holds its reply 0.3 s of wall time; the client gives up after 0.1 s (aiohttp's timeout is
    # real time: the one unavoidable real wait of this test).
    venue.sim.inject_fault("OpenOrders", FaultKind.DELAY_REPLY, seconds=0.3)
    orders = await venue.exchange.open_orders()
    assert [o.venue_order_id for o in orders] == [placed.venue_order_id]
    held, answered = venue.sim.requests("OpenOrders")
    assert (held.fault, answered.fault, answered.error) == ("delay_reply", None, None)
