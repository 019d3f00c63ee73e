"""How the operator's surface spells things: one place for pair names, statuses and exit reasons.

- Pairs are shown as the signal gave them in Kraken's WS notation (``XBT/USD``, AssetPairs ``wsname``), not as the
  AssetPairs key the ledger stores (``XXBTZUSD``); the three accepted spellings all name the same pair (DESIGN.md).
- Statuses are the ledger's lower-case names (``filled``, ``partially_filled``); the execution-report table stores
  them upper case (the review's shape), so reports are translated on the way out.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from execledger.domain.pairs import PairRegistry
from execledger.domain.values import plain


def pair_name(pairs: PairRegistry | None, key: str | None) -> str | None:
    """``XXBTZUSD`` -> ``XBT/USD`` (unknown names are returned unchanged)."""
    if key is None or pairs is None:
        return key
    rules = pairs.find(key)
    return rules.wsname if rules is not None else key


def status_name(status: str | None) -> str | None:
    """One spelling of statuses everywhere: ``FILLED`` and ``filled`` -> ``filled``."""
    return None if status is None else status.lower()


# Which exit closed a position, from the role of the leg that filled it (and the rule that created an exit leg).
EXIT_REASONS = ("take_profit", "stop_loss", "manual", "timeout", "canceled", "rejected", "open", "not_filled")


def exit_reason_of(role: str, placed_rule: str | None) -> str:
    """The exit reason a filled leg stands for: its role, or for a market exit the rule that placed it."""
    if role == "take_profit":
        return "take_profit"
    if role == "stop_loss":
        return "stop_loss"
    if placed_rule and ("stop" in placed_rule):
        return "stop_loss"  # a stop rejected for good exits at market: still the stop's decision
    return "manual"


def _px(value: Any) -> str | None:
    return None if value in (None, "") else plain(round(Decimal(str(value)), 12))


def _leaves(qty: Any, filled: Any) -> str | None:
    return None if qty in (None, "") else plain(Decimal(str(qty)) - Decimal(str(filled or 0)))


def present_report(r: dict, pairs: PairRegistry | None, cancel_rules: dict[str, str]) -> dict:
    """An execution report as the operator reads it (FIX names; ``note`` says why, not what Kraken called it)."""
    note = r.get("error_message")
    if r["event"] in ("Canceled", "Expired"):
        rule = cancel_rules.get(r["order_id"])
        venue = r.get("error_message")
        note = f"[{rule}]" + (f" venue: {venue}" if venue else "") if rule else (f"venue: {venue}" if venue else None)
    return {
        "time": r["timestamp"],
        "signal_id": r["signal_id"],
        "role": r["role"],
        "event": r["event"],
        "pair": pair_name(pairs, r["trading_pair"]),
        "side": status_name(r["side"]),
        "type": status_name(r["order_type"]),
        "status": status_name(r["order_status"]),
        "qty": r["quantity_ordered"],
        "filled_qty": r["quantity_filled"],
        "leaves_qty": _leaves(r["quantity_ordered"], r["quantity_filled"]),
        "limit_px": r.get("limit_price"),
        "trigger_px": r.get("trigger_price"),
        "avg_px": _px(r.get("average_fill_price")),
        "fee": r["commission"],
        "fee_asset": r.get("commission_asset"),
        "txid": r.get("exchange_order_id"),
        "client_order_id": r["client_order_id"],
        "order_id": r["order_id"],
        "version": r["version"],
        "exchange_time": r.get("timestamp_exchange"),
        "note": note,
    }


def present_order(r: dict, pairs: PairRegistry | None) -> dict:
    return {
        "created_at": r["created_at"],
        "updated_at": r["updated_at"],
        "signal_id": r["signal_id"],
        "role": r["role"],
        "pair": pair_name(pairs, r["pair"]),
        "side": r["side"],
        "type": r["order_type"],
        "qty": r["quantity"],
        "limit_px": r.get("limit_price"),
        "trigger_px": r.get("trigger_price"),
        "status": status_name(r["status"]),
        "filled_qty": r["filled_quantity"],
        "leaves_qty": _leaves(r["quantity"], r["filled_quantity"]),
        "avg_px": _px(r.get("average_fill_price")),
        "fees": r["fees"],
        "fee_asset": r.get("fee_asset"),
        "txid": r.get("txid"),
        "client_order_id": r["cl_ord_id"],
        "order_id": r["order_id"],
        "parent_id": r.get("parent_id"),
        "last_error": r.get("last_error"),
    }


def present_fill(r: dict, pairs: PairRegistry | None) -> dict:
    return {
        "recorded_at": r["recorded_at"],
        "executed_at": r.get("executed_at"),
        "signal_id": r["signal_id"],
        "role": r["role"],
        "pair": pair_name(pairs, r["pair"]),
        "side": r["side"],
        "qty": r["quantity"],
        "px": r["price"],
        "fee": r["fee"],
        "fee_asset": r.get("fee_asset"),
        "trade_id": r["trade_id"],
        "order_id": r["order_id"],
        "source": r.get("source"),
    }


def order_brief(o: Any, pairs: PairRegistry | None) -> dict[str, Any]:
    """An Order aggregate as the operator reads it (FIX names)."""
    return {
        "order_id": str(o.id),
        "signal_id": o.signal_id,
        "role": o.role.value,
        "pair": pair_name(pairs, o.pair),
        "side": o.side.value,
        "type": o.order_type.value,
        "qty": plain(o.quantity),
        "limit_px": plain(o.limit_price) if o.limit_price is not None else None,
        "trigger_px": plain(o.trigger_price) if o.trigger_price is not None else None,
        "status": o.status.value,
        "filled_qty": plain(o.filled_quantity),
        "leaves_qty": plain(o.remaining_quantity),
        "avg_px": plain(round(o.average_fill_price, 12)) if o.average_fill_price is not None else None,
        "fees": plain(o.fees),
        "txid": o.txid,
        "client_order_id": o.cl_ord_id,
        "version": o.version,
    }
