"""Hostile input at the HTTP API's edge (issue 14, items 4 and 5): every refusal is a 4xx in the one error shape,
names the field, and writes nothing. Both backends."""

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from execledger.application.service import ServiceConfig
from execledger.infrastructure.api import ApiContext, create_api
from execledger.infrastructure.api.jsonio import MAX_BODY_BYTES
from execledger.infrastructure.bootstrap import build_trading, open_ledger
from execledger.infrastructure.commandbus import CommandBus
from tests.fakes import FakeExchange

SIGNAL = {
    "signal_id": "g-1",
    "pair": "XBT/USD",
    "side": "buy",
    "order_type": "limit",
    "quantity": "0.01",
    "limit_price": "60000",
    "sl_price": "58000",
    "tp_price": "65000",
}
TOKEN = "t" * 40


@pytest.fixture
async def api(settings, clock):
    """An all-in-one API over a FakeExchange: the trading service carries out what the API records."""
    lg = open_ledger(settings, clock=clock)
    trading = build_trading(lg, FakeExchange(clock), ServiceConfig(deadman_enabled=False, tick_interval_s=0.05))
    task = asyncio.create_task(trading.service.run())
    await asyncio.wait_for(trading.service.recovered.wait(), 10)
    ctx = ApiContext(ledger=lg, bus=CommandBus(lg, role="test", local_trading=trading.service), service=trading.service)
    client = TestClient(TestServer(create_api(ctx)))
    await client.start_server()
    yield client, ctx, Written(lg)
    await client.close()
    await trading.service.stop()
    await asyncio.wait_for(task, 10)
    lg.close()


class Written:
    """Events and commands recorded so far: a refused request must add to neither."""

    def __init__(self, lg):
        self.lg = lg

    def max_notification_id(self) -> int:
        # Only the commands log: an API process writes nothing else, and the trading process's own writes (the
        # venue's rules at start, the outcomes of accepted signals) happen in the background meanwhile.
        return self.lg.commands.recorder.max_notification_id() or 0


def written(recorder) -> int:
    return recorder.max_notification_id() or 0


async def refused(response, status: int, field: str) -> dict:
    body = await response.json()
    assert response.status == status, body
    assert field in {e["field"] for e in body.get("errors") or []}, body
    return body


async def test_a_browser_page_cannot_trade(api):
    """Item 4: text/plain (a CORS-simple request), a foreign Origin, a rebound Host: refused, nothing written."""
    client, _ctx, recorder = api
    port = client.port
    text = await client.post("/v1/signals", data=json.dumps(SIGNAL), headers={"Content-Type": "text/plain"})
    await refused(text, 415, "Content-Type")
    form = await client.post("/v1/signals", data={"signal_id": "x"})  # application/x-www-form-urlencoded
    await refused(form, 415, "Content-Type")
    for origin in ("http://evil.example", "null", f"http://localhost:{port + 1}", "http://127.0.0.1"):
        r = await client.post("/v1/signals", json=SIGNAL, headers={"Origin": origin})
        await refused(r, 403, "Origin")
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", "localhost"):
        r = await client.post("/v1/signals", json=SIGNAL, headers={"Host": host})
        await refused(r, 421, "Host")
    r = await client.get("/v1/orders", headers={"Host": f"evil.example:{port}"})  # reads are not for rebound pages
    await refused(r, 421, "Host")
    assert written(recorder) == 0
    same = await client.post(
        "/v1/signals", json=SIGNAL, headers={"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"}
    )
    assert same.status == 201, await same.text()


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"quantity": "1E+20"}, "quantity", "decimal_parsing"),
        ({"quantity": "1" * 13}, "quantity", "decimal_out_of_range"),
        ({"limit_price": "1E+30"}, "limit_price", "decimal_parsing"),
        ({"limit_price": "1" + "0" * 30}, "limit_price", "decimal_out_of_range"),
        ({"sl_price": "1E+30"}, "sl_price", "decimal_parsing"),
        ({"tp_price": "0." + "0" * 30 + "1"}, "tp_price", "decimal_out_of_range"),
        ({"quantity": 0.001}, "quantity", "decimal_string_required"),
        ({"quantity": 1}, "quantity", "decimal_string_required"),
        ({"quantity": True}, "quantity", "decimal_string_required"),
        ({"quantity": "0_0.0_1"}, "quantity", "decimal_parsing"),
        ({"quantity": " 0.01"}, "quantity", "decimal_parsing"),
        ({"quantity": "NaN"}, "quantity", "decimal_parsing"),
        ({"timeout_s": True}, "timeout_s", "float_type"),
        ({"timeout_s": "30"}, "timeout_s", "float_type"),
        ({"tags": {"k" * 65: "v"}}, "tags." + "k" * 65 + ".[key]", None),
        ({"tags": {"desk": "a\u0000b"}}, "tags.desk", "string_pattern_mismatch"),  # PostgreSQL text takes no NUL
    ],
)
async def test_signal_values_out_of_type_or_range_are_422_naming_the_field(api, change, field, rule):
    """Item 5: what used to be a 500 or silently coerced is a 422 naming the field (and the rule)."""
    client, _ctx, recorder = api
    body = await refused(await client.post("/v1/signals", json={**SIGNAL, **change}), 422, field)
    if rule is not None:
        assert rule in {e["rule"] for e in body["errors"] if e["field"] == field}
    assert written(recorder) == 0


async def test_accepted_decimal_forms(api):
    """What is accepted: plain-notation strings, leading zeros, up to 18 fraction digits (rounded by the pair)."""
    client, _ctx, _recorder = api
    r = await client.post(
        "/v1/signals",
        json={**SIGNAL, "quantity": "00.010000000000000009", "timeout_s": 30, "limit_price": "60000.0"},
    )
    assert r.status == 201, await r.text()


async def test_malformed_bodies_are_4xx_naming_the_body(api):
    client, _ctx, recorder = api
    as_json = {"Content-Type": "application/json"}
    cases = [
        ("[" * 1000, 400),
        ('{"signal_id": ' + "[" * 9 + "]" * 9 + "}", 400),
        ('{"timeout_s": NaN}', 400),
        ('{"timeout_s": Infinity}', 400),
        ('{"timeout_s": 1' + "0" * 5000 + "}", 400),
        ("", 400),
        ("{nope", 400),
        (b"\xff\xfe", 400),
        ("x" * (MAX_BODY_BYTES + 1), 413),
    ]
    for data, status in cases:
        await refused(await client.post("/v1/signals", data=data, headers=as_json), status, "body")
    latin = await client.post(
        "/v1/signals", data=json.dumps(SIGNAL), headers={"Content-Type": "application/json; charset=latin-1"}
    )
    await refused(latin, 415, "Content-Type")
    assert written(recorder) == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"offset": "9223372036854775808"}, "offset"),
        ({"offset": "-1"}, "offset"),
        ({"limit": "1001"}, "limit"),
        ({"since": "9999-12-31T23:59:59-23:59"}, "since"),
        ({"until": "0001-01-01T00:00:00+23:59"}, "until"),
        ({"since": "99999999999999999999"}, "since"),
        ({"signal_id": "x" * 65}, "signal_id"),
        ({"signal_id": "a\u0000b"}, "signal_id"),  # found by the fuzz: a NUL reached PostgreSQL as a 500
    ],
)
async def test_query_parameters_out_of_range_are_400_naming_them(api, params, field):
    client, _ctx, _recorder = api
    for route in ("/v1/orders", "/v1/execution-reports", "/v1/fills"):
        await refused(await client.get(route, params=params), 400, field)


async def _raw_request(port: int, request: bytes) -> tuple[int, dict]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
    body = await reader.readexactly(length)
    writer.close()
    return int(head.split(b" ")[1]), json.loads(body)


async def test_a_non_ascii_bearer_token_is_401_not_500(api):
    client, ctx, _recorder = api
    ctx.token = TOKEN
    status, body = await _raw_request(
        client.port,
        b"GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer \xff\r\nConnection: close\r\n\r\n"
        % client.port,
    )
    assert status == 401 and body["errors"][0]["field"] == "Authorization"
    ok = await client.get("/v1/orders", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status == 200


async def test_unknown_routes_and_methods_answer_in_the_error_shape(api):
    client, _ctx, _recorder = api
    missing = await client.get("/v1/nope")
    assert missing.status == 404 and "error" in await missing.json()
    wrong = await client.put("/v1/signals", json=SIGNAL)
    assert wrong.status == 405 and "POST" in wrong.headers["Allow"] and "error" in await wrong.json()
    assert missing.headers["X-Content-Type-Options"] == "nosniff"


async def test_docs_page_lists_every_operation_under_a_strict_csp(api):
    client, _ctx, _recorder = api
    doc = await (await client.get("/v1/openapi.json")).json()
    page = await client.get("/v1/docs")
    text = await page.text()
    assert page.status == 200 and page.content_type == "text/html"
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'") and "<script" not in text
    for path, methods in doc["paths"].items():
        for method in methods:
            assert f"<span class='m'>{method}</span> <code>{path}</code>" in text
    assert "<h3 id='TradeSignal'>TradeSignal</h3>" in text


async def test_a_key_given_twice_is_400_naming_it_and_nothing_is_recorded(api):
    """Break test 2026-12-02: ``{"quantity": "1", ..., "quantity": "100"}`` was accepted with the last value (the
    JSON parser's silent rule), in a nested object too. Which value was meant is not the ledger's to guess."""
    client, _ctx, recorder = api
    as_json = {"Content-Type": "application/json"}
    head = json.dumps(SIGNAL)[:-1]
    for data, key in [(head + ', "quantity": "100"}', "quantity"), ('{"a": {"b": 1, "b": 2}}', "b")]:
        r = await client.post("/v1/signals", data=data, headers=as_json)
        body = await refused(r, 400, key)
        assert any("twice" in e["message"] for e in body["errors"]), body
    assert written(recorder) == 0
