"""The Kraken REST methods the simulator serves: ``(simulator, [key,] params) -> result`` functions in two tables.

The transport (envelopes, signatures, counters, faults) is ``rest``; these only read and change the simulator's
state. Shapes follow the fixtures in ``../shared/kraken/fixtures`` (named per method below); where a rule is
Kraken's documented behaviour without a fixture, the docstring cites REFERENCE.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from execledger.domain.values import Side

from . import errors as E
from .clock import parse_rfc3339, rfc1123, rfc3339
from .engine import SimOrder
from .errors import KrakenError
from .orderentry import (
    TRAILING_TYPES,
    OrderRequest,
    _decimal,
    _price,
    decimals_of,
    is_true,
    parse_add_order,
)
from .views import fixed, order_info, trade_info

if TYPE_CHECKING:
    from .server import KrakenSimulator

PAGE_SIZE = 50
BATCH_ADD_SIZES = (2, 15)  # AddOrderBatch takes 2-15 orders (REFERENCE.md 3.4)
BATCH_CANCEL_MAX = 50  # CancelOrderBatch: at most 50 ids (REFERENCE.md 3.6)
Params = dict[str, Any]


def _ids(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


# -- public -----------------------------------------------------------------------------------------------------


def _pairs_selected(sim: KrakenSimulator, params: Params):
    names = _ids(params.get("pair"))
    if not names:
        return list(sim.pairs)
    found = [sim.find_pair(n) for n in names]
    if any(p is None for p in found):
        raise KrakenError(E.UNKNOWN_PAIR)
    return found


def public_time(sim: KrakenSimulator, params: Params) -> Any:
    """Time: server time as unixtime and RFC 1123 (``rest_time_official_example.json``)."""
    now = sim.clock.now()
    return {"unixtime": int(now), "rfc1123": rfc1123(now)}


def public_system_status(sim: KrakenSimulator, params: Params) -> Any:
    """SystemStatus: online / maintenance / cancel_only / post_only."""
    return {"status": sim.engine.system_status, "timestamp": rfc3339(sim.clock.now())}


def public_asset_pairs(sim: KrakenSimulator, params: Params) -> Any:
    """AssetPairs, with the ``pair=`` filter by key, altname, wsname or WS v2 symbol."""
    return {p.key: sim.asset_pairs[p.key] for p in _pairs_selected(sim, params)}


def public_ticker(sim: KrakenSimulator, params: Params) -> Any:
    """Ticker rows keyed by AssetPairs key (every pair when ``pair`` is absent)."""
    return {p.key: sim.market.ticker_rest(p) for p in _pairs_selected(sim, params)}


def public_assets(sim: KrakenSimulator, params: Params) -> Any:
    """Assets, with the ``asset=`` filter by id or altname."""
    assets = sim.assets
    wanted = _ids(params.get("asset"))
    if not wanted:
        return assets
    by_name = {a: a for a in assets} | {info["altname"]: a for a, info in assets.items()}
    if any(w.upper() not in by_name for w in wanted):
        raise KrakenError(E.UNKNOWN_ASSET)
    return {by_name[w.upper()]: assets[by_name[w.upper()]] for w in wanted}


def public_trades(sim: KrakenSimulator, params: Params) -> Any:
    """Trades: the pair's recent public trades, ``[price, volume, time, b|s, m|l, misc, trade_id]``."""
    names = _ids(params.get("pair"))
    if len(names) != 1:
        raise KrakenError(E.invalid_arguments("pair"))
    pair = sim.find_pair(names[0])
    if pair is None:
        raise KrakenError(E.UNKNOWN_PAIR)
    trades = sim.market.recent(pair)
    rows = [
        [
            fixed(t.price, pair.pair_decimals),
            fixed(t.qty, pair.lot_decimals),
            round(t.time, 4),
            "b" if t.side is Side.BUY else "s",
            "m" if t.ord_type == "market" else "l",
            "",
            t.trade_id,
        ]
        for t in trades
    ]
    last = str(int(trades[-1].time * 1e9)) if trades else "0"
    return {pair.key: rows, "last": last}


PUBLIC: dict[str, Callable[[KrakenSimulator, Params], Any]] = {
    "Time": public_time,
    "SystemStatus": public_system_status,
    "AssetPairs": public_asset_pairs,
    "Ticker": public_ticker,
    "Assets": public_assets,
    "Trades": public_trades,
}


# -- private: balances --------------------------------------------------------------------------------------------


def balance(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """Balance: asset -> amount string, with the asset's decimals."""
    balances = sim.engine.account(key).balances
    return {asset: fixed(amount, sim.asset_decimals(asset)) for asset, amount in sorted(balances.items())}


def balance_ex(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """BalanceEx: asset -> balance and what open orders hold (``hold_trade``)."""
    balances = sim.engine.account(key).balances
    return {
        asset: {
            "balance": fixed(amount, sim.asset_decimals(asset)),
            "hold_trade": fixed(sim.engine.held(key, asset), sim.asset_decimals(asset)),
        }
        for asset, amount in sorted(balances.items())
    }


# -- private: order entry -----------------------------------------------------------------------------------------


def _parse(sim: KrakenSimulator, params: Params) -> OrderRequest:
    return parse_add_order(params, sim.find_pair, sim.clock.now(), sim.last_price)


def add_order(sim: KrakenSimulator, key: str, params: Params, delay_acceptance: float | None = None) -> Any:
    """AddOrder: validate, then place (or only describe with ``validate``, or accept later under the fault).
    The trading counter's point is spent on receipt, before validation (REFERENCE.md 5.2)."""
    now = sim.clock.now()
    pair = sim.find_pair(str(params.get("pair") or ""))
    if pair is not None and sim.trading_limiter is not None:
        sim.trading_limiter.charge_add(key, pair.key, now)
    req = _parse(sim, params)
    sim.engine.check(key, req)
    descr = {"order": sim.engine.describe(req)}
    if req.validate:
        return {"descr": descr}
    if delay_acceptance is not None:
        sim.engine.place_later(key, req, delay_acceptance)
        return None
    order = sim.engine.place(key, req)
    return {"descr": descr, "txid": [order.txid]}


def add_order_batch(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """AddOrderBatch (``rest_add_order_batch_official_schema_example.json``): 2-15 orders on one pair. The whole
    batch is validated first (one bad order refuses it all); then each order is placed on its own, and one
    refused for funds (or a cl_ord_id clash) gets ``{"error": ...}`` while the rest are placed."""
    orders = params.get("orders")
    if not isinstance(orders, list) or not all(isinstance(o, dict) for o in orders):
        raise KrakenError(E.invalid_arguments("orders"))
    if not BATCH_ADD_SIZES[0] <= len(orders) <= BATCH_ADD_SIZES[1]:
        raise KrakenError(E.invalid_arguments("orders"))
    pair = sim.find_pair(str(params.get("pair") or ""))
    if pair is None:
        raise KrakenError(E.UNKNOWN_PAIR)
    if sim.trading_limiter is not None:
        sim.trading_limiter.charge_batch_add(key, pair.key, len(orders), sim.clock.now())
    shared = {"pair": params["pair"], "deadline": params.get("deadline"), "validate": params.get("validate")}
    requests = [_parse(sim, {**o, **{k: v for k, v in shared.items() if v is not None}}) for o in orders]
    if requests[0].deadline is not None and sim.clock.now() > requests[0].deadline:
        raise KrakenError(E.DEADLINE_ELAPSED)
    if is_true(params.get("validate")):
        return {"orders": [{"descr": {"order": sim.engine.describe(r)}} for r in requests]}
    results: list[dict[str, Any]] = []
    for req in requests:
        try:
            order = sim.engine.place(key, req)
        except KrakenError as exc:
            results.append({"error": exc.error})
            continue
        results.append({"txid": order.txid, "descr": {"order": sim.engine.describe(req)}})
    return {"orders": results}


def _open_order(sim: KrakenSimulator, key: str, txid: Any, cl_ord_id: Any) -> SimOrder:
    if txid in (None, "") and cl_ord_id in (None, ""):
        raise KrakenError(E.invalid_arguments("txid"))
    targets = sim.engine.cancel_targets(key, None if txid in (None, "") else str(txid), cl_ord_id or None)
    if len(targets) != 1:
        raise KrakenError(E.invalid_arguments("txid"))  # a userref naming several orders is ambiguous
    return targets[0]


def amend_order(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """AmendOrder (``rest_amend_order_official_schema_example.json``): ``txid`` or ``cl_ord_id``, ``order_qty``,
    ``display_qty``, ``limit_price``, ``trigger_price`` (absolute, or ``+``/``-``/``%`` from the last trade),
    ``post_only``, ``deadline``. In place: same txid; priority kept unless the price moves or the quantity
    grows. Trading counter: +1 plus {3, 2, 1} by the order's age."""
    try:
        order = _open_order(sim, key, params.get("txid"), params.get("cl_ord_id"))
    except KrakenError as exc:
        raise KrakenError(E.UNKNOWN_ORDER if exc.error == E.UNKNOWN_ORDER else exc.error) from None
    now = sim.clock.now()
    if sim.trading_limiter is not None:
        sim.trading_limiter.charge_amend(key, order.pair.key, now - order.age_from, now)
    if params.get("deadline") not in (None, ""):
        try:
            if now > parse_rfc3339(str(params["deadline"])):
                raise KrakenError(E.DEADLINE_ELAPSED)
        except ValueError:
            raise KrakenError(E.invalid_arguments("deadline")) from None
    pair, req = order.pair, order.request
    last = sim.last_price(pair)
    qty = display = limit = trigger = None
    if params.get("order_qty") not in (None, ""):
        qty = _decimal(params["order_qty"], E.invalid_arguments("order_qty"))
        if decimals_of(qty) > pair.lot_decimals:
            raise KrakenError(E.invalid_arguments("order_qty"))
    if params.get("display_qty") not in (None, ""):
        display = _decimal(params["display_qty"], E.invalid_arguments("display_qty"))
    if params.get("limit_price") not in (None, ""):
        limit = _price(pair, params["limit_price"], E.INVALID_PRICE_ARGUMENT, req.ordertype, req.side, last)
    if params.get("trigger_price") not in (None, ""):
        trigger = _price(pair, params["trigger_price"], E.INVALID_PRICE_ARGUMENT, req.ordertype, req.side, last)
    post_only = is_true(params["post_only"]) if params.get("post_only") not in (None, "") else None
    amend_id = sim.engine.amend(
        order, order_qty=qty, limit_price=limit, trigger_price=trigger, post_only=post_only, display_qty=display
    )
    return {"amend_id": amend_id}


def order_amends(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """OrderAmends (``rest_order_amends_official_example.json``, whose ``response`` wrapper is a docs artefact):
    the order as placed and each amend, ``timestamp`` in nanoseconds."""
    order = sim.engine.account(key).orders.get(str(params.get("order_id") or params.get("txid") or ""))
    if order is None:
        raise KrakenError(E.INVALID_ORDER)
    amends = sim.engine.amend_history(order)
    return {"amends": amends, "count": len(amends)}


def edit_order(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """EditOrder (``rest_edit_order_official_example.json``): cancel-and-replace with a new txid (REFERENCE.md
    3.5): not for a triggered order, refused when more has filled than the new volume, no ``cl_ord_id`` (the new
    order has none), only ``post`` of the ``oflags`` changes. Fills stay on the old order, so the new one is for
    the new volume less what already filled (Kraken does not say; this is the reading that never trades more than
    asked). Trading counter: +1 plus {6, 5, 4, 2, 1} by the order's age."""
    account = sim.engine.account(key)
    txid = str(params.get("txid") or "")
    if txid.lstrip("-").isdigit():  # a userref naming exactly one open order
        group = list(account.open_by_userref.get(int(txid), {}).values())
        order = group[0] if len(group) == 1 else None
    else:
        order = account.orders.get(txid)
    if order is None or not order.is_open:
        raise KrakenError(E.UNKNOWN_ORDER)
    now = sim.clock.now()
    if sim.trading_limiter is not None:
        sim.trading_limiter.charge_edit(key, order.pair.key, now - order.age_from, now)
    named = sim.find_pair(str(params.get("pair") or order.pair.key))
    if named is None or named.key != order.pair.key:
        raise KrakenError(E.invalid_arguments("pair"))
    if params.get("cl_ord_id") not in (None, ""):
        raise KrakenError(E.invalid_arguments("cl_ord_id"))
    old = order.request
    volume = old.volume
    if params.get("volume") not in (None, ""):
        volume = _decimal(params["volume"], E.invalid_arguments("volume"))
    if volume <= order.vol_exec:
        raise KrakenError(E.amend_refused("more has filled than the new volume"))
    fee_flag = "fcib" if order.fee_in_base else "fciq"
    post = "post" in str(params.get("oflags") or "").split(",") if params.get("oflags") is not None else old.post_only
    replacement: Params = {
        "pair": order.pair.key,
        "type": str(old.side),
        "ordertype": str(old.ordertype),
        "volume": format(volume - order.vol_exec, "f"),
        "oflags": ",".join(["post"] * post + [fee_flag] + [f for f in ("nompp",) if f in old.oflags]),
        "trigger": old.trigger,
        "timeinforce": old.timeinforce,
        "expiretm": str(old.expiretm) if old.expiretm else None,
        "userref": params.get("userref") if params.get("userref") not in (None, "") else old.userref,
        "deadline": params.get("deadline"),
        "validate": params.get("validate"),
    }
    if old.ordertype in TRAILING_TYPES:
        replacement["price"] = params.get("price") or (old.trail.text if old.trail else None)
        replacement["price2"] = params.get("price2") or (old.trail_limit.text if old.trail_limit else None)
    else:
        replacement["price"] = params.get("price") or (format(old.price, "f") if old.price is not None else None)
        replacement["price2"] = params.get("price2") or (format(old.price2, "f") if old.price2 is not None else None)
    if old.displayvol is not None:
        replacement["displayvol"] = params.get("displayvol") or format(old.displayvol, "f")
    new = _parse(sim, {k: v for k, v in replacement.items() if v is not None})
    descr = {"order": sim.engine.describe(new)}
    pair = order.pair
    result: dict[str, Any] = {
        "status": "ok",
        "volume": fixed(volume, pair.lot_decimals),
        "price": sim.engine.price_text(pair, new.price) if new.price is not None else "0",
        "price2": sim.engine.price_text(pair, new.price2) if new.price2 is not None else "0",
        "orders_cancelled": 1,
        "descr": descr,
    }
    if new.validate:
        sim.engine.check(key, new, releasing=order)
        return {"descr": descr}
    replaced = sim.engine.replace_order(order, new)
    return {**result, "txid": replaced.txid, "originaltxid": order.txid}


# -- private: cancellation ------------------------------------------------------------------------------------------


def _charge_cancels(sim: KrakenSimulator, key: str, targets: list[SimOrder], batch: bool = False) -> None:
    if sim.trading_limiter is None:
        return
    now = sim.clock.now()
    for order in targets:
        sim.trading_limiter.charge_cancel(key, order.pair.key, now - order.age_from, now, batch=batch)


def cancel_order(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """CancelOrder by txid, userref (every open order carrying it) or cl_ord_id
    (``rest_cancel_order_official_example.json``); the trading counter charges by order age first."""
    txid = params.get("txid")
    cl_ord_id = params.get("cl_ord_id")
    if txid in (None, "") and cl_ord_id in (None, ""):
        raise KrakenError(E.invalid_arguments("txid"))
    targets = sim.engine.cancel_targets(key, None if txid in (None, "") else str(txid), cl_ord_id or None)
    _charge_cancels(sim, key, targets)
    return {"count": len(sim.engine.cancel(targets))}


def cancel_order_batch(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """CancelOrderBatch (``rest_cancel_order_batch_official_example.json``): ``orders`` (txids or userrefs) and/or
    ``cl_ord_ids``, at most 50 in all; ids that name nothing open are skipped; ``count`` is what was canceled.
    Accepted even over the trading counter's limit (REFERENCE.md 5.2)."""
    ids = _ids(params.get("orders"))
    cl_ord_ids = _ids(params.get("cl_ord_ids"))
    if not ids and not cl_ord_ids:
        raise KrakenError(E.invalid_arguments("orders"))
    if len(set(ids)) + len(set(cl_ord_ids)) > BATCH_CANCEL_MAX:
        raise KrakenError(E.invalid_arguments("orders"))
    targets: dict[str, SimOrder] = {}
    for ident in dict.fromkeys(ids):
        try:
            targets |= {o.txid: o for o in sim.engine.cancel_targets(key, ident)}
        except KrakenError as exc:
            if exc.error != E.UNKNOWN_ORDER:
                raise
    for ident in dict.fromkeys(cl_ord_ids):
        try:
            targets |= {o.txid: o for o in sim.engine.cancel_targets(key, None, ident)}
        except KrakenError as exc:
            if exc.error != E.UNKNOWN_ORDER:
                raise
    orders = list(targets.values())
    _charge_cancels(sim, key, orders, batch=True)
    return {"count": len(sim.engine.cancel(orders))}


def cancel_all(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """CancelAll: every open order of the key."""
    return {"count": len(sim.engine.cancel_all(key))}


def cancel_all_orders_after(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """CancelAllOrdersAfter: arm (timeout > 0) or disarm (0) the dead man's switch; when it fires, on the
    simulator's clock, every open order is canceled and the switch disarms itself (REFERENCE.md 3.6)."""
    try:
        timeout = int(str(params.get("timeout")))
    except ValueError:
        raise KrakenError(E.invalid_arguments("timeout")) from None
    if not 0 <= timeout < 86400:
        raise KrakenError(E.invalid_arguments("timeout"))
    trigger = sim.engine.arm_dead_man(key, timeout)
    return {"currentTime": rfc3339(sim.clock.now()), "triggerTime": rfc3339(trigger) if trigger else "0"}


# -- private: queries ---------------------------------------------------------------------------------------------


def _userref_filter(params: Params):
    raw = params.get("userref")
    return None if raw in (None, "") else int(str(raw))


def _matches(order: SimOrder, params: Params) -> bool:
    userref = _userref_filter(params)
    cl_ord_id = params.get("cl_ord_id") or None
    return (userref is None or order.request.userref == userref) and (
        cl_ord_id is None or order.request.cl_ord_id == cl_ord_id
    )


def query_orders(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """QueryOrders: up to 50 comma-separated txids; an unknown one is ``EOrder:Invalid order``."""
    txids = _ids(params.get("txid"))
    if not txids or len(txids) > 50:
        raise KrakenError(E.invalid_arguments("txid"))
    orders = sim.engine.account(key).orders
    if any(t not in orders for t in txids):
        raise KrakenError(E.INVALID_ORDER)
    with_trades = is_true(params.get("trades"))
    return {t: order_info(sim.engine, orders[t], with_trades) for t in txids if _matches(orders[t], params)}


def open_orders(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """OpenOrders, newest first, with ``userref`` / ``cl_ord_id`` filters."""
    with_trades = is_true(params.get("trades"))
    account = sim.engine.account(key)
    if params.get("cl_ord_id"):
        found = account.open_by_cl_ord_id.get(str(params["cl_ord_id"]))
        orders = [found] if found is not None and _matches(found, params) else []
    else:
        orders = [o for o in reversed(account.open.values()) if _matches(o, params)]
    return {"open": {o.txid: order_info(sim.engine, o, with_trades) for o in orders}}


def _window(items: list, params: Params, time_of, txid_time) -> tuple[list, int]:
    """Kraken's start (exclusive) / end (inclusive) / ofs paging, 50 per page; returns (page, total)."""

    def bound(name: str) -> float | None:
        raw = params.get(name)
        if raw in (None, ""):
            return None
        text = str(raw)
        return txid_time(text) if text[:1].isalpha() else float(text)

    start, end = bound("start"), bound("end")
    selected = [i for i in items if (start is None or time_of(i) > start) and (end is None or time_of(i) <= end)]
    ofs = int(str(params.get("ofs") or 0))
    return selected[ofs : ofs + PAGE_SIZE], len(selected)


def closed_orders(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """ClosedOrders, most recently closed first, paged by 50 with ``start``/``end``/``ofs``; ``count`` is the
    total."""
    account = sim.engine.account(key)
    closed = [o for o in reversed(account.closed) if _matches(o, params)]
    page, total = _window(closed, params, lambda o: o.opentm, lambda t: account.orders[t].opentm)
    with_trades = is_true(params.get("trades"))
    return {"closed": {o.txid: order_info(sim.engine, o, with_trades) for o in page}, "count": total}


def trades_history(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """TradesHistory, newest first, paged by 50; ``count`` is the total."""
    account = sim.engine.account(key)
    trades = list(reversed(account.trades.values()))
    page, total = _window(trades, params, lambda t: t.time, lambda t: account.trades[t].time)
    return {"trades": {t.txid: trade_info(t) for t in page}, "count": total}


def query_trades(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """QueryTrades: up to 20 trade txids."""
    txids = _ids(params.get("txid"))
    trades = sim.engine.account(key).trades
    if not txids or len(txids) > 20 or any(t not in trades for t in txids):
        raise KrakenError(E.invalid_arguments("txid"))
    return {t: trade_info(trades[t]) for t in txids}


def get_websockets_token(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """GetWebSocketsToken: a token the WS endpoint maps back to this key."""
    return {"token": sim.issue_ws_token(key), "expires": 900}


PRIVATE: dict[str, Callable[[KrakenSimulator, str, Params], Any]] = {
    "Balance": balance,
    "BalanceEx": balance_ex,
    "AddOrder": add_order,
    "AddOrderBatch": add_order_batch,
    "AmendOrder": amend_order,
    "OrderAmends": order_amends,
    "EditOrder": edit_order,
    "CancelOrder": cancel_order,
    "CancelOrderBatch": cancel_order_batch,
    "CancelAll": cancel_all,
    "CancelAllOrdersAfter": cancel_all_orders_after,
    "QueryOrders": query_orders,
    "OpenOrders": open_orders,
    "ClosedOrders": closed_orders,
    "TradesHistory": trades_history,
    "QueryTrades": query_trades,
    "GetWebSocketsToken": get_websockets_token,
}
# Methods that place an order on a pair: in paper mode the live feed is asked for the pair's price first.
ORDER_ENTRY = frozenset({"AddOrder", "AddOrderBatch", "EditOrder", "AmendOrder"})


def order_pair_name(method: str, params: Params) -> str | None:
    """The pair an order-entry call is about (None when the call does not name one)."""
    name = params.get("pair")
    return str(name) if name not in (None, "") else None
