"""KrakenExecutionsStream against a WS v2 stub and the REST stub, both on 127.0.0.1: snapshot + updates as reports,
a fresh token per connection, the heartbeat watchdog, and its health as StreamEvents (CONNECTED, DISCONNECTED, GAP).
It only streams: the one REST call it makes is GetWebSocketsToken (REST fallback is the trading service's job,
tests/integration/test_executions.py)."""

import asyncio
import copy
import socket

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from execledger.application.ports import (
    FillReport,
    OrderStatusReport,
    StreamEvent,
    StreamState,
    VenueOrderStatus,
)
from execledger.infrastructure.kraken.adapter import KrakenExchange
from execledger.infrastructure.kraken.retry import RetryPolicy
from execledger.infrastructure.kraken.ws import KrakenExecutionsStream
from tests.conftest import kraken_fixture

ACK = kraken_fixture("ws_v2_executions_subscribe_ack_with_warnings_kraken_async_rs.json")
HEARTBEAT = kraken_fixture("ws_v2_heartbeat_docs.json")
STATUS = kraken_fixture("ws_v2_status_update_kraken_async_rs.json")
TOKEN = kraken_fixture("rest_get_websockets_token_official_example.json")
CONNECTED, DISCONNECTED, GAP = StreamState.CONNECTED, StreamState.DISCONNECTED, StreamState.GAP


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
    options = {"heartbeat_timeout_s": 0.3, "reconnect_delay_s": 0.01, "sleep": pacing}
    options.update(kw)
    return KrakenExecutionsStream(exchange, url, **options)


async def take(stream_iter, count, timeout=5.0):
    got = []

    async def collect():
        async for report in stream_iter:
            got.append(report)
            if len(got) == count:
                return

    await asyncio.wait_for(collect(), timeout)
    return got


def shape(reports):
    """Each report as (kind, order id or event state, status or sequence) for comparing whole sequences."""
    out = []
    for r in reports:
        if isinstance(r, StreamEvent):
            out.append(("event", r.state))
        elif isinstance(r, FillReport):
            out.append(("fill", r.venue_order_id, r.trade_id))
        else:
            out.append(("status", r.venue_order_id, r.status))
    return out


def rest_methods(stub):
    return [r.method for r in stub.requests]


async def until(condition, timeout=5.0):
    """Wait for a condition another task brings about (checked on every loop turn, bounded)."""

    async def check():
        while not condition():
            await asyncio.sleep(0)

    await asyncio.wait_for(check(), timeout)


@pytest.fixture
def rest_answers(stub):
    stub.on("GetWebSocketsToken", TOKEN)
    return stub


async def test_snapshot_and_updates_become_reports(rest, ws_stub, rest_answers):
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
    stream = make_stream(rest, ws_stub.url, Pacing())
    reports = stream.reports()
    got = await take(reports, 4 * 2 + 1 + 4)
    await reports.aclose()
    # The snapshot's four trades (a fill and its order's status each), then CONNECTED: the consumer knows that
    # from here on the stream reports everything.
    assert [type(r) for r in got[:8]] == [FillReport, OrderStatusReport] * 4
    assert got[8] == StreamEvent(CONNECTED, "connection 1")
    order = "OK4GJX-KSTLS-7DZZO5"
    assert shape(got[9:]) == [
        ("status", order, VenueOrderStatus.PENDING),
        ("status", order, VenueOrderStatus.OPEN),
        ("fill", order, "TGBB7L-HT5LX-J3BZ4A"),
        ("status", order, VenueOrderStatus.PARTIALLY_FILLED),
    ]
    assert all(r.source == "ws" for r in got if not isinstance(r, StreamEvent)) and got[-1].sequence == 4
    (subscribe,) = ws_stub.subscribes
    assert subscribe["method"] == "subscribe"
    assert subscribe["params"] == {
        "channel": "executions",
        "token": TOKEN["result"]["token"],
        "snap_orders": True,
        "snap_trades": True,
    }
    assert stream.healthy and stream.gaps == 0 and stream.last_message_at is not None
    assert rest_methods(rest_answers) == ["GetWebSocketsToken"]  # it only streams


async def test_a_drop_is_reported_and_the_reconnect_takes_a_fresh_token(rest, ws_stub, stub):
    tokens = [{"error": [], "result": {"token": f"token-{i}", "expires": 900}} for i in range(1, 4)]
    stub.on("GetWebSocketsToken", *tokens)
    ws_stub.scripts = [
        ([ACK, snapshot(1), message("ws_v2_executions_update_new_docs.json", 2)], "close"),
        ([ACK, snapshot(1)], "hold"),
    ]
    stream = make_stream(rest, ws_stub.url, Pacing())
    reports = stream.reports()
    got = await take(reports, 4)
    await reports.aclose()
    assert shape(got) == [
        ("event", CONNECTED),
        ("status", "OK4GJX-KSTLS-7DZZO5", VenueOrderStatus.OPEN),
        ("event", DISCONNECTED),  # the consumer polls REST from here until...
        ("event", CONNECTED),  # ...the new connection's snapshot: then it reads once what happened meanwhile
    ]
    assert [s["params"]["token"] for s in ws_stub.subscribes] == ["token-1", "token-2"]
    assert stream.connects == 2 and stream.gaps == 0  # a new connection's sequence starts afresh: no gap
    assert rest_methods(stub) == ["GetWebSocketsToken", "GetWebSocketsToken"]


async def test_a_sequence_gap_is_reported_right_after_the_message_that_reveals_it(rest, ws_stub, rest_answers):
    ws_stub.scripts = [
        (
            [
                ACK,
                snapshot(1),
                message("ws_v2_executions_update_new_docs.json", 2),
                message("ws_v2_executions_update_canceled_kraken_async_rs.json", 5),  # 3 and 4 were lost
                message("ws_v2_executions_update_new_kraken_async_rs.json", 6),
            ],
            "hold",
        )
    ]
    stream = make_stream(rest, ws_stub.url, Pacing())
    reports = stream.reports()
    got = await take(reports, 5)
    await reports.aclose()
    assert shape(got) == [
        ("event", CONNECTED),
        ("status", "OK4GJX-KSTLS-7DZZO5", VenueOrderStatus.OPEN),
        ("status", "KIUEL4-G3PWU-HOJTYU", VenueOrderStatus.CANCELED),
        ("event", GAP),
        ("status", "7J91XK-XMFEL-348VPM", VenueOrderStatus.OPEN),
    ]
    assert got[3].detail == "expected sequence 3, got 5"
    assert [r.sequence for r in got if isinstance(r, OrderStatusReport)] == [2, 5, 6]
    # A gap is not an outage: the connection stays, and the stream itself reads nothing over REST.
    assert stream.gaps == 1 and stream.healthy and stream.connects == 1
    assert rest_methods(rest_answers) == ["GetWebSocketsToken"]


async def test_heartbeat_watchdog_reconnects_a_silent_stream(rest, ws_stub, rest_answers):
    first = snapshot(1, kraken_fixture("ws_v2_executions_update_new_docs.json")["data"])
    second = snapshot(1, kraken_fixture("ws_v2_executions_update_new_kraken_async_rs.json")["data"])
    ws_stub.scripts = [([ACK, first], "hold"), ([ACK, second, HEARTBEAT], "hold")]
    stream = make_stream(rest, ws_stub.url, Pacing(), heartbeat_timeout_s=0.2)
    reports = stream.reports()
    got = await take(reports, 5)
    await reports.aclose()
    assert shape(got) == [
        ("status", "OK4GJX-KSTLS-7DZZO5", VenueOrderStatus.OPEN),
        ("event", CONNECTED),
        ("event", DISCONNECTED),  # the watchdog: no frame for heartbeat_timeout_s although the socket is open
        ("status", "7J91XK-XMFEL-348VPM", VenueOrderStatus.OPEN),
        ("event", CONNECTED),
    ]
    assert "connection lost" in got[2].detail
    assert stream.connects == 2


async def test_invalid_session_gets_a_fresh_token(rest, ws_stub, stub):
    stub.on(
        "GetWebSocketsToken",
        {"error": [], "result": {"token": "stale", "expires": 900}},
        {"error": [], "result": {"token": "fresh", "expires": 900}},
    )
    ws_stub.scripts = [
        ([kraken_fixture("ws_v2_error_subscribe_invalid_session_kraken_async_rs.json")], "hold"),
        ([ACK, message("ws_v2_executions_snapshot_trades_kraken_async_rs.json", 1)], "hold"),
    ]
    stream = make_stream(rest, ws_stub.url, Pacing())
    reports = stream.reports()
    got = await take(reports, 9)
    await reports.aclose()
    assert [s["params"]["token"] for s in ws_stub.subscribes] == ["stale", "fresh"]
    # Never connected before the fresh token: no DISCONNECTED (health did not change), one CONNECTED at the end.
    assert [r.state for r in got if isinstance(r, StreamEvent)] == [CONNECTED] and got[-1].state is CONNECTED


async def test_cloudflare_text_frame_causes_a_reconnect(rest, ws_stub, rest_answers):
    ws_stub.scripts = [
        ([ACK, snapshot(1), "CloudFlare WebSocket proxy restarting"], "hold"),
        ([ACK, snapshot(1, kraken_fixture("ws_v2_executions_update_new_docs.json")["data"])], "hold"),
    ]
    stream = make_stream(rest, ws_stub.url, Pacing())
    reports = stream.reports()
    got = await take(reports, 4)
    await reports.aclose()
    assert shape(got) == [
        ("event", CONNECTED),
        ("event", DISCONNECTED),
        ("status", "OK4GJX-KSTLS-7DZZO5", VenueOrderStatus.OPEN),
        ("event", CONNECTED),
    ]
    assert stream.connects == 2


async def test_without_a_ws_url_the_stream_reports_disconnected_once_and_nothing_else(rest, stub):
    exchange = KrakenExchange(rest, retry=RetryPolicy(attempts=1))  # no ws_url: the default stream factory
    reports = exchange.executions()
    (event,) = await take(reports, 1)
    assert event == StreamEvent(DISCONNECTED, "no WebSocket URL configured")
    stream = exchange.stream
    assert stream.ws_url is None and stream._task is None and stream._queue.empty()
    await reports.aclose()
    assert stub.requests == []  # no token, no polling: the consumer polls REST itself


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


async def test_a_fill_the_stream_yielded_is_not_yielded_again_when_a_snapshot_repeats_it(rest, ws_stub, rest_answers):
    trade_msg = message("ws_v2_executions_update_trade_docs.json", 2)
    exec_id = trade_msg["data"][0]["exec_id"]
    ws_stub.scripts = [
        ([ACK, snapshot(1), trade_msg], "close"),
        (
            [
                ACK,
                snapshot(1, trade_msg["data"]),  # the reconnect's snapshot (snap_trades) repeats the trade
                message("ws_v2_executions_update_new_kraken_async_rs.json", 2),
            ],
            "hold",
        ),
    ]
    stream = make_stream(rest, ws_stub.url, Pacing())
    reports = stream.reports()
    got = await take(reports, 7)
    await reports.aclose()
    order = "OK4GJX-KSTLS-7DZZO5"
    assert shape(got) == [
        ("event", CONNECTED),
        ("fill", order, exec_id),
        ("status", order, VenueOrderStatus.PARTIALLY_FILLED),
        ("event", DISCONNECTED),
        ("status", order, VenueOrderStatus.PARTIALLY_FILLED),  # the snapshot's status again, its fill not
        ("event", CONNECTED),
        ("status", "7J91XK-XMFEL-348VPM", VenueOrderStatus.OPEN),
    ]
    assert stream._queue.empty()


async def test_an_unreachable_endpoint_backs_off_costs_no_rest_call_and_reports_nothing(rest, stub):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{s.getsockname()[1]}/v2"
    stub.on("GetWebSocketsToken", TOKEN)
    pacing = Pacing()
    stream = make_stream(rest, dead_url, pacing, reconnect_delay_s=1.0)
    stream.start()
    await until(lambda: len(pacing.requested) >= 7)
    await stream.close()
    assert pacing.requested[:7] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]  # doubling, capped at 30 s
    # Never connected: health did not change, so nothing was yielded (the consumer has treated the stream as down
    # from the start). Tokens are fetched only once a socket is open: an unreachable endpoint costs no REST call.
    assert stream._queue.empty() and not stream.healthy and stream.connects == 0
    assert stub.requests == []


async def test_a_consumer_behind_stops_the_reading_and_loses_nothing(rest, ws_stub, rest_answers, monkeypatch):
    """A flood of frames while the consumer is busy: the stream stops reading the socket once QUEUE_HIGH reports
    wait (memory bounded by the bound, not by the flood), holds its heartbeat watchdog meanwhile (no reconnect
    although no frame is read for longer than its timeout), and hands every report over, in order, afterwards."""
    updates = [message("ws_v2_executions_update_new_docs.json", n) for n in range(2, 102)]
    ws_stub.scripts = [([ACK, snapshot(1), *updates], "hold")]
    stream = make_stream(rest, ws_stub.url, Pacing(), heartbeat_timeout_s=0.2)
    stream.QUEUE_HIGH = 8
    behind = asyncio.Event()
    original = stream._until_consumed

    async def until_consumed(watchdog):
        behind.set()
        await original(watchdog)

    monkeypatch.setattr(stream, "_until_consumed", until_consumed)
    reports = stream.reports()
    first = await take(reports, 1)  # starts the stream
    await asyncio.wait_for(behind.wait(), 5)
    assert stream._queue.qsize() <= 8 + 1  # the bound plus at most one frame's reports
    await asyncio.sleep(0.5)  # longer than the heartbeat timeout, with the consumer still behind
    assert stream._queue.qsize() <= 8 + 1  # it read no frame meanwhile
    rest_of_them = await take(reports, 100)
    await reports.aclose()
    assert shape(first) == [("event", CONNECTED)]
    assert [r.sequence for r in rest_of_them] == list(range(2, 102))
    assert stream.connects == 1 and stream.gaps == 0  # the watchdog held: no reconnect, nothing skipped
