"""Human-readable rendering of decision reasons for the CLI and the demo."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from execledger.domain.values import plain

def _fmt(value: Any) -> str:
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items()) or "{}"
    return str(value)


def reason_text(reason: dict | None) -> str:
    """``[rule] text (what it saw)`` for one decision's reason."""
    if not reason:
        return ""
    seen = "; ".join(f"{k}={_fmt(v)}" for k, v in reason.items() if k not in ("rule", "text") and v not in (None, {}, ""))
    return f"[{reason.get('rule')}] {reason.get('text')}" + (f" ({seen})" if seen else "")
