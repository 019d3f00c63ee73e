"""KrakenExecutionsStream against a WS v2 stub and the REST stub, both on 127.0.0.1: snapshot + updates, fresh
token per connection, heartbeat watchdog, sequence gaps -> REST resync, REST polling while the stream is down."""

import asyncio
import copy
import socket
from datetime import UTC

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from execledger.application.exchange import ObservationKind, VenueOrderStatus
from execledger.infrastructure.kraken.adapter import KrakenExchange
from execledger.infrastructure.kraken.retry import RetryPolicy
from execledger.infrastructure.kraken.ws import KrakenExecutionsStream
from tests.conftest import kraken_fixture

ACK = kraken_fixture("ws_v2_executions_subscribe_ack_with_warnings_kraken_async_rs.json")
HEARTBEAT = kraken_fixture("ws_v2_heartbeat_docs.json")
STATUS = kraken_fixture("ws_v2_status_update_kraken_async_rs.json")
TOKEN = kraken_fixture("rest_get_websockets_token_official_example.json")
NO_TRADES = {"error": [], "result": {"trades": {}, "count": 0}}
NO_OPEN = {"error": [], "result": {"open": {}}}


def message(name, sequence):
    msg = copy.deepcopy(kraken_fixture(name))
    msg["sequence"] = sequence
    return msg


def snapshot(sequence=1, data=()):
    return {"channel": "executions", "type": "snapshot", "data": list(data), "sequence": sequence}


class StubWs:
    """Each connection plays the next script: frames to send after the subscribe, then 'close' or 'hold'."""

    def __init__(self):
        self.scripts: list[tuple[list, str]] = []
        self.subscribes: list[dict] = []

    async def handle(self, request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.subscribes.append(await ws.receive_json())
        frames, end = self.scripts.pop(0) if len(self.scripts) > 1 else self.scripts[0]
        await ws.send_json(STATUS)
        for frame in frames:
            await (ws.send_str(frame) if isinstance(frame, str) else ws.send_json(frame))
        if end == "hold":
            await ws.receive()  # until the client goes away
        await ws.close()
        return ws


@pytest.fixture
async def ws_stub():
    stub = StubWs()
    app = web.Application()
    app.router.add_get("/v2", stub.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    stub.url = f"http://127.0.0.1:{server.port}/v2"
    yield stub
    await server.close()


class Pacing:
    """Records requested waits; waits a token amount of real time so the loop can run (not synchronisation)."""

    def __init__(self):
        self.requested: list[float] = []

    async def __call__(self, seconds):
        self.requested.append(seconds)
        await asyncio.sleep(0.01)


def make_stream(rest, url, pacing, **kw):
    exchange = KrakenExchange(rest, retry=RetryPolicy(attempts=1))
    options = {
        "heartbeat_timeout_s": 0.3,
        "reconnect_delay_s": 0.01,
        "poll_when_down_s": 0.05,
        "poll_when_healthy_s": 3600,
        "sleep": pacing,
    }
    options.update(kw)
    return KrakenExecutionsStream(exchange, url, **options)


async def take(stream_iter, count, timeout=5.0):
    got = []

    async def collect():
        async for obs in stream_iter:
            got.append(obs)
            if len(got) == count:
                return

    await asyncio.wait_for(collect(), timeout)
    return got


async def until(condition, timeout=5.0):
    """Wait for a condition another task brings about (checked on every loop turn, bounded)."""

    async def check():
        while not condition():
            await asyncio.sleep(0)

    await asyncio.wait_for(check(), timeout)


@pytest.fixture
def rest_answers(stub):
    stub.on("GetWebSocketsToken", TOKEN)
    stub.on("TradesHistory", NO_TRADES)
    stub.on("OpenOrders", NO_OPEN)
    stub.on("QueryOrders", {"error": [], "result": {}})
    return stub


async def test_snapshot_and_updates_become_observations(rest, ws_stub, rest_answers):
    ws_stub.scripts = [
        (
            [
                ACK,
                message("ws_v2_executions_snapshot_trades_kraken_async_rs.json", 1),
                HEARTBEAT,
                message("ws_v2_executions_update_pending_new_docs.json", 2),
                message("ws_v2_executions_update_new_docs.json", 3),
                message("ws_v2_executions_update_trade_docs.json", 4),
            ],
            "hold",
        )
    ]
    pacing = Pacing()
    stream = make_stream(rest, ws_stub.url, pacing)
    observations = stream.observations()
    got = await take(observations, 7)
    await until(lambda: 3600 in pacing.requested)
    await observations.aclose()
    assert [o.kind for o in got[4:]] == [ObservationKind.PENDING_NEW, ObservationKind.NEW, ObservationKind.TRADE]
    assert all(o.source == "ws" for o in got) and got[-1].sequence == 4
    (subscribe,) = ws_stub.subscribes
    assert subscribe["method"] == "subscribe"
    assert subscribe["params"] == {
        "channel": "executions",
        "token": TOKEN["result"]["token"],
        "snap_orders": True,
        "snap_trades": True,
    }
    assert stream.healthy and stream.gaps == 0
    assert 3600 in pacing.requested  # healthy: polling backed off


async def test_drop_reconnects_with_a_fresh_token_and_rest_resync_recovers_the_missed_fill(rest, ws_stub, stub):
    tokens = [{"error": [], "result": {"token": f"token-{i}", "expires": 900}} for i in range(1, 4)]
    stub.on("GetWebSocketsToken", *tokens)
    stub.on("OpenOrders", NO_OPEN)
    missed = kraken_fixture("rest_trades_history_official_example.json")["result"]["trades"]
    missed_id, missed_trade = next(iter(missed.items()))
    stub.on(
        "TradesHistory",
        NO_TRADES,
        NO_TRADES,
        {"error": [], "result": {"trades": {missed_id: missed_trade}, "count": 1}},
    )
    ws_stub.scripts = [
        ([ACK, snapshot(1), message("ws_v2_executions_update_new_docs.json", 2)], "close"),
        ([ACK, snapshot(1)], "hold"),
    ]
    stream = make_stream(rest, ws_stub.url, Pacing(), since=missed_trade_time(missed_trade))
    observations = stream.observations()
    got = await take(observations, 2)
    await observations.aclose()
    assert got[0].kind is ObservationKind.NEW
    assert (got[1].kind, got[1].trade_id, got[1].source) == (ObservationKind.TRADE, missed_id, "rest")
    assert [s["params"]["token"] for s in ws_stub.subscribes][:2] == ["token-1", "token-2"]
    assert stream.connects >= 2


def missed_trade_time(trade):
    from datetime import datetime

    return datetime.fromtimestamp(trade["time"] - 60, tz=UTC)


async def run_with_a_gap(rest, ws_stub, first, after_gap):
    """new (first), canceled (after_gap), new (after_gap + 1): one gap. Returns the stream and what it saw."""
    ws_stub.scripts = [
        (
            [
                ACK,
                snapshot(1),
                message("ws_v2_executions_update_new_docs.json", first),
                message("ws_v2_executions_update_canceled_kraken_async_rs.json", after_gap),
                message("ws_v2_executions_update_new_kraken_async_rs.json", after_gap + 1),
            ],
            "hold",
        )
    ]
    stream = make_stream(rest, ws_stub.url, Pacing())
    observations = stream.observations()
    got = await take(observations, 3)
    state = {"resyncs": stream.resyncs, "due": stream._resync_due}
    await observations.aclose()
    assert [o.sequence for o in got] == [first, after_gap, after_gap + 1]
    return stream, state


async def test_sequence_gap_triggers_a_rest_resync(rest, ws_stub, rest_answers):
    stream, state = await run_with_a_gap(rest, ws_stub, 2, 5)
    assert stream.gaps == 1 and state["resyncs"] >= 2  # the initial poll while down, and the gap


async def test_heartbeat_watchdog_reconnects_a_silent_stream(rest, ws_stub, rest_answers):
    first = snapshot(1, kraken_fixture("ws_v2_executions_update_new_docs.json")["data"])
    second = snapshot(1, kraken_fixture("ws_v2_executions_update_new_kraken_async_rs.json")["data"])
    ws_stub.scripts = [([ACK, first], "hold"), ([ACK, second, HEARTBEAT], "hold")]
    stream = make_stream(rest, ws_stub.url, Pacing(), heartbeat_timeout_s=0.2)
    observations = stream.observations()
    got = await take(observations, 2)
    await observations.aclose()
    assert [o.txid for o in got] == ["OK4GJX-KSTLS-7DZZO5", "7J91XK-XMFEL-348VPM"]
    assert stream.connects == 2


async def test_invalid_session_gets_a_fresh_token(rest, ws_stub, stub):
    stub.on(
        "GetWebSocketsToken",
        {"error": [], "result": {"token": "stale", "expires": 900}},
        {"error": [], "result": {"token": "fresh", "expires": 900}},
    )
    stub.on("TradesHistory", NO_TRADES)
    stub.on("OpenOrders", NO_OPEN)
    ws_stub.scripts = [
        ([kraken_fixture("ws_v2_error_subscribe_invalid_session_kraken_async_rs.json")], "hold"),
        ([ACK, message("ws_v2_executions_snapshot_trades_kraken_async_rs.json", 1)], "hold"),
    ]
    stream = make_stream(rest, ws_stub.url, Pacing())
    observations = stream.observations()
    await take(observations, 4)
    await observations.aclose()
    assert [s["params"]["token"] for s in ws_stub.subscribes] == ["stale", "fresh"]


async def test_cloudflare_text_frame_causes_a_reconnect(rest, ws_stub, rest_answers):
    ws_stub.scripts = [
        ([ACK, snapshot(1), "CloudFlare WebSocket proxy restarting"], "hold"),
        ([ACK, snapshot(1, kraken_fixture("ws_v2_executions_update_new_docs.json")["data"])], "hold"),
    ]
    stream = make_stream(rest, ws_stub.url, Pacing())
    observations = stream.observations()
    (obs,) = await take(observations, 1)
    await observations.aclose()
    assert obs.txid == "OK4GJX-KSTLS-7DZZO5" and stream.connects == 2


async def test_rest_polling_takes_over_while_the_stream_is_down(rest, stub):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{s.getsockname()[1]}/v2"
    stub.on("GetWebSocketsToken", TOKEN)
    stub.on("OpenOrders", kraken_fixture("rest_open_orders_official_example_incl_partial_fill.json"))
    stub.on("TradesHistory", kraken_fixture("rest_trades_history_official_example.json"))
    pacing = Pacing()
    stream = make_stream(rest, dead_url, pacing, since=missed_trade_time({"time": 1688667769.6396}))
    observations = stream.observations()
    got = await take(observations, 4)
    await asyncio.sleep(0.1)  # let a few more polls run: they must not repeat what was already reported
    await observations.aclose()
    assert {o.source for o in got} == {"rest"} and not stream.healthy
    assert [o.kind for o in got[:2]] == [ObservationKind.TRADE, ObservationKind.TRADE]
    partial = next(o for o in got if o.txid == "OQCLML-BW3P3-BUCMWZ" and o.trade_id is None)
    assert partial.order_status is VenueOrderStatus.PARTIALLY_FILLED
    assert len(stub.calls("OpenOrders")) >= 2 and 0.05 in pacing.requested
    assert stream._queue.empty()
    # An unreachable endpoint costs no token per reconnect attempt: tokens are fetched once a socket is open.
    assert stream.connects == 0 and stub.calls("GetWebSocketsToken") == []


async def test_without_a_ws_url_the_exchange_polls_rest(rest, rest_answers):
    stream = make_stream(rest, None, Pacing())
    stream.start()
    assert [t.get_name() for t in stream._tasks] == ["kraken-rest-poll"]
    await stream.close()


async def test_a_failing_resync_does_not_tear_down_the_stream(rest, ws_stub, stub):
    stub.on("GetWebSocketsToken", TOKEN)
    stub.on("TradesHistory", NO_TRADES)
    stub.on("OpenOrders", NO_OPEN)
    stub.on("QueryOrders", {"error": ["EGeneral:Internal error"]})  # the vanished order cannot be looked up
    stream, state = await run_with_a_gap(rest, ws_stub, 2, 4)
    assert stream.connects == 1 and stream.gaps == 1 and state["due"]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("wss://ws-auth.kraken.com/v2", True),
        ("ws://127.0.0.1:8765/v2", True),
        ("http://localhost:1/v2", True),
        ("ws://ws-auth.kraken.com/v2", False),
        ("ftp://127.0.0.1/v2", False),
    ],
)
def test_ws_url_policy(rest, url, ok):
    if ok:
        assert make_stream(rest, url, Pacing()).ws_url == url
    else:
        with pytest.raises(ValueError):
            make_stream(rest, url, Pacing())


async def test_a_fill_seen_on_the_stream_and_by_rest_is_reported_once(rest, ws_stub, stub):
    trade_msg = message("ws_v2_executions_update_trade_docs.json", 2)
    exec_id = trade_msg["data"][0]["exec_id"]
    rest_trade = dict(
        next(iter(kraken_fixture("rest_trades_history_official_example.json")["result"]["trades"].values())),
        ordertxid=trade_msg["data"][0]["order_id"],
        time=1695378785.7,
    )
    stub.on("GetWebSocketsToken", TOKEN)
    stub.on("OpenOrders", NO_OPEN)
    stub.on("QueryOrders", {"error": [], "result": {}})
    stub.on("TradesHistory", {"error": [], "result": {"trades": {exec_id: rest_trade}, "count": 1}})
    ws_stub.scripts = [
        (
            [
                ACK,
                snapshot(1),
                trade_msg,
                message("ws_v2_executions_update_new_docs.json", 5),
                message("ws_v2_executions_update_new_kraken_async_rs.json", 6),
            ],
            "hold",
        )
    ]
    stream = make_stream(rest, ws_stub.url, Pacing(), since=missed_trade_time({"time": 1695378785.7}))
    observations = stream.observations()
    got = await take(observations, 3)  # the gap at 5 resyncs: REST returns the same fill again
    await observations.aclose()
    fills = [o for o in got if o.trade_id == exec_id]
    assert len(fills) == 1 and stream.gaps == 1 and stream._queue.empty()


async def test_reconnects_back_off_while_the_venue_keeps_refusing(rest, stub):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{s.getsockname()[1]}/v2"
    stub.on("GetWebSocketsToken", TOKEN)
    stub.on("OpenOrders", NO_OPEN)
    stub.on("TradesHistory", NO_TRADES)
    pacing = Pacing()
    stream = make_stream(rest, dead_url, pacing, reconnect_delay_s=1.0, poll_when_down_s=0.5)
    stream.start()
    await until(lambda: len([w for w in pacing.requested if w >= 1]) >= 7)
    await stream.close()
    reconnect_waits = [w for w in pacing.requested if w != 0.5]
    assert reconnect_waits[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


async def test_rest_polling_takes_over_as_soon_as_the_stream_drops_not_after_the_healthy_interval(rest, ws_stub, stub):
    napping = asyncio.Event()

    async def sleep(seconds):  # the healthy-time poll interval really blocks (an hour); short waits take a token pause
        if seconds >= 3600:
            napping.set()
            await asyncio.Event().wait()
        await asyncio.sleep(0.01)

    stub.on("GetWebSocketsToken", TOKEN, kraken_fixture("rest_error_invalid_key_docs.json"))  # no reconnect
    stub.on("TradesHistory", NO_TRADES)
    stub.on("OpenOrders", NO_OPEN)
    ws_stub.scripts = [([ACK, snapshot(1)], "hold")]  # then silence: the heartbeat watchdog drops it
    stream = make_stream(rest, ws_stub.url, Pacing(), sleep=sleep, heartbeat_timeout_s=0.2)
    stream.start()
    try:
        await asyncio.wait_for(napping.wait(), 5.0)  # healthy, the poller backed off
        await until(lambda: stream.connects == 1 and not stream.healthy)
        polled = len(stub.calls("TradesHistory"))
        await until(lambda: len(stub.calls("TradesHistory")) > polled, timeout=2.0)
    finally:
        await stream.close()
