"""A signal answered 202 "recorded" leaves a trace its caller can find (the break test's finding, 2026-12-02).

Before: with the trading process busy or down, ``POST /v1/signals`` answered 202, the next trading process refused
the recorded command (``stale``, ``busy``) on its receipt only, and ``GET /v1/signals/{id}`` answered 404 for ever:
"refused" could not be told from "still pending", and no refusal was logged. Now the GET answers 202 ``pending``
while the command waits and 200 ``refused`` (kind, reason, when, by whom) once it is refused; every refusal of a
signal is one log line, whether refused at once by the API or later by the trading process.
"""

from __future__ import annotations

import json
import logging
import os

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from execledger.domain.commands import SignalRefusals, signal_command_id, signal_refusals_id
from execledger.infrastructure.api import ApiContext, create_api
from execledger.infrastructure.api.ops_models import SignalAnswer, SignalNotPlaced
from execledger.infrastructure.bootstrap import build_trading, open_ledger
from execledger.infrastructure.cli import main
from execledger.infrastructure.commandbus import CommandBus
from execledger.infrastructure.eventlog import EventLogger
from execledger.infrastructure.writerlock import WriterLock
from tests.fakes import FakeExchange

SIGNAL = {"signal_id": "late-1", "pair": "XBT/USD", "side": "buy", "order_type": "market", "quantity": "1"}


def refusal_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "execledger.signals"]


def cli_audit(settings, *args):
    env = {k: None for k in os.environ if k.startswith("EXECLEDGER_")}
    env["EXECLEDGER_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url is not None:
        env["EXECLEDGER_DATABASE_URL"] = settings.database_url.get_secret_value()
    return CliRunner().invoke(main, ["audit", *args], env={**env, "COLUMNS": "250"})


def carry_out_recorded_commands(settings, clock) -> int:
    """What the next trading process does first (with its log lines): carry out the commands recorded meanwhile."""
    with open_ledger(settings, clock=clock) as lg:
        lg.engine.uow.add_listener(EventLogger(lg.pairs))
        trading = build_trading(lg, FakeExchange(clock))
        return trading.service.pull_commands()


@pytest.fixture
async def api(settings, clock):
    """An ``--role api`` process while a trading process holds the writer lock but does not answer (busy, or
    about to die): every POST that records a command is answered 202."""
    with open_ledger(settings, clock=clock) as lg, WriterLock(settings):
        ctx = ApiContext(ledger=lg, bus=CommandBus(lg, role="api"), receipt_timeout_s=0.05)
        async with TestClient(TestServer(create_api(ctx))) as client:
            yield client, lg


async def test_a_signal_refused_after_202_answers_its_refusal_and_pending_says_pending(api, settings, clock, caplog):
    client, _lg = api
    caplog.set_level(logging.INFO)
    posted = await client.post("/v1/signals", json=SIGNAL)
    recorded = await posted.json()
    assert posted.status == 202 and recorded["status"] == "recorded", recorded
    assert recorded["command_id"] == str(signal_command_id("late-1", 0))

    r = await client.get("/v1/signals/late-1")
    pending = await r.json()
    assert r.status == 202 and pending["status"] == "pending" and pending["command_id"] == recorded["command_id"]
    assert pending["refused_times"] == 0 and "refusal" not in pending
    SignalNotPlaced.model_validate(pending)  # as documented

    clock.advance(61)  # the next trading process reads it after the signal's maximum age (60 s)
    assert carry_out_recorded_commands(settings, clock) == 1
    [line] = refusal_lines(caplog)  # the trading process logged the refusal once, with the signal's id and kind
    assert line.levelno == logging.WARNING and (line.signal_id, line.refusal) == ("late-1", "stale")
    assert line.getMessage().startswith("signal late-1 refused (stale): the signal waited 61.0s")
    assert line.command_id == recorded["command_id"]

    r = await client.get("/v1/signals/late-1")
    refused = await r.json()
    assert r.status == 200 and refused["status"] == "refused" and refused["refusal"] == "stale", refused
    assert "maximum age 60s" in refused["reason"] and refused["command_id"] == recorded["command_id"]
    assert refused["refused_at"].startswith("2026-01-02T03:05:06") and refused["refused_times"] == 1
    assert refused["refused_by"] and refused["recorded_at"].startswith("2026-01-02T03:04:05")
    SignalAnswer.model_validate(refused)

    page = await client.get("/console/signals/late-1")  # the console's page of the signal says the same
    text = await page.text()
    assert page.status == 200 and "refused" in text and "stale" in text and "maximum age 60s" in text
    audit = cli_audit(settings, "late-1")  # and so does `execledger audit`
    assert audit.exit_code == 0 and "refused (stale)" in audit.output and recorded["command_id"] in audit.output

    again = await (await client.post("/v1/signals", json=SIGNAL)).json()  # the caller posts it again: attempt 1
    assert again["status"] == "recorded" and again["command_id"] == str(signal_command_id("late-1", 1))
    r = await client.get("/v1/signals/late-1")
    assert r.status == 202 and (await r.json())["refused_times"] == 1
    assert "pending" in await (await client.get("/console/signals/late-1")).text()
    audit = json.loads(cli_audit(settings, "late-1", "--format", "json").output)
    assert [(i["status"], i["refused_times"]) for i in audit["items"]] == [("pending", 1)]
    assert cli_audit(settings, "never-seen").exit_code == 5
    assert (await client.get("/v1/signals/never-seen")).status == 404


async def test_a_signal_posted_twice_while_pending_is_one_command(api):
    client, lg = api
    first = await (await client.post("/v1/signals", json=SIGNAL)).json()
    second = await (await client.post("/v1/signals", json=SIGNAL)).json()
    assert first["command_id"] == second["command_id"] and lg.commands.recorder.max_notification_id() == 1
    other = await client.post("/v1/signals", json={**SIGNAL, "quantity": "2"})
    assert other.status == 409 and (await other.json())["refusal"] == "conflict"
    assert lg.commands.recorder.max_notification_id() == 1


async def test_refusals_of_one_signal_are_counted_and_the_newest_is_found_by_one_read(api, settings, clock):
    client, lg = api
    for _attempt in range(3):
        assert (await client.post("/v1/signals", json=SIGNAL)).status == 202
        clock.advance(61)
        assert carry_out_recorded_commands(settings, clock) == 1
    latest = CommandBus(lg, role="api").latest_refusal("late-1")
    assert isinstance(latest, SignalRefusals.Event) and latest.originator_version == 3
    assert latest.originator_id == signal_refusals_id("late-1")
    body = await (await client.get("/v1/signals/late-1")).json()
    assert body["refused_times"] == 3 and body["command_id"] == str(signal_command_id("late-1", 2))


async def test_signals_refused_at_once_are_logged_once_each(api, caplog):
    client, _lg = api
    caplog.set_level(logging.INFO)
    r = await client.post("/v1/signals", json={**SIGNAL, "signal_id": "bad-sl", "sl_price": "1e3"})
    assert r.status == 422
    r = await client.post("/v1/signals", json={**SIGNAL, "signal_id": "evil\nFAKE line", "quantity": "-1"})
    assert r.status == 422
    invalid, evil = refusal_lines(caplog)
    assert (invalid.signal_id, invalid.refusal, invalid.http_status) == ("bad-sl", "invalid", 422)
    assert invalid.getMessage().startswith("signal bad-sl refused (invalid): ") and "sl_price" in invalid.getMessage()
    assert "\n" not in evil.getMessage() and evil.signal_id == "evil\\nFAKE line"  # one line, whatever the input
    assert (await client.get("/v1/signals/bad-sl")).status == 404  # refused at once: nothing was recorded
