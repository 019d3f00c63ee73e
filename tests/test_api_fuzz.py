"""A property-based fuzz of the HTTP API against its own OpenAPI document (schemathesis): generated requests, valid
and invalid by the schema, over a real socket. Every answer must be documented (status, content type, body
schema), none may be a 5xx, and a refused request must write nothing. Bounded and derandomized: the same examples
every run. Both backends."""

import asyncio
import os

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from execledger.application.service import ServiceConfig
from execledger.infrastructure.api import OPENAPI, ApiContext, create_api
from execledger.infrastructure.bootstrap import build_trading, open_ledger
from execledger.infrastructure.commandbus import CommandBus
from tests.fakes import FakeExchange

EXAMPLES = int(os.environ.get("EXECLEDGER_FUZZ_EXAMPLES", "200"))
TOKEN = "f" * 40
# Semantic answers the schema cannot predict: a schema-valid signal for an unknown pair is a 422, a schema-valid
# order id that does not exist a 404. Checking them would test schemathesis' guesses, not the API.
EXCLUDED = ("positive_data_acceptance", "missing_required_header", "unsupported_method", "ignored_auth")


@pytest.fixture
async def server(settings, clock):
    lg = open_ledger(settings, clock=clock)
    trading = build_trading(lg, FakeExchange(clock), ServiceConfig(deadman_enabled=False, tick_interval_s=0.05))
    task = asyncio.create_task(trading.service.run())
    await asyncio.wait_for(trading.service.recovered.wait(), 10)
    bus = CommandBus(lg, role="test", local_trading=trading.service)
    ctx = ApiContext(ledger=lg, bus=bus, service=trading.service, token=TOKEN, receipt_timeout_s=0.5)
    runner = web.AppRunner(create_api(ctx))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", Written(lg)
    await runner.cleanup()
    await trading.service.stop()
    await asyncio.wait_for(task, 10)
    lg.close()


class Written:
    def __init__(self, lg):
        self.lg = lg

    def max_notification_id(self) -> int:
        # Only the commands log: an API process writes nothing else, and the trading process's own writes (the
        # venue's rules at start, the outcomes of accepted signals) happen in the background meanwhile.
        return self.lg.commands.recorder.max_notification_id() or 0


def fuzz(base_url: str, recorder) -> dict[int, int]:
    schema = schemathesis.openapi.from_dict(OPENAPI)
    checks = [c for c in schemathesis.checks.CHECKS.get_all() if c.__name__ not in EXCLUDED]
    auth = {"Authorization": f"Bearer {TOKEN}"}  # fixed, so negative cases never mutate it away and back
    strategy = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE, headers=auth),
        schema.as_strategy(GenerationMode.NEGATIVE, headers=auth),
    )
    seen: dict[int, int] = {}
    session = requests.Session()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def one(case):
        before = recorder.max_notification_id() or 0
        response = case.call(base_url=base_url, session=session)
        after = recorder.max_notification_id() or 0
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:300]}"
        if response.status_code >= 300:
            assert after == before, f"a refused request wrote events: {case.method} {case.formatted_path}"
        case.validate_response(response, checks=checks)

    one()
    return seen


async def test_fuzzed_requests_get_documented_answers_and_no_server_error(server):
    base_url, recorder = server
    seen = await asyncio.to_thread(fuzz, base_url, recorder)
    assert not any(status >= 500 for status in seen), seen
    assert any(200 <= status < 300 for status in seen) and any(400 <= status < 500 for status in seen), seen
