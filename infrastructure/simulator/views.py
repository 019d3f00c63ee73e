"""REST result shapes (REFERENCE.md sections 2-3): decimals as strings, timestamps as JSON numbers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from execledger.domain.values import ZERO

from .engine import Exchange, SimOrder, SimTrade, offset_text
from .orderentry import TRAILING_TYPES


def fixed(value: Decimal, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def timestamp(ts: float) -> float:
    # Kraken sends epoch seconds with four decimals as a JSON number.
    return round(ts, 4)


def oflags_text(order: SimOrder) -> str:
    """``post,fciq``-style flags as order info reports them (the fee currency is always named)."""
    flags: list[str] = [
        f for f in ("post", "nompp", "viqc") if f in order.request.oflags or (f == "post" and order.request.post_only)
    ]
    flags.append("fcib" if order.fee_in_base else "fciq")
    return ",".join(flags)


def order_info(exchange: Exchange, order: SimOrder, with_trades: bool) -> dict[str, Any]:
    """One order-info object, the shape of the QueryOrders / OpenOrders / ClosedOrders fixtures. Trailing stops
    report their offset in ``descr.price`` and, like the captured ones, the stop now in ``stopprice`` and the price
    it trails in ``limitprice``."""
    req, pair = order.request, order.pair
    cost_dp, price_dp = pair.cost_decimals, pair.pair_decimals
    zero = fixed(ZERO, cost_dp)
    if req.ordertype in TRAILING_TYPES:
        assert req.trail is not None
        descr_price = offset_text(pair, req.trail)
        descr_price2 = offset_text(pair, req.trail_limit) if req.trail_limit is not None else "0"
        stopprice = fixed(order.stop_price, price_dp) if order.stop_price is not None else zero
        limitprice = fixed(order.peak, price_dp) if order.peak is not None else zero
    else:
        descr_price = fixed(req.price, price_dp) if req.price is not None else "0"
        descr_price2 = fixed(req.price2, price_dp) if req.price2 is not None else "0"
        stopprice = fixed(req.trigger_price, price_dp) if order.triggered and req.trigger_price else zero
        limitprice = fixed(req.price2, price_dp) if order.triggered and req.price2 else zero
    info: dict[str, Any] = {
        "refid": order.refid,
        "userref": None if req.cl_ord_id else (req.userref if req.userref is not None else 0),
        "cl_ord_id": req.cl_ord_id,
        "status": order.status,
        "reason": order.reason,
        "opentm": timestamp(order.opentm),
        "starttm": timestamp(req.starttm) if req.starttm else 0,
        "expiretm": timestamp(req.expiretm) if req.expiretm else 0,
        "descr": {
            "pair": pair.altname,
            "type": str(req.side),
            "ordertype": str(req.ordertype),
            "price": descr_price,
            "price2": descr_price2,
            "leverage": "none",
            "order": exchange.describe(req),
            "close": "",
        },
        "vol": fixed(req.volume, cost_dp if req.viqc else pair.lot_decimals),
        "vol_exec": fixed(order.vol_exec, pair.lot_decimals),
        "cost": fixed(order.cost, cost_dp),
        "fee": fixed(order.fee, pair.lot_decimals if order.fee_in_base else cost_dp),
        "price": fixed(order.avg_price, price_dp) if order.vol_exec else zero,
        "stopprice": stopprice,
        "limitprice": limitprice,
        "misc": ",".join(sorted(order.misc)),
        "oflags": oflags_text(order),
    }
    if req.ordertype in TRAILING_TYPES or req.trigger_price is not None:
        info["trigger"] = req.trigger
    if order.closetm is not None:
        info["closetm"] = timestamp(order.closetm)
    if with_trades and order.trades:
        info["trades"] = [t.txid for t in order.trades]
    return info


def trade_info(trade: SimTrade) -> dict[str, Any]:
    """One trade object, the shape of the TradesHistory / QueryTrades fixtures; ``fee`` is in the asset the order
    paid it in (the quote unless ``fcib``)."""
    dp = trade.pair.cost_decimals
    fee_dp = trade.pair.lot_decimals if trade.fee_asset == trade.pair.base else dp
    return {
        "ordertxid": trade.order_txid,
        "postxid": "TKH2SE-M7IF5-CFI7LT",  # Kraken's position txid; meaningless without margin, constant here
        "pair": trade.pair.key,
        "time": timestamp(trade.time),
        "type": str(trade.side),
        "ordertype": trade.ordertype,
        "price": fixed(trade.price, dp),
        "cost": fixed(trade.cost, dp),
        "fee": fixed(trade.fee, fee_dp),
        "vol": fixed(trade.vol, trade.pair.lot_decimals),
        "margin": fixed(ZERO, dp),
        "misc": "",
        "trade_id": trade.trade_id,
        "maker": trade.maker,
    }
