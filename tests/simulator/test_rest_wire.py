"""Kraken's REST wire as the simulator speaks it: envelopes, auth, error strings, field names and types."""

from __future__ import annotations

from decimal import Decimal

import aiohttp
import pytest

from execledger.infrastructure.simulator import KrakenSimulator
from tests.conftest import kraken_fixture

from .conftest import FROZEN_AT, WireClient

# Kraken's published API-Sign test vector (REFERENCE.md section 1).
VECTOR_SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
VECTOR_NONCE = 1616492376594
VECTOR_BODY = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
VECTOR_SIGN = "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="


async def test_the_published_test_vector_is_accepted_byte_for_byte():
    async with KrakenSimulator(key="vector-key", secret=VECTOR_SECRET, clock_start=FROZEN_AT) as sim:
        async with aiohttp.ClientSession() as session:
            headers = {
                "API-Key": "vector-key",
                "API-Sign": VECTOR_SIGN,
                "Content-Type": "application/x-www-form-urlencoded",
            }
            async with session.post(sim.rest_url + "/0/private/AddOrder", data=VECTOR_BODY, headers=headers) as r:
                body = await r.json()
            assert body["error"] == []
            assert body["result"]["descr"] == {"order": "buy 1.25000000 XBTUSD @ limit 37500.0"}
            # The same signature on a tampered body is refused.
            tampered = VECTOR_BODY.replace("1.25", "12.5").replace("1616492376594", "1616492376595")
            async with session.post(sim.rest_url + "/0/private/AddOrder", data=tampered, headers=headers) as r:
                assert (await r.json())["error"] == ["EAPI:Invalid signature"]


async def test_auth_failures_use_krakens_strings_and_envelope(sim, wire):
    stranger = WireClient(wire.session, sim, key="nobody", secret=VECTOR_SECRET)
    assert await stranger.call("Balance") == kraken_fixture("rest_error_invalid_key_docs.json")
    bad_sig = await wire.call("Balance", signature=VECTOR_SIGN)
    assert bad_sig["error"] == ["EAPI:Invalid signature"]
    await wire.result("Balance", nonce=5_000_000)
    assert (await wire.call("Balance", nonce=5_000_000))["error"] == ["EAPI:Invalid nonce"]
    assert (await wire.call("Balance", nonce=4_999_999))["error"] == ["EAPI:Invalid nonce"]
    await wire.result("Balance", nonce=5_000_001)


async def test_form_and_json_bodies_are_both_signed_over_the_exact_text(sim, wire):
    order = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000", "volume": "0.01"}
    form = await wire.result("AddOrder", order)
    as_json = await wire.result("AddOrder", order | {"pair": "XBT/USD"}, as_json=True)
    assert len(form["txid"]) == len(as_json["txid"]) == 1


async def test_public_endpoints_match_the_fixture_shapes(sim, wire):
    time = await wire.public("Time")
    assert set(time["result"]) == set(kraken_fixture("rest_time_official_example.json")["result"])
    assert time["result"]["unixtime"] == int(FROZEN_AT)
    status = await wire.public("SystemStatus")
    assert status["result"]["status"] == "online"
    for name in ("XBTUSD", "XXBTZUSD", "XBT/USD", "BTC/USD"):
        pairs = await wire.public("AssetPairs", pair=name)
        assert list(pairs["result"]) == ["XXBTZUSD"] and pairs["result"]["XXBTZUSD"]["pair_decimals"] == 1
    assert await wire.public("AssetPairs", pair="DOGEUSD") == {"error": ["EQuery:Unknown asset pair"]}
    ticker = await wire.public("Ticker", pair="ETHUSD")
    assert ticker["result"]["XETHZUSD"]["c"][0] == "3500.00"
    assets = await wire.public("Assets")
    assert assets["result"]["ZUSD"]["altname"] == "USD"


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"price": "50000.05"}, "EOrder:Invalid price:XXBTZUSD price can only be specified up to 1 decimals."),
        ({"volume": "0.00001"}, "EOrder:Order minimum not met"),
        ({"volume": "0.123456789"}, "EGeneral:Invalid arguments:volume"),
        ({"volume": "lots"}, "EGeneral:Invalid arguments:volume"),
        ({"ordertype": "iceberg-ish"}, "EGeneral:Invalid arguments:ordertype"),
        ({"pair": "DOGEUSD"}, "EQuery:Unknown asset pair"),
        ({"volume": "10"}, "EOrder:Insufficient funds"),
        ({"price": "5%"}, "EOrder:Invalid price:Invalid price argument"),
        ({"ordertype": "stop-loss-limit"}, "EOrder:Invalid price:Invalid secondary price argument"),
        ({"deadline": "2020-01-01T00:00:00Z"}, "EService:Deadline elapsed"),
    ],
)
async def test_add_order_rejections(wire, params, error):
    order = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000", "volume": "0.01"} | params
    assert await wire.call("AddOrder", order) == {"error": [error]}


async def test_cost_minimum_on_eth(wire):
    order = {"pair": "ETHUSD", "type": "buy", "ordertype": "limit", "price": "100", "volume": "0.003"}
    assert await wire.call("AddOrder", order) == {"error": ["EOrder:Cost minimum not met"]}


async def test_validate_only_describes_and_places_nothing(sim, wire):
    result = await wire.result(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "sell",
            "ordertype": "take-profit-limit",
            "price": "70000",
            "price2": "69900",
            "volume": "0.1",
            "validate": "true",
        },
    )
    assert result == {"descr": {"order": "sell 0.10000000 XBTUSD @ take profit 70000.0 -> limit 69900.0"}}
    assert sim.orders() == []


async def test_order_lifecycle_shapes_match_the_fixtures(sim, wire):
    placed = await wire.result(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "buy",
            "ordertype": "limit",
            "price": "66000",
            "volume": "1.25",
            "cl_ord_id": "entry-1",
        },
    )
    txid = placed["txid"][0]
    open_ = (await wire.result("OpenOrders", {"cl_ord_id": "entry-1"}))["open"]
    official = kraken_fixture("rest_open_orders_official_example_incl_partial_fill.json")["result"]["open"]
    example = next(iter(official.values()))
    assert set(example) - {"trades"} <= set(open_[txid])  # trades appear only once there are fills
    assert open_[txid]["userref"] is None and open_[txid]["cl_ord_id"] == "entry-1"
    assert open_[txid]["descr"]["order"] == "buy 1.25000000 XBTUSD @ limit 66000.0"
    assert isinstance(open_[txid]["opentm"], float) and isinstance(open_[txid]["vol"], str)

    # The path crosses the limit: filled at its own price, as maker.
    sim.set_mark_price("XBTUSD", "65900")
    queried = await wire.result("QueryOrders", {"txid": txid, "trades": "true"})
    info = queried[txid]
    assert (info["status"], info["vol_exec"], info["price"], info["reason"]) == (
        "closed",
        "1.25000000",
        "66000.0",
        None,
    )
    closed_example = kraken_fixture("rest_query_orders_official_example_closed_filled.json")["result"]
    assert set(closed_example["OMMDB2-FSB6Z-7W3HPO"]) <= set(info)
    trade_id = info["trades"][0]
    trades = await wire.result("TradesHistory")
    assert trades["count"] == 1
    trade = trades["trades"][trade_id]
    example_trade = kraken_fixture("rest_trades_history_official_example.json")["result"]["trades"][
        "THVRQM-33VKH-UCI7BS"
    ]
    assert set(trade) == set(example_trade)
    assert (trade["pair"], trade["price"], trade["vol"], trade["cost"], trade["maker"]) == (
        "XXBTZUSD",
        "66000.00000",
        "1.25000000",
        "82500.00000",
        True,
    )
    assert isinstance(trade["trade_id"], int) and isinstance(trade["time"], float)
    assert await wire.result("QueryTrades", {"txid": trade_id}) == {trade_id: trade}
    closed = await wire.result("ClosedOrders", {"cl_ord_id": "entry-1"})
    assert closed["count"] == 1 and txid in closed["closed"]


async def test_cancel_by_txid_cl_ord_id_and_userref_and_unknown_order(sim, wire):
    def limit(**extra):
        return {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "60000", "volume": "0.01"} | extra

    a = (await wire.result("AddOrder", limit()))["txid"][0]
    await wire.result("AddOrder", limit(cl_ord_id="c-1"))
    await wire.result("AddOrder", limit(userref="77"))
    await wire.result("AddOrder", limit(userref="77"))
    assert await wire.result("CancelOrder", {"txid": a}) == {"count": 1}
    assert await wire.call("CancelOrder", {"txid": a}) == {"error": ["EOrder:Unknown order"]}
    assert await wire.result("CancelOrder", {"cl_ord_id": "c-1"}) == {"count": 1}
    assert await wire.result("CancelOrder", {"txid": "77"}) == {"count": 2}
    info = (await wire.result("QueryOrders", {"txid": a}))[a]
    assert (info["status"], info["reason"]) == ("canceled", "User requested")
    assert await wire.call("QueryOrders", {"txid": "OAAAAA-BBBBB-CCCCCC"}) == {"error": ["EOrder:Invalid order"]}
    await wire.result("AddOrder", limit())
    assert await wire.result("CancelAll") == {"count": 1}


async def test_cancel_all_orders_after_arms_fires_and_disarms(sim, wire):
    await wire.result(
        "AddOrder", {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "60000", "volume": "0.01"}
    )
    armed = await wire.result("CancelAllOrdersAfter", {"timeout": "60"})
    assert armed == {"currentTime": "2025-06-15T15:06:40Z", "triggerTime": "2025-06-15T15:07:40Z"}
    sim.advance_time(60)
    assert (await wire.result("OpenOrders"))["open"] == {}
    disarmed = await wire.result("CancelAllOrdersAfter", {"timeout": "0"})
    assert disarmed["triggerTime"] == "0"


async def test_balance_and_balance_ex_move_with_fills(sim, wire):
    before = await wire.result("Balance")
    assert before["ZUSD"] == "100000.0000" and before["XXBT"] == "2.0000000000"
    await wire.result("AddOrder", {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.1"})
    after = await wire.result("Balance")
    assert after["XXBT"] == "2.1000000000" and after["ZUSD"] == "93273.2000"  # 6700 + 0.4% fee
    await wire.result(
        "AddOrder", {"pair": "XBTUSD", "type": "sell", "ordertype": "limit", "price": "70000", "volume": "0.5"}
    )
    ex = await wire.result("BalanceEx")
    assert ex["XXBT"] == {"balance": "2.1000000000", "hold_trade": "0.5000000000"}


async def test_market_gates_follow_system_status(sim, wire):
    sim.set_system_status("cancel_only")
    order = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "60000", "volume": "0.01"}
    assert await wire.call("AddOrder", order) == {"error": ["EService:Market in cancel_only mode"]}
    sim.set_system_status("post_only")
    assert await wire.call("AddOrder", order) == {"error": ["EService:Market in post_only mode"]}
    await wire.result("AddOrder", order | {"oflags": "post"})
    assert (await wire.public("SystemStatus"))["result"]["status"] == "post_only"


async def test_request_log_counts_add_order_calls_per_cl_ord_id(sim, wire):
    order = {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.01", "cl_ord_id": "once"}
    await wire.result("AddOrder", order)
    await wire.result("AddOrder", order)
    await wire.result("OpenOrders")
    assert len(sim.requests("AddOrder", cl_ord_id="once")) == 2
    async with wire.session.get(sim.rest_url + "/_sim/requests", params={"method": "AddOrder"}) as r:
        log = await r.json()
    assert [entry["params"]["cl_ord_id"] for entry in log] == ["once", "once"]
    assert all("API-Sign" not in str(entry) for entry in log)


async def _wire_fill_story(seed: int) -> list[tuple]:
    async with KrakenSimulator(seed=seed, clock_start=FROZEN_AT, fill_fractions=(Decimal("0.4"),)) as sim:
        async with aiohttp.ClientSession() as session:
            wire = WireClient(session, sim)
            mark = sim.mark_price("XBTUSD")
            for side, offset in (("buy", -50), ("sell", 50), ("buy", -120)):
                await wire.result(
                    "AddOrder",
                    {
                        "pair": "XBTUSD",
                        "type": side,
                        "ordertype": "limit",
                        "price": str(mark + offset),
                        "volume": "0.3",
                    },
                )
            await wire.result("AddOrder", {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.1"})
            for _ in range(40):
                async with session.post(sim.rest_url + "/_sim/advance", json={"pair": "XBTUSD"}) as r:
                    assert r.status == 200
            trades = (await wire.result("TradesHistory"))["trades"].values()
            return [(t["type"], t["ordertype"], t["price"], t["vol"], t["fee"], t["maker"]) for t in trades]


async def test_same_seed_and_requests_give_the_same_fills_on_the_wire():
    story = await _wire_fill_story(5)
    assert len(story) >= 3
    assert await _wire_fill_story(5) == story
