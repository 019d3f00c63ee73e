"""Small value types shared by the domain: enums and exact decimal helpers."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

ZERO = Decimal(0)


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    """Kraken ``ordertype`` values the ledger places (signals use market/limit; brackets use the triggered ones)."""

    MARKET = "market"
    LIMIT = "limit"
    STOP_LOSS = "stop-loss"
    STOP_LOSS_LIMIT = "stop-loss-limit"
    TAKE_PROFIT = "take-profit"
    TAKE_PROFIT_LIMIT = "take-profit-limit"


class OrderRole(StrEnum):
    """Why an order exists: the signal's entry, or one leg of its protective bracket."""

    ENTRY = "entry"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    EXIT = "exit"


def to_decimal(value: Any) -> Decimal:
    """Convert an exact textual or integral number to Decimal. Floats are refused: they are not exact."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (bool, float)):
        raise ValueError(f"{value!r} is not an exact number; pass it as a string")
    try:
        d = Decimal(str(value).strip()) if isinstance(value, (str, int)) else Decimal(value)
    except (InvalidOperation, TypeError) as exc:
        raise ValueError(f"{value!r} is not a number") from exc
    if not d.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return d


def plain(d: Decimal) -> str:
    """Render a Decimal without exponent and without trailing zeros (``1E+1`` -> ``10``, ``1.500`` -> ``1.5``)."""
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s or "0"
