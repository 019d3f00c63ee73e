"""WS v2 ``executions`` records (REFERENCE.md 6.2): sparse dicts whose numbers are JSON numbers.

Shapes follow the captured updates (``ws_v2_executions_update_*``): ``pending_new`` carries the order's detail,
``new`` is sparse, ``trade`` carries the fill (``fees: [{"asset": "USD", "qty": ...}]`` in the asset the order
pays its fee in, WS v2 spelling: ``BTC``, not ``XBT``), ``amended`` the new quantity and prices with
``amended: true``, closing records the cumulative totals.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from execledger.domain.pairs import PairRules
from execledger.domain.values import ZERO
from execledger.infrastructure.kraken.wire import ExecType as ObservationKind
from execledger.infrastructure.kraken.wire import ws_asset, ws_symbol_of

from .clock import rfc3339
from .engine import Execution, SimOrder, SimTrade
from .orderentry import TRAILING_TYPES

AssetNames = dict[str, str]  # asset id -> altname (catalog.asset_altnames)


def ws_symbol(pair: PairRules) -> str:
    """WS v2 names pairs ``BTC/USD`` where REST says ``XBT/USD``."""
    return ws_symbol_of(pair.wsname)


def _n(value: Decimal) -> float:
    return float(value)


def _head(order: SimOrder, kind: str, status: str, at: float) -> dict[str, Any]:
    record: dict[str, Any] = {
        "order_id": order.txid,
        "order_userref": order.request.userref or 0,
        "exec_type": kind,
        "order_status": status,
        "timestamp": rfc3339(at, micros=True),
    }
    if order.request.cl_ord_id:
        record["cl_ord_id"] = order.request.cl_ord_id
    return record


def _triggers(order: SimOrder) -> dict[str, Any] | None:
    req = order.request
    if req.ordertype in TRAILING_TYPES:
        assert req.trail is not None
        triggers: dict[str, Any] = {
            "reference": req.trigger,
            "price": _n(req.trail.amount),
            "price_type": "pct" if req.trail.percent else "quote",
        }
    elif req.trigger_price is not None:
        triggers = {"reference": req.trigger, "price": _n(req.trigger_price), "price_type": "static"}
    else:
        return None
    triggers["status"] = "triggered" if order.triggered else "untriggered"
    if order.stop_price is not None:
        triggers["actual_price"] = _n(order.stop_price)
    if order.peak is not None:
        triggers["peak_price"] = _n(order.peak)
    return triggers


def _order_detail(order: SimOrder) -> dict[str, Any]:
    req = order.request
    detail: dict[str, Any] = {
        "symbol": ws_symbol(order.pair),
        "side": str(req.side),
        "order_type": str(req.ordertype),
        "time_in_force": req.timeinforce,
        "post_only": req.post_only,
        "reduce_only": req.reduce_only,
        "fee_ccy_pref": "fcib" if order.fee_in_base else "fciq",
        "fee_usd_equiv": 0.0,
        "cum_cost": _n(order.cost),
    }
    if req.viqc:
        detail["cash_order_qty"] = _n(req.volume)
    else:
        detail["order_qty"] = _n(req.volume)
    if req.nompp:
        detail["no_mpp"] = True
    if req.displayvol is not None:
        detail["display_qty"] = _n(req.displayvol)
    if req.expiretm:
        detail["expire_time"] = rfc3339(req.expiretm, micros=True)
    if req.starttm:
        detail["effective_time"] = rfc3339(req.starttm, micros=True)
    if req.limit_price is not None:
        detail |= {"limit_price": _n(req.limit_price), "limit_price_type": "static"}
    elif req.trail_limit is not None:
        amount = req.trail_limit.sign * req.trail_limit.amount
        detail |= {"limit_price": _n(amount), "limit_price_type": "pct" if req.trail_limit.percent else "quote"}
    triggers = _triggers(order)
    if triggers is not None:
        detail["triggers"] = triggers
    return detail


def _totals(order: SimOrder) -> dict[str, Any]:
    return {
        "cum_qty": _n(order.vol_exec),
        "cum_cost": _n(order.cost),
        "avg_price": _n(order.avg_price),
        "fee_usd_equiv": _n(order.fee),
    }


def trade_record(order: SimOrder, trade: SimTrade, status: str, names: AssetNames) -> dict[str, Any]:
    record = _head(order, "trade", status, trade.time)
    fee_asset = trade.fee_asset or trade.pair.quote
    record |= {
        "exec_id": trade.txid,
        "trade_id": trade.trade_id,
        "symbol": ws_symbol(trade.pair),
        "side": str(trade.side),
        "order_type": trade.ordertype,
        "last_qty": _n(trade.vol),
        "last_price": _n(trade.price),
        "liquidity_ind": "m" if trade.maker else "t",
        "cost": _n(trade.cost),
        "fees": [{"asset": ws_asset(names.get(fee_asset, fee_asset)), "qty": _n(trade.fee)}],
    }
    return record | _totals(order)


def _amended(order: SimOrder, at: float, detail: dict[str, Any]) -> dict[str, Any]:
    status = "partially_filled" if order.vol_exec > ZERO else "new"
    record = _head(order, "amended", status, at) | {"reason": "User requested", "amended": True}
    record["cum_qty"] = _n(order.vol_exec)
    record["order_qty"] = _n(order.request.volume)
    if order.request.limit_price is not None:
        record |= {"limit_price": _n(order.request.limit_price), "limit_price_type": "static"}
    triggers = _triggers(order)
    if triggers is not None and "trigger_price" in detail:
        record["triggers"] = triggers
    if "post_only" in detail:
        record["post_only"] = order.request.post_only
    if "display_qty" in detail and order.request.displayvol is not None:
        record["display_qty"] = _n(order.request.displayvol)
    return record


def execution_record(execution: Execution, names: AssetNames) -> dict[str, Any]:
    """Render one engine execution as Kraken would stream it (call at once: the order keeps changing)."""
    order, kind, at = execution.order, execution.kind, execution.time
    if kind is ObservationKind.PENDING_NEW:
        return _head(order, kind, "pending_new", at) | _order_detail(order)
    if kind is ObservationKind.NEW:
        return _head(order, kind, "new", at)
    if kind is ObservationKind.TRADE:
        assert execution.trade is not None
        status = "filled" if order.remaining <= ZERO else "partially_filled"
        return trade_record(order, execution.trade, status, names)
    if kind is ObservationKind.AMENDED:
        return _amended(order, at, execution.detail or {})
    record = _head(order, kind, str(kind), at) | _totals(order)
    if kind is ObservationKind.CANCELED:
        record |= {"reason": order.reason, "cancel_reason": order.reason}
    return record


def snapshot_order(order: SimOrder) -> dict[str, Any]:
    """An open order in the subscribe snapshot: full detail plus its cumulative fill."""
    status = "partially_filled" if order.vol_exec > ZERO else "new"
    return _head(order, "new", status, order.opentm) | _order_detail(order) | _totals(order)
