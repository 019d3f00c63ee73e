"""WS v2 ``executions`` records (REFERENCE.md 6.2): sparse dicts whose numbers are JSON numbers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from execledger.domain.pairs import PairRules
from execledger.domain.values import ZERO
from execledger.infrastructure.kraken.wire import ExecType as ObservationKind

from .clock import rfc3339
from .engine import Execution, SimOrder, SimTrade
from .views import asset_altname


def ws_symbol(pair: PairRules) -> str:
    """WS v2 names pairs ``BTC/USD`` where REST says ``XBT/USD``."""
    return "/".join("BTC" if part == "XBT" else part for part in pair.wsname.split("/"))


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


def _order_detail(order: SimOrder) -> dict[str, Any]:
    req = order.request
    detail: dict[str, Any] = {
        "symbol": ws_symbol(order.pair),
        "side": str(req.side),
        "order_type": str(req.ordertype),
        "order_qty": _n(req.volume),
        "time_in_force": "GTC",
        "post_only": req.post_only,
        "reduce_only": req.reduce_only,
        "fee_ccy_pref": "fciq",
        "fee_usd_equiv": 0.0,
        "cum_cost": _n(order.cost),
    }
    if req.limit_price is not None:
        detail |= {"limit_price": _n(req.limit_price), "limit_price_type": "static"}
    if req.trigger_price is not None:
        detail["triggers"] = {
            "reference": req.trigger,
            "price": _n(req.trigger_price),
            "price_type": "static",
            "status": "triggered" if order.triggered else "untriggered",
        }
    return detail


def _totals(order: SimOrder) -> dict[str, Any]:
    return {
        "cum_qty": _n(order.vol_exec),
        "cum_cost": _n(order.cost),
        "avg_price": _n(order.avg_price),
        "fee_usd_equiv": _n(order.fee),
    }


def trade_record(order: SimOrder, trade: SimTrade, status: str) -> dict[str, Any]:
    record = _head(order, "trade", status, trade.time)
    record |= {
        "exec_id": trade.txid,
        "trade_id": trade.trade_id,
        "symbol": ws_symbol(trade.pair),
        "side": str(trade.side),
        "order_type": str(trade.ordertype),
        "last_qty": _n(trade.vol),
        "last_price": _n(trade.price),
        "liquidity_ind": "m" if trade.maker else "t",
        "cost": _n(trade.cost),
        "fees": [{"asset": asset_altname(trade.pair.quote), "qty": _n(trade.fee)}],
    }
    return record | _totals(order)


def execution_record(execution: Execution) -> dict[str, Any]:
    """Render one engine execution as Kraken would stream it (call at once: the order keeps changing)."""
    order, kind, at = execution.order, execution.kind, execution.time
    if kind is ObservationKind.PENDING_NEW:
        return _head(order, kind, "pending_new", at) | _order_detail(order)
    if kind is ObservationKind.NEW:
        return _head(order, kind, "new", at)
    if kind is ObservationKind.TRADE:
        assert execution.trade is not None
        status = "filled" if order.remaining <= ZERO else "partially_filled"
        return trade_record(order, execution.trade, status)
    record = _head(order, kind, str(kind), at) | _totals(order)
    if kind is ObservationKind.CANCELED:
        record |= {"reason": order.reason, "cancel_reason": order.reason}
    return record


def snapshot_order(order: SimOrder) -> dict[str, Any]:
    """An open order in the subscribe snapshot: full detail plus its cumulative fill."""
    status = "partially_filled" if order.vol_exec > ZERO else "new"
    return _head(order, "new", status, order.opentm) | _order_detail(order) | _totals(order)
