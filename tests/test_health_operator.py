"""Health says what an operator needs to know: which process trades, and which commands still wait for it.

The hostile tester's findings: on PostgreSQL ``/v1/health`` named the trading process "backend pid N" (the
PostgreSQL backend of its lock session), and it said ``mode: running`` while a halt recorded with no trading
process running waited to be carried out. Now ``trading.process`` names the trading process itself (pid, host,
since), and ``trading.pending_commands`` counts the commands recorded but not carried out, with the oldest's
kind, who and age; one that waited longer than ``pending_command_age_s`` makes health ``degraded``.
"""

from __future__ import annotations

import os
import socket
import sys
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from execledger.domain.commands import CommandKind
from execledger.infrastructure.api import ApiContext, create_api
from execledger.infrastructure.api.ops_models import HealthResponse
from execledger.infrastructure.bootstrap import build_trading, open_ledger
from execledger.infrastructure.commandbus import CommandBus
from execledger.infrastructure.health import HealthMonitor, assess, pending_commands
from execledger.infrastructure.writerlock import WriterLock
from tests.fakes import FakeExchange
from tests.faults.harness import wait_until
from tests.processes import Deployment, trading_process_seen


async def health(lg) -> dict:
    async with TestClient(TestServer(create_api(ApiContext(ledger=lg, bus=CommandBus(lg, role="api"))))) as client:
        r = await client.get("/v1/health")
        body = await r.json()
    HealthResponse.model_validate(body)  # the answer is what the OpenAPI document says
    return body


async def test_health_names_the_trading_process_itself_on_both_backends(settings):
    with WriterLock(settings), open_ledger(settings) as lg:
        process = (await health(lg))["trading"]["process"]
    assert process.startswith(f"pid {os.getpid()} on {socket.gethostname()} since "), process
    assert "backend" not in process


async def test_a_command_waiting_for_a_trading_process_is_reported_until_it_is_carried_out(settings, clock):
    with WriterLock(settings):  # a trading process ran on this ledger once
        pass
    with open_ledger(settings, clock=clock) as lg:
        bus = CommandBus(lg, role="cli")
        halt = bus.issue(CommandKind.HALT, {"cancel_entries": True}, by="bob", why="incident 9")
        bus.issue(CommandKind.RESUME, {}, by="bob", why="false alarm")

        body = await health(lg)
        assert body["trading"]["mode"] == "running" and body["trading"]["process"] is None
        pending = body["trading"]["pending_commands"]
        assert pending["count"] == 2
        assert pending["oldest"]["command_id"] == str(halt.id) and pending["oldest"]["kind"] == "halt"
        assert pending["oldest"]["by"] == "bob"

        later = HealthMonitor(
            role="api",
            pending=pending_commands(lg.app, lg.commands),
            trades=False,
            clock=lambda: clock.now() + timedelta(seconds=42),
        )
        verdict = assess(later.snapshot())
        assert verdict.status == "degraded"
        [warning] = verdict.warnings
        assert "the halt recorded by bob 42s ago is not carried out yet (2 waiting)" in warning
        assert "no trading process is running" in warning

        trading = build_trading(lg, FakeExchange(clock))  # the trading process starts: commands first
        assert trading.service.pull_commands() == 2
        assert (await health(lg))["trading"]["pending_commands"] == {"count": 0, "oldest": None}
        assert assess(later.snapshot()).status == "ok"


async def test_a_split_deployment_names_the_trading_process_by_its_own_pid(tmp_path, settings):
    async with Deployment(tmp_path, settings) as d:
        trading, _ = await d.service("trading", "--role", "trading")
        api_proc, api = await d.service("api", "--role", "api")
        await wait_until(
            lambda: trading_process_seen(d, api), timeout=60, what="trading process seen by the api", process=trading
        )
        named = (await d.get(f"{api}/v1/health"))["trading"]["process"]
        assert named.startswith(f"pid {trading.proc.pid} on {socket.gethostname()} since "), named
        for proc in (api_proc, trading):
            assert await proc.terminate() == 0, proc.tail()


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("process tests assume Linux")
