"""REST result shapes (REFERENCE.md sections 2-3): decimals as strings, timestamps as JSON numbers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from execledger.domain.values import ZERO

from .engine import Exchange, SimOrder, SimTrade


def fixed(value: Decimal, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def timestamp(ts: float) -> float:
    # Kraken sends epoch seconds with four decimals as a JSON number.
    return round(ts, 4)


def asset_decimals(asset: str) -> int:
    """Fiat (``Z``-prefixed) balances carry 4 decimals on Kraken, crypto 10."""
    return 4 if asset.startswith("Z") else 10


def asset_altname(asset: str) -> str:
    return asset[1:] if len(asset) == 4 and asset[0] in "XZ" else asset


def order_info(exchange: Exchange, order: SimOrder, with_trades: bool) -> dict[str, Any]:
    """One order-info object, the shape of the QueryOrders / OpenOrders / ClosedOrders fixtures."""
    req, pair = order.request, order.pair
    cost_dp = pair.cost_decimals
    descr_price = req.price if req.price is not None else None
    info: dict[str, Any] = {
        "refid": None,
        "userref": None if req.cl_ord_id else (req.userref if req.userref is not None else 0),
        "cl_ord_id": req.cl_ord_id,
        "status": order.status,
        "reason": order.reason,
        "opentm": timestamp(order.opentm),
        "starttm": 0,
        "expiretm": timestamp(req.expiretm) if req.expiretm else 0,
        "descr": {
            "pair": pair.altname,
            "type": str(req.side),
            "ordertype": str(req.ordertype),
            "price": fixed(descr_price, pair.pair_decimals) if descr_price is not None else "0",
            "price2": fixed(req.price2, pair.pair_decimals) if req.price2 is not None else "0",
            "leverage": "none",
            "order": exchange.describe(req),
            "close": "",
        },
        "vol": fixed(req.volume, pair.lot_decimals),
        "vol_exec": fixed(order.vol_exec, pair.lot_decimals),
        "cost": fixed(order.cost, cost_dp),
        "fee": fixed(order.fee, cost_dp),
        "price": fixed(order.avg_price, pair.pair_decimals) if order.vol_exec else fixed(ZERO, cost_dp),
        "stopprice": fixed(req.trigger_price, pair.pair_decimals) if order.triggered else fixed(ZERO, cost_dp),
        "limitprice": fixed(req.price2, pair.pair_decimals) if order.triggered and req.price2 else fixed(ZERO, cost_dp),
        "misc": "stopped" if order.triggered else "",
        "oflags": "post,fciq" if req.post_only else "fciq",
    }
    if req.trigger_price is not None:
        info["trigger"] = req.trigger
    if order.closetm is not None:
        info["closetm"] = timestamp(order.closetm)
    if with_trades and order.trades:
        info["trades"] = [t.txid for t in order.trades]
    return info


def trade_info(trade: SimTrade) -> dict[str, Any]:
    """One trade object, the shape of the TradesHistory / QueryTrades fixtures."""
    dp = trade.pair.cost_decimals
    return {
        "ordertxid": trade.order_txid,
        "postxid": "TKH2SE-M7IF5-CFI7LT",  # Kraken's position txid; meaningless without margin, constant here
        "pair": trade.pair.key,
        "time": timestamp(trade.time),
        "type": str(trade.side),
        "ordertype": str(trade.ordertype),
        "price": fixed(trade.price, dp),
        "cost": fixed(trade.cost, dp),
        "fee": fixed(trade.fee, dp),
        "vol": fixed(trade.vol, trade.pair.lot_decimals),
        "margin": fixed(ZERO, dp),
        "misc": "",
        "trade_id": trade.trade_id,
        "maker": trade.maker,
    }


def ticker_entry(mark: Decimal, pair_decimals: int) -> dict[str, Any]:
    """A Ticker row around the mark (the simulator has no book depth, so bid = ask = last)."""
    p = fixed(mark, pair_decimals)
    return {
        "a": [p, "1", "1.000"],
        "b": [p, "1", "1.000"],
        "c": [p, "0.00100000"],
        "v": ["0.00000000", "0.00000000"],
        "p": [p, p],
        "t": [0, 0],
        "l": [p, p],
        "h": [p, p],
        "o": p,
    }


def asset_entry(asset: str) -> dict[str, Any]:
    decimals = asset_decimals(asset)
    return {
        "aclass": "currency",
        "altname": asset_altname(asset),
        "decimals": decimals,
        "display_decimals": 2 if decimals == 4 else 5,
        "status": "enabled",
    }
