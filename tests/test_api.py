"""The HTTP API: signals in (201/200/409/422/423), reports out with filters, pagination and clear 4xx."""

import asyncio
from uuid import UUID

import pytest
from aiohttp.test_utils import TestClient, TestServer

from execledger.application.service import ServiceConfig
from execledger.domain.order import State
from execledger.domain.trading_state import TradingMode
from execledger.infrastructure.api import OPENAPI, ApiContext, create_api, is_loopback, require_token_for
from execledger.infrastructure.bootstrap import build_trading, open_ledger
from execledger.infrastructure.commandbus import CommandBus
from tests.fakes import FakeExchange

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


class Env:
    """The API of an all-in-one process over a FakeExchange: the trading service runs in the background and
    carries out what the API records; ``until`` waits for a condition, woken by every commit."""

    def __init__(self, lg, client, trading, venue):
        self.lg, self.client, self.trading, self.venue = lg, client, trading, venue
        self.engine, self.projector = lg.engine, lg.projector
        self._changed = asyncio.Condition()
        loop = asyncio.get_running_loop()
        lg.engine.uow.add_listener(lambda committed: loop.create_task(self._notify()))

    async def _notify(self):
        async with self._changed:
            self._changed.notify_all()

    async def until(self, predicate, timeout: float = 10.0):
        async def reached():
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(reached(), timeout)


@pytest.fixture
async def env(settings, clock):
    lg = open_ledger(settings, clock=clock)
    venue = FakeExchange(clock)
    trading = build_trading(lg, venue, ServiceConfig(deadman_enabled=False, tick_interval_s=0.05))
    task = asyncio.create_task(trading.service.run())
    await asyncio.wait_for(trading.service.recovered.wait(), 10)
    ctx = ApiContext(ledger=lg, bus=CommandBus(lg, role="test", local_trading=trading.service), service=trading.service)
    client = TestClient(TestServer(create_api(ctx)))
    await client.start_server()
    e = Env(lg, client, trading, venue)
    e.ctx = ctx
    yield e
    await client.close()
    await trading.service.stop()
    await asyncio.wait_for(task, 10)
    lg.close()


async def test_post_signal_created_then_idempotent(env):
    client = env.client
    r = await client.post("/v1/signals", json=SIGNAL)
    body = await r.json()
    assert r.status == 201 and body["created"] is True and body["applied_by"] == env.engine.control.process
    commands = env.lg.commands.recorder.max_notification_id()
    again = await client.post("/v1/signals", json=SIGNAL)
    assert again.status == 200 and (await again.json())["order_id"] == body["order_id"]
    conflict = await client.post("/v1/signals", json={**SIGNAL, "quantity": "2"})
    assert conflict.status == 409
    assert env.lg.commands.recorder.max_notification_id() == commands  # repeats are answered from the log
    await env.until(lambda: env.venue.add_order_calls[body["cl_ord_id"]] == 1)  # the trading process sent it


async def test_invalid_signal_is_422_with_field_errors_and_nothing_written(env):
    client = env.client
    before = env.lg.app.recorder.max_notification_id()  # the trading process's start recorded the venue's rules
    r = await client.post("/v1/signals", json={**SIGNAL, "quantity": "-1", "sl_price": "150"})
    body = await r.json()
    assert r.status == 422 and {e["field"] for e in body["errors"]} == {"quantity"}
    r = await client.post("/v1/signals", json={**SIGNAL, "sl_price": "150"})
    assert r.status == 422 and (await r.json())["errors"][0]["rule"] == "sl_not_below_entry_for_buy"
    not_json = await client.post("/v1/signals", data="{nope", headers={"Content-Type": "application/json"})
    assert not_json.status == 400 and (await not_json.json())["errors"][0]["field"] == "body"
    assert (await client.post("/v1/signals", json=[1, 2])).status == 422
    assert env.lg.app.recorder.max_notification_id() == before
    assert env.lg.commands.recorder.max_notification_id() in (None, 0)


async def test_halted_refuses_with_423_and_reason(env):
    client = env.client
    env.engine.control.set_mode(TradingMode.HALTED, by="ops", why="maintenance")
    r = await client.post("/v1/signals", json=SIGNAL)
    body = await r.json()
    assert r.status == 423 and body["mode"] == "halted" and body["why"] == "maintenance"


async def test_lists_filters_pagination_and_order_detail(env):
    client, projector, engine = env.client, env.projector, env.engine
    for i in range(3):
        assert (await client.post("/v1/signals", json={**SIGNAL, "signal_id": f"api-{i}"})).status == 201
    entry = engine.orders.entry_of_signal("api-0")
    await env.until(lambda: entry.txid is not None)
    env.venue.fill(entry.txid, "1", "100")
    await env.until(
        lambda: (
            entry.state is State.FILLED
            and all(o.txid for o in engine.orders.values() if o.parent_id == entry.id)
            and len([o for o in engine.orders.values() if o.parent_id == entry.id]) == 1
        )
    )
    projector.catch_up()
    r = await client.get("/v1/orders", params={"pair": "XBT/USD", "limit": "2"})
    page = await r.json()
    assert r.status == 200 and page["total"] == 4 and len(page["items"]) == 2 and page["next_offset"] == 2
    r = await client.get("/v1/orders", params={"signal_id": "api-0", "status": "filled"})
    assert [o["role"] for o in (await r.json())["items"]] == ["entry"]
    legs = await (await client.get("/v1/orders", params={"signal_id": "api-0", "status": "open"})).json()
    assert sorted(o["role"] for o in legs["items"]) == ["stop_loss"]  # the take-profit is held by the ledger
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
    r = await env.client.get("/v1/orders", params=params)
    assert r.status == 400 and field in {e["field"] for e in (await r.json())["errors"]}


async def test_order_detail_errors(env):
    client = env.client
    assert (await client.get("/v1/orders/not-a-uuid")).status == 404  # no signal, order, txid or cl_ord_id
    assert (await client.get("/v1/orders/00000000-0000-0000-0000-000000000000")).status == 404


async def test_health_reports_projection_lag(env):
    client, projector = env.client, env.projector
    projector.catch_up()
    order_id = UUID((await (await client.post("/v1/signals", json=SIGNAL)).json())["order_id"])
    assert (await (await client.get("/v1/health")).json())["projection_lag"] >= 1
    # The trading process writes on after the POST (the AddOrder, its acknowledgement, deferred up to
    # ack_flush_s): once the acknowledgement is in the store it has nothing more to write for this order.
    await env.until(lambda: env.lg.app.repository.get(order_id).txid is not None)
    projector.catch_up()
    body = await (await client.get("/v1/health")).json()
    assert body["projection_lag"] == 0 and body["trading"]["mode"] == "running"


async def test_openapi_document_lists_every_route(env):
    client = env.client
    doc = await (await client.get("/v1/openapi.json")).json()
    assert doc == OPENAPI and {
        "/v1/signals",
        "/v1/orders",
        "/v1/orders/{order_id}",
        "/v1/execution-reports",
        "/v1/fills",
        "/v1/health",
        "/v1/health/live",
        "/v1/health/ready",
        "/metrics",
        "/v1/signals/{signal_id}",
        "/v1/openapi.json",
        "/v1/docs",
        "/v1/trading/halt",
        "/v1/trading/resume",
        "/v1/orders/{order_id}/cancel",
        "/v1/orders/{order_id}/resolve",
        "/v1/signals/{signal_id}/close",
    } == set(doc["paths"])


async def test_bearer_token_required_when_configured(env):
    client, ctx = env.client, env.ctx
    ctx.token = "s3cret-token"
    missing = await client.get("/v1/orders")
    assert missing.status == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert (await client.get("/v1/orders", headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await client.get("/v1/orders", headers={"Authorization": "Bearer s3cret-token"})).status == 200
    assert (await client.get("/v1/health")).status == 200
    assert (await client.get("/v1/openapi.json")).status == 200  # the description is public, the data is not


def test_non_loopback_bind_needs_a_token():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    assert require_token_for("127.0.0.1", None) is None
    with pytest.raises(Exception, match="requires EXECLEDGER_API_TOKEN"):
        require_token_for("0.0.0.0", None)
