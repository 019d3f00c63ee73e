"""Fixtures for the simulator's tests: a frozen-clock simulator on 127.0.0.1:0 and a minimal signed client."""

from __future__ import annotations

import itertools
import json
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from execledger.infrastructure.kraken.auth import decode_secret, sign
from execledger.infrastructure.simulator import KrakenSimulator

FROZEN_AT = 1_750_000_000.0


class WireClient:
    """Signs private calls exactly as Kraken documents (form or JSON body) and returns the raw response."""

    def __init__(
        self, session: aiohttp.ClientSession, sim: KrakenSimulator, key: str | None = None, secret: str | None = None
    ):
        self.session = session
        self.base = sim.rest_url
        self.key = key or sim.key
        self.secret = decode_secret(secret or sim.secret)
        self._nonces = itertools.count(1_000_000)

    async def raw(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        as_json: bool = False,
        nonce: int | None = None,
        signature: str | None = None,
        timeout: float | None = None,
    ):
        nonce = next(self._nonces) if nonce is None else nonce
        data = {"nonce": str(nonce), **(params or {})}
        body = json.dumps(data) if as_json else urlencode(data)
        path = f"/0/private/{method}"
        headers = {
            "API-Key": self.key,
            "API-Sign": signature or sign(path, nonce, body, self.secret),
            "Content-Type": "application/json" if as_json else "application/x-www-form-urlencoded",
        }
        return await self.session.post(
            self.base + path, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        )

    async def call(self, method: str, params: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """The parsed envelope of a private call that must come back HTTP 200."""
        response = await self.raw(method, params, **kwargs)
        assert response.status == 200, await response.text()
        return await response.json()

    async def result(self, method: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """The ``result`` of a call that must succeed."""
        body = await self.call(method, params, **kwargs)
        assert body["error"] == [], body
        return body["result"]

    async def public(self, method: str, **query: str) -> dict[str, Any]:
        async with self.session.get(f"{self.base}/0/public/{method}", params=query) as response:
            assert response.status == 200
            return await response.json()


@pytest.fixture
async def sim():
    async with KrakenSimulator(seed=7, clock_start=FROZEN_AT, heartbeat_interval=0.05, tier=None) as simulator:
        yield simulator


@pytest.fixture
async def wire(sim):
    async with aiohttp.ClientSession() as session:
        yield WireClient(session, sim)
