"""The Kraken REST methods the simulator serves: ``(simulator, [key,] params) -> result`` functions in two tables.

The transport (envelopes, signatures, faults) is ``rest``; these only read and change the simulator's state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import errors as E
from .clock import rfc1123, rfc3339
from .errors import KrakenError
from .orderentry import is_true, parse_add_order
from .views import asset_decimals, asset_entry, fixed, order_info, ticker_entry, trade_info

if TYPE_CHECKING:
    from .server import KrakenSimulator

PAGE_SIZE = 50
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
    found = [sim.pairs.find(n) for n in names]
    if any(p is None for p in found):
        raise KrakenError(E.UNKNOWN_PAIR)
    return found


def public_time(sim: KrakenSimulator, params: Params) -> Any:
    """Time: server time as unixtime and RFC 1123."""
    now = sim.clock.now()
    return {"unixtime": int(now), "rfc1123": rfc1123(now)}


def public_system_status(sim: KrakenSimulator, params: Params) -> Any:
    """SystemStatus: online / maintenance / cancel_only / post_only."""
    return {"status": sim.engine.system_status, "timestamp": rfc3339(sim.clock.now())}


def public_asset_pairs(sim: KrakenSimulator, params: Params) -> Any:
    """AssetPairs, with the ``pair=`` filter by key, altname or wsname."""
    return {p.key: sim.asset_pairs[p.key] for p in _pairs_selected(sim, params)}


def public_ticker(sim: KrakenSimulator, params: Params) -> Any:
    """Ticker rows keyed by AssetPairs key."""
    return {p.key: ticker_entry(sim.engine.mark(p), p.pair_decimals) for p in _pairs_selected(sim, params)}


def public_assets(sim: KrakenSimulator, params: Params) -> Any:
    """Assets, with the ``asset=`` filter."""
    assets = sorted({a for p in sim.pairs for a in (p.base, p.quote)})
    wanted = _ids(params.get("asset"))
    if wanted:
        by_alt = {a: a for a in assets} | {asset_entry(a)["altname"]: a for a in assets}
        if any(w.upper() not in by_alt for w in wanted):
            raise KrakenError("EQuery:Unknown asset")
        assets = [by_alt[w.upper()] for w in wanted]
    return {a: asset_entry(a) for a in assets}


PUBLIC: dict[str, Callable[[KrakenSimulator, Params], Any]] = {
    "Time": public_time,
    "SystemStatus": public_system_status,
    "AssetPairs": public_asset_pairs,
    "Ticker": public_ticker,
    "Assets": public_assets,
}


# -- private ----------------------------------------------------------------------------------------------------


def balance(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """Balance: asset -> amount string."""
    balances = sim.engine.account(key).balances
    return {asset: fixed(amount, asset_decimals(asset)) for asset, amount in sorted(balances.items())}


def balance_ex(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """BalanceEx: asset -> balance and what open orders hold."""
    balances = sim.engine.account(key).balances
    return {
        asset: {
            "balance": fixed(amount, asset_decimals(asset)),
            "hold_trade": fixed(sim.engine.held(key, asset), asset_decimals(asset)),
        }
        for asset, amount in sorted(balances.items())
    }


def add_order(sim: KrakenSimulator, key: str, params: Params, delay_acceptance: float | None = None) -> Any:
    """AddOrder: validate, then place (or only describe with ``validate``, or accept later under the fault)."""
    now = sim.clock.now()
    pair = sim.pairs.find(str(params.get("pair") or ""))
    if pair is not None and sim.trading_limiter is not None:
        sim.trading_limiter.charge_add(key, pair.key, now)
    req = parse_add_order(params, sim.pairs, now)
    sim.engine.check(key, req)
    descr = {"order": sim.engine.describe(req)}
    if req.validate:
        return {"descr": descr}
    if delay_acceptance is not None:
        sim.engine.place_later(key, req, delay_acceptance)
        return None
    order = sim.engine.place(key, req)
    return {"descr": descr, "txid": [order.txid]}


def cancel_order(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """CancelOrder by txid, userref or cl_ord_id; the trading counter charges by order age first."""
    txid = params.get("txid")
    cl_ord_id = params.get("cl_ord_id")
    if txid in (None, "") and cl_ord_id in (None, ""):
        raise KrakenError(E.invalid_arguments("txid"))
    targets = sim.engine.cancel_targets(key, None if txid in (None, "") else str(txid), cl_ord_id or None)
    if sim.trading_limiter is not None:
        now = sim.clock.now()
        for order in targets:
            sim.trading_limiter.charge_cancel(key, order.pair.key, now - order.opentm, now)
    return {"count": len(sim.engine.cancel(targets))}


def cancel_all(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """CancelAll: every open order of the key."""
    return {"count": len(sim.engine.cancel_all(key))}


def cancel_all_orders_after(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """CancelAllOrdersAfter: arm (timeout > 0) or disarm (0) the dead man's switch."""
    try:
        timeout = int(str(params.get("timeout")))
    except ValueError:
        raise KrakenError(E.invalid_arguments("timeout")) from None
    if not 0 <= timeout < 86400:
        raise KrakenError(E.invalid_arguments("timeout"))
    trigger = sim.engine.arm_dead_man(key, timeout)
    return {"currentTime": rfc3339(sim.clock.now()), "triggerTime": rfc3339(trigger) if trigger else "0"}


def _userref_filter(params: Params):
    raw = params.get("userref")
    return None if raw in (None, "") else int(str(raw))


def _matches(order, params: Params) -> bool:
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


def _newest_first(orders):
    return sorted(orders, key=lambda o: o.seq, reverse=True)


def open_orders(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """OpenOrders, newest first, with ``userref`` / ``cl_ord_id`` filters."""
    with_trades = is_true(params.get("trades"))
    orders = [o for o in sim.engine.account(key).orders.values() if o.is_open and _matches(o, params)]
    return {"open": {o.txid: order_info(sim.engine, o, with_trades) for o in _newest_first(orders)}}


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
    """ClosedOrders, newest first, paged by 50 with ``start``/``end``/``ofs``; ``count`` is the total."""
    account = sim.engine.account(key)
    closed = [o for o in _newest_first(account.orders.values()) if not o.is_open and _matches(o, params)]
    page, total = _window(closed, params, lambda o: o.opentm, lambda t: account.orders[t].opentm)
    with_trades = is_true(params.get("trades"))
    return {"closed": {o.txid: order_info(sim.engine, o, with_trades) for o in page}, "count": total}


def trades_history(sim: KrakenSimulator, key: str, params: Params) -> Any:
    """TradesHistory, newest first, paged by 50; ``count`` is the total."""
    account = sim.engine.account(key)
    trades = sorted(account.trades.values(), key=lambda t: t.trade_id, reverse=True)
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
    "CancelOrder": cancel_order,
    "CancelAll": cancel_all,
    "CancelAllOrdersAfter": cancel_all_orders_after,
    "QueryOrders": query_orders,
    "OpenOrders": open_orders,
    "ClosedOrders": closed_orders,
    "TradesHistory": trades_history,
    "QueryTrades": query_trades,
    "GetWebSocketsToken": get_websockets_token,
}
