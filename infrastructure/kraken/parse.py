"""Kraken wire payloads -> the port's values (``VenueOrder``, ``VenueTrade``, ``ExecutionObservation``).

REFERENCE.md 3.7 (order info), 3.8 (trades), 6.2 (WS v2 executions). Kraken dicts stop here: nothing past the
adapter sees one. Decimals stay exact: REST sends strings; WS v2 sends JSON numbers, which the stream decodes with
``parse_float=Decimal`` (a float that still arrives is converted through its shortest repr).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from execledger.application.exchange import (
    ExecutionObservation,
    ObservationKind,
    VenueOrder,
    VenueOrderStatus,
    VenueTrade,
)
from execledger.domain.pairs import PairRegistry
from execledger.domain.values import ZERO, Side, to_decimal

TRIGGERED_TYPES = frozenset(
    {"stop-loss", "take-profit", "stop-loss-limit", "take-profit-limit", "trailing-stop", "trailing-stop-limit"}
)
TERMINAL = frozenset({VenueOrderStatus.FILLED, VenueOrderStatus.CANCELED, VenueOrderStatus.EXPIRED})
WS_ORDER_STATUS = {
    "pending_new": VenueOrderStatus.PENDING,
    "new": VenueOrderStatus.OPEN,
    "partially_filled": VenueOrderStatus.PARTIALLY_FILLED,
    "filled": VenueOrderStatus.FILLED,
    "canceled": VenueOrderStatus.CANCELED,
    "expired": VenueOrderStatus.EXPIRED,
}


class UnparseablePayload(ValueError):
    """A Kraken payload lacks a field the port needs (the message names the field, not the payload)."""


def number(value: Any) -> Decimal:
    """An exact Decimal from a Kraken string, int, Decimal or (WS) float."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return to_decimal(value)


def optional_price(value: Any) -> Decimal | None:
    """A price that Kraken writes as "0" when unset, or as a relative offset ("+50.0000%") we cannot resolve."""
    if value in (None, ""):
        return None
    try:
        price = number(value)
    except ValueError:
        return None
    return price if price != ZERO else None


def epoch(value: Any) -> datetime | None:
    """A REST timestamp (epoch seconds with fraction, a JSON number; ccxt fixtures quote it); 0 means unset."""
    if value in (None, "", 0, "0"):
        return None
    seconds = number(value)
    return datetime.fromtimestamp(float(seconds), tz=UTC) if seconds else None


def rfc3339(value: Any) -> datetime | None:
    """A WS v2 timestamp such as ``2024-05-18T12:58:40.165132Z``."""
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _pair_key(name: str, pairs: PairRegistry | None) -> str:
    # Orders echo the altname (XBTUSD), trades the key (XXBTZUSD): report the key when we know the pair.
    rules = pairs.find(name) if pairs is not None else None
    return rules.key if rules is not None else name


def _rest_status(raw: str, volume: Decimal, executed: Decimal) -> VenueOrderStatus:
    if raw == "pending":
        return VenueOrderStatus.PENDING
    if raw == "open":
        return VenueOrderStatus.PARTIALLY_FILLED if ZERO < executed < volume else VenueOrderStatus.OPEN
    if raw == "closed":
        # "closed" is Kraken's word for filled; one closed with nothing executed ended without a trade.
        return VenueOrderStatus.FILLED if executed > ZERO else VenueOrderStatus.CANCELED
    if raw == "canceled":
        return VenueOrderStatus.CANCELED
    if raw == "expired":
        return VenueOrderStatus.EXPIRED
    raise UnparseablePayload(f"unknown order status {raw!r}")


def parse_order_info(txid: str, info: Mapping[str, Any], pairs: PairRegistry | None = None) -> VenueOrder:
    """One order-info object of QueryOrders / OpenOrders / ClosedOrders. ``price`` there is the average fill
    price; the limit and trigger prices come from ``descr`` (or ``stopprice``/``limitprice`` once known)."""
    try:
        descr = info["descr"]
        volume = number(info["vol"])
        executed = number(info["vol_exec"])
        order_type = str(descr["ordertype"])
        status = _rest_status(str(info["status"]), volume, executed)
        side = Side(descr["type"])
    except (KeyError, ValueError) as exc:
        raise UnparseablePayload(f"order {txid}: missing or bad field {exc}") from None
    if order_type in TRIGGERED_TYPES:
        stop_price = optional_price(descr.get("price")) or optional_price(info.get("stopprice"))
        limit_price = optional_price(descr.get("price2")) or optional_price(info.get("limitprice"))
    else:
        stop_price = None
        limit_price = optional_price(descr.get("price"))
    return VenueOrder(
        txid=txid,
        cl_ord_id=info.get("cl_ord_id") or None,
        pair=_pair_key(str(descr.get("pair", "")), pairs),
        side=side,
        order_type=order_type,
        status=status,
        volume=volume,
        volume_executed=executed,
        average_price=optional_price(info.get("price")) if executed > ZERO else None,
        cost=number(info.get("cost", "0")),
        fee=number(info.get("fee", "0")),
        limit_price=limit_price,
        stop_price=stop_price,
        opened_at=epoch(info.get("opentm")),
        closed_at=epoch(info.get("closetm")),
        reason=info.get("reason") or None,
        trade_ids=tuple(info.get("trades") or ()),
    )


def parse_orders(result: Mapping[str, Any], pairs: PairRegistry | None = None) -> dict[str, VenueOrder]:
    """A QueryOrders ``result`` (txid -> info) or an Open/ClosedOrders ``result`` (``open``/``closed`` wrapper)."""
    body = result["open"] if "open" in result else result.get("closed", result)
    return {txid: parse_order_info(txid, info, pairs) for txid, info in body.items()}


def parse_trade(trade_txid: str, info: Mapping[str, Any], pairs: PairRegistry | None = None) -> VenueTrade:
    """One TradesHistory / QueryTrades entry. ``trade_id`` is the trade txid (what WS v2 calls ``exec_id``), so a
    fill seen by the stream and by REST has one id. REST gives no fee asset: it is the quote by default (fciq)."""
    try:
        pair = _pair_key(str(info["pair"]), pairs)
        rules = pairs.find(pair) if pairs is not None else None
        return VenueTrade(
            trade_id=trade_txid,
            txid=str(info["ordertxid"]),
            pair=pair,
            side=Side(info["type"]),
            price=number(info["price"]),
            volume=number(info["vol"]),
            cost=number(info["cost"]),
            fee=number(info["fee"]),
            fee_asset=rules.quote if rules is not None else "",
            executed_at=epoch(info["time"]) or datetime.fromtimestamp(0, tz=UTC),
            maker=info.get("maker"),
        )
    except (KeyError, ValueError) as exc:
        raise UnparseablePayload(f"trade {trade_txid}: missing or bad field {exc}") from None


def parse_trades(result: Mapping[str, Any], pairs: PairRegistry | None = None) -> list[VenueTrade]:
    """TradesHistory (``{"trades": {...}, "count": n}``) or QueryTrades (txid -> trade) ``result``, oldest first."""
    body = result["trades"] if "trades" in result and isinstance(result["trades"], Mapping) else result
    trades = [parse_trade(txid, info, pairs) for txid, info in body.items()]
    return sorted(trades, key=lambda t: t.executed_at)


def parse_add_order(result: Mapping[str, Any]) -> str | None:
    """The txid of a single AddOrder (an array of one), None for ``validate=true`` (no txid)."""
    txids = result.get("txid") or []
    if isinstance(txids, str):
        return txids
    return str(txids[0]) if txids else None


def _kind(exec_type: str) -> ObservationKind:
    try:
        return ObservationKind(exec_type)
    except ValueError:
        return ObservationKind.STATUS  # e.g. iceberg_refill: no change of fills or life-cycle


def parse_execution_report(record: Mapping[str, Any], sequence: int | None, source: str = "ws") -> ExecutionObservation:
    """One WS v2 ``executions`` record. Records are sparse: only exec_type, order_id, timestamp and order_status
    are reliably present; everything else is None when absent."""
    try:
        exec_type = str(record["exec_type"])
        txid = str(record["order_id"])
    except KeyError as exc:
        raise UnparseablePayload(f"execution report without {exc}") from None
    fees = record.get("fees") or []
    fee = sum((number(f["qty"]) for f in fees), ZERO) if fees else None
    status = record.get("order_status")

    def dec(name: str) -> Decimal | None:
        return number(record[name]) if record.get(name) is not None else None

    extra = {
        k: str(record[k])
        for k in (
            "symbol",
            "side",
            "order_type",
            "order_qty",
            "limit_price",
            "cost",
            "liquidity_ind",
            "trade_id",
            "order_userref",
            "cum_cost",
        )
        if record.get(k) is not None
    }
    if exec_type != _kind(exec_type).value:
        extra["exec_type"] = exec_type
    return ExecutionObservation(
        kind=_kind(exec_type),
        txid=txid,
        cl_ord_id=record.get("cl_ord_id") or None,
        order_status=WS_ORDER_STATUS.get(status) if status else None,
        source=source,
        timestamp=rfc3339(record.get("timestamp")),
        trade_id=str(record["exec_id"]) if record.get("exec_id") else None,
        last_qty=dec("last_qty"),
        last_price=dec("last_price"),
        fee=fee,
        fee_asset=str(fees[0]["asset"]) if fees else None,
        cum_qty=dec("cum_qty"),
        avg_price=dec("avg_price"),
        reason=record.get("reason") or record.get("cancel_reason") or None,
        sequence=sequence,
        extra=extra,
    )


def parse_executions_message(message: Mapping[str, Any]) -> list[ExecutionObservation]:
    """A whole ``{"channel":"executions","type":"snapshot"|"update","data":[...],"sequence":n}`` message."""
    sequence = message.get("sequence")
    return [parse_execution_report(r, sequence) for r in message.get("data") or ()]


def order_observation(order: VenueOrder, source: str = "rest") -> ExecutionObservation:
    """What REST polling learned about an order's life-cycle, as an observation (fills come from trades)."""
    kinds = {
        VenueOrderStatus.PENDING: ObservationKind.PENDING_NEW,
        VenueOrderStatus.CANCELED: ObservationKind.CANCELED,
        VenueOrderStatus.EXPIRED: ObservationKind.EXPIRED,
        VenueOrderStatus.FILLED: ObservationKind.FILLED,
    }
    return ExecutionObservation(
        kind=kinds.get(order.status, ObservationKind.STATUS),
        txid=order.txid,
        cl_ord_id=order.cl_ord_id,
        order_status=order.status,
        source=source,
        timestamp=order.closed_at or order.opened_at,
        cum_qty=order.volume_executed,
        avg_price=order.average_price,
        reason=order.reason,
    )


def trade_observation(trade: VenueTrade, source: str = "rest") -> ExecutionObservation:
    """A fill learned by REST polling, in the same shape as a WS ``trade`` record (same trade_id)."""
    return ExecutionObservation(
        kind=ObservationKind.TRADE,
        txid=trade.txid,
        cl_ord_id=None,
        order_status=None,
        source=source,
        timestamp=trade.executed_at,
        trade_id=trade.trade_id,
        last_qty=trade.volume,
        last_price=trade.price,
        fee=trade.fee,
        fee_asset=trade.fee_asset or None,
    )
