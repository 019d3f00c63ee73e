"""``executions()`` against the simulator's WS v2: the order life-cycle as observations, and a fill that happens
while the stream is down (disconnected, or silently stalled) is observed exactly once: by REST polling while the
stream is down, and deduplicated by trade id when the reconnected stream's snapshot and resync bring it again."""

import pytest

from execledger.application.exchange import ObservationKind, VenueOrderStatus
from execledger.infrastructure.kraken import ws as ws_module
from execledger.infrastructure.simulator import FaultKind

from .conftest import PAIR, Collector, until

PENDING_NEW, NEW, TRADE, FILLED = (
    ObservationKind.PENDING_NEW,
    ObservationKind.NEW,
    ObservationKind.TRADE,
    ObservationKind.FILLED,
)
FILLING_MARK = "59000"  # below the 60000 limit of venue.limit_buy(): the resting buy fills


@pytest.fixture
async def seen(venue):
    collector = Collector(venue.exchange.executions())
    await until(lambda: venue.streams and venue.streams[0].healthy)
    yield collector
    await collector.close()


@pytest.fixture
def trades_on_the_wire(monkeypatch):
    """Trade ids as they arrive on the WS (before the stream's deduplication)."""
    arrived = []
    parse = ws_module.parse_executions_message

    def spy(message):
        observations = parse(message)
        arrived.extend(o.trade_id for o in observations if o.trade_id)
        return observations

    monkeypatch.setattr(ws_module, "parse_executions_message", spy)
    return arrived


@pytest.fixture
def trades_by_rest(venue):
    """Trade ids as REST (TradesHistory) returns them to the stream's polling and resyncs."""
    returned = []
    trades_since = venue.exchange.trades_since

    async def spy(since):
        trades = await trades_since(since)
        returned.extend(t.trade_id for t in trades)
        return trades

    venue.exchange.trades_since = spy
    return returned


async def test_executions_yield_pending_new_new_trade_and_filled(venue, seen):
    request = venue.limit_buy()
    placed = await venue.exchange.place(request)
    venue.sim.set_mark_price(PAIR, FILLING_MARK)
    await until(lambda: seen.of(placed.txid, FILLED))

    observed = seen.of(placed.txid)
    assert [o.kind for o in observed] == [PENDING_NEW, NEW, TRADE, FILLED]
    assert {o.source for o in observed} == {"ws"}  # the stream is healthy: polling stays backed off
    (trade,) = venue.sim.trades()
    fill = observed[2]
    assert (fill.trade_id, fill.last_qty, fill.last_price) == (trade.txid, trade.vol, trade.price)
    assert (observed[-1].order_status, observed[-1].cum_qty) == (VenueOrderStatus.FILLED, request.volume)
    sequences = [o.sequence for o in observed]
    assert sequences == sorted(sequences) and venue.streams[0].gaps == 0


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
async def test_a_fill_while_the_stream_is_down_is_seen_once_by_rest_and_not_again_after_the_resync(
    venue, seen, trades_on_the_wire, trades_by_rest, how
):
    placed = await venue.exchange.place(venue.limit_buy())
    await until(lambda: seen.of(placed.txid, NEW))
    # Keep the stream from reconnecting until the fill is in (its token call is refused; a rate-limit answer
    # does not open the breaker, so REST polling goes on).
    venue.sim.inject_fault("GetWebSocketsToken", FaultKind.API_RATE_LIMIT, count=1_000_000)
    stream = await take_the_stream_down(venue, how)
    venue.sim.set_mark_price(PAIR, FILLING_MARK)  # fills now: the WS update is lost (closed or stalled)
    (trade,) = venue.sim.trades()

    await until(lambda: seen.of(placed.txid, FILLED))
    assert not stream.healthy and stream.connects == 1
    (fill,) = seen.of(placed.txid, TRADE)
    assert (fill.trade_id, fill.source, fill.last_qty) == (trade.txid, "rest", trade.vol)
    assert seen.of(placed.txid, FILLED)[0].source == "rest"
    assert trade.txid not in trades_on_the_wire

    venue.sim.clear_faults()
    await until(lambda: stream.connects == 2 and stream.healthy)
    # A later WS update proves the reconnect's snapshot and its REST resync (run before the next frame is read)
    # have been processed.
    later = await venue.exchange.place(venue.limit_buy(price="58000"))  # rests below the mark
    await until(lambda: [o for o in seen.of(later.txid, NEW) if o.source == "ws"])

    assert trades_on_the_wire.count(trade.txid) == 1  # the snapshot brought the fill again...
    assert trades_by_rest.count(trade.txid) >= 2  # ...and so did the resync after the reconnect...
    assert [o.trade_id for o in seen.seen if o.kind is TRADE] == [trade.txid]  # ...but it was observed once
    assert stream.resyncs >= 2
