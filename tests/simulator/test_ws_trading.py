"""WS v2 over python-kraken-sdk's own websocket client, unpatched: trading methods on the authenticated socket
(token instead of nonce, req_id echoed, Kraken's answer shapes, the executions they cause) and the public
ticker/trade channels on the public socket."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import aiohttp
import pytest
from kraken.spot import SpotWSClient

D = Decimal
LIMIT = {"order_type": "limit", "side": "buy", "symbol": "BTC/USD", "limit_price": 60000.0, "order_qty": 0.1}


class Feed:
    """python-kraken-sdk's websocket client on the simulator (private, public or both), messages queued."""

    def __init__(self, sim, *, private: bool = True, public: bool = False):
        self.messages: asyncio.Queue[dict] = asyncio.Queue()
        self.private = private
        # The SDK appends "/v2" itself, so it is given the endpoints without it.
        self.client = SpotWSClient(
            key=sim.key if private else "",
            secret=sim.secret if private else "",
            callback=self._on_message,
            no_public=not public,
            rest_url=sim.rest_url,
            ws_url=sim.public_ws_url.removesuffix("/v2"),
            auth_ws_url=sim.ws_url.removesuffix("/v2"),
        )

    async def _on_message(self, message: dict) -> None:
        self.messages.put_nowait(message)

    async def next(self, **match) -> dict:
        """The next message whose fields equal ``match``."""
        while True:
            message = await asyncio.wait_for(self.messages.get(), timeout=10)
            if all(message.get(k) == v for k, v in match.items()):
                return message

    async def send(self, method: str, params: dict | None = None, req_id: int | None = None) -> dict:
        message: dict = {"method": method, "params": params or {}}
        if req_id is not None:
            message["req_id"] = req_id
        await self.client.send_message(message)
        return await self.next(method=method)

    async def __aenter__(self) -> Feed:
        await self.client.start()
        if self.private:
            await self.client.subscribe(params={"channel": "executions", "snap_orders": True, "snap_trades": False})
            await self.next(channel="executions", type="snapshot")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()


async def test_add_order_answers_before_its_executions_and_echoes_req_id(sim):
    async with Feed(sim) as feed:
        both = await feed.send("add_order", LIMIT | {"cl_ord_id": "ws-1", "order_userref": 5}, req_id=6)
        assert (both["req_id"], both["error"]) == (6, "EGeneral:Invalid arguments:cl_ord_id")  # one or the other
        ack = await feed.send("add_order", LIMIT | {"cl_ord_id": "ws-1"}, req_id=7)
        assert (ack["req_id"], ack["success"]) == (7, True)
        assert ack["result"] == {"order_id": ack["result"]["order_id"], "cl_ord_id": "ws-1"}
        assert {"time_in", "time_out"} <= set(ack)
        pending = await feed.next(channel="executions")
        assert pending["data"][0]["exec_type"] == "pending_new" and pending["data"][0]["symbol"] == "BTC/USD"
        assert (await feed.next(channel="executions"))["data"][0]["exec_type"] == "new"
        order = sim.orders()[-1]
        assert (order.txid, order.request.volume, order.request.cl_ord_id) == (
            ack["result"]["order_id"],
            D("0.1"),
            "ws-1",
        )
        grouped = await feed.send("add_order", LIMIT | {"order_userref": 5})
        assert grouped["result"]["order_userref"] == 5 and sim.orders()[-1].request.userref == 5
        logged = sim.requests("add_order", cl_ord_id="ws-1")
        assert len(logged) == 2 and "token" not in logged[-1].params  # logged, without the token


async def test_amend_then_cancel_by_cl_ord_id_over_the_socket(sim):
    async with Feed(sim) as feed:
        order_id = (await feed.send("add_order", LIMIT | {"cl_ord_id": "ws-2"}))["result"]["order_id"]
        amended = await feed.send("amend_order", {"cl_ord_id": "ws-2", "order_qty": 0.2, "limit_price": 60100.0})
        assert amended["success"] and amended["result"]["cl_ord_id"] == "ws-2" and amended["result"]["amend_id"]
        update = await feed.next(channel="executions", type="update")
        while update["data"][0]["exec_type"] != "amended":
            update = await feed.next(channel="executions", type="update")
        record = update["data"][0]
        assert (record["order_id"], record["order_qty"], record["limit_price"], record["amended"]) == (
            order_id,
            0.2,
            60100.0,
            True,
        )
        assert (record["order_status"], record["reason"]) == ("new", "User requested")
        canceled = await feed.send("cancel_order", {"cl_ord_id": ["ws-2"]})
        assert canceled["result"] == {"cl_ord_id": "ws-2"}
        again = await feed.send("cancel_order", {"order_id": [order_id]})
        assert (again["success"], again["error"]) == (False, "EOrder:Invalid order")


async def test_refusals_use_krakens_words(sim):
    async with Feed(sim) as feed:
        typed = await feed.send("add_order", LIMIT | {"order_qty": "0.1"})
        assert (typed["success"], typed["error"]) == (False, "Order_qty field must be a number_float")
        legacy = await feed.send("add_order", LIMIT | {"symbol": "XBT/USD"})
        assert legacy["error"] == "EQuery:Unknown asset pair"  # WS v2 says BTC/USD
        funds = await feed.send("add_order", LIMIT | {"order_qty": 100.0})
        assert funds["error"] == "EOrder:Insufficient funds"
        nompp = await feed.send("add_order", LIMIT | {"no_mpp": True})
        assert nompp["error"].startswith("EGeneral:Invalid arguments:nompp")
        await feed.client.send_message({"method": "add_order", "params": LIMIT | {"token": "stale"}}, raw=True)
        assert (await feed.next(method="add_order"))["error"] == "ESession:Invalid session"


async def test_triggers_fee_preference_and_validate_translate_to_the_rest_rules(sim):
    sim.set_mark_price("XBTUSD", "60000")
    async with Feed(sim) as feed:
        stop = await feed.send(
            "add_order",
            {
                "order_type": "stop-loss-limit",
                "side": "sell",
                "symbol": "BTC/USD",
                "order_qty": 0.5,
                "limit_price": 58900.0,
                "triggers": {"reference": "index", "price": 59000.0, "price_type": "static"},
                "fee_preference": "base",
                "time_in_force": "gtc",
            },
        )
        order = sim.engine.account(sim.key).orders[stop["result"]["order_id"]]
        assert (order.request.price, order.request.price2, order.request.trigger, order.fee_in_base) == (
            D("59000"),
            D("58900"),
            "index",
            True,
        )
        trailing = await feed.send(
            "add_order",
            {
                "order_type": "trailing-stop",
                "side": "sell",
                "symbol": "BTC/USD",
                "order_qty": 0.1,
                "triggers": {"price": 1.5, "price_type": "pct"},
            },
        )
        assert sim.engine.account(sim.key).orders[trailing["result"]["order_id"]].stop_price == D("59100.0")
        checked = await feed.send("add_order", LIMIT | {"validate": True})
        assert checked["result"]["order_id"] == "" and len(sim.orders()) == 2


async def test_batches_cancel_all_and_the_dead_mans_switch_over_the_socket(sim):
    async with Feed(sim) as feed:
        batch = await feed.send(
            "batch_add",
            {
                "symbol": "BTC/USD",
                "orders": [
                    {"order_type": "limit", "side": "buy", "limit_price": 59000.0, "order_qty": 0.1},
                    {"order_type": "limit", "side": "buy", "limit_price": 59100.0, "order_qty": 0.1, "cl_ord_id": "b"},
                    {"order_type": "limit", "side": "buy", "limit_price": 59200.0, "order_qty": 0.1},
                ],
            },
        )
        ids = [entry["order_id"] for entry in batch["result"]]
        assert len(ids) == 3 and batch["result"][1]["cl_ord_id"] == "b"
        cancelled = await feed.send("batch_cancel", {"orders": ids[:2]})
        assert (cancelled["orders_cancelled"], cancelled["success"]) == (2, True) and "result" not in cancelled
        await feed.send("add_order", LIMIT)
        armed = await feed.send("cancel_all_orders_after", {"timeout": 30})
        assert armed["result"]["triggerTime"] != "0"
        sim.advance_time(29)
        assert len(sim.engine.account(sim.key).open) == 2
        sim.advance_time(1)  # the switch fires on the simulator's clock: everything open is canceled
        canceled = set()
        while len(canceled) < 2:
            update = await feed.next(channel="executions", type="update")
            canceled |= {r["order_id"] for r in update["data"] if r["exec_type"] == "canceled"}
        assert not sim.engine.account(sim.key).open and sim.engine.account(sim.key).dead_man_at is None
        assert (await feed.send("cancel_all"))["result"] == {"count": 0}


async def test_public_ticker_and_trade_channels(sim):
    sim.set_mark_price("XBTUSD", "60000")
    async with Feed(sim, private=False, public=True) as feed:
        await feed.client.subscribe(params={"channel": "ticker", "symbol": ["BTC/USD", "SOL/USD"]}, req_id=1)
        seen = []
        while len(seen) < 4:  # an answer and a snapshot per symbol
            message = await feed.next()
            if message.get("req_id") == 1 or message.get("channel") == "ticker":
                seen.append(message)
        assert seen[0]["result"] == {"channel": "ticker", "snapshot": True, "symbol": "BTC/USD"}
        assert seen[2]["result"]["symbol"] == "SOL/USD"
        snapshot = seen[1]
        assert (snapshot["type"], snapshot["data"][0]["symbol"], snapshot["data"][0]["last"]) == (
            "snapshot",
            "BTC/USD",
            60000.0,
        )
        await feed.send("subscribe", {"channel": "trade", "symbol": ["SOL/USD"], "snapshot": False}, req_id=2)
        sim.set_mark_price("SOL/USD", "142.37", "3.5")
        trade = await feed.next(channel="trade", type="update")
        assert {k: trade["data"][0][k] for k in ("symbol", "price", "qty", "side")} == {
            "symbol": "SOL/USD",
            "price": 142.37,
            "qty": 3.5,
            "side": "buy" if D("142.37") >= D(str(snapshot["data"][0]["last"])) else "sell",
        }
        ticker = await feed.next(channel="ticker", type="update")
        assert (ticker["data"][0]["symbol"], ticker["data"][0]["last"]) == ("SOL/USD", 142.37)
        refused = await feed.send("subscribe", {"channel": "ticker", "symbol": ["XBT/USD"]}, req_id=3)
        assert refused["error"] == "Currency pair not supported XBT/USD"  # the REST wsname is not a WS v2 name


async def test_each_endpoint_refuses_the_others_channels_with_krakens_words(sim):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(sim.ws_url) as private:
            await private.receive_json()  # status
            await private.send_json({"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD"]}})
            answer = await private.receive_json()
            assert (
                answer["error"]
                == "Public market data subscriptions are unavailable on this endpoint. Try ws.kraken.com"
            )
        async with session.ws_connect(sim.public_ws_url) as public:
            await public.receive_json()
            await public.send_json({"method": "add_order", "params": LIMIT | {"token": "t"}, "req_id": 4})
            answer = await public.receive_json()
            assert (answer["req_id"], answer["success"]) == (4, False)
            assert (
                answer["error"] == "Private data and trading are unavailable on this endpoint. Try ws-auth.kraken.com"
            )


@pytest.mark.parametrize("method", ["add_order", "amend_order"])
async def test_ws_trading_faults_refuse_or_hold_the_answer(sim, method):
    async with Feed(sim) as feed:
        order_id = (await feed.send("add_order", LIMIT))["result"]["order_id"]
        sim.inject_fault(method, "service_unavailable")
        params = LIMIT if method == "add_order" else {"order_id": order_id, "order_qty": 0.2}
        refused = await feed.send(method, params)
        assert (refused["success"], refused["error"]) == (False, "EService:Unavailable")
        sim.inject_fault(method, "delay_reply", seconds=1.0)
        await feed.client.send_message({"method": method, "params": dict(params), "req_id": 1})
        await feed.client.send_message({"method": "add_order", "params": dict(LIMIT), "req_id": 2})
        first = await feed.next(req_id=2)  # the other request is answered while the first is held
        assert first["success"] is True
        held = await feed.next(req_id=1)
        assert (held["method"], held["success"]) == (method, True)
        assert held["time_out"] >= first["time_out"]


async def test_a_base_fee_is_reported_in_the_base_asset_on_the_executions_stream(sim):
    sim.set_mark_price("XBTUSD", "60000")
    async with Feed(sim) as feed:
        await feed.send(
            "add_order",
            {"order_type": "market", "side": "buy", "symbol": "BTC/USD", "order_qty": 0.1, "fee_preference": "base"},
        )
        trade = await feed.next(channel="executions", type="update")
        while trade["data"][0]["exec_type"] != "trade":
            trade = await feed.next(channel="executions", type="update")
        record = trade["data"][0]
        assert record["fees"] == [{"asset": "BTC", "qty": 0.0004}]  # WS v2 names the base BTC, not XBT
        quote = await feed.send(
            "add_order", {"order_type": "market", "side": "buy", "symbol": "BTC/USD", "order_qty": 0.1}
        )
        assert quote["success"]
        trade = await feed.next(channel="executions", type="update")
        while trade["data"][0]["exec_type"] != "trade":
            trade = await feed.next(channel="executions", type="update")
        assert trade["data"][0]["fees"] == [{"asset": "USD", "qty": 24.0}]
