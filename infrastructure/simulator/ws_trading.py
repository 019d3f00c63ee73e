"""WS v2 trading methods on the authenticated socket (REFERENCE.md 6.3): ``add_order``, ``amend_order``,
``edit_order``, ``cancel_order``, ``cancel_all``, ``cancel_all_orders_after``, ``batch_add``, ``batch_cancel``.

Each request carries ``params.token`` (from GetWebSocketsToken) instead of a nonce; the answer echoes ``method``
and a numeric ``req_id`` with ``success`` and ``result`` or a string ``error`` (captured shapes:
``ws_v2_*_response_*_kraken_async_rs.json``). WS spellings differ from REST (``order_userref``, ``order_qty``,
``time_in_force`` lower case, ``stp_type`` with underscores, ``triggers{}``, ``fee_preference``, WS v2 symbols
``BTC/USD``); they are translated to REST parameters and run through the same methods, so the limits, funds and
every order rule are the REST ones. Numbers must be JSON numbers: a string gets the captured
``"<Field> field must be a number_float"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import errors as E
from . import methods
from .clock import parse_rfc3339
from .errors import KrakenError

if TYPE_CHECKING:
    from .server import KrakenSimulator

NUMBER_FIELDS = ("order_qty", "limit_price", "cash_order_qty", "display_qty", "trigger_price")


class WsRefusal(Exception):
    """A WS request refused with this ``error`` string."""

    def __init__(self, error: str):
        super().__init__(error)
        self.error = error


def _number(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WsRefusal(f"{name.capitalize()} field must be a number_float")
    return value


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _relative(value: Any, kind: str, name: str, *, signed: bool = True) -> str:
    """A WS price with ``*_price_type`` pct/quote -> REST's relative notation (``+1.5%``, ``-20``)."""
    number = float(value)
    sign = "+" if number >= 0 or not signed else "-"
    if kind == "pct":
        return f"{sign}{_text(abs(value))}%"
    if kind == "quote":
        return f"{sign}{_text(abs(value))}"
    raise WsRefusal(E.invalid_arguments(name))


def _time(value: Any, name: str) -> str:
    try:
        return _text(parse_rfc3339(str(value)))
    except ValueError:
        raise WsRefusal(E.invalid_arguments(name)) from None


def rest_order_params(sim: KrakenSimulator, params: dict[str, Any], symbol: Any = None) -> dict[str, Any]:
    """One WS order (``add_order`` params or a ``batch_add`` entry) as REST AddOrder parameters."""
    for name in NUMBER_FIELDS:
        _number(params, name)
    symbol = symbol if symbol is not None else params.get("symbol")
    pair = sim.ws_pair(str(symbol or ""))
    if pair is None:
        raise WsRefusal(E.UNKNOWN_PAIR)
    if params.get("margin") is True:
        raise WsRefusal(E.invalid_arguments("margin"))  # margin is not simulated
    ordertype = str(params.get("order_type") or "")
    rest: dict[str, Any] = {"pair": pair.key, "type": params.get("side"), "ordertype": ordertype}
    flags: list[str] = []
    if params.get("cash_order_qty") is not None:
        rest["volume"] = _text(params["cash_order_qty"])
        flags.append("viqc")
    elif params.get("order_qty") is not None:
        rest["volume"] = _text(params["order_qty"])
    triggers = params.get("triggers")
    trailing = ordertype.startswith("trailing-stop")
    if isinstance(triggers, dict):
        rest["trigger"] = triggers.get("reference") or "last"
        price_type = str(triggers.get("price_type") or "static")
        if triggers.get("price") is not None:
            if isinstance(triggers["price"], bool) or not isinstance(triggers["price"], (int, float)):
                raise WsRefusal("Price field must be a number_float")
            if trailing:
                rest["price"] = _relative(triggers["price"], price_type, "triggers", signed=False)
            elif price_type == "static":
                rest["price"] = _text(triggers["price"])
            else:
                rest["price"] = _relative(triggers["price"], price_type, "triggers")
    if params.get("limit_price") is not None:
        limit_type = str(params.get("limit_price_type") or "static")
        if limit_type == "static" and not trailing:
            limit = _text(params["limit_price"])
        else:
            limit = _relative(params["limit_price"], limit_type, "limit_price_type")
        rest["price2" if ordertype.endswith("-limit") and ordertype != "limit" else "price"] = limit
    if params.get("time_in_force") is not None:
        rest["timeinforce"] = str(params["time_in_force"]).upper()
    if params.get("expire_time") is not None:
        rest["expiretm"] = _time(params["expire_time"], "expire_time")
    if params.get("effective_time") is not None:
        rest["starttm"] = _time(params["effective_time"], "effective_time")
    for ws_name, rest_name in (("cl_ord_id", "cl_ord_id"), ("order_userref", "userref"), ("deadline", "deadline")):
        if params.get(ws_name) is not None:
            rest[rest_name] = params[ws_name]
    if params.get("post_only") is True:
        flags.append("post")
    if params.get("no_mpp") is True:
        flags.append("nompp")
    fee = params.get("fee_preference")
    if fee is not None:
        if fee not in ("base", "quote"):
            raise WsRefusal(E.invalid_arguments("fee_preference"))
        flags.append("fcib" if fee == "base" else "fciq")
    if flags:
        rest["oflags"] = ",".join(flags)
    if params.get("reduce_only") is not None:
        rest["reduce_only"] = bool(params["reduce_only"])
    if params.get("validate") is not None:
        rest["validate"] = bool(params["validate"])
    if params.get("stp_type") is not None:
        rest["stptype"] = str(params["stp_type"]).replace("_", "-")
    if params.get("display_qty") is not None:
        rest["displayvol"] = _text(params["display_qty"])
    return rest


def _ids(result: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    if params.get("cl_ord_id") is not None:
        result["cl_ord_id"] = params["cl_ord_id"]
    if params.get("order_userref") is not None:
        result["order_userref"] = params["order_userref"]
    return result


def add_order(sim: KrakenSimulator, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    rest = rest_order_params(sim, params)
    placed = methods.add_order(sim, key, rest)
    order_id = placed["txid"][0] if placed and "txid" in placed else ""  # validate-only: order_id ""
    return [{"result": _ids({"order_id": order_id}, params)}]


def _order_ref(params: dict[str, Any]) -> dict[str, Any]:
    if params.get("order_id"):
        return {"txid": params["order_id"]}
    if params.get("cl_ord_id"):
        return {"cl_ord_id": params["cl_ord_id"]}
    raise WsRefusal(E.invalid_arguments("order_id"))


def amend_order(sim: KrakenSimulator, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    for name in NUMBER_FIELDS:
        _number(params, name)
    rest = _order_ref(params)
    if params.get("order_qty") is not None:
        rest["order_qty"] = _text(params["order_qty"])
    if params.get("display_qty") is not None:
        rest["display_qty"] = _text(params["display_qty"])
    for name in ("limit_price", "trigger_price"):
        if params.get(name) is not None:
            kind = str(params.get(f"{name}_type") or "static")
            rest[name] = _text(params[name]) if kind == "static" else _relative(params[name], kind, f"{name}_type")
    for name in ("post_only", "deadline"):
        if params.get(name) is not None:
            rest[name] = params[name]
    amended = methods.amend_order(sim, key, rest)
    ref = {"order_id": params["order_id"]} if params.get("order_id") else {"cl_ord_id": params["cl_ord_id"]}
    return [{"result": {"amend_id": amended["amend_id"], **ref}}]


def edit_order(sim: KrakenSimulator, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    for name in NUMBER_FIELDS:
        _number(params, name)
    if not params.get("order_id"):
        raise WsRefusal(E.invalid_arguments("order_id"))
    rest: dict[str, Any] = {"txid": params["order_id"]}
    if params.get("symbol") is not None:
        pair = sim.ws_pair(str(params["symbol"]))
        if pair is None:
            raise WsRefusal(E.UNKNOWN_PAIR)
        rest["pair"] = pair.key
    if params.get("order_qty") is not None:
        rest["volume"] = _text(params["order_qty"])
    order = sim.engine.account(key).orders.get(str(params["order_id"]))
    if params.get("limit_price") is not None and order is not None:
        limit_field = "price2" if order.request.ordertype.value.endswith("-limit") else "price"
        rest[limit_field] = _text(params["limit_price"])
    if isinstance(params.get("triggers"), dict) and params["triggers"].get("price") is not None:
        rest["price"] = _text(params["triggers"]["price"])
    if params.get("post_only") is not None:
        rest["oflags"] = "post" if params["post_only"] else ""
    if params.get("order_userref") is not None:
        rest["userref"] = params["order_userref"]
    for name in ("deadline", "validate"):
        if params.get(name) is not None:
            rest[name] = params[name]
    edited = methods.edit_order(sim, key, rest)
    return [{"result": {"order_id": edited.get("txid", ""), "original_order_id": params["order_id"]}}]


def cancel_order(sim: KrakenSimulator, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """One answer per id ("a stream of individual order responses"); an id that names nothing open gets
    ``EOrder:Invalid order`` (Kraken's SDK records that string on WS, REFERENCE.md 3.6)."""
    given = [(name, params.get(name)) for name in ("order_id", "cl_ord_id", "order_userref") if params.get(name)]
    if len(given) != 1 or not isinstance(given[0][1], list) or not given[0][1]:
        raise WsRefusal(E.invalid_arguments("order_id"))
    name, ids = given[0][0], list(given[0][1])  # a non-empty list (checked above)
    answers: list[dict[str, Any]] = []
    for ident in ids:
        rest = {"cl_ord_id": ident} if name == "cl_ord_id" else {"txid": str(ident)}
        try:
            methods.cancel_order(sim, key, rest)
        except KrakenError as exc:
            error = E.INVALID_ORDER if exc.error == E.UNKNOWN_ORDER else exc.error
            answers.append({"error": error, "success": False})
            continue
        answers.append({"result": {name: ident}})
    return answers


def cancel_all(sim: KrakenSimulator, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"result": methods.cancel_all(sim, key, {})}]


def cancel_all_orders_after(sim: KrakenSimulator, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    if params.get("timeout") is None:
        raise WsRefusal(E.invalid_arguments("timeout"))
    return [{"result": methods.cancel_all_orders_after(sim, key, {"timeout": params["timeout"]})}]


def batch_add(sim: KrakenSimulator, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """2-15 orders on one symbol; captured answer: ``result: [{"order_id": ...}, ...]``. An order refused at
    placement (funds) is ``{"error": ...}`` in its slot (the captured answer has no failure to copy)."""
    orders = params.get("orders")
    if not isinstance(orders, list) or not all(isinstance(o, dict) for o in orders):
        raise WsRefusal(E.invalid_arguments("orders"))
    rest_orders = [rest_order_params(sim, o, params.get("symbol")) for o in orders]
    pair_key = rest_orders[0]["pair"] if rest_orders else None
    batch: dict[str, Any] = {
        "pair": pair_key,
        "orders": [{k: v for k, v in o.items() if k != "pair"} for o in rest_orders],
    }
    for name in ("deadline", "validate"):
        if params.get(name) is not None:
            batch[name] = params[name]
    placed = methods.add_order_batch(sim, key, batch)
    result = []
    for entry, order in zip(placed["orders"], orders, strict=True):
        if "error" in entry:
            result.append({"error": entry["error"]})
        else:
            result.append(_ids({"order_id": entry.get("txid", "")}, order))
    return [{"result": result}]


def batch_cancel(sim: KrakenSimulator, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Captured answer: ``{"method": "batch_cancel", "orders_cancelled": 2, ...}`` (no ``result``)."""
    rest = {"orders": [str(o) for o in params.get("orders") or []], "cl_ord_ids": list(params.get("cl_ord_id") or [])}
    cancelled = methods.cancel_order_batch(sim, key, rest)
    return [{"orders_cancelled": cancelled["count"]}]


TRADING: dict[str, Callable[[KrakenSimulator, str, dict[str, Any]], list[dict[str, Any]]]] = {
    "add_order": add_order,
    "amend_order": amend_order,
    "edit_order": edit_order,
    "cancel_order": cancel_order,
    "cancel_all": cancel_all,
    "cancel_all_orders_after": cancel_all_orders_after,
    "batch_add": batch_add,
    "batch_cancel": batch_cancel,
}
REST_NAMES = {
    "add_order": "AddOrder",
    "amend_order": "AmendOrder",
    "edit_order": "EditOrder",
    "batch_add": "AddOrderBatch",
}
