"""The ``/_sim`` control surface over HTTP, paging, and the standalone ``execledger simulator`` command."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from decimal import Decimal

import aiohttp
from click.testing import CliRunner

from execledger.infrastructure.cli import main


async def control(wire, verb: str, path: str, **body):
    async with wire.session.request(verb, wire.base + "/_sim/" + path, json=body or None) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_price_time_balances_book_and_status(sim, wire):
    assert (await control(wire, "POST", "price", pair="BTC/USD", price="61000.5"))["marks"]["XXBTZUSD"] == "61000.5"
    marks = (await control(wire, "POST", "advance", pair="XBTUSD", steps=5))["marks"]
    assert list(marks) == ["XXBTZUSD"] and marks["XXBTZUSD"] != "61000.5"
    assert sim.mark_price("ETH/USD") == Decimal("3500")
    assert (await control(wire, "POST", "time", seconds=30))["now"] == sim.clock.now()
    assert (await control(wire, "POST", "balances", ZUSD="5", XXBT="0"))["ZUSD"] == "5"
    assert await wire.call("AddOrder", {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.01"}) == {
        "error": ["EOrder:Insufficient funds"]
    }
    await control(wire, "POST", "balances", ZUSD="100000")
    txid = (
        await wire.result(
            "AddOrder", {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000", "volume": "0.01"}
        )
    )["txid"][0]
    book = await control(wire, "GET", "orders")
    assert [o["txid"] for o in book["XXBTZUSD"]["open"]] == [txid] and list(book) == ["XXBTZUSD"]
    assert (await control(wire, "POST", "status", status="maintenance")) == {"status": "maintenance"}
    assert (await wire.public("SystemStatus"))["result"]["status"] == "maintenance"
    assert (await wire.call("CancelOrder", {"txid": txid}))["error"] == ["EService:Unavailable"]


async def test_closed_orders_and_trades_history_page_by_50_newest_first(sim, wire):
    for _ in range(53):
        await wire.result("AddOrder", {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.0001"})
        sim.advance_time(1)
    first = await wire.result("ClosedOrders")
    assert first["count"] == 53 and len(first["closed"]) == 50
    newest = sim.orders()[-1].txid
    assert next(iter(first["closed"])) == newest
    rest = await wire.result("ClosedOrders", {"ofs": "50"})
    assert len(rest["closed"]) == 3 and set(rest["closed"]).isdisjoint(first["closed"])
    later = await wire.result("ClosedOrders", {"start": str(sim.orders()[-3].opentm)})
    assert later["count"] == 2  # start is exclusive
    trades = await wire.result("TradesHistory", {"ofs": "50"})
    assert trades["count"] == 53 and len(trades["trades"]) == 3
    assert (await wire.call("ClosedOrders", {"ofs": "many"}))["error"] == ["EGeneral:Invalid arguments"]


async def test_standalone_cli_serves_until_interrupted():
    secret = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from execledger.infrastructure.cli import main; main()",
        "simulator",
        "--port",
        "0",
        "--key",
        "cli-key",
        "--secret",
        secret,
        "--seed",
        "3",
        stderr=asyncio.subprocess.PIPE,
    )
    drain = None
    try:
        # Generous bounds: a cold interpreter importing the stack on a loaded 2-core machine can take a while.
        line = (await asyncio.wait_for(proc.stderr.readline(), timeout=60)).decode()
        drain = asyncio.create_task(proc.stderr.read())  # keep the pipe flowing: a full pipe would block the child
        assert secret not in line
        rest_url = re.search(r"REST (http://127\.0\.0\.1:\d+)", line).group(1)
        async with aiohttp.ClientSession() as session, session.get(rest_url + "/0/public/Time") as response:
            assert (await response.json())["error"] == []
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), timeout=30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            rest = (await drain).decode(errors="replace")[-2000:] if drain else ""
            raise AssertionError(f"the simulator did not stop within 30 s of SIGINT; its stderr:\n{rest}") from None
    rest = (await drain).decode(errors="replace") if drain else ""
    assert proc.returncode == 0, rest[-2000:]
    assert secret not in rest


def test_cli_refuses_a_bad_secret_without_echoing_it():
    result = CliRunner().invoke(main, ["simulator", "--port", "0", "--key", "k", "--secret", "not-base64!!"])
    assert result.exit_code == 2
    assert "not-base64!!" not in result.output and "--secret" in result.output


async def test_history_lists_every_order_open_or_closed_with_its_fills(sim, wire):
    limit = (
        await wire.result(
            "AddOrder",
            {
                "pair": "XBTUSD",
                "type": "buy",
                "ordertype": "limit",
                "price": "50000",
                "volume": "0.01",
                "cl_ord_id": "c-limit",
            },
        )
    )["txid"][0]
    market = (
        await wire.result("AddOrder", {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.01"})
    )["txid"][0]
    history = {o["txid"]: o for o in await control(wire, "GET", "history")}
    assert history[limit]["status"] == "open" and history[limit]["cl_ord_id"] == "c-limit"
    closed = history[market]
    assert closed["status"] == "closed" and closed["vol_exec"] == "0.01" and closed["fee"] != "0"
    assert closed["trades"] == [t.txid for t in sim.trades()]


def test_cli_refuses_fill_fractions_that_are_not_decimals():
    secret = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
    result = CliRunner().invoke(
        main, ["simulator", "--port", "0", "--key", "k", "--secret", secret, "--fill-fractions", "0.4,half"]
    )
    assert result.exit_code == 2 and "--fill-fractions" in result.output
