"""The execution stream against the simulator's WS v2, on its own and under the trading service.

On its own, ``executions()`` yields the order life-cycle as reports and its health as ``StreamEvent``s; it never
calls REST. Under a ``TradingService`` (the production wiring, on the real adapter), a fill that happens while the
stream is down (disconnected, or silently stalled) or behind a sequence gap is recorded exactly once: by the
service's REST polling, and not again when the reconnected stream's snapshot brings it back.
"""

import pytest

from execledger.application.ports import FillReport, OrderStatusReport, StreamState, VenueOrderStatus
from execledger.domain.order import State
from execledger.infrastructure.kraken import ws as ws_module
from execledger.infrastructure.simulator import FaultKind

from .conftest import PAIR, Collector, until

FILLING_MARK = "59000"  # below the 60000 limit of venue.limit_buy() / trading.buy(): the resting buy fills
CONNECTED, DISCONNECTED, GAP = StreamState.CONNECTED, StreamState.DISCONNECTED, StreamState.GAP
PENDING, OPEN, FILLED = VenueOrderStatus.PENDING, VenueOrderStatus.OPEN, VenueOrderStatus.FILLED


@pytest.fixture
async def seen(venue):
    collector = Collector(venue.exchange.executions())
    await until(lambda: collector.events(CONNECTED))
    yield collector
    await collector.close()


@pytest.fixture
def trades_on_the_wire(monkeypatch):
    """Trade ids as they arrive on the WS (before the stream's deduplication)."""
    arrived = []
    parse = ws_module.parse_executions_message

    def spy(message, *args):
        reports = parse(message, *args)
        arrived.extend(r.trade_id for r in reports if isinstance(r, FillReport))
        return reports

    monkeypatch.setattr(ws_module, "parse_executions_message", spy)
    return arrived


@pytest.fixture
def trades_by_rest(venue):
    """Trade ids as REST (TradesHistory) returns them to the trading service."""
    returned = []
    fills_since = venue.exchange.fills_since

    async def spy(since):
        fills = await fills_since(since)
        returned.extend(f.trade_id for f in fills)
        return fills

    venue.exchange.fills_since = spy
    return returned


def rest_calls(venue) -> list[str]:
    return [r.method for r in venue.sim.requests()]


async def test_executions_yield_the_life_cycle_as_reports_and_never_call_rest(venue, seen):
    request = venue.limit_buy()
    placed = await venue.exchange.place(request)
    venue.sim.set_mark_price(PAIR, FILLING_MARK)
    await until(lambda: len(seen.statuses(placed.venue_order_id, FILLED)) == 2)

    reports = seen.of(placed.venue_order_id)
    # pending_new, new, then the trade record (its fill, then the status it carries), then the filled record.
    assert [(type(r), getattr(r, "status", None)) for r in reports] == [
        (OrderStatusReport, PENDING),
        (OrderStatusReport, OPEN),
        (FillReport, None),
        (OrderStatusReport, FILLED),
        (OrderStatusReport, FILLED),
    ]
    assert {r.source for r in reports} == {"ws"}
    assert {r.client_order_id for r in reports} == {request.client_order_id}
    (trade,) = venue.sim.trades()
    (fill,) = seen.fills()
    assert (fill.trade_id, fill.last_qty, fill.last_px) == (trade.txid, trade.vol, trade.price)
    assert (fill.pair, fill.side) == (PAIR, request.side)  # the WS symbol is reported as the AssetPairs key
    assert (reports[0].quantity, reports[0].limit_price) == (request.quantity, request.limit_price)
    final = reports[-1]
    assert (final.filled_qty, final.is_terminal) == (request.quantity, True)
    sequences = [r.sequence for r in reports if isinstance(r, OrderStatusReport)]
    assert sequences == sorted(sequences) and venue.streams[0].gaps == 0
    assert seen.events() == [seen.events(CONNECTED)[0]]  # healthy throughout: one CONNECTED, nothing else
    # The stream's one REST call was its token; the order went over its socket (WS v2 add_order), not REST.
    assert rest_calls(venue) == ["GetWebSocketsToken", "add_order"]


async def take_the_stream_down(venue, how):
    stream = venue.streams[0]
    if how == "disconnect":
        assert await venue.sim.ws_disconnect() == 1
    else:
        # Silence without a close: only the heartbeat watchdog can tell. It fires after heartbeat_timeout_s
        # (0.25 s) of real time, because aiohttp's receive timeout is wall time; nothing else here waits for real.
        assert venue.sim.ws_stall() == 1
    return stream


@pytest.mark.parametrize("how", ["disconnect", "stall"])
async def test_the_stream_reports_its_outage_and_its_return_and_yields_a_fill_once(venue, seen, how):
    """The stream's half of the outage: DISCONNECTED as soon as it is lost, CONNECTED after the reconnect's
    snapshot, and the snapshot's repeat of a fill it already yielded is not yielded again."""
    placed = await venue.exchange.place(venue.limit_buy())
    venue.sim.set_mark_price(PAIR, FILLING_MARK)
    await until(lambda: seen.fills(placed.venue_order_id))
    stream = await take_the_stream_down(venue, how)
    await until(lambda: seen.events(DISCONNECTED))
    await until(lambda: stream.connects == 2 and len(seen.events(CONNECTED)) == 2)

    assert [e.state for e in seen.events()] == [CONNECTED, DISCONNECTED, CONNECTED]
    (trade,) = venue.sim.trades()
    assert [f.trade_id for f in seen.fills()] == [trade.txid]  # the snapshot brought it again: not yielded
    # The snapshot's status of the order is yielded again (statuses are idempotent for the engine).
    assert seen.statuses(placed.venue_order_id, FILLED)[-1].sequence == 1
    assert "OpenOrders" not in rest_calls(venue) and "TradesHistory" not in rest_calls(venue)


@pytest.mark.parametrize("how", ["disconnect", "stall"])
async def test_a_fill_while_the_stream_is_down_is_recorded_once_by_rest_and_not_again_after_the_reconnect(
    venue, trading, trades_on_the_wire, trades_by_rest, how
):
    await trading.start()
    await until(lambda: trading.service.stream_healthy)
    order_id = trading.buy()
    await until(lambda: order_id in trading.service.stream_seen and trading.order(order_id).state is State.OPEN)
    txid = trading.order(order_id).txid
    # Keep the stream from reconnecting until the fill is in (its token call is refused; a rate-limit answer
    # does not open the breaker, so the service's REST polling goes on).
    venue.sim.inject_fault("GetWebSocketsToken", FaultKind.API_RATE_LIMIT, count=1_000_000)
    stream = await take_the_stream_down(venue, how)
    await until(lambda: not trading.service.stream_healthy)  # the service got DISCONNECTED: REST takes over
    polls = len(trading.polls)
    await until(lambda: len(trading.polls) > polls)  # a poll finished while down: the fill comes after it

    venue.sim.set_mark_price(PAIR, FILLING_MARK)  # fills now: the WS update is lost (closed or stalled)
    (trade,) = venue.sim.trades()
    assert trade.order_txid == txid
    await until(lambda: trading.order(order_id).state is State.FILLED)  # a later poll, while still down

    assert not stream.healthy and stream.connects == 1 and not trading.service.stream_healthy
    (recorded,) = trading.fills(order_id)
    assert (recorded.name, recorded.data["trade_id"], recorded.data["source"]) == ("Filled", trade.txid, "rest")
    assert trade.txid in trades_by_rest and trade.txid not in trades_on_the_wire
    version = trading.order(order_id).version

    venue.sim.clear_faults()
    # CONNECTED follows the snapshot's reports: once the service has applied it, it has applied the snapshot.
    await until(lambda: stream.connects == 2 and trading.service.stream_healthy)
    assert trades_on_the_wire.count(trade.txid) == 1  # the snapshot brought the fill again...
    assert len(trading.fills(order_id)) == 1  # ...but it was recorded once
    assert trading.order(order_id).version == version  # and the repeat wrote nothing at all
    order = trading.order(order_id)
    assert (order.filled_quantity, list(order.fills)) == (trade.vol, [trade.txid])
    assert not trading.engine.execution.unmatched


async def test_a_fill_lost_behind_a_sequence_gap_is_recorded_once_by_rest_without_a_reconnect(
    venue, trading, trades_on_the_wire
):
    await trading.start()
    await until(lambda: trading.service.stream_healthy)
    first = trading.buy()
    await until(lambda: first in trading.service.stream_seen and trading.order(first).state is State.OPEN)
    stream = venue.streams[0]
    # The fill's WS updates are lost but consume their sequence numbers; nothing awaits in between, so the
    # heartbeat watchdog cannot notice the (instant) silence: the connection stays up.
    assert venue.sim.ws_stall() == 1
    venue.sim.set_mark_price(PAIR, FILLING_MARK)
    venue.sim.ws_resume()
    (trade,) = venue.sim.trades()
    assert trading.order(first).state is State.OPEN and trade.txid not in trades_on_the_wire

    second = trading.buy(price="58000")  # rests below the mark; its updates reveal the gap
    await until(lambda: trading.order(first).state is State.FILLED)

    assert stream.gaps == 1 and stream.connects == 1 and stream.healthy
    (recorded,) = trading.fills(first)
    assert (recorded.name, recorded.data["trade_id"], recorded.data["source"]) == ("Filled", trade.txid, "rest")
    assert trade.txid not in trades_on_the_wire
    await until(lambda: second in trading.service.stream_seen and trading.order(second).state is State.OPEN)
    assert trading.fills(second) == []


@pytest.mark.parametrize("service_options", [{"poll_when_stream_down_s": 3600.0}])
async def test_rest_polling_starts_the_moment_the_stream_drops_and_runs_once_more_after_it_is_back(venue, trading):
    """Polling while down is every ``poll_when_stream_down_s`` (an hour here) and never while healthy, so every
    poll after the start-up reconciliation's comes from a stream event: CONNECTED (what happened before, read
    once), DISCONNECTED (REST takes over at once), CONNECTED again."""
    await trading.start()
    await until(lambda: len(trading.polls) == 2)
    # The start-up reconciliation's (before the stream runs), then the one the first CONNECTED asked for.
    assert trading.polls == [False, True] and trading.service.stream_healthy
    stream = venue.streams[0]

    assert await venue.sim.ws_disconnect() == 1
    await until(lambda: len(trading.polls) == 3)
    assert trading.polls[-1] is False and stream.connects in (1, 2)
    await until(lambda: stream.connects == 2 and len(trading.polls) == 4)
    assert trading.polls == [False, True, False, True]
    assert len(venue.sim.requests("OpenOrders")) == 4  # one call per poll, whatever the number of orders
    assert stream.gaps == 0


async def test_a_resync_after_a_gap_that_fails_is_tried_again_until_the_lost_fill_is_recorded(venue, trading):
    await trading.start()
    await until(lambda: trading.service.stream_healthy)
    first = trading.buy()
    await until(lambda: first in trading.service.stream_seen and trading.order(first).state is State.OPEN)
    assert venue.sim.ws_stall() == 1
    venue.sim.set_mark_price(PAIR, FILLING_MARK)  # the fill's updates are lost behind a sequence gap
    venue.sim.ws_resume()
    # The resync's OpenOrders call fails through all the adapter's attempts (a rate-limit answer: retried with
    # backoff in simulator time, and it does not open the breaker); the service must try again later.
    attempts = venue.exchange.retry.attempts
    venue.sim.inject_fault("OpenOrders", FaultKind.API_RATE_LIMIT, count=attempts)
    trading.buy(price="58000")  # its updates reveal the gap

    await until(lambda: trading.order(first).state is State.FILLED)
    refused = [r for r in venue.sim.requests("OpenOrders") if r.error]
    assert len(refused) == attempts  # the first resync did fail: the fill came from a later one
    (recorded,) = trading.fills(first)
    assert (recorded.data["trade_id"], recorded.data["source"]) == (venue.sim.trades()[0].txid, "rest")
    assert not trading.running.done()  # the failure did not stop the service


async def test_after_a_gap_the_stream_is_still_taken_as_healthy(venue, trading):
    await trading.start()
    await until(lambda: trading.service.stream_healthy)
    first = trading.buy()
    await until(lambda: first in trading.service.stream_seen and trading.order(first).state is State.OPEN)
    assert venue.sim.ws_stall() == 1
    venue.sim.set_mark_price(PAIR, FILLING_MARK)
    venue.sim.ws_resume()
    trading.buy(price="58000")  # its updates reveal the gap
    await until(lambda: trading.order(first).state is State.FILLED)  # the gap's resync is done

    stream = venue.streams[0]
    assert stream.healthy and stream.connects == 1 and stream.gaps == 1
    # The resync was one poll: the connection is up, so REST polling must stop again.
    assert trading.service.stream_healthy
