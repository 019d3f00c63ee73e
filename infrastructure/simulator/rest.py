"""Kraken's REST surface: ``/0/public/<Method>`` and signed ``/0/private/<Method>``, HTTP 200 + error arrays."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web

from execledger.infrastructure.kraken.auth import verify

from . import errors as E
from .appkey import SIMULATOR
from .errors import KrakenError
from .faults import EXECUTE_FIRST, REFUSALS, Fault, FaultKind
from .methods import ORDER_ENTRY, PRIVATE, PUBLIC, Params, add_order, order_pair_name

if TYPE_CHECKING:
    from .server import KrakenSimulator

CLOUDFLARE_502 = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    "<hr><center>cloudflare</center></body></html>"
)
PRE_EXECUTE_ERRORS = REFUSALS


def ok(result: Any) -> web.Response:
    """Kraken's success envelope."""
    return web.json_response({"error": [], "result": result})


def failed(error: str) -> web.Response:
    # Kraken sends auth failures with an empty result and most other errors without one (REFERENCE.md 2).
    """Kraken's error envelope (HTTP 200)."""
    body: dict[str, Any] = {"error": [error]}
    if error.startswith("EAPI:Invalid"):
        body["result"] = {}
    return web.json_response(body)


def bad_gateway() -> web.Response:
    """What Cloudflare answers when Kraken's origin fails: HTTP 502 with an HTML page."""
    return web.Response(status=502, text=CLOUDFLARE_502, content_type="text/html")


def parse_body(text: str, content_type: str) -> Params:
    """Form-encoded or JSON body -> params (the signature was checked over ``text`` itself)."""
    if not text:
        return {}
    if "json" in content_type:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            raise KrakenError(E.invalid_arguments("body")) from None
        return parsed if isinstance(parsed, dict) else {}
    return dict(parse_qsl(text, keep_blank_values=True))


# -- aiohttp handlers ---------------------------------------------------------------------------------------------


async def handle_public(request: web.Request) -> web.Response:
    """``/0/public/<Method>`` (GET or POST)."""
    sim: KrakenSimulator = request.app[SIMULATOR]
    method = request.match_info["method"]
    sim.tick()
    params: Params = dict(request.query)
    try:
        if request.method == "POST":
            params |= parse_body(await request.text(), request.content_type)
    except KrakenError as exc:
        return failed(exc.error)
    record = sim.request_log.record(sim.clock.now(), f"/0/public/{method}", params)
    fault = sim.faults.take(method)
    if fault is not None and fault.kind not in (FaultKind.DELAY_REPLY, FaultKind.HOLD_REQUEST):
        return _pre_execute_fault(record, fault)
    if fault is not None and fault.kind is FaultKind.HOLD_REQUEST:
        record.fault = str(fault.kind)
        await sim.hold_reply(fault.seconds)
    try:
        if sim.public_limiter is not None:
            sim.public_limiter.charge(request.remote or "-", sim.clock.now())
        if method not in PUBLIC:
            raise KrakenError(E.UNKNOWN_METHOD)
        if method == "AssetPairs" and not params.get("pair"):
            response = web.Response(text=sim.asset_pairs_body(), content_type="application/json")
        else:
            response = ok(PUBLIC[method](sim, params))
    except KrakenError as exc:
        response = failed(exc.error)
        record.error = exc.error
    if fault is not None and fault.kind is FaultKind.DELAY_REPLY:
        record.fault = str(fault.kind)
        await sim.hold_reply(fault.seconds)
    return response


def _pre_execute_fault(record, fault: Fault) -> web.Response:
    record.fault = str(fault.kind)
    if fault.kind in PRE_EXECUTE_ERRORS:
        record.error = PRE_EXECUTE_ERRORS[fault.kind]
        return failed(record.error)
    record.status = 502
    return bad_gateway()


def authenticate(sim: KrakenSimulator, request: web.Request, path: str, body: str, params: Params) -> str:
    """API-Key, API-Sign and a nonce strictly above the key's last accepted one; returns the key."""
    key = request.headers.get("API-Key", "")
    secret = sim.secrets.get(key)
    if secret is None:
        raise KrakenError(E.INVALID_KEY)
    nonce = str(params.get("nonce", ""))
    signature = request.headers.get("API-Sign", "")
    if not nonce.isdigit():
        raise KrakenError(E.INVALID_NONCE)
    if not signature or not verify(path, nonce, body, secret, signature):
        raise KrakenError(E.INVALID_SIGNATURE)
    sim.nonces.accept(key, nonce)
    return key


async def handle_private(request: web.Request) -> web.Response:
    """``/0/private/<Method>``: faults, authentication, REST counter, then the method itself."""
    sim: KrakenSimulator = request.app[SIMULATOR]
    method = request.match_info["method"]
    path = f"/0/private/{method}"
    body = await request.text()
    sim.tick()
    try:
        params = parse_body(body, request.content_type)
    except KrakenError as exc:
        return failed(exc.error)
    record = sim.request_log.record(sim.clock.now(), path, params)
    fault = sim.faults.take(method)
    held = fault if fault is not None and fault.kind is FaultKind.HOLD_REQUEST else None
    if fault is not None and (fault.kind in PRE_EXECUTE_ERRORS or fault.kind is FaultKind.HTTP_502_BEFORE_EXECUTE):
        return _pre_execute_fault(record, fault)
    try:
        api_key = authenticate(sim, request, path, body, params)
        key = sim.api_keys[api_key]  # the account: orders and funds are the account's, counters the key's
        record.key = key
        if method not in PRIVATE:
            raise KrakenError(E.UNKNOWN_METHOD)
        if sim.rest_limiter is not None:
            sim.rest_limiter.charge(api_key, method, sim.clock.now())
        if held is not None:
            record.fault = str(held.kind)
            await sim.hold_reply(held.seconds)  # this request waits; the server goes on serving others
            sim.tick()
        if method in ORDER_ENTRY and sim.price_feed is not None:
            await sim.price_feed.ensure_price(order_pair_name(method, params), key)
        if fault is not None and fault.kind is FaultKind.DELAYED_ACCEPTANCE:
            add_order(sim, key, params, delay_acceptance=fault.seconds)
            record.fault, record.status = str(fault.kind), 502
            return bad_gateway()
        result = _run(PRIVATE[method], sim, key, params)
        record.result = result
        response = ok(result)
    except KrakenError as exc:
        record.error = exc.error
        response = failed(exc.error)
    if fault is not None and fault.kind in EXECUTE_FIRST:
        record.fault = str(fault.kind)
        if fault.kind is FaultKind.DELAY_REPLY:
            await sim.hold_reply(fault.seconds)
        else:
            record.status = 502
            return bad_gateway()
    return response


def _run(handler, sim: KrakenSimulator, key: str, params: Params) -> Any:
    try:
        return handler(sim, key, params)
    except (ValueError, KeyError, TypeError, ArithmeticError):
        # A filter or paging parameter that does not parse (userref, ofs, start/end txid): Kraken's generic answer.
        raise KrakenError("EGeneral:Invalid arguments") from None


def add_routes(app: web.Application) -> None:
    """Mount Kraken's REST paths."""
    app.router.add_route("GET", "/0/public/{method}", handle_public)
    app.router.add_route("POST", "/0/public/{method}", handle_public)
    app.router.add_route("POST", "/0/private/{method}", handle_private)
