"""Reasons carried by decision events: which rule decided, what it saw, and the threshold it compared against."""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Any

from execledger.domain.values import plain


def jsonable(value: Any) -> Any:
    """JSON-friendly copy of a value: Decimals as plain text, enums as their values, unknown types as text."""
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def reason(rule: str, text: str, **observed: Any) -> dict[str, Any]:
    """Build a reason record: ``rule`` is a stable identifier, ``text`` a sentence, the rest what was observed.

    Values are stored as JSON-friendly text (Decimals without exponent) so audit output shows them verbatim.
    """
    if not rule or not text:
        raise ValueError("a reason needs a rule and a text")
    return {"rule": rule, "text": text, **{k: jsonable(v) for k, v in observed.items()}}
