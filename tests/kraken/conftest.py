"""A scriptable stub of Kraken's REST wire on 127.0.0.1:0 (aiohttp.web), for transport-level tests.

Each private request is checked against the signature scheme (auth.verify) and recorded; the answer for a method
is taken from a script: a JSON payload, an HTTP status with a body, a connection drop, or a hang (the client's
timeout fires). The full simulator (infrastructure/simulator) replaces this in integration tests.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from execledger.infrastructure.kraken.auth import decode_secret, verify
from execledger.infrastructure.kraken.breaker import CircuitBreaker
from execledger.infrastructure.kraken.credentials import KrakenCredentials
from execledger.infrastructure.kraken.rest import KrakenRestClient

SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
KEY = "TESTKEY-abcdefghijklmnop"


@dataclass(frozen=True)
class Http:
    """Answer with this status and body (e.g. a Cloudflare HTML page)."""

    status: int
    body: str = "<html><body>502 Bad Gateway</body></html>"
    content_type: str = "text/html"


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering (the request was read: it may have been processed)."""


@dataclass(frozen=True)
class Hang:
    """Never answer: the client's timeout decides."""


@dataclass
class Recorded:
    method: str
    params: dict[str, str]
    headers: dict[str, str]
    body: str


@dataclass
class StubKraken:
    secret: bytes = field(default_factory=lambda: decode_secret(SECRET), repr=False)
    requests: list[Recorded] = field(default_factory=list)
    scripts: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    url: str = ""
    never: asyncio.Event = field(default_factory=asyncio.Event)

    def on(self, method: str, *answers) -> None:
        """Queue answers for ``method``; the last one repeats."""
        self.scripts[method].extend(answers)

    def calls(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method]

    def _next(self, method: str):
        script = self.scripts.get(method)
        if not script:
            return {"error": ["EGeneral:Unknown method"]}
        return script.pop(0) if len(script) > 1 else script[0]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        body = await request.text()
        params = dict(parse_qsl(body)) if request.method == "POST" else dict(request.query)
        headers = dict(request.headers)
        signed = verify(request.path, params.get("nonce", ""), body, self.secret, headers.get("API-Sign", ""))
        if request.path.startswith("/0/private/") and not signed:
            return web.json_response({"error": ["EAPI:Invalid signature"]})
        self.requests.append(Recorded(method, params, headers, body))
        answer = self._next(method)
        if callable(answer):
            answer = answer(params)
        if isinstance(answer, Http):
            return web.Response(status=answer.status, text=answer.body, content_type=answer.content_type)
        if isinstance(answer, Drop):
            request.transport.close()
            return web.Response()
        if isinstance(answer, Hang):
            await self.never.wait()
        return web.Response(text=json.dumps(answer), content_type="application/json")


@pytest.fixture
async def stub():
    kraken = StubKraken()
    app = web.Application()
    app.router.add_route("*", "/0/{kind}/{method}", kraken.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    kraken.url = f"http://127.0.0.1:{server.port}"
    yield kraken
    kraken.never.set()
    await server.close()


@pytest.fixture
def credentials() -> KrakenCredentials:
    return KrakenCredentials(key=KEY, secret=SecretStr(SECRET))


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def breaker(fake_time) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, reset_timeout_s=30.0, clock=fake_time.monotonic)


@pytest.fixture
async def rest(stub, credentials, tmp_path, breaker):
    # Hang() answers cost this much real time; shorter made a loaded machine time out answers that came (CI flake).
    client = KrakenRestClient(stub.url, credentials, data_dir=tmp_path, breaker=breaker, timeout_s=1.0)
    yield client
    await client.close()


class FakeTime:
    """A monotonic clock and a sleep that advances it instantly, for limiters, breakers and retries."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # yield to the loop like a real sleep, but take no time
