"""What the protection work needs the venue to show: settable AssetPairs that the venue enforces, nonce rules,
negative balances, held replies that do not block the server, scripted refusals, tapes, every pair listed; and
the control surface's own errors, which list the valid values."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import aiohttp
import ccxt.async_support as ccxt
import pytest

from execledger.infrastructure.simulator import KrakenSimulator
from execledger.infrastructure.simulator.prices import load_tape

from .conftest import FROZEN_AT, WireClient

D = Decimal
LIMIT = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "60000", "volume": "0.01"}


async def control(wire, verb: str, route: str, expect: int = 200, **body):
    async with wire.session.request(verb, wire.base + "/_sim/" + route, json=body or None) as response:
        assert response.status == expect, await response.text()
        return await response.json()


async def test_every_spot_pair_is_listed_and_tradeable(sim, wire):
    pairs = (await wire.public("AssetPairs"))["result"]
    assert len(pairs) == 1434 and pairs["SOLUSD"]["wsname"] == "SOL/USD"
    assert (await wire.public("AssetPairs", pair="DOGE/USD"))["result"].keys() == {"XDGUSD"}
    assets = (await wire.public("Assets", asset="SOL,XBT"))["result"]
    assert assets["SOL"]["decimals"] == 10 and assets["XXBT"]["altname"] == "XBT"
    ticker = (await wire.public("Ticker", pair="SOLUSD"))["result"]["SOLUSD"]
    assert D(ticker["c"][0]) > 0  # a seed price on the pair's grid
    placed = await wire.result("AddOrder", {"pair": "SOL/USD", "type": "buy", "ordertype": "market", "volume": "1"})
    assert sim.orders()[-1].txid == placed["txid"][0] and sim.balances()["SOL"] == 1


async def test_ccxt_loads_every_market_from_the_snapshot(sim):
    client = ccxt.kraken({"apiKey": sim.key, "secret": sim.secret, "enableRateLimit": False})
    client.urls["api"] = {"public": sim.rest_url, "private": sim.rest_url}
    try:
        markets = await client.load_markets()
        assert len(markets) == 1434 and markets["SOL/USD"]["limits"]["amount"]["min"] == 0.02
        assert markets["DOGE/USD"]["id"] == "XDGUSD"
        order = await client.create_order("SOL/USD", "limit", "buy", 1, 10)
        assert (await client.fetch_order(order["id"]))["status"] == "open"
    finally:
        await client.close()


async def test_asset_pairs_change_is_served_and_enforced(sim, wire):
    changed = await control(wire, "POST", "asset_pairs", pair="XBT/USD", changes={"pair_decimals": 0, "tick_size": "1"})
    assert changed["XXBTZUSD"]["pair_decimals"] == 0
    assert (await wire.public("AssetPairs", pair="XBTUSD"))["result"]["XXBTZUSD"]["pair_decimals"] == 0
    assert await wire.call("AddOrder", LIMIT | {"price": "60000.5"}) == {
        "error": ["EOrder:Invalid price:XXBTZUSD price can only be specified up to 0 decimals."]
    }
    assert (await wire.result("AddOrder", LIMIT))["txid"]
    status = await control(wire, "POST", "asset_pairs", pair="ETHUSD", changes={"status": "cancel_only"})
    assert status["XETHZUSD"]["status"] == "cancel_only"
    refused = await wire.call("AddOrder", LIMIT | {"pair": "ETHUSD", "price": "3000", "volume": "0.01"})
    assert refused == {"error": ["EService:Market in cancel_only mode"]}
    bad = await control(wire, "POST", "asset_pairs", expect=400, pair="XBTUSD", changes={"pair_decimal": 0})
    assert "pair_decimals" in bad["error"]  # the valid field names are listed
    bad = await control(wire, "POST", "asset_pairs", expect=400, pair="XBTUSD", changes={"status": "closed"})
    assert "not usable" in bad["error"]


async def test_negative_balances_are_settable_and_refuse_what_they_cannot_fund(sim, wire):
    assert (await control(wire, "POST", "balances", XXBT="-0.00000001"))["XXBT"] == "-0.00000001"
    assert (await wire.result("Balance"))["XXBT"] == "-0.0000000100"
    sell = {"pair": "XBTUSD", "type": "sell", "ordertype": "limit", "price": "70000", "volume": "0.0001"}
    assert await wire.call("AddOrder", sell) == {"error": ["EOrder:Insufficient funds"]}
    bad = await control(wire, "POST", "balances", expect=400, ZUSD="lots")
    assert "ZUSD" in bad["error"]


async def test_nonce_window_accepts_late_nonces_once():
    async with (
        KrakenSimulator(seed=1, clock_start=FROZEN_AT, tier=None) as sim,
        aiohttp.ClientSession() as session,
    ):
        wire = WireClient(session, sim)
        await wire.result("Balance", nonce=5000)
        assert await wire.call("Balance", nonce=4990) == {"error": ["EAPI:Invalid nonce"], "result": {}}
        await control(wire, "POST", "nonce", window=100)
        await wire.result("Balance", nonce=4990)  # within the window, not seen before
        assert (await wire.call("Balance", nonce=4990))["error"] == ["EAPI:Invalid nonce"]  # never twice
        assert (await wire.call("Balance", nonce=4900))["error"] == ["EAPI:Invalid nonce"]  # outside the window
        await wire.result("Balance", nonce=5001)


async def test_another_client_ahead_on_the_key_refuses_calls_until_the_callers_nonce_passes():
    async with KrakenSimulator(tier=None) as sim, aiohttp.ClientSession() as session:
        wire = WireClient(session, sim)

        def ms() -> int:  # a millisecond nonce, as ccxt sends
            return int(time.time() * 1000)

        await wire.result("Balance", nonce=ms())
        jumped = await control(wire, "POST", "nonce", ahead_s=1.0)
        assert jumped["last_nonce"] >= ms() + 900  # read off the caller's scale: milliseconds
        assert (await wire.call("Balance", nonce=ms()))["error"] == ["EAPI:Invalid nonce"]
        while ms() <= jumped["last_nonce"]:
            await asyncio.sleep(0.05)  # waiting for the wall clock is the point here
        await wire.result("Balance", nonce=ms())


async def test_a_held_reply_does_not_hold_other_calls(sim, wire):
    sim.inject_fault("AddOrder", "hold_request", seconds=2.0)
    held = asyncio.create_task(wire.result("AddOrder", LIMIT | {"cl_ord_id": "held"}))
    for _ in range(3):
        assert (await wire.result("Balance"))["ZUSD"]  # served while the AddOrder waits
        assert (await wire.public("Time"))["error"] == []
    assert not held.done()
    assert (await held)["txid"]
    assert sim.requests("AddOrder", cl_ord_id="held")[0].fault == "hold_request"


async def test_scripted_refusals_on_a_chosen_method_and_count(sim, wire):
    sim.inject_fault("AddOrder", "insufficient_funds", count=2)
    sim.inject_fault("Balance", "invalid_nonce")
    assert [(await wire.call("AddOrder", LIMIT))["error"] for _ in range(2)] == [["EOrder:Insufficient funds"]] * 2
    assert (await wire.result("AddOrder", LIMIT))["txid"]  # the third goes through
    assert (await wire.call("Balance"))["error"] == ["EAPI:Invalid nonce"]
    await wire.result("Balance")  # and the refused nonce did not poison the key
    assert len(sim.orders()) == 1


async def test_a_bad_fault_lists_the_valid_kinds(sim, wire):
    answer = await control(wire, "POST", "faults", expect=400, path="AddOrder", kind="slow")
    assert "unknown fault kind 'slow'" in answer["error"]
    assert "delay_reply" in answer["error"] and "insufficient_funds" in answer["error"]
    answer = await control(wire, "POST", "faults", expect=400, path="add_order", kind="http_502_after_execute")
    assert "hold_request" in answer["error"]  # the kinds a WS method takes
    for typo in ("AddOrders", "addorder", "/0/private/Bogus"):  # a misspelt method would never misbehave
        answer = await control(wire, "POST", "faults", expect=400, path=typo, kind="service_busy")
        assert f"unknown method {typo.rsplit('/', 1)[-1]!r}" in answer["error"]
        assert "AddOrder" in answer["error"] and "OpenOrders" in answer["error"] and "add_order" in answer["error"]
    assert sim.faults.pending() == []
    missing = await control(wire, "POST", "faults", expect=400, kind="service_busy")
    assert missing["error"] == "missing field 'path'"
    status = await control(wire, "POST", "status", expect=400, status="closed")
    assert "online, maintenance, cancel_only, post_only" in status["error"]
    async with wire.session.get(wire.base + "/_sim") as response:
        index = await response.json()
    assert {"POST /_sim/faults", "POST /_sim/asset_pairs", "POST /_sim/tape"} <= {
        f"{r['verb']} {r['path']}" for r in index
    }


def test_kraken_trade_csv_loads_with_or_without_a_header(tmp_path):
    rows = load_tape("solusd_trades.csv")
    assert (len(rows), rows[0].price, rows[0].volume, rows[0].time) == (305, D("18.89"), D("2.5"), 1688169649.0)
    headed = tmp_path / "headed.csv"
    headed.write_text("time,price,volume\n1,10.5,2\n2,10.6,1\n")
    assert [r.price for r in load_tape(headed)] == [D("10.5"), D("10.6")]
    broken = tmp_path / "broken.csv"
    broken.write_text("1,10.5,2\n2,ten,1\n")
    with pytest.raises(ValueError, match="line 2"):
        load_tape(broken)
    backwards = tmp_path / "backwards.csv"
    backwards.write_text("2,10.5,2\n1,10.6,1\n")
    with pytest.raises(ValueError, match="must not go back"):
        load_tape(backwards)


async def test_a_tape_plays_at_its_speed_against_the_simulators_clock():
    async with KrakenSimulator(seed=1, clock_start=FROZEN_AT, tier=None) as sim:
        player = sim.play_tape("SOL/USD", "solusd_trades.csv", speed=10)
        assert player.step(1) == 1 and sim.mark_price("SOLUSD") == D("18.89")
        sim.advance_time(2.0)  # 20 tape seconds: the rows up to 1688169669
        assert player.position == 3 and sim.mark_price("SOLUSD") == D("18.90")
        sim.advance_time(300)  # the whole tape (47 minutes at 10x)
        assert player.done and sim.mark_price("SOLUSD") == D("18.69")
        recent = sim.market.recent(sim.pair("SOLUSD"))
        assert recent[-1].qty == D("2.88259958")  # each row is a public trade with its volume


async def test_a_tape_plays_on_wall_time_in_a_running_simulator():
    fast = KrakenSimulator(tier=None)
    async with fast:
        player = fast.play_tape("SOL/USD", None, speed=50_000)  # the shipped SOL/USD tape in well under a second
        await asyncio.wait_for(player.finished.wait(), timeout=30)
        assert fast.mark_price("SOLUSD") == D("18.69") and player.position == 305


async def test_the_simulator_command_plays_a_tape_and_takes_a_tier(tmp_path):
    from click.testing import CliRunner

    from execledger.infrastructure.cli import main

    secret = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
    base = ["simulator", "--port", "0", "--key", "k", "--secret", secret]
    bad_tier = CliRunner().invoke(main, [*base, "--tier", "gold"])
    assert bad_tier.exit_code == 2 and "starter" in bad_tier.output and "none" in bad_tier.output
    bad_tape = CliRunner().invoke(main, [*base, "--tape", "SOL/USD"])
    assert bad_tape.exit_code == 2 and "PAIR=CSV" in bad_tape.output
    missing = CliRunner().invoke(main, [*base, "--tape", f"SOL/USD={tmp_path / 'none.csv'}"])
    assert missing.exit_code == 2 and "does not exist" in missing.output


async def test_the_simulator_process_plays_a_tape_with_the_tier_it_was_given():
    """``execledger simulator --tape SOL/USD=... --speed N --tier none`` as a real process: the tape reaches the
    public Ticker, and with no tier nothing is rate-limited."""
    import re
    import signal
    import sys

    secret = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from execledger.infrastructure.cli import main; main()",
        "simulator",
        "--port",
        "0",
        "--key",
        "k",
        "--secret",
        secret,
        "--tier",
        "none",
        "--tape",
        "SOL/USD=solusd_trades.csv",
        "--speed",
        "100000",
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        line = (await asyncio.wait_for(proc.stderr.readline(), timeout=60)).decode()
        assert "tier none" in line
        rest_url = re.search(r"REST (http://127\.0\.0\.1:\d+)", line).group(1)
        async with aiohttp.ClientSession() as session:
            for _ in range(600):  # a separate process: its progress can only be read, bounded at 60 s
                async with session.get(rest_url + "/0/public/Ticker", params={"pair": "SOLUSD"}) as response:
                    body = await response.json()
                assert body["error"] == []  # 600 public calls, no limit
                if body["result"]["SOLUSD"]["c"][0] == "18.69":
                    break
                await asyncio.sleep(0.1)
            assert body["result"]["SOLUSD"]["c"][0] == "18.69"  # the tape's last trade
            async with session.get(rest_url + "/_sim/tape") as response:
                assert (await response.json())[0]["done"] is True
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), timeout=30)
