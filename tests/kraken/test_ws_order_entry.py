"""WS v2 order entry (REFERENCE.md 6.3 [D-WSADD], [D-WSCAN]; 4.3 point 4) against the in-process simulator: with a
healthy executions stream, ``place`` sends ``add_order`` and ``cancel`` sends ``cancel_order`` on that socket;
otherwise (or with route ``rest``) REST as before. The simulator's request log (``/ws/<method>`` for the socket,
``/0/private/<Method>`` for REST) proves which route each order took and that an unanswered ``add_order`` is
never sent again."""

import asyncio
from decimal import Decimal

import pytest

from execledger.application.ports import ErrorClass, PlaceStatus, VenueOrderStatus
from execledger.domain.order import State
from execledger.domain.values import OrderType, Side
from execledger.infrastructure.kraken.adapter import ws_add_order_params
from execledger.infrastructure.kraken.ws import json_text
from execledger.infrastructure.simulator import FaultKind
from tests.integration import conftest as integration
from tests.integration.conftest import PAIR, Collector, until

# The simulator, the adapter on it and the trading service of tests/integration (fixtures by the same names).
sim, sim_options, venue, venue_options = (
    integration.sim,
    integration.sim_options,
    integration.venue,
    integration.venue_options,
)
trading, service_options = integration.trading, integration.service_options


@pytest.fixture
async def live(venue):
    """The venue with its executions stream consumed and healthy (the socket orders go over)."""
    collector = Collector(venue.exchange.executions())
    await until(lambda: venue.exchange.stream is not None and venue.exchange.stream.healthy)
    yield venue
    await collector.close()


def routes(venue, cl_ord_id=None):
    """(WS add_order calls, REST AddOrder calls) the simulator received, of one cl_ord_id or all."""
    return venue.sim.requests("add_order", cl_ord_id=cl_ord_id), venue.sim.requests("AddOrder", cl_ord_id=cl_ord_id)


def record_frames(stream) -> list[str]:
    """The text of every frame the stream writes on its socket from now on."""
    frames: list[str] = []
    ws = stream._ws
    send_str = ws.send_str

    async def recording(data, compress=None):
        frames.append(data)
        await send_str(data, compress)

    ws.send_str = recording
    return frames


def test_json_text_writes_decimals_as_exact_json_numbers():
    huge = Decimal("12345678901234567.123456789012345")  # a float would keep 17 digits of it
    assert json_text({"q": huge, "p": Decimal("1E-8"), "t": {"price": Decimal("3.75E+4")}, "ids": ["a"]}) == (
        '{"q":12345678901234567.123456789012345,"p":0.00000001,"t":{"price":37500},"ids":["a"]}'
    )
    assert json_text({"b": True, "s": 'x"y', "n": None}) == '{"b":true,"s":"x\\"y","n":null}'


async def test_an_acknowledged_add_order_goes_over_the_socket_with_exact_decimals(live):
    frames = record_frames(live.exchange.stream)
    request = live.limit_buy(price="60000.1", quantity="0.12345678")
    result = await live.exchange.place(request)
    (placed,) = live.sim.orders()
    assert (result.status, result.venue_order_id) == (PlaceStatus.ACKNOWLEDGED, placed.txid)
    assert placed.request.cl_ord_id == request.client_order_id and placed.status == "open"
    ws_calls, rest_calls = routes(live)
    assert [c.path for c in ws_calls] == ["/ws/add_order"] and rest_calls == []
    (frame,) = frames
    assert '"order_qty":0.12345678,' in frame and '"limit_price":60000.1,' in frame, frame
    assert '"symbol":"BTC/USD"' in frame and '"method":"add_order"' in frame and '"token":"' in frame
    assert ws_calls[0].params["deadline"] == request.deadline.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert live.exchange._orders[request.client_order_id] == (PAIR, placed.txid)  # remembered as REST does


def test_a_stop_loss_limit_carries_its_trigger_and_limit_as_ws_v2_spells_them():
    from execledger.application.ports import OrderRequest

    request = OrderRequest(
        client_order_id="c1",
        pair=PAIR,
        side=Side.SELL,
        order_type=OrderType.STOP_LOSS_LIMIT,
        quantity=Decimal("0.5"),
        trigger_price=Decimal("59000.0"),
        limit_price=Decimal("58900"),
        reduce_only=True,
        fee_in_quote=True,
        post_only=False,
    )
    params = ws_add_order_params(request, "BTC/USD")
    assert params == {
        "order_type": "stop-loss-limit",
        "side": "sell",
        "symbol": "BTC/USD",
        "order_qty": Decimal("0.5"),
        "triggers": {"reference": "last", "price": Decimal("59000.0")},
        "limit_price": Decimal("58900"),
        "fee_preference": "quote",
        "reduce_only": True,
        "cl_ord_id": "c1",
    }


async def test_a_stop_loss_limit_placed_over_the_socket_rests_with_its_trigger_and_limit(live):
    live.sim.set_balance("XXBT", "1")
    request = live.limit_buy()
    from dataclasses import replace

    stop = replace(
        request,
        side=Side.SELL,
        order_type=OrderType.STOP_LOSS_LIMIT,
        trigger_price=Decimal("59000"),
        limit_price=Decimal("58900"),
        fee_in_quote=True,
    )
    result = await live.exchange.place(stop)
    assert result.status is PlaceStatus.ACKNOWLEDGED, result
    (placed,) = live.sim.orders()
    assert (placed.request.price, placed.request.price2) == (Decimal("59000"), Decimal("58900"))


@pytest.mark.parametrize(
    ("fault", "changes", "error"),
    [
        (FaultKind.INSUFFICIENT_FUNDS, {}, "EOrder:Insufficient funds"),
        (None, {"deadline_in": 120.0}, "EGeneral:Invalid arguments:deadline"),  # more than 60 s ahead
    ],
    ids=["insufficient_funds", "invalid_argument"],
)
async def test_a_refusal_over_the_socket_is_rejected_as_the_same_refusal_over_rest(live, fault, changes, error):
    if fault is not None:
        live.sim.inject_fault("add_order", fault)
    over_ws = await live.exchange.place(live.limit_buy(**changes))
    live.exchange.order_entry = "rest"
    if fault is not None:
        live.sim.inject_fault("AddOrder", fault)
    over_rest = await live.exchange.place(live.limit_buy(**changes))
    assert over_ws.status is over_rest.status is PlaceStatus.REJECTED
    assert over_ws.error_class is over_rest.error_class is not None
    assert (over_ws.error, over_ws.correction) == (over_rest.error, over_rest.correction)
    assert over_ws.error.startswith(error)
    assert len(live.sim.requests("add_order")) == 1 and len(live.sim.requests("AddOrder")) == 1
    assert live.sim.orders() == []


@pytest.mark.parametrize("venue_options", [{"attempts": 1}])
async def test_an_add_order_whose_answer_is_late_is_unknown_and_resolved_by_its_cl_ord_id(
    venue, trading, venue_options
):
    """The simulator places the order, then holds the answer 1 s; the adapter waits 0.2 s: UNKNOWN (AMBIGUOUS),
    never resent; the service's unknown-outcome worker finds it by cl_ord_id (REFERENCE.md 4.3 points 2 and 4)."""
    collector = Collector(venue.exchange.executions())
    try:
        await until(lambda: venue.exchange.stream.healthy)
        venue.exchange.ws_ack_timeout_s = 0.2
        venue.sim.inject_fault("add_order", FaultKind.DELAY_REPLY, seconds=1.0)
        order_id = trading.buy()
        assert await trading.service.send_pending() == 1
        order = trading.order(order_id)
        assert (order.state, order.txid) == (State.OUTCOME_UNKNOWN, None)
        unknown = trading.ledger.ledger.order_history(order_id)[-1]
        assert unknown.data["reason"]["error_class"] == ErrorClass.AMBIGUOUS.value
        await trading.service.resolve_unknowns()
        (placed,) = venue.sim.orders()
        resolved = trading.order(order_id)
        assert (resolved.state, resolved.txid) == (State.OPEN, placed.txid)
        assert await trading.service.send_pending() == 0  # resolved, not resent
        ws_calls, rest_calls = routes(venue)
        assert len(ws_calls) == 1 and rest_calls == []
        assert ws_calls[0].params["cl_ord_id"] == order.cl_ord_id
    finally:
        await collector.close()


async def test_a_socket_lost_between_the_write_and_the_answer_makes_the_outcome_unknown(live):
    live.exchange.ws_ack_timeout_s = 30.0  # the drop decides, not the timeout
    live.sim.inject_fault("add_order", FaultKind.HOLD_REQUEST, seconds=30.0)
    request = live.limit_buy()
    placing = asyncio.create_task(live.exchange.place(request))
    await until(lambda: len(live.sim.requests("add_order")) == 1)  # the frame reached the venue
    assert await live.sim.ws_disconnect() == 1
    result = await asyncio.wait_for(placing, 5)
    assert (result.status, result.error_class, result.venue_order_id) == (
        PlaceStatus.UNKNOWN,
        ErrorClass.AMBIGUOUS,
        None,
    )
    assert live.sim.requests("AddOrder") == []  # not resent over REST either


async def test_without_a_healthy_stream_the_order_goes_over_rest(live):
    live.sim.ws_stall()  # the heartbeat watchdog declares the stream down
    await until(lambda: not live.exchange.stream.healthy)
    request = live.limit_buy()
    result = await live.exchange.place(request)
    assert result.status is PlaceStatus.ACKNOWLEDGED
    ws_calls, rest_calls = routes(live)
    assert ws_calls == [] and [c.params["cl_ord_id"] for c in rest_calls] == [request.client_order_id]


async def test_an_add_order_refused_for_the_sockets_token_goes_over_rest_and_the_stream_renews_it(live):
    """``ESession:Invalid session`` on ``add_order`` (the token refused at the door, nothing executed): sent again
    as a retryable write it would meet the same refusal on that socket for ever. It goes over REST at once and the
    stream reconnects with a fresh token, over which the next order goes."""
    stream = live.exchange.stream
    connects = stream.connects
    live.sim.ws_tokens.clear()  # the venue forgets the socket's token (a session it dropped)
    request = live.limit_buy()
    result = await live.exchange.place(request)
    assert result.status is PlaceStatus.ACKNOWLEDGED, result
    ws_calls, rest_calls = routes(live, request.client_order_id)
    assert [c.error for c in ws_calls] == ["ESession:Invalid session"] and len(rest_calls) == 1
    await until(lambda: stream.connects > connects and stream.healthy)  # a new socket, a fresh token
    after = live.limit_buy()
    assert (await live.exchange.place(after)).status is PlaceStatus.ACKNOWLEDGED
    ws_calls, rest_calls = routes(live, after.client_order_id)
    assert [c.error for c in ws_calls] == [None] and rest_calls == []


async def test_without_any_stream_the_order_goes_over_rest(venue):
    result = await venue.exchange.place(venue.limit_buy())
    assert result.status is PlaceStatus.ACKNOWLEDGED
    ws_calls, rest_calls = routes(venue)
    assert ws_calls == [] and len(rest_calls) == 1


async def test_an_order_no_longer_wanted_when_its_frame_would_be_written_is_not_sent(live):
    asked: list[bool] = []

    def halted() -> str:
        asked.append(live.exchange.stream.healthy)
        return "trading is halted (ops: incident)"

    result = await live.exchange.place(live.limit_buy(), still_wanted=halted)
    assert result.status is PlaceStatus.NOT_SENT and "halted" in (result.error or ""), result
    assert result.error_class is ErrorClass.RETRYABLE and asked == [True]
    assert live.sim.requests("add_order") == [] and live.sim.requests("AddOrder") == []
    assert live.exchange.stream._pending == {}


async def test_cancel_goes_over_the_socket_by_txid_or_cl_ord_id(live):
    first, second = live.limit_buy(), live.limit_buy()
    placed = [await live.exchange.place(r) for r in (first, second)]
    by_txid = await live.exchange.cancel(venue_order_id=placed[0].venue_order_id)
    by_cl_ord_id = await live.exchange.cancel(client_order_id=second.client_order_id)
    assert (by_txid.count, by_txid.not_found, by_cl_ord_id.count, by_cl_ord_id.not_found) == (1, False, 1, False)
    assert [o.status for o in live.sim.orders()] == ["canceled", "canceled"]
    cancels = live.sim.requests("cancel_order")
    assert [c.params for c in cancels] == [
        {"order_id": [placed[0].venue_order_id]},
        {"cl_ord_id": [second.client_order_id]},
    ]
    assert live.sim.requests("CancelOrder") == []


async def test_cancel_of_an_order_no_longer_open_is_not_found_over_the_socket(live):
    result = await live.exchange.cancel(venue_order_id="OAAAAA-BBBBB-CCCCCC")
    assert (result.count, result.not_found) == (0, True)
    assert result.error == "EOrder:Invalid order"
    assert len(live.sim.requests("cancel_order")) == 1 and live.sim.requests("CancelOrder") == []


async def test_a_cancel_whose_answer_is_late_is_sent_again_over_rest(live):
    placed = await live.exchange.place(live.limit_buy())
    live.exchange.ws_ack_timeout_s = 0.2
    live.sim.inject_fault("cancel_order", FaultKind.DELAY_REPLY, seconds=1.0)
    result = await live.exchange.cancel(venue_order_id=placed.venue_order_id)
    # The WS cancel worked behind its late answer: the REST one finds the order gone (not a failure of intent).
    assert (result.count, result.not_found) == (0, True)
    assert len(live.sim.requests("cancel_order")) == 1 and len(live.sim.requests("CancelOrder")) == 1
    (order,) = live.sim.orders()
    assert order.status == "canceled"
    found = await live.exchange.query_orders([placed.venue_order_id])
    assert found[placed.venue_order_id].status is VenueOrderStatus.CANCELED


async def test_route_rest_places_and_cancels_over_rest_only(live):
    live.exchange.order_entry = "rest"
    placed = await live.exchange.place(live.limit_buy())
    canceled = await live.exchange.cancel(venue_order_id=placed.venue_order_id)
    assert placed.status is PlaceStatus.ACKNOWLEDGED and canceled.count == 1
    assert live.sim.requests("add_order") == [] and live.sim.requests("cancel_order") == []
    assert len(live.sim.requests("AddOrder")) == 1 and len(live.sim.requests("CancelOrder")) == 1


async def test_a_consumer_behind_does_not_hold_an_answer_back(venue):
    """The stream stops reading the socket while its consumer is behind (``QUEUE_HIGH``), except while a trading
    request waits for its answer: orders placed while nobody takes the reports are still acknowledged."""
    reports = venue.exchange.executions()
    stream = venue.exchange.stream
    stream.QUEUE_HIGH = 2  # the CONNECTED event and the snapshot's first reports already reach it
    stream.start()
    await until(lambda: stream.healthy)
    venue.exchange.ws_ack_timeout_s = 2.0
    results = [await venue.exchange.place(venue.limit_buy()) for _ in range(4)]
    assert [r.status for r in results] == [PlaceStatus.ACKNOWLEDGED] * 4
    assert stream._queue.qsize() >= stream.QUEUE_HIGH  # nobody consumed: the reader was behind all along
    assert len(venue.sim.requests("add_order")) == 4 and venue.sim.requests("AddOrder") == []
    await reports.aclose()
