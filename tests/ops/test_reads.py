"""Read commands in every format when piped, id resolution for all four ids (CLI audit, GET /v1/orders/{id},
GET /v1/signals/{id}), signal outcomes with PnL, the profit summary, relative times, and status."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from execledger.domain.values import OrderRole
from execledger.infrastructure.api import ApiContext, create_api
from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.cli import main
from execledger.infrastructure.cli.common import timestamp
from execledger.infrastructure.commandbus import CommandBus
from tests.harness import Harness
from tests.ops.scenario import scripted_lifecycle


@pytest.fixture
async def story(settings, clock):
    """The scripted lifecycle recorded in the settings' store (and projected), plus the stop-loss story."""
    lg = open_ledger(settings, clock=clock)
    h = Harness(lg.ledger, clock)
    orders = await scripted_lifecycle(h, clock)
    stop_entry = await h.signal(signal_id="life-stop", quantity="2", limit_price="100", sl_price="90", tp_price="130")
    h.venue.fill(h.txid(stop_entry), "2", "100", fee="0.3")
    await h.settle()
    [sl] = h.legs(stop_entry, OrderRole.STOP_LOSS)
    h.venue.fill(h.txid(sl), "2", "89.5", fee="0.28")
    await h.settle()
    lg.projector.catch_up()
    yield {**orders, "stop_entry": h.engine.orders[stop_entry.id], "stop": h.engine.orders[sl.id], "lg": lg, "h": h}
    lg.close()


def env_of(settings) -> dict[str, str | None]:
    clean = {k: None for k in os.environ if k.startswith("EXECLEDGER_") and k != "EXECLEDGER_TEST_DATABASE_URL"}
    env = {**clean, "EXECLEDGER_DATA_DIR": str(settings.data_dir), "EXECLEDGER_API_PORT": "9"}  # nothing answers
    if settings.database_url is not None:
        env["EXECLEDGER_DATABASE_URL"] = settings.database_url.get_secret_value()
    return env


def cli(settings, *args: str):
    result = CliRunner().invoke(main, list(args), env=env_of(settings))
    return result


READ_COMMANDS = [
    ("report", "reports"),
    ("report", "orders"),
    ("report", "fills"),
    ("report", "signals"),
    ("report", "profit"),
    ("audit", "life-tp"),
    ("state", "--at", "now"),
    ("replay",),
    ("status",),
]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: "-".join(c))
async def test_every_read_command_in_every_format(story, settings, command):
    table = cli(settings, *command)
    assert table.exit_code == 0, table.output
    assert "\n\n\n" not in table.stdout
    as_json = cli(settings, *command, "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.stdout)
    as_csv = cli(settings, *command, "--format", "csv")
    assert as_csv.exit_code == 0, as_csv.output
    records = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    items = doc.get("items", doc.get("open_orders"))
    assert items is not None and len(records) == len(items)
    if items:
        assert set(records[0]) == set(items[0])  # csv carries every field json does
        lines = [line for line in table.stdout.splitlines() if line]
        assert len(lines) >= len(items) + 1  # a header and one line per row: nothing wraps


async def test_tables_never_wrap_when_piped_to_a_file(story, settings, tmp_path):
    """A real process whose stdout is a file, in an 80-column environment: one line per row, whole."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("EXECLEDGER_") or k == "EXECLEDGER_TEST_DATABASE_URL"
    }
    env.update({k: v for k, v in env_of(settings).items() if v is not None}, COLUMNS="80", TERM="xterm")
    exe = Path(sys.executable).with_name("execledger")
    out = tmp_path / "reports.txt"
    with out.open("w") as f:
        proc = subprocess.run([str(exe), "report", "reports"], stdout=f, stderr=subprocess.PIPE, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    count = int(lines[0].split(" of ")[1])
    assert len(lines) == 2 + count  # title, header, one line per report
    assert max(len(line) for line in lines) > 80  # long lines stay whole rather than folding into fragments
    header = lines[1].split()
    assert header[:4] == ["time", "signal_id", "role", "event"] and "note" in header


async def test_one_spelling_of_statuses_and_pairs_as_sent_and_why_we_canceled(story, settings):
    doc = json.loads(cli(settings, "report", "reports", "--format", "json", "--limit", "1000").stdout)
    statuses = {r["status"] for r in doc["items"]}
    assert statuses <= {"pending_submit", "submitting", "open", "filled", "canceled", "cancel_pending", "rejected"}
    assert {r["pair"] for r in doc["items"]} == {"XBT/USD"}
    [oco] = [r for r in doc["items"] if r["event"] == "Canceled" and r["order_id"] == str(story["sl"].id)]
    assert oco["note"] == "[oco_cancel_sibling] venue: User requested"
    [timeout] = [r for r in doc["items"] if r["event"] == "Canceled" and r["order_id"] == str(story["late"].id)]
    assert timeout["note"].startswith("[timeout_cancel]")
    orders = json.loads(cli(settings, "report", "orders", "--format", "json").stdout)["items"]
    assert {o["status"] for o in orders} <= {"filled", "canceled", "rejected"}


async def test_signal_outcomes_and_profit_summary(story, settings):
    doc = json.loads(cli(settings, "report", "signals", "--format", "json").stdout)
    by_id = {s["signal_id"]: s for s in doc["items"]}
    tp = by_id["life-tp"]
    assert (tp["state"], tp["exit_reason"], tp["realised_pnl"], tp["fees"], tp["net_pnl"]) == (
        "closed",
        "take_profit",
        "20",
        "0.35",
        "19.65",
    )
    assert tp["opened_at"] <= tp["closed_at"] and tp["entry_avg_px"] == "100" and tp["exit_avg_px"] == "120"
    stop = by_id["life-stop"]
    assert (stop["exit_reason"], stop["realised_pnl"], stop["net_pnl"]) == ("stop_loss", "-21", "-21.58")
    assert (by_id["life-timeout"]["state"], by_id["life-timeout"]["exit_reason"]) == ("not_filled", "timeout")
    assert (by_id["life-rejected"]["state"], by_id["life-rejected"]["exit_reason"]) == ("not_filled", "rejected")
    assert doc["totals"]["USD"]["net_pnl"] == "-1.93" and doc["totals"]["USD"]["closed"] == 2
    table = cli(settings, "report", "signals").stdout
    assert "total USD: 4 signals, 2 closed (1 won), 0 open; realised -1, fees 0.93, net -1.93" in table

    rows = json.loads(cli(settings, "report", "profit", "--format", "json").stdout)["items"]
    got = {(r["group"], r["key"]): r for r in rows}
    total = got[("total", "all")]
    assert (total["trades"], total["wins"], total["losses"], total["win_rate"], total["net_pnl"]) == (
        2,
        1,
        1,
        "0.50",
        "-1.93",
    )
    assert got[("exit_reason", "take_profit")]["net_pnl"] == "19.65"
    assert got[("exit_reason", "stop_loss")]["net_pnl"] == "-21.58"
    assert got[("pair", "XBT/USD")]["trades"] == 2
    assert got[("day", tp["closed_at"][:10])]["trades"] == 2  # by the venue's execution time
    future = json.loads(cli(settings, "report", "profit", "--since", "now", "--format", "json").stdout)
    assert future["items"] == []


async def test_audit_resolves_all_four_ids_in_cli_and_api(story, settings):
    entry, sl = story["entry"], story["sl"]
    idents = {
        "signal id": "life-tp",
        "entry order id": str(entry.id),
        "leg order id": str(sl.id),
        "txid": entry.txid,
        "lower-case txid": entry.txid.lower(),
        "leg txid": sl.txid,
        "cl_ord_id": entry.cl_ord_id,
        "leg cl_ord_id": sl.cl_ord_id,
    }
    for what, ident in idents.items():
        result = cli(settings, "audit", ident, "--format", "json")
        assert result.exit_code == 0, (what, result.output)
        doc = json.loads(result.stdout)
        assert doc["signal_id"] == "life-tp" and doc["entry_order_id"] == str(entry.id), what
        events = [(r["role"], r["event"]) for r in doc["items"]]
        assert ("entry", "Placed") in events and ("stop_loss", "CancelRequested") in events
        assert all(r["at"][:4].isdigit() and "T" in r["at"] for r in doc["items"])  # dated
    missing = cli(settings, "audit", "OABCDE-FGHIJ-KLMNOP")
    assert missing.exit_code == 5 and "not a signal id, order id, txid or cl_ord_id" in missing.output
    table = cli(settings, "audit", entry.txid).stdout.splitlines()
    assert table[0].startswith("signal life-tp (XBT/USD buy)")
    assert all(line[:4].isdigit() and line[10] == " " for line in table[2:])  # one dated line per event

    lg = story["lg"]
    ctx = ApiContext(ledger=lg, bus=CommandBus(lg, role="api"))
    client = TestClient(TestServer(create_api(ctx)))
    await client.start_server()
    try:
        for what, ident in idents.items():
            r = await client.get(f"/v1/signals/{ident}")
            assert r.status == 200, (what, await r.text())
            body = await r.json()
            assert body["signal_id"] == "life-tp" and body["summary"]["exit_reason"] == "take_profit", what
            assert {o["role"] for o in body["orders"]} == {"entry", "stop_loss", "take_profit"}
            assert body["timeline"][0]["event"] == "Placed"
            order = await client.get(f"/v1/orders/{ident}")
            assert order.status == 200, what
            expected = sl.id if "leg" in what else entry.id
            assert (await order.json())["order"]["order_id"] == str(expected), what
        assert (await client.get("/v1/signals/nope")).status == 404
        assert (await client.get("/v1/orders/OABCDE-FGHIJ-KLMNOP")).status == 404
        assert (await client.get("/v1/signals/" + "x" * 200)).status == 400
    finally:
        await client.close()


def test_times_now_and_ago():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert timestamp("now", now=now) == now
    assert timestamp("-1h", now=now) == now - timedelta(hours=1)
    assert timestamp("-30m", now=now) == now - timedelta(minutes=30)
    assert timestamp("-2d", now=now) == now - timedelta(days=2)
    assert timestamp("-1.5h", now=now) == now - timedelta(minutes=90)
    assert timestamp("2026-11-24T18:00:00", now=now) == datetime(2026, 11, 24, 18, tzinfo=UTC)
    for bad in ("yesterday", "-h", "-1x", "--1h"):
        with pytest.raises(Exception, match="is not a time"):
            timestamp(bad, now=now)


async def test_state_at_an_offset_and_now(story, settings):
    now = json.loads(cli(settings, "state", "--at", "now", "--format", "json").stdout)
    assert len(now["items"]) == 7 and {o["status"] for o in now["items"]} == {"filled", "canceled", "rejected"}
    before = json.loads(cli(settings, "state", "--at", "2026-01-01T00:00:00Z", "--format", "json").stdout)
    assert before["items"] == []  # the story's clock starts on 2026-01-02
    offset = cli(settings, "state", "--at", "-1h", "--format", "json")
    assert offset.exit_code == 0 and json.loads(offset.stdout)["at"] < now["at"]
    bad = cli(settings, "state", "--at", "yesterday")
    assert bad.exit_code == 2 and "is not a time" in bad.output


async def test_status_shows_mode_positions_orders_and_an_absent_service(settings, clock):
    lg = open_ledger(settings, clock=clock)
    h = Harness(lg.ledger, clock)
    entry = await h.signal(signal_id="held", quantity="1", limit_price="100", sl_price="90", tp_price="120")
    h.venue.fill(h.txid(entry), "0.5", "100")
    await h.settle()
    from execledger.domain.trading_state import TradingMode

    h.engine.control.set_mode(TradingMode.REDUCING, by="alice", why="news at 14:00")
    lg.projector.catch_up()
    lg.close()
    text = cli(settings, "status")
    assert text.exit_code == 0, text.output
    out = text.stdout
    assert "trading: reducing (by alice: news at 14:00)" in out
    assert "no service answers at http://127.0.0.1:9/v1/health" in out
    assert "open positions: 1" in out and "open orders: 2" in out  # the entry's rest and its stop
    doc = json.loads(cli(settings, "status", "--format", "json").stdout)
    assert doc["trading"]["mode"] == "reducing" and doc["service"] is None
    assert doc["positions"][0]["position"] == "0.5" and doc["positions"][0]["pair"] == "XBT/USD"
    assert {o["role"] for o in doc["open_orders"]} == {"entry", "stop_loss"}  # the take-profit is held
