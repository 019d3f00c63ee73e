"""Reasons carried by decision events: which rule decided, what it saw, and the threshold it compared against."""

from __future__ import annotations

from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any

from execledger.domain.values import plain


class Rule(StrEnum):
    """Which rule decided: the ``rule`` of every reason. The values are the stored and reported ids (never rename
    one: events, read models and audits hold them); a test checks every reason in the code names a member."""

    # Placing and sending an order
    APPROVED_SIGNAL = "approved_signal"
    SUBMIT = "submit"
    ACK = "ack"
    AMBIGUOUS_SUBMIT = "ambiguous_submit"
    NOT_SENT = "not_sent"
    VENUE_REJECTED = "venue_rejected"
    SEND_DEFERRED_VENUE_UNAVAILABLE = "send_deferred_venue_unavailable"
    NOT_EXECUTED_SEND_AGAIN = "not_executed_send_again"
    ENTRY_MAX_AGE_EXCEEDED = "entry_max_age_exceeded"
    RESTART_SUBMISSION_UNKNOWN = "restart_submission_unknown"
    UNKNOWN_RESOLVED_NOT_PLACED = "unknown_resolved_not_placed"
    REROUND_BY_CURRENT_RULES = "reround_by_current_rules"
    UNSENDABLE_AFTER_CORRECTION = "unsendable_after_correction"

    # What the venue reports (facts, and an order's state as the venue shows it)
    VENUE_FILL = "venue_fill"
    VENUE_PENDING = "venue_pending"
    VENUE_OPEN = "venue_open"
    VENUE_PARTIALLY_FILLED = "venue_partially_filled"
    VENUE_FILLED = "venue_filled"
    VENUE_CANCELED = "venue_canceled"
    VENUE_EXPIRED = "venue_expired"
    VENUE_ORDER_MISSING = "venue_order_missing"
    VENUE_CLOSED_SHORT = "venue_closed_short"
    VENUE_FACT_CONFLICT = "venue_fact_conflict"

    # Canceling and amending
    CANCEL_FAILED = "cancel_failed"
    CANCEL_OF_UNPLACED_ORDER = "cancel_of_unplaced_order"
    AMEND_ACK = "amend_ack"
    AMEND_REFUSED = "amend_refused"
    AMEND_NOT_APPLIED = "amend_not_applied"
    AMEND_PROVEN_BY_FILL = "amend_proven_by_fill"

    # Timeouts (FR-605)
    TIMEOUT_CANCEL = "timeout_cancel"
    TIMEOUT_CANCEL_REFUSED = "timeout_cancel_refused"

    # Brackets (FR-606) and OCO: the legs that protect an entry's position
    BRACKET_PLACED = "bracket_placed"
    BRACKET_GROW = "bracket_grow"
    BRACKET_GROW_AMEND = "bracket_grow_amend"
    BRACKET_BELOW_MINIMUM = "bracket_below_minimum"
    BRACKET_DUST_UNPROTECTABLE = "bracket_dust_unprotectable"
    OCO_CANCEL_SIBLING = "oco_cancel_sibling"
    OCO_SHRINK_AMEND = "oco_shrink_amend"
    ONE_LEG_PER_ROLE = "one_leg_per_role"
    AMEND_REFUSED_REPLACE = "amend_refused_replace"
    LEG_PLACED = "leg_placed"
    LEG_REPLACE = "leg_replace"
    LEG_VANISHED_RECREATE = "leg_vanished_recreate"
    LEG_REJECTED_TRANSIENT_RECREATE = "leg_rejected_transient_recreate"
    LEG_REJECTED_NOT_RECREATED = "leg_rejected_not_recreated"
    LEG_BELOW_MINIMUM = "leg_below_minimum"
    LEG_EMULATED = "leg_emulated"
    EMULATED_TRIGGER_CROSSED = "emulated_trigger_crossed"
    EMULATED_TRIGGER_EXIT = "emulated_trigger_exit"
    EMULATED_EXIT_REFUSED = "emulated_exit_refused"
    STOP_TRIGGER_CROSSED_EXIT = "stop_trigger_crossed_exit"
    STOP_REFUSED_TRIGGER_CROSSED = "stop_refused_trigger_crossed"
    POSITION_OVEREXITED = "position_overexited"
    RESIZE_TO_HOLDINGS = "resize_to_holdings"
    EXIT_UNFUNDED = "exit_unfunded"

    # Closing a position
    CLOSE_CANCEL_ENTRY = "close_cancel_entry"
    CLOSE_CANCEL_LEG = "close_cancel_leg"
    CLOSE_EXIT_AT_MARKET = "close_exit_at_market"
    CLOSE_DUST_UNSELLABLE = "close_dust_unsellable"

    # HALT and the operator
    HALT_WITHDRAW_ENTRY = "halt_withdraw_entry"
    HALT_CANCEL_ENTRIES = "halt_cancel_entries"
    OPERATOR_CANCEL = "operator_cancel"
    OPERATOR_CLOSE = "operator_close"
    OPERATOR_RESOLVED = "operator_resolved"


_AS_IS = frozenset({str, int, float, bool, type(None)})  # exact types returned unchanged (subclasses: below)


def jsonable(value: Any) -> Any:
    """JSON-friendly copy of a value: Decimals as plain text, enums as their values, unknown types as text."""
    kind = type(value)
    if kind in _AS_IS:  # the common values first, by their exact type (an enum member or other subclass is not)
        return value
    if kind is Decimal:
        return plain(value)
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


def reason(rule: Rule, text: str, **observed: Any) -> dict[str, Any]:
    """Build a reason record: ``rule`` names the rule that decided, ``text`` a sentence, the rest what was observed.

    Values are stored as JSON-friendly text (Decimals without exponent) so audit output shows them verbatim.
    """
    if not rule or not text:
        raise ValueError("a reason needs a rule and a text")
    return {"rule": str(rule), "text": text, **{k: jsonable(v) for k, v in observed.items()}}
