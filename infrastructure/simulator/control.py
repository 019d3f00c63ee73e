"""The simulator's own control surface, ``/_sim/...`` (JSON, unsigned; not part of Kraken's API).

``GET /_sim`` lists every route. A bad value is HTTP 400 with ``{"error": ...}`` naming the field and, for a
choice, every valid value.

| route | body / query | does |
|---|---|---|
| ``POST /_sim/price`` | ``{pair, price, qty?}`` | a trade at ``price``: the mark moves, orders react |
| ``POST /_sim/index`` | ``{pair, price}`` (``null`` follows the mark) | the index price ``trigger=index`` watches |
| ``POST /_sim/advance`` | ``{pair?, steps?}`` | walk the price path (every pair without ``pair``) |
| ``POST /_sim/time`` | ``{seconds}`` | advance simulator time; timers, expiry, dead man's switch, tapes run |
| ``POST /_sim/faults`` | ``{path, kind, count?, seconds?}`` | misbehave on the next calls of a method |
| ``GET /_sim/faults``, ``DELETE /_sim/faults`` | | pending faults; drop them |
| ``GET /_sim/requests`` | ``?method=&cl_ord_id=`` | the request log (REST and WS trading) |
| ``GET/POST /_sim/balances`` | ``{asset: amount}`` | balances (negative amounts allowed) |
| ``POST /_sim/fees`` | ``{default: base|quote}`` | where an account's fees go without fcib/fciq |
| ``POST /_sim/holds`` | ``{untriggered_stops: bool}`` | whether untriggered stops hold funds |
| ``GET /_sim/asset_pairs`` | ``?pair=`` | the AssetPairs entries served |
| ``POST /_sim/asset_pairs`` | ``{pair, changes: {field: value}}`` | change a pair's rules (e.g. pair_decimals) |
| ``POST /_sim/nonce`` | ``{ahead_s}`` or ``{window}`` | another client's nonce N s ahead; the nonce window |
| ``POST /_sim/tape`` | ``{pair, path?, speed?}`` | play a Kraken trade CSV (``speed`` null: by step) |
| ``POST /_sim/tape/step`` | ``{pair, rows?}`` | play the next rows of a tape now |
| ``GET /_sim/tape`` | | each tape's progress |
| ``GET /_sim/orders`` | | the book: open orders per pair with a mark |
| ``GET /_sim/history`` | | every order, open or closed |
| ``POST /_sim/status`` | ``{status}`` | SystemStatus: online, maintenance, cancel_only, post_only |
| ``POST /_sim/ws/{disconnect|stall|resume}`` | | drop every WS connection / silence them / resume |

Fault kinds (``faults.FaultKind``): delay_reply, hold_request, http_502_after_execute, http_502_before_execute,
service_unavailable, service_busy, api_rate_limit, order_rate_limit, invalid_nonce, insufficient_funds,
delayed_acceptance (AddOrder only). WS trading methods take delay_reply, hold_request and the refusals.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from execledger.domain.values import plain

from .appkey import SIMULATOR

if TYPE_CHECKING:
    from .server import KrakenSimulator

ROUTES: list[tuple[str, str, str]] = []
MAX_STEPS = 100_000  # price-path steps per request: more would hold the server
MAX_ADVANCE_S = 10 * 365 * 86400.0
MAX_HOLD_S = 3600.0


class BadRequest(Exception):
    """A control request that cannot be carried out; the message names the field and the valid values."""


def _sim(request: web.Request) -> KrakenSimulator:
    return request.app[SIMULATOR]


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _field(body: dict[str, Any], name: str) -> Any:
    if name not in body:
        raise BadRequest(f"missing field {name!r}")
    return body[name]


def _number(
    body: dict[str, Any],
    name: str,
    default: Any = None,
    kind=float,
    low: float | None = None,
    high: float | None = None,
) -> Any:
    """A finite number field within [low, high]; BadRequest names the field and the range otherwise."""
    value = body.get(name, default)
    if value is None:
        raise BadRequest(f"missing field {name!r}")
    try:
        number = kind(value)
        finite = math.isfinite(number)
    except (TypeError, ValueError, OverflowError):
        raise BadRequest(f"field {name!r} must be a number, not {value!r}") from None
    if not finite or (low is not None and number < low) or (high is not None and number > high):
        bounds = f" from {low:g} to {high:g}" if low is not None and high is not None else ""
        raise BadRequest(f"field {name!r} must be a finite number{bounds}, not {value!r}")
    return number


def _pair_name(sim: KrakenSimulator, body: dict[str, Any]) -> str:
    name = str(_field(body, "pair"))
    if sim.find_pair(name) is None:
        raise BadRequest(f"field 'pair': unknown pair {name!r} (use an AssetPairs key, altname or wsname)")
    return name


def _marks(sim: KrakenSimulator, only: list[str] | None = None) -> dict[str, str]:
    pairs = [sim.pair(p) for p in only] if only else list(sim.pairs)
    return {p.key: plain(sim.engine.mark(p)) for p in pairs}


def route(verb: str, path: str):
    def register(handler):
        async def wrapped(request: web.Request) -> web.Response:
            try:
                return await handler(request)
            except BadRequest as exc:
                return web.json_response({"error": str(exc)}, status=400)
            except (KeyError, ValueError) as exc:
                text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
                return web.json_response({"error": str(text)}, status=400)

        ROUTES.append((verb, path, (handler.__doc__ or "").strip()))
        wrapped.__name__ = handler.__name__
        return wrapped

    return register


@route("GET", "/_sim")
async def index(request: web.Request) -> web.Response:
    """Every control route."""
    return web.json_response([{"verb": v, "path": p, "does": d} for v, p, d in ROUTES])


@route("POST", "/_sim/price")
async def set_price(request: web.Request) -> web.Response:
    """A trade at {pair, price, qty?}: the mark moves and orders react."""
    sim, body = _sim(request), await _body(request)
    pair = _pair_name(sim, body)
    price = _number(body, "price", kind=lambda v: Decimal(str(v)))
    if not price.is_finite() or price <= 0:
        raise BadRequest("field 'price' must be a positive number")
    qty = body.get("qty")
    sim.set_mark_price(pair, price, str(qty) if qty is not None else None)
    return web.json_response({"marks": _marks(sim)} if len(sim.pairs) <= 50 else {"marks": _marks(sim, [pair])})


@route("POST", "/_sim/index")
async def set_index(request: web.Request) -> web.Response:
    """The index price {pair, price} that trigger=index orders watch (price null: follow the last trade)."""
    sim, body = _sim(request), await _body(request)
    pair = _pair_name(sim, body)
    price = body.get("price")
    sim.set_index_price(pair, str(price) if price is not None else None)
    return web.json_response({"index": plain(sim.engine.index_price(sim.pair(pair)))})


@route("POST", "/_sim/advance")
async def advance(request: web.Request) -> web.Response:
    """Walk the price path {pair?, steps?} (every pair without pair)."""
    sim, body = _sim(request), await _body(request)
    pair = _pair_name(sim, body) if "pair" in body else None
    steps = _number(body, "steps", 1, int, 1, MAX_STEPS)
    if pair is None and steps * len(sim.pairs) > MAX_STEPS:
        raise BadRequest(f"{steps} steps of every pair is too much for one request: name a 'pair' or take fewer")
    sim.advance_price(pair, steps)
    return web.json_response({"marks": _marks(sim, [pair] if pair and len(sim.pairs) > 50 else None)})


@route("POST", "/_sim/time")
async def advance_time(request: web.Request) -> web.Response:
    """Advance simulator time {seconds}; what became due runs."""
    sim, body = _sim(request), await _body(request)
    seconds = _number(body, "seconds", None, float, 0, MAX_ADVANCE_S)  # the clock never goes back
    return web.json_response({"now": sim.advance_time(seconds)})


@route("POST", "/_sim/faults")
async def inject_fault(request: web.Request) -> web.Response:
    """Misbehave on the next calls {path, kind, count?, seconds?}."""
    sim, body = _sim(request), await _body(request)
    fault = sim.inject_fault(
        str(_field(body, "path")),
        str(_field(body, "kind")),
        _number(body, "count", 1, int, 1, 1_000_000),
        _number(body, "seconds", 0, float, 0, MAX_HOLD_S),
    )
    return web.json_response(fault.as_json())


@route("GET", "/_sim/faults")
async def list_faults(request: web.Request) -> web.Response:
    """Pending faults."""
    return web.json_response([f.as_json() for f in _sim(request).faults.pending()])


@route("DELETE", "/_sim/faults")
async def clear_faults(request: web.Request) -> web.Response:
    """Drop every pending fault."""
    _sim(request).clear_faults()
    return web.json_response([])


@route("GET", "/_sim/requests")
async def requests_log(request: web.Request) -> web.Response:
    """The request log (?method=&cl_ord_id=)."""
    sim = _sim(request)
    records = sim.requests(request.query.get("method"), request.query.get("cl_ord_id"))
    return web.json_response([r.as_json() for r in records], dumps=_dumps)


@route("GET", "/_sim/balances")
async def get_balances(request: web.Request) -> web.Response:
    """The account's balances."""
    return web.json_response({a: plain(v) for a, v in _sim(request).balances().items()})


@route("POST", "/_sim/balances")
async def set_balances(request: web.Request) -> web.Response:
    """Set balances {asset: amount} (negative allowed)."""
    sim, body = _sim(request), await _body(request)
    for asset, amount in body.items():
        try:
            value = Decimal(str(amount))
            usable = value.is_finite() and abs(value) < Decimal(10) ** 18
        except ArithmeticError:
            usable = False
        if not usable:
            raise BadRequest(f"field {asset!r}: {amount!r} is not a finite number")
        sim.set_balance(asset, str(amount))
    return web.json_response({a: plain(v) for a, v in sim.balances().items()})


@route("POST", "/_sim/fees")
async def fees(request: web.Request) -> web.Response:
    """Where the account's fees go without fcib/fciq {default: base|quote}."""
    sim, body = _sim(request), await _body(request)
    sim.set_fee_default(str(_field(body, "default")))
    return web.json_response({"default": "base" if sim.engine.account(sim.key).fee_in_base_default else "quote"})


@route("POST", "/_sim/holds")
async def holds(request: web.Request) -> web.Response:
    """Whether untriggered stops hold funds {untriggered_stops: true|false}."""
    sim, body = _sim(request), await _body(request)
    value = _field(body, "untriggered_stops")
    if not isinstance(value, bool):
        raise BadRequest("field 'untriggered_stops' must be true or false")
    sim.set_hold_untriggered(value)
    return web.json_response({"untriggered_stops": sim.engine.hold_untriggered})


@route("GET", "/_sim/asset_pairs")
async def get_asset_pairs(request: web.Request) -> web.Response:
    """The AssetPairs entries served (?pair=)."""
    sim = _sim(request)
    name = request.query.get("pair")
    if name:
        pair = sim.find_pair(name)
        if pair is None:
            raise BadRequest(f"query 'pair': unknown pair {name!r}")
        return web.json_response({pair.key: sim.asset_pairs[pair.key]})
    return web.json_response(sim.asset_pairs)


@route("POST", "/_sim/asset_pairs")
async def set_asset_pair(request: web.Request) -> web.Response:
    """Change a pair's AssetPairs fields {pair, changes: {field: value}}."""
    sim, body = _sim(request), await _body(request)
    pair = _pair_name(sim, body)
    changes = _field(body, "changes")
    if not isinstance(changes, dict) or not changes:
        raise BadRequest("field 'changes' must be an object of AssetPairs fields")
    entry = sim.set_asset_pair(pair, changes)
    return web.json_response({sim.pair(pair).key: entry})


@route("POST", "/_sim/nonce")
async def nonce(request: web.Request) -> web.Response:
    """Another client's nonce {ahead_s} seconds ahead, or the key's nonce {window}."""
    sim, body = _sim(request), await _body(request)
    if "window" in body:
        sim.nonces.window = _number(body, "window", None, int, 0, 10**18)
    if "ahead_s" in body:
        sim.jump_nonce(_number(body, "ahead_s", None, float, 0, MAX_ADVANCE_S))
    if "window" not in body and "ahead_s" not in body:
        raise BadRequest("give 'ahead_s' (seconds) or 'window' (nonce units)")
    return web.json_response({"last_nonce": sim.nonces.last.get(sim.key, 0), "window": sim.nonces.window})


@route("POST", "/_sim/tape")
async def tape(request: web.Request) -> web.Response:
    """Play a Kraken trade CSV {pair, path?, speed?} (speed null: only by step)."""
    sim, body = _sim(request), await _body(request)
    pair = _pair_name(sim, body)
    speed = None if "speed" in body and body["speed"] is None else _number(body, "speed", 1.0, float, 1e-6, 1e9)
    path = body.get("path")
    if path is not None and (not isinstance(path, str) or not path.endswith(".csv")):
        raise BadRequest("field 'path' must name a .csv trade tape (timestamp,price,volume)")
    player = sim.play_tape(pair, path, speed)
    return web.json_response(player.status())


@route("POST", "/_sim/tape/step")
async def tape_step(request: web.Request) -> web.Response:
    """Play the next rows of a pair's tape now {pair, rows?}."""
    sim, body = _sim(request), await _body(request)
    pair = _pair_name(sim, body)
    if sim.pair(pair).key not in sim.tapes:
        raise BadRequest(f"no tape is playing for {pair!r}: POST /_sim/tape first")
    sim.step_tape(pair, _number(body, "rows", 1, int, 1, 10**9))
    return web.json_response(sim.tapes[sim.pair(pair).key].status())


@route("GET", "/_sim/tape")
async def tape_status(request: web.Request) -> web.Response:
    """Each tape's progress."""
    return web.json_response([p.status() for p in _sim(request).tapes.values()])


@route("GET", "/_sim/orders")
async def book(request: web.Request) -> web.Response:
    """The book: open orders per pair, with the pair's mark."""
    sim = _sim(request)
    result: dict[str, Any] = {}
    for order in sim.engine.account(sim.key).open.values():
        entry = result.setdefault(order.pair.key, {"mark": plain(sim.engine.mark(order.pair)), "open": []})
        entry["open"].append(
            {
                "txid": order.txid,
                "cl_ord_id": order.request.cl_ord_id,
                "side": str(order.side),
                "ordertype": str(order.request.ordertype),
                "volume": plain(order.request.volume),
                "vol_exec": plain(order.vol_exec),
                "price": plain(order.request.price) if order.request.price else None,
                "status": order.status,
            }
        )
    return web.json_response(result)


@route("GET", "/_sim/history")
async def history(request: web.Request) -> web.Response:
    """Every order, open or closed, with status, executed volume, cost, fee and trade ids."""
    return web.json_response(
        [
            {
                "txid": o.txid,
                "cl_ord_id": o.request.cl_ord_id,
                "pair": o.pair.key,
                "side": str(o.side),
                "ordertype": str(o.request.ordertype),
                "status": o.status,
                "reason": o.reason,
                "volume": plain(o.request.volume),
                "vol_exec": plain(o.vol_exec),
                "cost": plain(o.cost),
                "fee": plain(o.fee),
                "trades": [t.txid for t in o.trades],
            }
            for o in _sim(request).orders()
        ]
    )


@route("POST", "/_sim/status")
async def system_status(request: web.Request) -> web.Response:
    """SystemStatus {status}: online, maintenance, cancel_only, post_only."""
    sim, body = _sim(request), await _body(request)
    sim.set_system_status(str(_field(body, "status")))
    return web.json_response({"status": sim.engine.system_status})


@route("POST", "/_sim/ws/{action}")
async def ws_action(request: web.Request) -> web.Response:
    """WS faults: disconnect (every connection), stall (silence), resume."""
    sim, action = _sim(request), request.match_info["action"]
    if action == "disconnect":
        return web.json_response({"closed": await sim.ws_disconnect()})
    if action == "stall":
        return web.json_response({"stalled": sim.ws_stall()})
    if action == "resume":
        sim.ws_resume()
        return web.json_response({"resumed": True})
    raise BadRequest(f"unknown WS action {action!r}: valid are disconnect, stall, resume")


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, default=str)


HANDLERS = {
    ("GET", "/_sim"): index,
    ("POST", "/_sim/price"): set_price,
    ("POST", "/_sim/index"): set_index,
    ("POST", "/_sim/advance"): advance,
    ("POST", "/_sim/time"): advance_time,
    ("POST", "/_sim/faults"): inject_fault,
    ("GET", "/_sim/faults"): list_faults,
    ("DELETE", "/_sim/faults"): clear_faults,
    ("GET", "/_sim/requests"): requests_log,
    ("GET", "/_sim/balances"): get_balances,
    ("POST", "/_sim/balances"): set_balances,
    ("POST", "/_sim/fees"): fees,
    ("POST", "/_sim/holds"): holds,
    ("GET", "/_sim/asset_pairs"): get_asset_pairs,
    ("POST", "/_sim/asset_pairs"): set_asset_pair,
    ("POST", "/_sim/nonce"): nonce,
    ("POST", "/_sim/tape"): tape,
    ("POST", "/_sim/tape/step"): tape_step,
    ("GET", "/_sim/tape"): tape_status,
    ("GET", "/_sim/orders"): book,
    ("GET", "/_sim/history"): history,
    ("POST", "/_sim/status"): system_status,
    ("POST", "/_sim/ws/{action}"): ws_action,
}


def add_routes(app: web.Application) -> None:
    """Mount the ``/_sim`` control surface (see the module docstring)."""
    for (verb, path), handler in HANDLERS.items():
        app.router.add_route(verb, path, handler)
