"""A small typed Python client for execledger's HTTP API (aiohttp).

    async with ExecledgerClient("http://127.0.0.1:8080", token=None) as api:
        placed = await api.submit_signal({"signal_id": "s-1", "pair": "XBT/USD", "side": "buy",
                                          "order_type": "market", "quantity": "0.01"})
        story = await api.get_signal("s-1")          # or any order id, txid or cl_ord_id
        await api.close_signal("s-1", reason="flat before the news")
        await api.halt(reason="maintenance", cancel_entries=True)

Every call returns the decoded JSON body. An answer the API gives as a refusal raises ``ApiError`` with the HTTP
status, the ``error`` text and the per-field ``errors`` (422), so callers can tell "invalid signal" (422) from
"trading halted" (423), "same id, other content" (409) and "not found" (404). A command the trading process has
not confirmed yet is *not* an error: its 202 body (``status: recorded``) is returned. Transport failures surface as
aiohttp's own exceptions; nothing is retried here (a resubmitted signal is answered idempotently by signal_id, so
the caller may retry ``submit_signal`` safely).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict
from urllib.parse import quote

import aiohttp


class ApiError(Exception):
    """A 4xx/5xx answer (other than the health routes' 503, which is returned: it is the health)."""

    def __init__(self, status: int, error: str, body: dict[str, Any]):
        self.status, self.error, self.body = status, error, body
        self.errors: list[dict[str, Any]] = list(body.get("errors") or [])
        super().__init__(f"HTTP {status}: {error}" + (f" {self.errors}" if self.errors else ""))


class SignalIn(TypedDict, total=False):
    """The signal shape of DESIGN.md (quantities and prices as decimal strings)."""

    signal_id: str
    pair: str
    side: str
    order_type: str
    quantity: str
    limit_price: str
    sl_price: str
    tp_price: str
    timeout_s: float
    tags: dict[str, str]


class SignalAccepted(TypedDict):
    order_id: str
    signal_id: str
    status: str
    cl_ord_id: str
    created: bool


@dataclass
class ExecledgerClient:
    base_url: str
    token: str | None = None
    timeout_s: float = 30.0
    session: aiohttp.ClientSession | None = None
    _owns: bool = field(default=False, init=False)

    async def __aenter__(self) -> ExecledgerClient:
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
            self._owns = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns and self.session is not None:
            await self.session.close()
            self.session = None

    # --- transport -----------------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        ok: tuple[int, ...] = (200, 201, 202),
    ) -> dict[str, Any]:
        if self.session is None:
            await self.__aenter__()
        assert self.session is not None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        async with self.session.request(
            method, self.base_url.rstrip("/") + path, json=json, params=query, headers=headers
        ) as r:
            try:
                body = await r.json(content_type=None)
            except ValueError:
                body = {"error": (await r.text())[:200]}
            if r.status not in ok:
                raise ApiError(
                    r.status, str((body or {}).get("error", r.reason)), body if isinstance(body, dict) else {}
                )
            return body

    # --- signals and orders --------------------------------------------------------------------------------

    async def submit_signal(self, signal: SignalIn | Mapping[str, Any]) -> SignalAccepted:
        """POST /v1/signals: 201 a new order, 200 the same signal again (``created`` says which)."""
        # The body of a 200/201 from POST /v1/signals is a SignalAccepted (the API's own model says so).
        return await self._call("POST", "/v1/signals", json=dict(signal))  # type: ignore[return-value]

    async def get_signal(self, ident: str) -> dict[str, Any]:
        """GET /v1/signals/{id}: summary, orders and timeline (``status: placed``); ``ident`` is a signal id, order id,
        txid or cl_ord_id. A signal recorded (its POST answered 202) and not placed: ``status: pending``, or
        ``status: refused`` with ``refusal``, ``reason`` and ``refused_at``; ApiError 404 for an id never seen."""
        return await self._call("GET", f"/v1/signals/{quote(ident, safe='')}")

    async def get_order(self, ident: str) -> dict[str, Any]:
        """GET /v1/orders/{id}: the projected order and its full history (any of the four ids)."""
        return await self._call("GET", f"/v1/orders/{quote(ident, safe='')}")

    async def orders(self, **filters: Any) -> dict[str, Any]:
        """GET /v1/orders with ``signal_id``, ``pair``, ``status``, ``since``, ``until``, ``limit``, ``offset``."""
        return await self._call("GET", "/v1/orders", params=filters)

    async def fills(self, **filters: Any) -> dict[str, Any]:
        return await self._call("GET", "/v1/fills", params=filters)

    async def execution_reports(self, **filters: Any) -> dict[str, Any]:
        return await self._call("GET", "/v1/execution-reports", params=filters)

    # --- operator commands (answered with the trading process's receipt, or 202 while it has not answered) ---

    async def cancel_order(self, ident: str, *, reason: str, by: str = "client") -> dict[str, Any]:
        return await self._call("POST", f"/v1/orders/{quote(ident, safe='')}/cancel", json={"reason": reason, "by": by})

    async def close_signal(self, signal_id: str, *, reason: str, by: str = "client") -> dict[str, Any]:
        return await self._call(
            "POST", f"/v1/signals/{quote(signal_id, safe='')}/close", json={"reason": reason, "by": by}
        )

    async def halt(
        self, *, reason: str, by: str = "client", cancel_entries: bool = False, reducing: bool = False
    ) -> dict[str, Any]:
        body = {"reason": reason, "by": by, "cancel_entries": cancel_entries, "reducing": reducing}
        return await self._call("POST", "/v1/trading/halt", json=body)

    async def resume(self, *, reason: str = "resumed", by: str = "client") -> dict[str, Any]:
        return await self._call("POST", "/v1/trading/resume", json={"reason": reason, "by": by})

    # --- health --------------------------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """GET /v1/health; a 503 body is returned, not raised (it says why the service cannot trade)."""
        return await self._call("GET", "/v1/health", ok=(200, 503))

    async def ready(self) -> bool:
        return bool((await self._call("GET", "/v1/health/ready", ok=(200, 503))).get("ready"))
