"""The simulator's own control surface, ``/_sim/...`` (JSON, unsigned; not part of Kraken's API).

POST /_sim/price {pair, price}          set the mark          POST /_sim/advance {pair?, steps?}  walk the path
POST /_sim/time {seconds}               advance sim time      POST /_sim/faults {path, kind, count?, seconds?}
GET  /_sim/faults | DELETE /_sim/faults                        GET  /_sim/requests?method=&cl_ord_id=
GET  /_sim/balances | POST /_sim/balances {asset: amount}      GET  /_sim/orders (book: open orders per pair)
GET  /_sim/history (every order, open or closed, with its status, executed volume, cost, fee and trade ids)
POST /_sim/status {status}              SystemStatus          POST /_sim/ws/{disconnect|stall|resume}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from execledger.domain.values import plain

from .appkey import SIMULATOR

if TYPE_CHECKING:
    from .server import KrakenSimulator


def _sim(request: web.Request) -> KrakenSimulator:
    return request.app[SIMULATOR]  # type: ignore[return-value]


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    data = await request.json()
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return data


def _marks(sim: KrakenSimulator) -> dict[str, str]:
    return {p.key: plain(sim.engine.mark(p)) for p in sim.pairs}


async def set_price(request: web.Request) -> web.Response:
    sim, body = _sim(request), await _body(request)
    sim.set_mark_price(str(body["pair"]), str(body["price"]))
    return web.json_response({"marks": _marks(sim)})


async def advance(request: web.Request) -> web.Response:
    sim, body = _sim(request), await _body(request)
    sim.advance_price(body.get("pair"), int(body.get("steps", 1)))
    return web.json_response({"marks": _marks(sim)})


async def advance_time(request: web.Request) -> web.Response:
    sim, body = _sim(request), await _body(request)
    return web.json_response({"now": sim.advance_time(float(body["seconds"]))})


async def inject_fault(request: web.Request) -> web.Response:
    sim, body = _sim(request), await _body(request)
    try:
        fault = sim.inject_fault(
            str(body["path"]), str(body["kind"]), int(body.get("count", 1)), float(body.get("seconds", 0))
        )
    except (KeyError, ValueError) as exc:
        raise web.HTTPBadRequest(text=f"bad fault: {exc}") from None
    return web.json_response(fault.as_json())


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response([f.as_json() for f in _sim(request).faults.pending()])


async def clear_faults(request: web.Request) -> web.Response:
    _sim(request).clear_faults()
    return web.json_response([])


async def requests_log(request: web.Request) -> web.Response:
    sim = _sim(request)
    records = sim.requests(request.query.get("method"), request.query.get("cl_ord_id"))
    return web.json_response([r.as_json() for r in records])


async def balances(request: web.Request) -> web.Response:
    sim = _sim(request)
    if request.method == "POST":
        for asset, amount in (await _body(request)).items():
            sim.set_balance(asset, str(amount))
    return web.json_response({a: plain(v) for a, v in sim.balances().items()})


async def book(request: web.Request) -> web.Response:
    sim = _sim(request)
    result: dict[str, Any] = {p.key: {"mark": plain(sim.engine.mark(p)), "open": []} for p in sim.pairs}
    for order in sim.orders():
        if order.is_open:
            result[order.pair.key]["open"].append(
                {
                    "txid": order.txid,
                    "cl_ord_id": order.request.cl_ord_id,
                    "side": str(order.side),
                    "ordertype": str(order.request.ordertype),
                    "volume": plain(order.request.volume),
                    "vol_exec": plain(order.vol_exec),
                    "price": plain(order.request.price) if order.request.price else None,
                }
            )
    return web.json_response(result)


async def history(request: web.Request) -> web.Response:
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


async def system_status(request: web.Request) -> web.Response:
    sim, body = _sim(request), await _body(request)
    try:
        sim.set_system_status(str(body["status"]))
    except (KeyError, ValueError) as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return web.json_response({"status": sim.engine.system_status})


async def ws_action(request: web.Request) -> web.Response:
    sim, action = _sim(request), request.match_info["action"]
    if action == "disconnect":
        return web.json_response({"closed": await sim.ws_disconnect()})
    if action == "stall":
        return web.json_response({"stalled": sim.ws_stall()})
    if action == "resume":
        sim.ws_resume()
        return web.json_response({"resumed": True})
    raise web.HTTPNotFound()


def add_routes(app: web.Application) -> None:
    """Mount the ``/_sim`` control surface (see the module docstring)."""
    r = app.router
    r.add_post("/_sim/price", set_price)
    r.add_post("/_sim/advance", advance)
    r.add_post("/_sim/time", advance_time)
    r.add_post("/_sim/faults", inject_fault)
    r.add_get("/_sim/faults", list_faults)
    r.add_delete("/_sim/faults", clear_faults)
    r.add_get("/_sim/requests", requests_log)
    r.add_get("/_sim/balances", balances)
    r.add_post("/_sim/balances", balances)
    r.add_get("/_sim/orders", book)
    r.add_get("/_sim/history", history)
    r.add_post("/_sim/status", system_status)
    r.add_post("/_sim/ws/{action}", ws_action)
