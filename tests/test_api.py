"""The HTTP API: signals in (201/200/409/422/423), reports out with filters, pagination and clear 4xx."""

import pytest
from aiohttp.test_utils import TestClient, TestServer

from execledger.domain.trading_state import TradingMode
from execledger.infrastructure.api import OPENAPI, ApiContext, create_api, is_loopback, require_token_for
from execledger.infrastructure.readmodels.projector import ReadModelProjector, readmodel_engine
from execledger.infrastructure.readmodels.queries import ReportQueries
from tests.harness import Harness

SIGNAL = {
    "signal_id": "api-1",
    "pair": "XBTUSD",
    "side": "buy",
    "order_type": "limit",
    "quantity": "1",
    "limit_price": "100",
    "sl_price": "90",
    "tp_price": "120",
}


@pytest.fixture
async def env(ledger, clock, settings, orders_app):
    h = Harness(ledger, clock)
    engine = readmodel_engine(settings)
    projector = ReadModelProjector(orders_app, engine)
    woke = []
    ctx = ApiContext(
        engine=h.engine, queries=ReportQueries(engine), projector=projector, on_signal=lambda: woke.append(1)
    )
    client = TestClient(TestServer(create_api(ctx)))
    await client.start_server()
    yield h, client, projector, ctx, woke
    await client.close()
    engine.dispose()


async def test_post_signal_created_then_idempotent(env):
    _h, client, _projector, _ctx, woke = env
    r = await client.post("/v1/signals", json=SIGNAL)
    assert r.status == 201 and (await r.json())["created"] is True and woke == [1]
    again = await client.post("/v1/signals", json=SIGNAL)
    assert again.status == 200 and (await again.json())["order_id"] == (await r.json())["order_id"] and woke == [1]
    conflict = await client.post("/v1/signals", json={**SIGNAL, "quantity": "2"})
    assert conflict.status == 409


async def test_invalid_signal_is_422_with_field_errors_and_nothing_written(env):
    h, client, _projector, _ctx, _woke = env
    r = await client.post("/v1/signals", json={**SIGNAL, "quantity": "-1", "sl_price": "150"})
    body = await r.json()
    assert r.status == 422 and {e["field"] for e in body["errors"]} == {"quantity"}
    r = await client.post("/v1/signals", json={**SIGNAL, "sl_price": "150"})
    assert r.status == 422 and (await r.json())["errors"][0]["rule"] == "sl_not_below_entry_for_buy"
    assert (await client.post("/v1/signals", data="{nope")).status == 400
    assert (await client.post("/v1/signals", json=[1, 2])).status == 422
    assert h.engine.ledger.app.recorder.max_notification_id() in (None, 0)


async def test_halted_refuses_with_423_and_reason(env):
    h, client, _projector, _ctx, _woke = env
    h.engine.set_mode(TradingMode.HALTED, by="ops", why="maintenance")
    r = await client.post("/v1/signals", json=SIGNAL)
    body = await r.json()
    assert r.status == 423 and body["mode"] == "halted" and body["why"] == "maintenance"


async def test_lists_filters_pagination_and_order_detail(env):
    h, client, projector, _ctx, _woke = env
    for i in range(3):
        await client.post("/v1/signals", json={**SIGNAL, "signal_id": f"api-{i}"})
    await h.settle()
    entry = h.engine.ledger.order_for_signal("api-0")
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    projector.catch_up()
    r = await client.get("/v1/orders", params={"pair": "XBT/USD", "limit": "2"})
    page = await r.json()
    assert r.status == 200 and page["total"] == 5 and len(page["items"]) == 2 and page["next_offset"] == 2
    r = await client.get("/v1/orders", params={"signal_id": "api-0", "status": "filled"})
    assert [o["role"] for o in (await r.json())["items"]] == ["entry"]
    legs = await (await client.get("/v1/orders", params={"signal_id": "api-0", "status": "open"})).json()
    assert sorted(o["role"] for o in legs["items"]) == ["stop_loss", "take_profit"]
    fills = await (await client.get("/v1/fills", params={"signal_id": "api-0"})).json()
    assert [f["quantity"] for f in fills["items"]] == ["1"]
    reports = await (
        await client.get("/v1/execution-reports", params={"signal_id": "api-0", "status": "filled"})
    ).json()
    assert [x["event"] for x in reports["items"]] == ["Filled"]
    detail = await (await client.get(f"/v1/orders/{entry.id}")).json()
    assert detail["order"]["status"] == "filled" and [e["event"] for e in detail["history"]][:3] == [
        "Placed",
        "Submitted",
        "Acknowledged",
    ]
    assert any(e["event"] == "BracketPlaced" for e in detail["history"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"pair": "DOGE/USD"}, "pair"),
        ({"status": "weird"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"bogus": "1"}, "bogus"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
    ],
)
async def test_bad_queries_are_400_naming_the_field(env, params, field):
    _h, client, _projector, _ctx, _woke = env
    r = await client.get("/v1/orders", params=params)
    assert r.status == 400 and field in {e["field"] for e in (await r.json())["errors"]}


async def test_order_detail_errors(env):
    _h, client, _projector, _ctx, _woke = env
    assert (await client.get("/v1/orders/not-a-uuid")).status == 400
    assert (await client.get("/v1/orders/00000000-0000-0000-0000-000000000000")).status == 404


async def test_health_reports_projection_lag(env):
    _h, client, projector, _ctx, _woke = env
    await client.post("/v1/signals", json=SIGNAL)
    assert (await (await client.get("/v1/health")).json())["projection_lag"] == 1
    projector.catch_up()
    body = await (await client.get("/v1/health")).json()
    assert body["projection_lag"] == 0 and body["trading"]["mode"] == "running"


async def test_openapi_document_lists_every_route(env):
    _h, client, _projector, _ctx, _woke = env
    doc = await (await client.get("/v1/openapi.json")).json()
    assert doc == OPENAPI and {
        "/v1/signals",
        "/v1/orders",
        "/v1/orders/{order_id}",
        "/v1/execution-reports",
        "/v1/fills",
        "/v1/health",
        "/v1/openapi.json",
    } == set(doc["paths"])


async def test_bearer_token_required_when_configured(env):
    _h, client, _projector, ctx, _woke = env
    ctx.token = "s3cret-token"
    assert (await client.get("/v1/orders")).status == 401
    assert (await client.get("/v1/orders", headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await client.get("/v1/orders", headers={"Authorization": "Bearer s3cret-token"})).status == 200
    assert (await client.get("/v1/health")).status == 200


def test_non_loopback_bind_needs_a_token():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    assert require_token_for("127.0.0.1", None) is None
    with pytest.raises(Exception, match="requires EXECLEDGER_API_TOKEN"):
        require_token_for("0.0.0.0", None)
