"""Kraken wire payloads -> the port's values: ``OrderStatusReport`` and ``FillReport``.

REFERENCE.md 3.7 (order info), 3.8 (trades), 6.2 (WS v2 executions). Kraken dicts stop here: nothing past the
adapter sees one. Decimals stay exact: REST sends strings; WS v2 sends JSON numbers, which the stream decodes with
``parse_float=Decimal`` (a float that still arrives is converted through its shortest repr).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from execledger.application.ports import VENUE_TERMINAL, FillReport, OrderStatusReport, VenueOrderStatus
from execledger.domain.pairs import PairRegistry
from execledger.domain.values import ZERO, Side, to_decimal
from execledger.infrastructure.kraken.wire import ExecType

TRIGGERED_TYPES = frozenset(
    {"stop-loss", "take-profit", "stop-loss-limit", "take-profit-limit", "trailing-stop", "trailing-stop-limit"}
)
TERMINAL = VENUE_TERMINAL
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
    """A WS v2 timestamp such as ``2024-05-18T12:58:40.165132Z`` (Python 3.11 reads the ``Z`` itself)."""
    if not value:
        return None
    return datetime.fromisoformat(value if type(value) is str else str(value))


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


def parse_order_info(
    txid: str, info: Mapping[str, Any], pairs: PairRegistry | None = None, source: str = "rest"
) -> OrderStatusReport:
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
    return OrderStatusReport(
        venue_order_id=txid,
        client_order_id=info.get("cl_ord_id") or None,
        status=status,
        source=source,
        pair=_pair_key(str(descr.get("pair", "")), pairs),
        side=side,
        order_type=order_type,
        quantity=volume,
        filled_qty=executed,
        avg_px=optional_price(info.get("price")) if executed > ZERO else None,
        commission=number(info.get("fee", "0")),
        commission_asset=_fee_asset(str(info.get("oflags") or ""), str(descr.get("pair", "")), pairs),
        limit_price=limit_price,
        trigger_price=stop_price,
        ts_accepted=epoch(info.get("opentm")),
        ts_last=epoch(info.get("closetm")),
        reason=info.get("reason") or None,
        trade_ids=tuple(info.get("trades") or ()),
    )


def _fee_asset(oflags: str, pair: str, pairs: PairRegistry | None) -> str | None:
    """The asset an order's fees are charged in, as its ``oflags`` name it (Kraken always names ``fcib`` or ``fciq``
    there): the pair's base or quote key; None when the flags or the pair's rules are not known."""
    rules = pairs.find(pair) if pairs is not None and pair else None
    flags = {f.strip() for f in oflags.split(",")}
    if rules is None:
        return None
    return rules.base if "fcib" in flags else rules.quote if "fciq" in flags else None


def parse_orders(
    result: Mapping[str, Any], pairs: PairRegistry | None = None, source: str = "rest"
) -> dict[str, OrderStatusReport]:
    """A QueryOrders ``result`` (txid -> info) or an Open/ClosedOrders ``result`` (``open``/``closed`` wrapper)."""
    body = result["open"] if "open" in result else result.get("closed", result)
    return {txid: parse_order_info(txid, info, pairs, source) for txid, info in body.items()}


def parse_trade(trade_txid: str, info: Mapping[str, Any], pairs: PairRegistry | None = None) -> FillReport:
    """One TradesHistory / QueryTrades entry. ``trade_id`` is the trade txid (what WS v2 calls ``exec_id``), so a
    fill seen by the stream and by REST has one id. REST gives no fee asset: it is the quote by default (fciq), and
    the order's report (its ``oflags``) corrects it when the order pays in the base (``fcib``)."""
    try:
        pair = _pair_key(str(info["pair"]), pairs)
        rules = pairs.find(pair) if pairs is not None else None
        return FillReport(
            trade_id=trade_txid,
            venue_order_id=str(info["ordertxid"]),
            last_qty=number(info["vol"]),
            last_px=number(info["price"]),
            commission=number(info["fee"]),
            commission_asset=rules.quote if rules is not None else "",
            ts_event=epoch(info["time"]) or datetime.fromtimestamp(0, tz=UTC),
            pair=pair,
            side=Side(info["type"]),
            source="rest",
            liquidity_maker=info.get("maker"),
        )
    except (KeyError, ValueError) as exc:
        raise UnparseablePayload(f"trade {trade_txid}: missing or bad field {exc}") from None


def parse_trades(result: Mapping[str, Any], pairs: PairRegistry | None = None) -> list[FillReport]:
    """TradesHistory (``{"trades": {...}, "count": n}``) or QueryTrades (txid -> trade) ``result``, oldest first."""
    body = result["trades"] if "trades" in result and isinstance(result["trades"], Mapping) else result
    trades = [parse_trade(txid, info, pairs) for txid, info in body.items()]
    return sorted(trades, key=lambda t: t.ts_event)


def parse_add_order(result: Mapping[str, Any]) -> str | None:
    """The txid of a single AddOrder (an array of one), None for ``validate=true`` (no txid)."""
    txids = result.get("txid") or []
    if isinstance(txids, str):
        return txids
    return str(txids[0]) if txids else None


# The status an execution record implies when it carries no ``order_status`` (records are sparse). Keyed by the
# wire's strings (an ExecType is one), so a record's ``exec_type`` is looked up as it came.
_STATUS_OF_EXEC_TYPE: dict[str, VenueOrderStatus] = {
    ExecType.PENDING_NEW: VenueOrderStatus.PENDING,
    ExecType.NEW: VenueOrderStatus.OPEN,
    ExecType.FILLED: VenueOrderStatus.FILLED,
    ExecType.CANCELED: VenueOrderStatus.CANCELED,
    ExecType.EXPIRED: VenueOrderStatus.EXPIRED,
}
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}


def _dec(record: Mapping[str, Any], name: str) -> Decimal | None:
    value = record.get(name)
    return None if value is None else number(value)


def parse_execution_report(
    record: Mapping[str, Any], sequence: int | None, pairs: PairRegistry | None = None
) -> list[FillReport | OrderStatusReport]:
    """One WS v2 ``executions`` record: a trade gives a FillReport and the OrderStatusReport after it; any other
    record an OrderStatusReport. Records are sparse: only exec_type, order_id, timestamp and (mostly) order_status
    are reliably present; everything else is None when absent. A record that says nothing about the order's
    status (e.g. ``iceberg_refill`` without ``order_status``) gives nothing."""
    try:
        exec_type = str(record["exec_type"])
        txid = str(record["order_id"])
    except KeyError as exc:
        raise UnparseablePayload(f"execution report without {exc}") from None

    raw_status = record.get("order_status")
    status = WS_ORDER_STATUS.get(raw_status) if raw_status else None
    if status is None:
        status = _STATUS_OF_EXEC_TYPE.get(exec_type)
    timestamp = rfc3339(record.get("timestamp"))
    symbol = record.get("symbol")
    pair = _pair_key(str(symbol), pairs) if symbol else None
    side = _SIDES.get(record.get("side"))  # type: ignore[arg-type]  # any other value (or none) is no side
    cl_ord_id = record.get("cl_ord_id") or None
    reports: list[FillReport | OrderStatusReport] = []
    if exec_type == ExecType.TRADE and record.get("exec_id"):
        fees = record.get("fees") or []
        try:
            reports.append(
                FillReport(
                    trade_id=str(record["exec_id"]),
                    venue_order_id=txid,
                    last_qty=number(record["last_qty"]),
                    last_px=number(record["last_price"]),
                    commission=sum((number(f["qty"]) for f in fees), ZERO),
                    commission_asset=_asset_key(str(fees[0]["asset"]), symbol, pairs) if fees else "",
                    ts_event=timestamp or datetime.fromtimestamp(0, tz=UTC),
                    pair=pair,
                    side=side,
                    source="ws",
                    client_order_id=cl_ord_id,
                    liquidity_maker=(record["liquidity_ind"] == "m") if record.get("liquidity_ind") else None,
                )
            )
        except (KeyError, ValueError) as exc:
            raise UnparseablePayload(f"trade {record.get('exec_id')}: missing or bad field {exc}") from None
    if status is None:
        return reports
    reports.append(
        OrderStatusReport(
            venue_order_id=txid,
            client_order_id=cl_ord_id,
            status=status,
            source="ws",
            pair=pair,
            side=side,
            order_type=record.get("order_type"),
            quantity=_dec(record, "order_qty"),
            filled_qty=_dec(record, "cum_qty"),
            avg_px=_dec(record, "avg_price") or None,
            limit_price=_dec(record, "limit_price") or None,
            trigger_price=_ws_trigger(record),
            ts_last=timestamp,
            reason=record.get("reason") or record.get("cancel_reason") or None,
            sequence=sequence,
        )
    )
    return reports


def _asset_key(asset: str, symbol: Any, pairs: PairRegistry | None) -> str:
    """WS v2 names fee assets as it names symbols (``USD``, ``BTC``); REST names them by their Assets key (``ZUSD``,
    ``XXBT``). A fill carries the same asset whichever path delivered it: the key of the pair's base or quote."""
    rules = pairs.find(str(symbol)) if pairs is not None and symbol else None
    if rules is None:
        return asset
    base, _, quote = rules.wsname.upper().partition("/")
    name = "XBT" if asset.upper() == "BTC" else asset.upper()
    return rules.base if name == base else rules.quote if name == quote else asset


def _ws_trigger(record: Mapping[str, Any]) -> Decimal | None:
    triggers = record.get("triggers")
    if triggers is not None and isinstance(triggers, Mapping) and triggers.get("price") is not None:
        return number(triggers["price"]) or None
    return optional_price(record.get("stop_price"))


def parse_executions_message(
    message: Mapping[str, Any], pairs: PairRegistry | None = None
) -> list[FillReport | OrderStatusReport]:
    """A whole ``{"channel":"executions","type":"snapshot"|"update","data":[...],"sequence":n}`` message."""
    sequence = message.get("sequence")
    return [report for r in message.get("data") or () for report in parse_execution_report(r, sequence, pairs)]
