"""The typed HTTP client against the real API of an all-in-one process (trading over a FakeExchange)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestServer

from execledger.application.service import ServiceConfig
from execledger.infrastructure.api import ApiContext, create_api
from execledger.infrastructure.bootstrap import build_trading, open_ledger
from execledger.infrastructure.client import ApiError, ExecledgerClient
from execledger.infrastructure.commandbus import CommandBus
from tests.fakes import FakeExchange

SIGNAL = {
    "signal_id": "cl-1",
    "pair": "XBT/USD",
    "side": "buy",
    "order_type": "limit",
    "quantity": "1",
    "limit_price": "100",
    "sl_price": "90",
    "tp_price": "120",
}


@pytest.fixture
async def api(settings, clock):
    lg = open_ledger(settings, clock=clock)
    venue = FakeExchange(clock)
    trading = build_trading(lg, venue, ServiceConfig(deadman_enabled=False, tick_interval_s=0.05))
    task = asyncio.create_task(trading.service.run())
    await asyncio.wait_for(trading.service.recovered.wait(), 10)
    ctx = ApiContext(
        ledger=lg, bus=CommandBus(lg, role="test", local_trading=trading.service), service=trading.service, token="t0k"
    )
    server = TestServer(create_api(ctx), host="127.0.0.1")
    await server.start_server()
    acked = asyncio.Event()
    lg.engine.uow.add_listener(
        lambda committed: (
            acked.set() if any(type(e).__name__ == "Acknowledged" for _, evs in committed for e in evs) else None
        )
    )
    async with ExecledgerClient(str(server.make_url("")), token="t0k") as client:
        yield client, lg, venue, acked, str(server.make_url(""))
    await server.close()
    await trading.service.stop()
    await asyncio.wait_for(task, 10)
    lg.close()


async def test_submit_get_halt_close_cancel_and_health(api):
    client, lg, _venue, acked, _url = api
    placed = await client.submit_signal(SIGNAL)
    assert placed["created"] is True and placed["signal_id"] == "cl-1"
    assert (await client.submit_signal(SIGNAL))["created"] is False  # idempotent by signal_id
    await asyncio.wait_for(acked.wait(), 10)
    entry = lg.engine.orders[lg.ledger.order_for_signal("cl-1").id]

    story = await client.get_signal(entry.txid)  # any of the four ids
    assert story["signal_id"] == "cl-1" and story["orders"][0]["client_order_id"] == entry.cl_ord_id
    detail = await client.get_order(entry.cl_ord_id)
    assert detail["history"][0]["event"] == "Placed"

    with pytest.raises(ApiError) as invalid:
        await client.submit_signal({**SIGNAL, "signal_id": "cl-2", "quantity": "-1"})
    assert invalid.value.status == 422 and invalid.value.errors[0]["field"] == "quantity"
    with pytest.raises(ApiError) as conflict:
        await client.submit_signal({**SIGNAL, "quantity": "2"})
    assert conflict.value.status == 409

    halted = await client.halt(reason="maintenance", by="ops")
    assert halted["outcome"] == "applied"
    with pytest.raises(ApiError) as refused:
        await client.submit_signal({**SIGNAL, "signal_id": "cl-3"})
    assert refused.value.status == 423 and "halted" in refused.value.error
    assert (await client.health())["trading"]["mode"] == "halted"
    await client.resume(reason="done")

    closing = await client.close_signal("cl-1", reason="flat")
    assert closing["outcome"] == "applied"
    with pytest.raises(ApiError) as missing:
        await client.cancel_order("00000000-0000-0000-0000-000000000000", reason="x")
    assert missing.value.status == 404
    with pytest.raises(ApiError) as unknown:
        await client.get_signal("no-such-signal")
    assert unknown.value.status == 404
    assert isinstance(await client.ready(), bool)


async def test_the_token_is_sent_and_required(api):
    _client, _lg, _venue, _acked, url = api
    async with ExecledgerClient(url) as anonymous:
        with pytest.raises(ApiError) as denied:
            await anonymous.orders()
        assert denied.value.status == 401
        assert "status" in await anonymous.health()  # probes need no token
    async with ExecledgerClient(url, token="t0k") as client:
        assert (await client.orders(limit=5))["items"] == []
