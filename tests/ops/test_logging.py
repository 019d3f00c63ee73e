"""Logging: configured from EXECLEDGER_LOG_*, one line per decision and fact with its ids, repeats collapsed,
secrets redacted."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from execledger.infrastructure.eventlog import EventLogger
from execledger.infrastructure.logconfig import (
    RepeatFilter,
    configure_from_settings,
    configure_logging,
    log_context,
    secrets_of,
)
from execledger.infrastructure.settings import Settings
from tests.harness import Harness
from tests.ops.scenario import scripted_lifecycle


@pytest.fixture
def json_lines():
    """Install execledger's JSON handler on an in-memory stream; yields a function returning the parsed lines."""
    buffer = io.StringIO()
    handler = configure_logging(fmt="json", stream=buffer, level="INFO")
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    logging.getLogger().removeHandler(handler)


async def test_a_lifecycle_logs_one_line_per_decision_and_fact_with_its_ids(ledger, clock, pairs, json_lines):
    h = Harness(ledger, clock)
    h.engine.uow.add_listener(EventLogger(pairs))
    story = await scripted_lifecycle(h, clock)
    lines = [line for line in json_lines() if line["logger"] in ("execledger.orders", "execledger.trading")]

    def of(order, event):
        return [line for line in lines if line.get("order_id") == str(order.id) and line.get("event") == event]

    entry, tp, sl = story["entry"], story["tp"], story["sl"]
    [accepted] = of(entry, "Placed")
    assert accepted["message"] == "accepted signal life-tp: buy 1 XBT/USD limit @ 100 sl 90 tp 120"
    assert accepted["signal_id"] == "life-tp" and accepted["level"] == "INFO" and accepted["time"].endswith("Z")
    assert accepted["cl_ord_id"] == entry.cl_ord_id and accepted["rule"] == "approved_signal"
    [placed] = of(entry, "Acknowledged")
    assert placed["txid"] == entry.txid and entry.txid in placed["message"]
    [fill] = of(entry, "Filled")
    assert fill["message"].startswith("fill 1 @ 100 (fee 0.16 ZUSD); 1 of 1 filled, complete")
    [bracket] = of(entry, "BracketPlaced")
    assert bracket["message"] == "bracket 0: protect 1 with stop 90 and take-profit 120 [bracket_placed]"
    [leg] = of(sl, "Placed")
    assert leg["message"].startswith("stop_loss leg decided: sell 1 XBT/USD") and leg["signal_id"] == "life-tp"
    [oco] = of(sl, "CancelRequested")
    assert oco["message"].startswith("OCO: cancel requested [oco_cancel_sibling]") and oco["role"] == "stop_loss"
    assert of(tp, "Filled") and of(sl, "Canceled")
    [timeout] = of(story["late"], "TimedOut")
    assert timeout["message"].startswith("timeout: open 61s, threshold 60s") and timeout["signal_id"] == "life-timeout"
    [rejection] = of(story["rejected"], "Rejected")
    assert rejection["level"] == "WARNING"
    assert rejection["message"] == "rejected (permanent): EOrder:Insufficient funds"
    modes = [line["message"] for line in lines if line.get("event") == "ModeChanged"]
    assert modes == [
        "trading mode halted (by ops-test: maintenance window)",
        "trading mode running (by ops-test: maintenance over)",
    ]
    # every order line carries the ids; sending is logged once per order
    order_lines = [line for line in lines if line["logger"] == "execledger.orders"]
    assert all(line.get("signal_id") and line.get("order_id") and line.get("cl_ord_id") for line in order_lines)
    assert len(of(entry, "Submitted")) == 1


async def test_reconciliation_findings_say_so(ledger, clock, pairs, json_lines):
    h = Harness(ledger, clock)
    h.engine.uow.add_listener(EventLogger(pairs))
    entry = await h.signal(signal_id="recon")
    h.venue.fill(h.txid(entry), "1", "100")
    h.venue.drain()  # the stream loses the fill: only reconciliation will find it
    await h.service.reconcile()
    [fill] = [line for line in json_lines() if line.get("event") == "Filled"]
    assert fill["message"].startswith("reconciliation: fill 1 @ 100") and fill["signal_id"] == "recon"


async def test_context_ids_follow_each_task_and_explicit_extras_win(json_lines):
    log = logging.getLogger("execledger.kraken.test")

    async def worker(signal_id: str, started: asyncio.Event, go: asyncio.Event):
        with log_context(signal_id=signal_id, order_id=f"o-{signal_id}"):
            started.set()
            await go.wait()  # both tasks are inside their contexts at the same time
            log.warning("venue slow")
            log.info("explicit", extra={"order_id": "given"})

    go = asyncio.Event()
    a, b = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(worker("A", a, go)), asyncio.create_task(worker("B", b, go))]
    await a.wait()
    await b.wait()
    go.set()
    await asyncio.gather(*tasks)
    log.info("outside")
    lines = [line for line in json_lines() if line["logger"] == "execledger.kraken.test"]
    slow = {line["signal_id"]: line["order_id"] for line in lines if line["message"] == "venue slow"}
    assert slow == {"A": "o-A", "B": "o-B"}
    assert {line["order_id"] for line in lines if line["message"] == "explicit"} == {"given"}
    [outside] = [line for line in lines if line["message"] == "outside"]
    assert "signal_id" not in outside


def test_repeated_warnings_are_collapsed_with_a_count():
    now = [0.0]
    buffer = io.StringIO()
    handler = configure_logging(fmt="json", stream=buffer)
    handler.filters = [f for f in handler.filters if not isinstance(f, RepeatFilter)]
    handler.addFilter(RepeatFilter(window_s=60, clock=lambda: now[0]))
    log = logging.getLogger("execledger.test.repeat")
    try:
        for second in range(120):  # two a second for a minute, the outage of the issue
            now[0] = second / 2
            log.warning("sending: the venue is unavailable for now")
        log.warning("another message")
        for method in ("OpenOrders", "TradesHistory"):
            for ms in range(5):  # the same failure with another duration is a repeat; another method is not
                log.warning("Kraken %s failed after %.3fs: cannot connect", method, ms / 1000)
        log.info("info lines are never collapsed")
        log.info("info lines are never collapsed")
        now[0] = 61
        log.warning("sending: the venue is unavailable for now")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    outage = [line for line in lines if line["message"].startswith("sending")]
    assert len(outage) == 2 and "repeated" not in outage[0] and outage[1]["repeated"] == 119
    assert sum(line["message"] == "info lines are never collapsed" for line in lines) == 2
    failed = [line["message"] for line in lines if "failed after" in line["message"]]
    assert failed == [
        "Kraken OpenOrders failed after 0.000s: cannot connect",
        "Kraken TradesHistory failed after 0.000s: cannot connect",
    ]


def test_text_format_has_date_time_level_logger_and_ids():
    buffer = io.StringIO()
    handler = configure_logging(fmt="text", stream=buffer)
    try:
        with log_context(signal_id="s-1", order_id="o-1"):
            logging.getLogger("execledger.orders").info("fill 1 @ 100")
    finally:
        logging.getLogger().removeHandler(handler)
    [line] = buffer.getvalue().splitlines()
    stamp, level, logger, *_rest = line.split()
    assert stamp[:4].isdigit() and stamp[10] == "T" and stamp.endswith("Z")
    assert (level, logger) == ("INFO", "execledger.orders")
    assert line.endswith("fill 1 @ 100  signal_id=s-1 order_id=o-1")


def test_secrets_from_settings_are_redacted_in_messages_and_tracebacks(tmp_path):
    secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
    settings = Settings(
        data_dir=tmp_path,
        kraken_key="K-api-key-value",
        kraken_secret=secret,
        api_token="tok-abcdef-123-0123456789abcdef0123",
        database_url="postgresql://user:hunter2pass@127.0.0.1:5432/db",
        notify_webhook_urls="https://hooks.example/T000/B000/XXXX",
        log_format="json",
        log_file=tmp_path / "logs" / "execledger.log",
    )
    handler = configure_from_settings(settings)
    log = logging.getLogger("execledger.test.secrets")
    try:
        log.warning("signing with %s for %s", secret, "K-api-key-value")
        try:
            raise RuntimeError(
                "bad token tok-abcdef-123-0123456789abcdef0123 on postgresql://user:hunter2pass@host "
                "(hooks.example/T000)"
            )
        except RuntimeError:
            log.exception("failed calling https://hooks.example/T000/B000/XXXX")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    text = (tmp_path / "logs" / "execledger.log").read_text()
    for needle in (
        secret,
        "K-api-key-value",
        "tok-abcdef-123-0123456789abcdef0123",
        "hunter2pass",
        "hooks.example/T000/B000/XXXX",
    ):
        assert needle not in text
    assert "signing with *** for ***" in text and "bad token ***" in text
    assert len(secrets_of(settings)) >= 5


def test_log_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EXECLEDGER_LOG_LEVEL", "debug")
    monkeypatch.setenv("EXECLEDGER_LOG_FORMAT", "JSON")
    monkeypatch.setenv("EXECLEDGER_LOG_FILE", str(tmp_path / "x.log"))
    s = Settings()
    assert (s.log_level, s.log_format, s.log_file) == ("DEBUG", "json", tmp_path / "x.log")
    monkeypatch.setenv("EXECLEDGER_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()
